"""The names of the graph: asset keys, groups, partitions and jobs, in one place, so the factories, the CLI, the demo
and the tests name an asset the same way. Keys of a dataset are `<dataset>/<stage>`; of a model
`<dataset>/<model>/<stage>`."""
from __future__ import annotations

import dagster as dg

# The per-dataset stages, in flow order.
MANIFEST = "manifest"
RAW_VIDEO = "raw_video"
DETECTIONS = "detections"
CHUNKS = "chunks"
CLIPS = "clips"
CATALOG = "catalog"
SHARDS = "shards"
COVERAGE = "coverage"
ANIMATION_SAMPLES = "animation_samples"
LEADERBOARD = "leaderboard"  # one asset over every dataset, in a group of its own name
ABLATIONS = "ablations"  # the papers' ablation tables from the experiments' scores, in the leaderboard's group
RETRAIN_JOB = "retrain_job"


def dataset_key(dataset: str, stage: str) -> dg.AssetKey:
    return dg.AssetKey([dataset, stage])


def leaderboard_key() -> dg.AssetKey:
    return dg.AssetKey(LEADERBOARD)


def checkpoint_key(dataset: str, model: str, stage: str = "main") -> dg.AssetKey:
    return dg.AssetKey([dataset, model, "checkpoint" if stage == "main" else "avd"])


def evaluation_key(dataset: str, model: str) -> dg.AssetKey:
    return dg.AssetKey([dataset, model, "evaluation"])


def no_motion_key(dataset: str) -> dg.AssetKey:
    return evaluation_key(dataset, "no_motion")


def model_label(key: dg.AssetKey) -> str:
    """A model asset's readable name: the UI labels a graph node with the last key part only ("checkpoint")."""
    dataset, model, stage = key.path
    return f"{model} {stage} on {dataset}"


def model_kinds(model: str, *kinds: str) -> set[str]:
    """The kinds of a model asset, the model among them: Dagster 1.13 has no display name for an asset (its graph
    shows the last key part), but it draws every kind on the node, so each node names its model (and `kind:fomm`
    selects a model's assets). Dagster allows three kinds per asset."""
    return {*kinds, model}


def dataset_group(dataset: str) -> str:
    return dataset


def models_group(dataset: str) -> str:
    return f"{dataset}_models"


def ablations_group(dataset: str) -> str:
    """The group of a dataset's experiments (the papers' ablations and region counts), apart from its models."""
    return f"{dataset}_ablations"


def video_partitions_name(dataset: str) -> str:
    return f"{dataset}_videos"


def video_pass_name(dataset: str) -> str:
    """The op of the per-video multi-asset (detections, chunks, clips)."""
    return f"{dataset}_video_pass"


def catalog_and_shards_name(dataset: str) -> str:
    """The op of the dataset-level multi-asset (catalog, shards and their checks)."""
    return f"{dataset}_catalog_and_shards"


def manifest_job_name(dataset: str) -> str:
    return f"{dataset}_manifest_job"


def video_job_name(dataset: str) -> str:
    return f"{dataset}_video_job"


def dataset_job_name(dataset: str) -> str:
    return f"{dataset}_dataset_job"


def models_job_name(dataset: str) -> str:
    return f"{dataset}_models_job"
