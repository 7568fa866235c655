"""The celery executor's configuration, from the settings, for both ends: the runs that submit steps and the workers
that take them (pipelines/celery_app.py) read the same values, so they cannot disagree on the broker or on what
happens to the step of a worker that dies.

A step's message is acknowledged only once the step has finished (``task_acks_late``): a worker that dies with a
step in hand never acknowledges it, and the broker hands it to another worker after the visibility timeout, where it
runs again from the start. Every file a step writes is renamed into place whole (storage/), so the dead worker's
attempt leaves at most a hidden temporary, never a half-written file under its final name. A step that runs longer
than the visibility timeout is handed out a second time while it runs: keep the timeout above the longest step.
"""
from __future__ import annotations

from dataclasses import dataclass

from storage.settings import DEFAULT_VISIBILITY_TIMEOUT, Settings, check_broker

QUEUE = "dagster"  # dagster-celery's default queue, the one `celery -A pipelines.celery_app worker` listens on


@dataclass(frozen=True)
class CeleryConfig:
    broker: str
    backend: str | None = None  # None: the broker itself for Redis, else rpc://
    visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT

    def __post_init__(self) -> None:
        check_broker(self.broker, "celery broker")

    @property
    def result_backend(self) -> str:
        if self.backend:
            return self.backend
        return self.broker if self.broker.startswith(("redis://", "rediss://")) else "rpc://"

    @property
    def safe_broker(self) -> str:
        """The broker URL without its password, for messages."""
        from kombu.utils.url import maybe_sanitize_url
        return maybe_sanitize_url(self.broker)

    @property
    def restore_interval(self) -> float:
        """Seconds between two looks of a worker for steps past the visibility timeout."""
        return max(1.0, min(10.0, self.visibility_timeout / 4))

    def celery_settings(self) -> dict:
        """Celery's own settings (lowercase names), for the executor's `config_source` and the workers' app."""
        return {
            "task_acks_late": True,  # acknowledged when the step is done: a lost worker's step goes back
            "task_reject_on_worker_lost": True,  # a worker's pool process killed: the step goes back at once
            "worker_prefetch_multiplier": 1,  # a worker holds one step at a time, the others stay in the queue
            "broker_connection_retry_on_startup": True,
            "broker_transport_options": {"visibility_timeout": self.visibility_timeout, "max_retries": 3,
                                         "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5,
                                         # workers look for lost steps a few times per timeout (kombu: 100 s)
                                         "unacked_restore_interval": self.restore_interval,
                                         "unacked_restore_throttle": 1},
            "result_backend_transport_options": {"visibility_timeout": self.visibility_timeout},
        }

    def executor_config(self) -> dict:
        """The `execution: {config: ...}` block of a run with `dagster_celery.celery_executor`."""
        return {"broker": self.broker, "backend": self.result_backend, "config_source": self.celery_settings()}


def make_celery_app(config: CeleryConfig):
    """dagster-celery's app (its queue, routes and tasks) on `config`'s broker and settings."""
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_execute_job_task, create_resume_job_task, create_task

    executor = CeleryExecutor.for_cli(broker=config.broker, backend=config.result_backend,
                                      config_source=config.celery_settings())
    app = make_app(executor.app_args())
    create_task(app)
    create_execute_job_task(app)
    create_resume_job_task(app)
    return app


def job_executor(config: CeleryConfig):
    """dagster-celery's executor configured for `config`: the executor of every asset job of the definitions when
    the settings say `celery` (what the UI, schedules and sensors launch)."""
    from dagster_celery import celery_executor

    return celery_executor.configured(config.executor_config(), name="celery")


def celery_config(settings: Settings, broker: str | None = None) -> CeleryConfig:
    """The settings' celery configuration, with `broker` (a command-line flag) over theirs."""
    url = broker or settings.celery_broker
    if not url:
        raise ValueError("the celery executor needs a broker: --broker redis://HOST:6379/0 or "
                         "MOTIONPIPE_CELERY_BROKER")
    return CeleryConfig(url, settings.celery_backend, settings.celery_visibility_timeout)


def check_workers_listen(config: CeleryConfig, timeout: float = 3.0) -> list[str]:
    """The names of the workers that answer on the broker. An unreachable broker or no worker is an error naming
    the broker, rather than a run that waits forever for a worker."""
    app = make_celery_app(config)
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
        replies = app.control.ping(timeout=timeout)
    except Exception as exc:  # kombu raises the transport's own errors (redis, amqp)
        raise RuntimeError(f"celery broker {config.safe_broker}: cannot connect ({type(exc).__name__}: {exc})") from exc
    finally:
        app.close()
    names = sorted(name for reply in replies for name in reply)
    if not names:
        raise RuntimeError(f"celery broker {config.safe_broker}: no worker answers; start some with "
                           f"`MOTIONPIPE_CELERY_BROKER={config.safe_broker} celery -A pipelines.celery_app worker "
                           f"--concurrency 1 -n w1@%h` (one per core or GPU)")
    return names
