"""Dagster assets of the evaluation domain: per model × dataset the scored reconstruction of the test split, per
dataset the no-motion baseline's and the animation samples, and one leaderboard over everything.

Scoring itself is ``training.evaluation.scoring``, the same code `motionpipe evaluate` (and so `dvc repro`) runs;
these assets add the range check, the metadata the Dagster UI shows and content-derived data versions. They sit in
each dataset's models group, downstream of its checkpoints (``assets.models.defs``).
"""

import hashlib
import json
import os

import dagster as dg

from assets.asset_report import AssetReport
from assets.inline_images import inline_images
from assets.keys import (ANIMATION_SAMPLES, LEADERBOARD, SHARDS, ablations_group, checkpoint_key, dataset_key,
                         evaluation_key, leaderboard_key, model_kinds, model_label, models_group, no_motion_key)
from assets.models.defs import STALE
from assets.resources import DataRootResource, TrainingResource
from assets.versions import MODEL_STAGE_VERSIONS
from storage import paths
from training.evaluation.scoring import metric_problems, score_model, score_no_motion
from training.experiments.variants import base_model, run_config
from training.extractors import weights_from_env
from training.run_params import ParamsFile


METRICS_CHECK = "metrics_in_range"
PREVIEW_PAIRS = 4  # contact sheets shown inline on the samples' page (every pair's files are listed in `files`)
METRICS_CHECK_DESCRIPTION = "L1 and MKR in [0, 1], AKD within the frame, AED >= 0, all finite, L1 present."


def metric_metadata(metrics: dict[str, float | None]) -> dict[str, dg.MetadataValue]:
    """Every metric as its own float entry (a missing one as NaN), so the Plots tab charts it across runs."""
    return {k: dg.MetadataValue.float(float("nan") if v is None else float(v)) for k, v in metrics.items()
            if v is None or isinstance(v, (int, float))}


def scores_report(key: dg.AssetKey, scores, frame_size: int) -> AssetReport:
    """An evaluation's materialization: every metric as metadata, a Markdown table, and the range check."""
    problems = metric_problems(scores.metrics, frame_size)
    digest = hashlib.sha256(json.dumps(scores.metrics, sort_keys=True).encode()).hexdigest()[:16]
    prov = scores.provenance
    table = "| metric | value |\n|---|---|\n" + "".join(
        f"| {k} | {'n/a' if v is None else f'{v:.4g}'} |\n" for k, v in scores.metrics.items())
    return AssetReport(
        key, data_version=digest,
        metadata={**metric_metadata(scores.metrics),
                  "scores": dg.MetadataValue.md(table), "reused": scores.reused,
                  "path": dg.MetadataValue.path(str(scores.out_dir)),
                  "checkpoint_sha256": prov.get("checkpoint_sha256", ""),
                  "chunks": prov.get("chunks", 0), "frames": prov.get("frames", 0),
                  "skipped_extractors": dg.MetadataValue.json(prov.get("skipped_extractors", {})),
                  "dataset_version": dg.MetadataValue.json(prov.get("dataset_version") or {})},
        checks=(dg.AssetCheckResult(asset_key=key, check_name=METRICS_CHECK, passed=not problems,
                                    metadata={"problems": dg.MetadataValue.json(problems)}),),
    )


def _scores_result(context: dg.AssetExecutionContext, scores, frame_size: int) -> dg.MaterializeResult:
    if scores.reused:
        context.log.info(f"{scores.out_dir}: already scored on these data with these settings; reused")
    return scores_report(context.asset_key, scores, frame_size).result()


def evaluation_asset(model: str, dataset: str, config_dir: str | None, group: str | None = None) -> dg.AssetsDefinition:
    key = evaluation_key(dataset, model)
    version = f"{MODEL_STAGE_VERSIONS['evaluation']}"

    @dg.asset(
        key=key, deps=[checkpoint_key(dataset, model), dataset_key(dataset, SHARDS)],
        group_name=group or models_group(dataset),
        code_version=version, kinds=model_kinds(base_model(model), "parquet"), automation_condition=STALE,
        tags={"model": model},
        description=f"**{model_label(key)}**: the reconstruction of every {dataset} test chunk, scored as the papers "
                    f"do (L1, AKD, MKR, AED, each keypoint/identity metric named by its extractor).",
        check_specs=[dg.AssetCheckSpec(METRICS_CHECK, asset=key, description=METRICS_CHECK_DESCRIPTION)],
    )
    def _evaluation(context: dg.AssetExecutionContext, data_root: DataRootResource,
                    training: TrainingResource) -> dg.MaterializeResult:
        root = data_root.get()
        scores = score_model(root, model, dataset, training.params(dataset), device=training.torch_device(),
                             extractor_weights=weights_from_env(os.environ))
        size = run_config(model, dataset, training.config_dir or config_dir).frame_size[0]
        return _scores_result(context, scores, size)

    return _evaluation


def no_motion_asset(dataset: str) -> dg.AssetsDefinition:
    key = no_motion_key(dataset)

    @dg.asset(
        key=key, deps=[dataset_key(dataset, SHARDS)], group_name=models_group(dataset),
        code_version=MODEL_STAGE_VERSIONS["evaluation"], kinds=model_kinds("no_motion", "parquet"),
        automation_condition=STALE, tags={"model": "no_motion"},
        description=f"**{model_label(key)}**: the no-motion baseline, each {dataset} test chunk's source frame as "
                    f"every prediction, scored like the models (same chunks and metrics), so the leaderboard shows "
                    f"what a model must beat.",
        check_specs=[dg.AssetCheckSpec(METRICS_CHECK, asset=key, description=METRICS_CHECK_DESCRIPTION)],
    )
    def _no_motion(context: dg.AssetExecutionContext, data_root: DataRootResource,
                   training: TrainingResource) -> dg.MaterializeResult:
        from training.loop.data import load_split_index
        root = data_root.get()
        scores = score_no_motion(root, dataset, training.params(dataset), device=training.torch_device(),
                                 extractor_weights=weights_from_env(os.environ))
        size = max(c.height for c in load_split_index(root, dataset, "test").chunks)
        return _scores_result(context, scores, size)

    return _no_motion


