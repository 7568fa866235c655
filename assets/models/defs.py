"""Dagster assets of the models domain, from one factory: per model × dataset a checkpoint and an AVD network (MRAA,
TPSMM); what scores them (evaluations, the no-motion baseline, samples, the leaderboard) is ``assets.evaluation``.

Code versions carry each config's hash and data versions come from content (shards, checkpoint and metric bytes),
so a changed dataset or config marks exactly its downstream models stale, and the automation condition retrains
exactly those. Training runs as its own process through Dagster Pipes (``assets.models.pipes_train``).
"""

import math
import warnings
from pathlib import Path

import dagster as dg
from dagster._core.errors import DagsterPipesExecutionError

from assets.asset_report import AssetReport
from assets.inline_images import inline_image
from assets.keys import SHARDS, ablations_group, checkpoint_key, dataset_key, model_kinds, model_label, models_group
from assets.models.runs import Published, TrainingPlan, plan_training, publish_checkpoint, write_run_curves
from assets.resources import DataRootResource, TrainingResource
from assets.versions import MODEL_STAGE_VERSIONS
from storage import paths
from training.experiments.variants import base_model, run_config
from training.run_params import PARAMS_FILE, load_params

# Retrain / re-score what went stale: a dependency got new data, or this asset's code version (config) changed.
# `eager` also fills in what was never built once its inputs exist.
STALE = (dg.AutomationCondition.eager() | dg.AutomationCondition.code_version_changed()).with_label("stale")


def _config_hash(model: str, dataset: str, config_dir: str | None) -> str:
    from training.config import config_hash
    return config_hash(run_config(model, dataset, config_dir))


def _lineage_metadata(published: Path) -> dict:
    """The checkpoint's lineage as the Dagster UI shows it: data version, code, and the ids it trained on."""
    from storage.lineage import checkpoint_lineage
    from training.checkpoint import load_checkpoint

    trail = checkpoint_lineage(published, load_checkpoint(published))
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
    reported_meta = {k: v for k, v in meta.items() if k != "checkpoint"}
    return checkpoint_report(context.asset_key, plan, published, checkpoint, _run_loss_series(plan, completed),
                             reported_meta).result()


def checkpoint_report(key: dg.AssetKey, plan: TrainingPlan, published: Published, run_checkpoint: Path,
                      series: dict[str, list[float | None]], reported: dict | None = None) -> AssetReport:
    """A published checkpoint's materialization: where it is, its lineage, each loss term's last value (numbers the
    Plots tab charts), the main stage's curves inline, and the finite-losses check over every logged window."""
    metadata = dict(reported or {})
    metadata.setdefault("step", published.step)
    metadata.update({
        "checkpoint": dg.MetadataValue.path(str(published.path)), "sha256": published.sha256,
        "run_dir": dg.MetadataValue.path(str(plan.run_dir)),
        "run_checkpoint": dg.MetadataValue.path(str(run_checkpoint)),
        "config": plan.config, "shards_content_hash": plan.shards_content_hash,
        **_lineage_metadata(published.path),
    })
    metadata.update(final_loss_metadata(series))
    if plan.stage == "main":
        metadata.update(_curves_metadata(plan))
    losses = [v for values in series.values() for v in values]
    bad = [v for v in losses if v is None or not math.isfinite(v)]
    check = dg.AssetCheckResult(
        asset_key=key, check_name="losses_finite", passed=bool(losses) and not bad,
        metadata={"loss_values_seen": len(losses), "non_finite": len(bad)},
        description=None if losses else "no loss window was logged (log_every larger than the run?)")
    return AssetReport(key, metadata=metadata, data_version=published.sha256[:16], checks=(check,))


def tensorboard_loss_series(plan: TrainingPlan) -> dict[str, list[float | None]]:
    """Every loss window the run logged, per loss term, from its TensorBoard scalars (empty if none)."""
    from training.reporting.curves import NoEventsError, load_scalars
    try:
        series = load_scalars(paths.run_tensorboard_dir(plan.run_dir))
    except NoEventsError:
        return {}
    return {tag: [v for _, v in points] for tag, points in sorted(series.items()) if tag.startswith("loss/")}


def _run_loss_series(plan: TrainingPlan, completed) -> dict[str, list[float | None]]:
    """Every loss window the run ever logged, per loss term (its TensorBoard scalars, across resumes: a
    re-materialization that had nothing left to train still checks the whole run), else what this launch reported
    over Pipes."""
    series = tensorboard_loss_series(plan)
    if series:
        return series
    curve = [m for m in completed.get_custom_messages() if isinstance(m, dict) and "curve" in m]
    terms: dict[str, list[float | None]] = {}
    for row in (r for m in curve for r in m["curve"]):
        for k, v in row.items():
            if k != "step":
                terms.setdefault(k, []).append(v)
    return terms


