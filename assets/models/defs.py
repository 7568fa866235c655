"""Dagster assets of the models domain, from one factory: per model × dataset a checkpoint, an AVD network (MRAA,
TPSMM) and an evaluation; per dataset the no-motion baseline's evaluation and the animation samples; one leaderboard
over everything.

Code versions carry each config's hash and data versions come from content (shards, checkpoint and metric bytes),
so a changed dataset or config marks exactly its downstream models stale, and the automation condition retrains
exactly those. Training runs as its own process through Dagster Pipes (``assets.models.pipes_train``).
"""

import hashlib
import json
import math
import warnings
from pathlib import Path

import dagster as dg
from dagster._core.errors import DagsterPipesExecutionError

from training.run_params import PARAMS_FILE, config_path, load_params
from assets.models.runs import TrainingPlan, plan_training, publish_checkpoint, write_run_curves
from assets.versions import MODEL_STAGE_VERSIONS
from pipelines.resources import DataRootResource, TrainingResource
from storage import paths
from training.evaluation.scoring import metric_problems, score_model, score_no_motion

# Retrain / re-score what went stale: a dependency got new data, or this asset's code version (config) changed.
# `eager` also fills in what was never built once its inputs exist.
STALE = (dg.AutomationCondition.eager() | dg.AutomationCondition.code_version_changed()).with_label("stale")


def group(dataset: str) -> str:
    return f"{dataset}_models"


def checkpoint_key(dataset: str, model: str, stage: str = "main") -> dg.AssetKey:
    return dg.AssetKey([dataset, model, "checkpoint" if stage == "main" else "avd"])


def evaluation_key(dataset: str, model: str) -> dg.AssetKey:
    return dg.AssetKey([dataset, model, "evaluation"])


def _config_hash(model: str, dataset: str, config_dir: str | None) -> str:
    from training.config import config_hash, load_config
    return config_hash(load_config(config_path(model, dataset, config_dir)))


def _lineage_metadata(published: Path) -> dict:
    """The checkpoint's lineage as the Dagster UI shows it: data version, code, and the ids it trained on."""
    from pipelines.lineage import checkpoint_lineage

    trail = checkpoint_lineage(published)
    version = (trail.get("dataset") or {}).get("version") or {}
    videos = [v["video_id"] for v in trail.get("videos", [])]
    return {
        "config_hash": trail.get("config_hash") or "", "git_commit": trail.get("git_commit") or "",
        "motionpipe_version": trail.get("motionpipe") or "",
        "dataset_version": dg.MetadataValue.json(version),
        "train_chunks": len(trail.get("chunks", [])), "train_videos": len(videos),
        "lineage": dg.MetadataValue.md(
            "| from | what |\n|---|---|\n"
            f"| manifest | `{version.get('manifest_source')}` sha256 `{(version.get('manifest_sha256') or '')[:16]}` |\n"
            f"| videos | {', '.join(f'`{v}`' for v in videos[:30])}{' ...' if len(videos) > 30 else ''} |\n"
            f"| chunks | {len(trail.get('chunks', []))} train chunks |\n"
            f"| shards | content `{version.get('shards_content_hash', '')[:16]}`, DVC `{version.get('shards_dvc_md5')}` |\n"
            f"| checkpoint | `{published}` step {trail.get('step')}, sha256 `{trail['sha256'][:16]}` |\n"),
    }


