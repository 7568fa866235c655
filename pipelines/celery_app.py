"""The celery app the workers run: `celery -A pipelines.celery_app worker`.

dagster-celery's own app (`dagster_celery.app`) reads its broker from a generated module on the PYTHONPATH; this one
reads MOTIONPIPE_CELERY_BROKER, MOTIONPIPE_CELERY_BACKEND and MOTIONPIPE_CELERY_VISIBILITY_TIMEOUT
(storage/settings.py), the same settings that configure the executor of the runs
(pipelines/broker.py), so a worker takes exactly the steps those runs submit, with the same acknowledgement and
visibility timeout. A step arrives as dagster-celery's `execute_plan` task: the worker rebuilds the job from its code
pointer, opens the run's instance from the reference in the message and writes the step's events there, so every
worker needs the project importable, the same MOTIONPIPE_* settings, and the data root and the Dagster instance's
storage at the same paths (or URLs).
"""
from __future__ import annotations

from pipelines.broker import celery_config, make_celery_app
from storage.settings import resolve_settings

# Without MOTIONPIPE_CELERY_BROKER this raises, naming the variable.
app = make_celery_app(celery_config(resolve_settings()))
