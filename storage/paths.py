"""Every name in the data root, in one place. Under the repository's data/, DVC versions all dvc.yaml outputs; git
tracks the small `cache: false` ones (coverage.json, curves.*, metrics.json, leaderboard.json: see .gitignore).

<root>/datasets/<dataset>/
    manifest/{videos,clips,errors}.parquet   validated manifest: videos to fetch, clips to replay, rejected rows
    videos/<video_id>/source.<ext>    downloaded video, as obtained
    videos/<video_id>/download.json   what yt-dlp did: status, error class and message, format, fps, size, sha256
    videos/<video_id>/detections.parquet  per sampled frame person boxes (discovery datasets)
    videos/<video_id>/chunks.json     chunk spans and boxes chosen for this video
    videos/<video_id>/clips.tar       WebDataset samples of this video's chunks (cropped, resized)
    catalog/videos.parquet, catalog/chunks.parquet
    shards/<split>-NNNNNN.tar (+ .parquet sidecar), shards/manifest.json
    coverage/coverage.json
    last_rebuild.json                 the last `motionpipe rebuild`: running, finished, or where and why it stopped
<root>/runs/<model>-<dataset>/<stage>-<run key>/   one training run: checkpoints/, tensorboard/ (resumable; its
                                      evaluation/ subfolder: the scores of its checkpoints)
<root>/models/<dataset>/<model>/
    main.pt, avd.pt                   the published checkpoints (DVC outs): copies of a run's last checkpoint
    curves.csv, curves.png            training curves of the main stage (DVC plots, git-tracked)
<root>/evaluations/<dataset>/<model>/    generated.tar, per_frame.parquet, metrics.json (DVC metrics), evaluation.json
<root>/evaluations/<dataset>/extractor-cache/   extractor outputs on the real test frames (not versioned)
<root>/samples/<dataset>/             animation samples: MP4, GIF and contact sheet per (source, driving) pair
<root>/leaderboard/                   leaderboard.md, leaderboard.json, per_video.csv, per_video.md
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # names only: importing this module needs no filesystem library (the training loop uses it)
    from storage.root import DataRoot

DATASETS = "datasets"


def dataset_dir(root: DataRoot, dataset: str) -> str:
    return root.path(DATASETS, dataset)


def manifest_path(root: DataRoot, dataset: str, table: str) -> str:
    if table not in ("videos", "clips", "errors", "source"):
        raise ValueError(f"unknown manifest table {table!r}")
    return root.path(DATASETS, dataset, "manifest", f"{table}.parquet")


def upstream_dir(root: DataRoot, dataset: str) -> str:
    """Where the offline sample keeps the videos it 'publishes' for yt-dlp to fetch."""
    return root.path(DATASETS, dataset, "upstream")


def video_dir(root: DataRoot, dataset: str, video_id: str) -> str:
    return root.path(DATASETS, dataset, "videos", video_id)


def download_record_path(root: DataRoot, dataset: str, video_id: str) -> str:
    return root.path(DATASETS, dataset, "videos", video_id, "download.json")


def detections_path(root: DataRoot, dataset: str, video_id: str) -> str:
    return root.path(DATASETS, dataset, "videos", video_id, "detections.parquet")


def chunks_path(root: DataRoot, dataset: str, video_id: str) -> str:
    return root.path(DATASETS, dataset, "videos", video_id, "chunks.json")


def video_pass_path(root: DataRoot, dataset: str, video_id: str) -> str:
    return root.path(DATASETS, dataset, "videos", video_id, "video_pass.json")


def clips_path(root: DataRoot, dataset: str, video_id: str) -> str:
    return root.path(DATASETS, dataset, "videos", video_id, "clips.tar")


def catalog_path(root: DataRoot, dataset: str, table: str) -> str:
    if table not in ("videos", "chunks"):
        raise ValueError(f"unknown catalog table {table!r}")
    return root.path(DATASETS, dataset, "catalog", f"{table}.parquet")


def shards_dir(root: DataRoot, dataset: str) -> str:
    return root.path(DATASETS, dataset, "shards")


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:06d}.tar"


def shard_sidecar_name(shard: str) -> str:
    """The Parquet index beside a shard: `train-000000.tar` -> `train-000000.parquet`."""
    return shard.removesuffix(".tar") + ".parquet"


def coverage_path(root: DataRoot, dataset: str) -> str:
    return root.path(DATASETS, dataset, "coverage", "coverage.json")


def last_rebuild_path(root: DataRoot, dataset: str) -> str:
    return root.path(DATASETS, dataset, "last_rebuild.json")


STAGE_FILES = {"main": "main.pt", "avd": "avd.pt"}


def model_dir(root: DataRoot, dataset: str, model: str) -> str:
    return root.path("models", dataset, model)


def published_checkpoint(root: DataRoot, dataset: str, model: str, stage: str = "main") -> str:
    if stage not in STAGE_FILES:
        raise ValueError(f"unknown training stage {stage!r} (one of {sorted(STAGE_FILES)})")
    return root.path("models", dataset, model, STAGE_FILES[stage])


def training_run_dir(root: DataRoot, dataset: str, model: str, stage: str, key: str) -> str:
    return root.path("runs", f"{model}-{dataset}", f"{stage}-{key}")


RUN_CHECKPOINTS = "checkpoints"
RUN_TENSORBOARD = "tensorboard"


def run_checkpoints_dir(run_dir: str | Path) -> Path:
    """Where a training run (any ``--out`` folder, not only one under ``runs/``) keeps its checkpoints."""
    return Path(run_dir) / RUN_CHECKPOINTS


def run_tensorboard_dir(run_dir: str | Path) -> Path:
    """Where a training run writes its TensorBoard event files."""
    return Path(run_dir) / RUN_TENSORBOARD


RUN_TENSORBOARD_EVALUATION = "evaluation"


def run_evaluation_tensorboard_dir(run_dir: str | Path) -> Path:
    """Where the scores of a run's checkpoints go in TensorBoard: a run of its own inside the training run's folder,
    so the training curves (``curves.csv``, read from the folder above) stay losses only."""
    return run_tensorboard_dir(run_dir) / RUN_TENSORBOARD_EVALUATION


def local_base(root: DataRoot) -> Path:
    """The data root as a local folder: checkpoints and evaluations are written as local files."""
    if not root.is_local:
        raise ValueError(f"training and evaluation write checkpoints as local files; the data root {root.url} is "
                         f"not local (use a local data root, or sync it with DVC / fsspec first)")
    return Path(root.base)


def evaluation_dir(root: DataRoot, dataset: str, model: str) -> str:
    return root.path("evaluations", dataset, model)


EXTRACTOR_CACHE = "extractor-cache"


def evaluation_cache_dir(root: DataRoot, dataset: str) -> str:
    """Extractor outputs on the real test frames, shared by every model scored on ``dataset``."""
    return root.path("evaluations", dataset, EXTRACTOR_CACHE)


def samples_dir(root: DataRoot, dataset: str) -> str:
    return root.path("samples", dataset)


def leaderboard_dir(root: DataRoot) -> str:
    return root.path("leaderboard")


def ablations_dir(root: DataRoot) -> str:
    return root.path("ablations")
