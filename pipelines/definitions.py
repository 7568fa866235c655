"""The one root `Definitions`: every dataset's graph and every model × dataset from the factories, the jobs that
select them, the retraining schedule and the stale-model automation sensor, with the embedded default resources."""
from __future__ import annotations

import os

import dagster as dg

from assets.dataset_config import DATASETS
from assets.factory import dataset_definitions
from assets.models.defs import group, model_definitions
from pipelines.resources import default_resources

RETRAIN_CRON_ENV = "MOTIONPIPE_RETRAIN_CRON"
DEFAULT_RETRAIN_CRON = "0 3 * * 0"  # Sundays 03:00


def models_job_name(dataset: str) -> str:
    return f"{dataset}_models_job"


def model_selection(datasets=DATASETS) -> dg.AssetSelection:
    return dg.AssetSelection.groups(*(group(d) for d in datasets)) | dg.AssetSelection.assets("leaderboard")


def orchestration(cron: str) -> dg.Definitions:
    jobs = [dg.define_asset_job(models_job_name(d), selection=dg.AssetSelection.groups(group(d))
                                | dg.AssetSelection.assets("leaderboard"),
                                description=f"Train, AVD, evaluate and render every model on {d}; then the "
                                            f"leaderboard. Runs resume, unchanged evaluations are reused.")
            for d in DATASETS]
    retrain = dg.define_asset_job("retrain_job", selection=model_selection(),
                                  description="Every model stage of every dataset: what is unchanged finishes at "
                                              "once (its run is complete, its scores reused); what went stale "
                                              "trains afresh.")
    schedule = dg.ScheduleDefinition(name="retrain_schedule", job=retrain, cron_schedule=cron,
                                     default_status=dg.DefaultScheduleStatus.STOPPED,
                                     description=f"Periodic retraining (cron `{cron}`, set ${RETRAIN_CRON_ENV}).")
    sensor = dg.AutomationConditionSensorDefinition(
        "retrain_stale_models", target=model_selection(), minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Retrains, re-scores and re-ranks exactly the models whose dataset or config changed.")
    return dg.Definitions(jobs=[*jobs, retrain], schedules=[schedule], sensors=[sensor])


def make_definitions(*, config_dir: str | None = None, params_file: str | None = None,
                     cron: str | None = None, **resource_overrides) -> dg.Definitions:
    models = (model_definitions(DATASETS, params_file, config_dir) if params_file
              else model_definitions(DATASETS, config_dir=config_dir))
    return dg.Definitions.merge(
        *(dataset_definitions(name) for name in DATASETS),
        models,
        orchestration(cron or os.environ.get(RETRAIN_CRON_ENV) or DEFAULT_RETRAIN_CRON),
        dg.Definitions(resources={**default_resources(), **resource_overrides}),
    )


defs = make_definitions(config_dir=os.environ.get("MOTIONPIPE_CONFIG_DIR") or None,
                        params_file=os.environ.get("MOTIONPIPE_PARAMS") or None)