def _train(context: dg.AssetExecutionContext, plan: TrainingPlan, pipes: dg.PipesSubprocessClient) -> dg.MaterializeResult:
    context.log.info(f"training {plan.describe()}: {' '.join(plan.command)}")
    try:
        with warnings.catch_warnings():  # Dagster's own preview notice about its Pipes message reader
            warnings.simplefilter("ignore", dg.PreviewWarning)
            completed = pipes.run(command=list(plan.command), context=context)
    except DagsterPipesExecutionError as exc:
        raise dg.Failure(description=f"training {plan.describe()} failed ({exc}); the reason is in this step's log. "
                                     f"Its run folder {plan.run_dir} is kept: re-materialize to resume from its "
                                     f"newest good checkpoint; the published {plan.published} is unchanged.") from exc
    reported = completed.get_materialize_result()
    meta = reported.metadata or {}
    checkpoint = Path(meta["checkpoint"].value if hasattr(meta["checkpoint"], "value") else meta["checkpoint"])
    published = publish_checkpoint(checkpoint, plan)  # verified before it replaces the previous good one
    context.log.info(f"published {published.path} (step {published.step}) from {checkpoint}")
    metadata = {k: v for k, v in meta.items() if k != "checkpoint"}
    metadata.update({
        "checkpoint": dg.MetadataValue.path(str(published.path)), "sha256": published.sha256,
        "run_dir": dg.MetadataValue.path(str(plan.run_dir)), "run_checkpoint": dg.MetadataValue.path(str(checkpoint)),
        "config": plan.config, "shards_content_hash": plan.shards_content_hash,
        **_lineage_metadata(published.path),
    })
    losses = _run_losses(plan, completed)
    bad = [v for v in losses if v is None or not math.isfinite(v)]
    check = dg.AssetCheckResult(
        check_name="losses_finite", passed=bool(losses) and not bad,
        metadata={"loss_values_seen": len(losses), "non_finite": len(bad)},
        description=None if losses else "no loss window was logged (log_every larger than the run?)")
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(published.sha256[:16]),
                                check_results=[check])


def _run_losses(plan: TrainingPlan, completed) -> list[float | None]:
    """Every loss window the run ever logged (its TensorBoard scalars, across resumes: a re-materialization that
    had nothing left to train still checks the whole run), else what this launch reported over Pipes."""
    from training.reporting.curves import NoEventsError, load_scalars
    try:
        series = load_scalars(paths.run_tensorboard_dir(plan.run_dir))
        return [v for tag, points in series.items() if tag.startswith("loss/") for _, v in points]
    except NoEventsError:
        curve = [m for m in completed.get_custom_messages() if isinstance(m, dict) and "curve" in m]
        return [v for m in curve for row in m["curve"] for k, v in row.items() if k != "step"]


def _curves_metadata(plan: TrainingPlan) -> dict:
    files = write_run_curves(plan)
    if files is None:
        return {}
    return {"curves_png": dg.MetadataValue.path(files.png), "curves_csv": dg.MetadataValue.path(files.csv)}