def final_loss_metadata(series: dict[str, list[float | None]]) -> dict[str, dg.MetadataValue]:
    """Each loss term's last logged value as its own float entry (`loss/total`, `loss/perceptual`, ...), so the
    asset's Plots tab charts every term across materializations (a JSON blob charts nothing)."""
    return {tag: dg.MetadataValue.float(float("nan") if values[-1] is None else float(values[-1]))
            for tag, values in series.items() if values}


def _curves_metadata(plan: TrainingPlan) -> dict:
    files = write_run_curves(plan)
    if files is None:
        return {}
    return {"curves": inline_image(files.png, f"{plan.model} on {plan.dataset}: training curves"),
            "curves_png": dg.MetadataValue.path(files.png), "curves_csv": dg.MetadataValue.path(files.csv)}


def checkpoint_asset(model: str, dataset: str, stage: str, config_dir: str | None,
                     group: str | None = None) -> dg.AssetsDefinition:
    """``model``: a model's name or an experiment's (a variant of training/experiments/variants.yaml), whose assets
    go in ``group`` (default: the dataset's models group)."""
    key = checkpoint_key(dataset, model, stage)
    deps = [dataset_key(dataset, SHARDS)] + ([checkpoint_key(dataset, model)] if stage == "avd" else [])
    version = f"{MODEL_STAGE_VERSIONS['train' if stage == 'main' else 'avd']}-{_config_hash(model, dataset, config_dir)}"
    what = "network weights" if stage == "main" else "AVD network (shape/pose disentanglement, on the frozen model)"

    @dg.asset(
        key=key, deps=deps, group_name=group or models_group(dataset), code_version=version,
        kinds=model_kinds(base_model(model), "pytorch"), automation_condition=STALE,
        tags={"stage": stage, "model": model},
        description=f"**{model_label(key)}**: {what} trained on {dataset}; training runs as its own "
                    f"process (Dagster Pipes, torchrun for several processes) and resumes its run when "
                    f"re-materialized.",
        check_specs=[dg.AssetCheckSpec("losses_finite", asset=key,
                                       description="Every logged loss window of the run is finite.")],
    )
    def _checkpoint(context: dg.AssetExecutionContext, data_root: DataRootResource, training: TrainingResource,
                    pipes_subprocess_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
        plan = plan_training(data_root.get(), model, dataset, stage, training.params(dataset), training.launch(),
                             config_dir=training.config_dir or config_dir)
        return _train(context, plan, pipes_subprocess_client)

    @dg.asset_check(asset=key, name="checkpoint_loads", blocking=True,
                    description="The published checkpoint exists, loads, and holds this model and stage.")
    def _loads(data_root: DataRootResource) -> dg.AssetCheckResult:
        from training.checkpoint import CheckpointError, load_checkpoint
        path = Path(paths.published_checkpoint(data_root.get(), dataset, model, stage))
        try:
            state = load_checkpoint(path)
        except CheckpointError as exc:
            return dg.AssetCheckResult(passed=False, description=str(exc))
        ok = state.get("model") == base_model(model) and state.get("stage", "main") == stage
        return dg.AssetCheckResult(passed=ok, metadata={"path": str(path), "step": int(state.get("step", 0))},
                                   description=None if ok else f"{path} holds {state.get('model')} "
                                                               f"{state.get('stage', 'main')}")

    return [_checkpoint, _loads]


def model_definitions(datasets: tuple[str, ...], params_file: str | Path = PARAMS_FILE,
                      config_dir: str | None = None) -> dg.Definitions:
    """Every model × dataset, from params.yaml's model list: checkpoint (+ AVD) → evaluation, samples, leaderboard;
    and its experiments (params.yaml's ``experiments``), each a checkpoint → evaluation in the dataset's ablations
    group."""
    from assets.evaluation.ablations import ablations_asset  # these build on this module's keys and group
    from assets.evaluation.defs import evaluation_assets

    params = load_params(params_file)
    assets: list = []
    for dataset in datasets:
        for model in params.models_for(dataset):
            assets += checkpoint_asset(model, dataset, "main", config_dir)
            if model in params.avd_models:
                assets += checkpoint_asset(model, dataset, "avd", config_dir)
        for experiment in params.experiments_for(dataset):  # reconstruction tables: the main stage only
            assets += checkpoint_asset(experiment, dataset, "main", config_dir, group=ablations_group(dataset))
    assets += evaluation_assets(datasets, params, config_dir)
    assets += ablations_asset(datasets, params)
    checks = [a for a in assets if isinstance(a, dg.AssetChecksDefinition)]
    return dg.Definitions(assets=[a for a in assets if not isinstance(a, dg.AssetChecksDefinition)],
                          asset_checks=checks)
