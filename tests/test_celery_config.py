"""The celery executor's configuration: one source for the runs and the workers, and the README's copy-paste run
config is what motionpipe builds and what dagster-celery accepts."""
import re
from pathlib import Path

import pytest
import yaml

from pipelines.broker import CeleryConfig, celery_config, job_executor
from storage.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def _subset(shown, built, where="execution.config"):
    if isinstance(shown, dict):
        assert isinstance(built, dict), where
        for key, value in shown.items():
            assert key in built, f"{where}.{key} is in the README but motionpipe does not set it"
            _subset(value, built[key], f"{where}.{key}")
    else:
        assert shown == built, f"{where}: README says {shown!r}, motionpipe sets {built!r}"


def test_the_readme_run_config_is_the_one_motionpipe_builds_and_dagster_celery_accepts():
    from dagster._config import validate_config
    from dagster_celery import celery_executor

    blocks = re.findall(r"```yaml\n(execution:\n  config:\n    broker:.*?)```", (REPO / "README.md").read_text(), re.S)
    assert len(blocks) == 1, "README: one celery run-config block"
    shown = yaml.safe_load(blocks[0])["execution"]["config"]
    built = CeleryConfig(shown["broker"]).executor_config()
    _subset(shown, built)
    assert validate_config(celery_executor.config_schema.config_type, built).success


def test_workers_and_runs_read_one_configuration():
    config = celery_config(Settings(executor="celery", celery_broker="redis://h:6379/0", celery_visibility_timeout=40))
    assert config.result_backend == "redis://h:6379/0"  # Redis brokers keep the results too
    assert CeleryConfig("amqp://guest@h//").result_backend == "rpc://"
    options = config.celery_settings()
    assert options["task_acks_late"] and options["task_reject_on_worker_lost"]
    assert options["broker_transport_options"]["visibility_timeout"] == 40
    assert options["broker_transport_options"]["unacked_restore_interval"] == 10  # 40 / 4
    assert job_executor(config).name == "celery"
    assert CeleryConfig("redis://:secret@h:6379/0").safe_broker == "redis://:**@h:6379/0"
    with pytest.raises(ValueError, match="the celery executor needs a broker: --broker"):
        celery_config(Settings())