def checkpoint_asset(model: str, dataset: str, stage: str, config_dir: str | None) -> dg.AssetsDefinition:
    key = checkpoint_key(dataset, model, stage)
    deps = [dg.AssetKey([dataset, "shards"])] + ([checkpoint_key(dataset, model)] if stage == "avd" else [])
    version = f"{MODEL_STAGE_VERSIONS['train' if stage == 'main' else 'avd']}-{_config_hash(model, dataset, config_dir)}"
    what = "network weights" if stage == "main" else "AVD network (shape/pose disentanglement, on the frozen model)"

    @dg.asset(
        key=key, deps=deps, group_name=group(dataset), code_version=version, kinds={"pytorch"},
        automation_condition=STALE, tags={"stage": stage, "model": model},
        description=f"{model} {what} trained on {dataset}; training runs as its own process (Dagster Pipes, "
                    f"torchrun for several processes) and resumes its run when re-materialized.",
        check_specs=[dg.AssetCheckSpec("losses_finite", asset=key,
                                       description="Every logged loss window of the run is finite.")],
    )
    def _checkpoint(context: dg.AssetExecutionContext, data_root: DataRootResource, training: TrainingResource,
                    pipes_subprocess_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
        plan = plan_training(data_root.get(), model, dataset, stage, training.params(dataset), training.launch(),
                             config_dir=training.config_dir or config_dir)
        result = _train(context, plan, pipes_subprocess_client)
        if stage == "main":
            result = dg.MaterializeResult(metadata={**result.metadata, **_curves_metadata(plan)},
                                          data_version=result.data_version, check_results=result.check_results)
        return result

    @dg.asset_check(asset=key, name="checkpoint_loads", blocking=True,
                    description="The published checkpoint exists, loads, and holds this model and stage.")
    def _loads(data_root: DataRootResource) -> dg.AssetCheckResult:
        from training.checkpoint import CheckpointError, load_checkpoint
        path = Path(paths.published_checkpoint(data_root.get(), dataset, model, stage))
        try:
            state = load_checkpoint(path)
        except CheckpointError as exc:
            return dg.AssetCheckResult(passed=False, description=str(exc))
        ok = state.get("model") == model and state.get("stage", "main") == stage
        return dg.AssetCheckResult(passed=ok, metadata={"path": str(path), "step": int(state.get("step", 0))},
                                   description=None if ok else f"{path} holds {state.get('model')} "
                                                               f"{state.get('stage', 'main')}")

    return [_checkpoint, _loads]


def no_motion_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey([dataset, "no_motion", "evaluation"])


METRICS_CHECK = "metrics_in_range"
METRICS_CHECK_DESCRIPTION = "L1 and MKR in [0, 1], AKD within the frame, AED >= 0, all finite, L1 present."


def _scores_result(context: dg.AssetExecutionContext, scores, frame_size: int) -> dg.MaterializeResult:
    """An evaluation's materialization: every metric as metadata, a Markdown table, and the range check."""
    if scores.reused:
        context.log.info(f"{scores.out_dir}: already scored on these data with these settings; reused")
    problems = metric_problems(scores.metrics, frame_size)
    digest = hashlib.sha256(json.dumps(scores.metrics, sort_keys=True).encode()).hexdigest()[:16]
    prov = scores.provenance
    table = "| metric | value |\n|---|---|\n" + "".join(
        f"| {k} | {'n/a' if v is None else f'{v:.4g}'} |\n" for k, v in scores.metrics.items())
    return dg.MaterializeResult(
        data_version=dg.DataVersion(digest),
        metadata={**{k: (v if v is not None else float("nan")) for k, v in scores.metrics.items()},
                  "scores": dg.MetadataValue.md(table), "reused": scores.reused,
                  "path": dg.MetadataValue.path(str(scores.out_dir)),
                  "checkpoint_sha256": prov.get("checkpoint_sha256", ""),
                  "chunks": prov.get("chunks", 0), "frames": prov.get("frames", 0),
                  "skipped_extractors": dg.MetadataValue.json(prov.get("skipped_extractors", {})),
                  "dataset_version": dg.MetadataValue.json(prov.get("dataset_version") or {})},
        check_results=[dg.AssetCheckResult(check_name=METRICS_CHECK, passed=not problems,
                                           metadata={"problems": dg.MetadataValue.json(problems)})],
    )


def evaluation_asset(model: str, dataset: str, config_dir: str | None) -> dg.AssetsDefinition:
    key = evaluation_key(dataset, model)
    version = f"{MODEL_STAGE_VERSIONS['evaluation']}"

    @dg.asset(
        key=key, deps=[checkpoint_key(dataset, model), dg.AssetKey([dataset, "shards"])], group_name=group(dataset),
        code_version=version, kinds={"parquet"}, automation_condition=STALE, tags={"model": model},
        description=f"{model} reconstruction of every {dataset} test chunk, scored as the papers do (L1, AKD, MKR, "
                    f"AED, each keypoint/identity metric named by its extractor).",
        check_specs=[dg.AssetCheckSpec(METRICS_CHECK, asset=key, description=METRICS_CHECK_DESCRIPTION)],
    )
    def _evaluation(context: dg.AssetExecutionContext, data_root: DataRootResource,
                    training: TrainingResource) -> dg.MaterializeResult:
        from training.config import load_config
        root = data_root.get()
        scores = score_model(root, model, dataset, training.params(dataset), device=training.torch_device())
        size = load_config(config_path(model, dataset, training.config_dir or config_dir)).frame_size[0]
        return _scores_result(context, scores, size)

    return _evaluation


def no_motion_asset(dataset: str) -> dg.AssetsDefinition:
    key = no_motion_key(dataset)

    @dg.asset(
        key=key, deps=[dg.AssetKey([dataset, "shards"])], group_name=group(dataset),
        code_version=MODEL_STAGE_VERSIONS["evaluation"], kinds={"parquet"}, automation_condition=STALE,
        tags={"model": "no_motion"},
        description=f"The no-motion baseline on {dataset}: each test chunk's source frame as every prediction, scored "
                    f"like the models (same chunks and metrics), so the leaderboard shows what a model must beat.",
        check_specs=[dg.AssetCheckSpec(METRICS_CHECK, asset=key, description=METRICS_CHECK_DESCRIPTION)],
    )
    def _no_motion(context: dg.AssetExecutionContext, data_root: DataRootResource,
                   training: TrainingResource) -> dg.MaterializeResult:
        from training.loop.data import load_split_index
        root = data_root.get()
        scores = score_no_motion(root, dataset, training.params(dataset), device=training.torch_device())
        size = max(c.height for c in load_split_index(root, dataset, "test").chunks)
        return _scores_result(context, scores, size)

    return _no_motion


def samples_asset(dataset: str, models: tuple[str, ...], avd_models: tuple[str, ...]) -> dg.AssetsDefinition:
    deps = [checkpoint_key(dataset, m) for m in models] + [checkpoint_key(dataset, m, "avd") for m in avd_models]

    @dg.asset(key=[dataset, "animation_samples"], deps=deps, group_name=group(dataset),
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
        files = {w.pair.name: {"mp4": w.files.mp4, "gif": w.files.gif, "contact_sheet": w.files.png,
                               "frames": w.frames, "columns": list(w.columns)} for w in written}
        return dg.MaterializeResult(metadata={
            "pairs": len(written), "path": dg.MetadataValue.path(paths.samples_dir(root, dataset)),
            "files": dg.MetadataValue.json(files)})

    return _samples


def leaderboard_asset(pairs: list[tuple[str, str]], datasets: tuple[str, ...]) -> dg.AssetsDefinition:
    deps = [evaluation_key(d, m) for m, d in pairs] + [no_motion_key(d) for d in datasets]

    @dg.asset(key="leaderboard", deps=deps, group_name="leaderboard",
              code_version=MODEL_STAGE_VERSIONS["leaderboard"], kinds={"json"}, automation_condition=STALE,
              description="Every scored model beside the published number of its paper and the no-motion baseline "
                          "(Markdown + DVC metrics JSON); only numbers from the same extractor are ever compared.")
    def _leaderboard(context: dg.AssetExecutionContext, data_root: DataRootResource) -> dg.MaterializeResult:
        from training.reporting.leaderboard import build_leaderboard, collect_results
        root = data_root.get()
        results, sources = collect_results(root)
        board = build_leaderboard(results, sources)
        files = board.write(paths.leaderboard_dir(root))
        return dg.MaterializeResult(
            data_version=dg.DataVersion(hashlib.sha256(board.to_json().encode()).hexdigest()[:16]),
            metadata={"table": dg.MetadataValue.md(board.to_markdown()), "evaluations": len(results),
                      "markdown": dg.MetadataValue.path(files["markdown"]),
                      "json": dg.MetadataValue.path(files["json"])})

    return _leaderboard


def model_definitions(datasets: tuple[str, ...], params_file: str | Path = PARAMS_FILE,
                      config_dir: str | None = None) -> dg.Definitions:
    """Every model × dataset, from params.yaml's model list: checkpoint (+ AVD) → evaluation, samples, leaderboard."""
    params = load_params(params_file)
    assets: list = []
    pairs = []
    for dataset in datasets:
        for model in params.models:
            assets += checkpoint_asset(model, dataset, "main", config_dir)
            if model in params.avd_models:
                assets += checkpoint_asset(model, dataset, "avd", config_dir)
            assets.append(evaluation_asset(model, dataset, config_dir))
            pairs.append((model, dataset))
        assets.append(no_motion_asset(dataset))
        assets.append(samples_asset(dataset, params.models, params.avd_models))
    assets.append(leaderboard_asset(pairs, datasets))
    checks = [a for a in assets if isinstance(a, dg.AssetChecksDefinition)]
    return dg.Definitions(assets=[a for a in assets if not isinstance(a, dg.AssetChecksDefinition)],
                          asset_checks=checks)
