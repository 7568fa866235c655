"""The one root `Definitions`: every dataset's graph and every model × dataset from the factories, the jobs that
select them, the retraining schedule and the stale-model automation sensor, with the embedded default resources.

One `Settings` (storage/settings.py) feeds both the factories and the resources, so the config folder and params
file whose hash versions a model asset are the ones its training resource runs with."""
from __future__ import annotations

import dagster as dg

from assets.dataset_config import DATASETS
from assets.factory import dataset_definitions
from assets.keys import LEADERBOARD, RETRAIN_JOB, ablations_group, models_group, models_job_name
from assets.models.defs import model_definitions
from assets.resources import TrainingResource
from pipelines.broker import celery_config, job_executor
from pipelines.resources import default_resources
from pipelines.terminal_logger import TERMINAL_LOGGER, terminal_logger
from storage import video
from storage.settings import Settings, resolve_settings

RETRAIN_CRON_ENV = "MOTIONPIPE_RETRAIN_CRON"  # read by storage/settings.py; named in the schedule's description


def model_selection(datasets=DATASETS) -> dg.AssetSelection:
    """The models, the experiments (params.yaml `experiments`, each dataset's ablations group) and the leaderboard."""
    groups = [g for d in datasets for g in (models_group(d), ablations_group(d))]
    return dg.AssetSelection.groups(*groups, LEADERBOARD)  # the leaderboard, and the ablation tables if any


def orchestration(cron: str) -> dg.Definitions:
    jobs = [dg.define_asset_job(models_job_name(d), selection=model_selection((d,)),
                                description=f"Train, AVD, evaluate and render every model on {d}; then the "
                                            f"leaderboard. Runs resume, unchanged evaluations are reused.")
            for d in DATASETS]
    retrain = dg.define_asset_job(RETRAIN_JOB, selection=model_selection(),
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


def _same_experiment(settings: Settings, training: TrainingResource) -> TrainingResource:
    """A training resource given in place of the default runs the settings' configs and params: missing ones are
    filled in, other ones are an error (the assets' code versions were computed from the settings')."""
    for name in ("params_file", "config_dir"):
        mine, theirs = getattr(settings, name), getattr(training, name)
        if theirs is not None and theirs != mine:
            raise ValueError(f"the training resource's {name} {theirs!r} is not the settings' {mine!r}, which "
                             f"versions the model assets: set it in the settings only")
    return TrainingResource(**{**training.model_dump(), "params_file": training.params_file or settings.params_file,
                               "config_dir": training.config_dir or settings.config_dir})


def make_definitions(settings: Settings | None = None, **resource_overrides) -> dg.Definitions:
    """The project's definitions for `settings` (default: resolved from this process's environment), with
    `resource_overrides` (by resource key) in place of the defaults built from the same settings. Their jobs run
    under the settings' executor: Dagster's multiprocess one, or dagster-celery's on the settings' broker."""
    settings = settings or resolve_settings()
    video.use_ffmpeg(settings.ffmpeg)  # process-wide: every decode and encode of this process's steps
    if "training" in resource_overrides:
        resource_overrides["training"] = _same_experiment(settings, resource_overrides["training"])
    models = (model_definitions(DATASETS, settings.params_file, settings.config_dir) if settings.params_file
              else model_definitions(DATASETS, config_dir=settings.config_dir))
    return dg.Definitions.merge(
        *(dataset_definitions(name) for name in DATASETS),
        models,
        orchestration(settings.retrain_cron),
        dg.Definitions(resources={**default_resources(settings), **resource_overrides},
                       loggers={"console": dg.colored_console_logger,  # Dagster's default, kept
                                TERMINAL_LOGGER: terminal_logger},
                       executor=job_executor(celery_config(settings)) if settings.executor == "celery" else None),
    )


defs = make_definitions()