def samples_asset(dataset: str, models: tuple[str, ...], avd_models: tuple[str, ...]) -> dg.AssetsDefinition:
    deps = [checkpoint_key(dataset, m) for m in models] + [checkpoint_key(dataset, m, "avd") for m in avd_models]

    @dg.asset(key=dataset_key(dataset, ANIMATION_SAMPLES), deps=deps, group_name=models_group(dataset),
              code_version=MODEL_STAGE_VERSIONS["samples"], kinds={"video"}, automation_condition=STALE,
              description=f"Fixed (source, driving) pairs of the {dataset} test split animated by every model in "
                          f"relative and AVD mode, side by side: MP4, GIF and a contact sheet per pair.")
    def _samples(context: dg.AssetExecutionContext, data_root: DataRootResource,
                 training: TrainingResource) -> dg.MaterializeResult:
        from training.evaluation.sample_render import published_checkpoints, render_samples
        root = data_root.get()
        params = training.params(dataset)
        checkpoints = [published_checkpoints(root, m, dataset, avd=m in avd_models) for m in models]
        written = render_samples(root, dataset, checkpoints, paths.samples_dir(root, dataset),
                                 n_pairs=params.sample_pairs, device=training.torch_device(),
                                 max_frames=params.sample_max_frames)
        return samples_report(dataset_key(dataset, ANIMATION_SAMPLES), paths.samples_dir(root, dataset),
                              written).result()

    return _samples


def samples_report(key: dg.AssetKey, out_dir: str, written) -> AssetReport:
    """The samples' materialization: every pair's files, and the first pairs' contact sheets shown inline."""
    files = {w.pair.name: {"mp4": w.files.mp4, "gif": w.files.gif, "contact_sheet": w.files.png,
                           "frames": w.frames, "columns": list(w.columns)} for w in written}
    sheets = [(w.files.png, f"{w.pair.name}: {', '.join(w.columns)}") for w in written[:PREVIEW_PAIRS]]
    preview = {"contact_sheets": inline_images(sheets)} if sheets else {}
    return AssetReport(key, metadata={"pairs": len(written), "path": dg.MetadataValue.path(str(out_dir)),
                                      "files": dg.MetadataValue.json(files), **preview})


def leaderboard_report(written, evaluations: int) -> AssetReport:
    """The leaderboard's materialization: the table itself, the pictures `dvc plots show` shows (inline), and
    where its files are."""
    board, files = written.board, written.files
    pictures = [(path, name.removeprefix("plot/").replace("/", ": ").replace("_", " "))
                for name, path in sorted(files.items()) if name.startswith("plot/")]
    preview = {"plots": inline_images(pictures, max_width=640)} if pictures else {}
    return AssetReport(
        leaderboard_key(), data_version=hashlib.sha256(board.to_json().encode()).hexdigest()[:16],
        metadata={"table": dg.MetadataValue.md(board.to_markdown()), **preview, "evaluations": evaluations,
                  "markdown": dg.MetadataValue.path(files["markdown"]),
                  "json": dg.MetadataValue.path(files["json"]),
                  "per_video": dg.MetadataValue.path(files["per_video_markdown"])})


def leaderboard_asset(pairs: list[tuple[str, str]], datasets: tuple[str, ...]) -> dg.AssetsDefinition:
    deps = [evaluation_key(d, m) for m, d in pairs] + [no_motion_key(d) for d in datasets]

    @dg.asset(key=LEADERBOARD, deps=deps, group_name=LEADERBOARD,
              code_version=MODEL_STAGE_VERSIONS["leaderboard"], kinds={"json"}, automation_condition=STALE,
              description="Every scored model beside the published number of its paper and the no-motion baseline "
                          "(Markdown + JSON) and each video's mean scores (per_video.csv/.md); only numbers from "
                          "the same extractor are ever compared.")
    def _leaderboard(context: dg.AssetExecutionContext, data_root: DataRootResource) -> dg.MaterializeResult:
        from training.reporting.leaderboard import collect_results
        from training.reporting.reports import write_reports
        root = data_root.get()
        results, sources = collect_results(root)
        written = write_reports(root, results, sources, paths.leaderboard_dir(root))
        return leaderboard_report(written, len(results)).result()

    return _leaderboard


def evaluation_assets(datasets: tuple[str, ...], params: ParamsFile, config_dir: str | None) -> list:
    """Every evaluation of params.yaml's models on ``datasets``, each dataset's baseline and samples, the leaderboard."""
    assets: list = []
    pairs = []
    for dataset in datasets:
        models = params.models_for(dataset)
        for model in models:
            assets.append(evaluation_asset(model, dataset, config_dir))
            pairs.append((model, dataset))
        for experiment in params.experiments_for(dataset):
            assets.append(evaluation_asset(experiment, dataset, config_dir, group=ablations_group(dataset)))
            pairs.append((experiment, dataset))
        assets.append(no_motion_asset(dataset))
        assets.append(samples_asset(dataset, models, tuple(m for m in params.avd_models if m in models)))
    assets.append(leaderboard_asset(pairs, datasets))
    return assets
