"""The Dagster instance under DAGSTER_HOME (SQLite, no server), opened under a file lock.

Dagster creates its SQLite storages (tables, then an alembic version stamp) the first time an instance opens a fresh
folder, with no lock: two first runs at once can both create and both stamp, leaving two ``alembic_version`` rows
that break every later run. Opening the instance while holding an exclusive ``fcntl`` lock on a file in the folder
serialises that first creation; afterwards the lock is held only for the moment it takes to open.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

import dagster as dg

DEFAULT_DAGSTER_HOME = ".dagster_home"
LOCK_NAME = ".motionpipe-instance.lock"
DEFAULT_CONFIG = "telemetry:\n  enabled: false\n"  # defaults otherwise: SQLite storage under DAGSTER_HOME


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock between processes (released by the OS if the holder dies)."""
    with open(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def ensure_dagster_home() -> str:
    """DAGSTER_HOME (default ./.dagster_home), created with a ``dagster.yaml`` if missing; sets the variable."""
    home = os.environ.get("DAGSTER_HOME") or str(Path(DEFAULT_DAGSTER_HOME).resolve())
    Path(home).mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = home
    return home


def open_instance() -> dg.DagsterInstance:
    """The instance of DAGSTER_HOME with all of its storages created (runs, schedules, the event-log index),
    under the folder's lock, so concurrent first runs find them complete."""
    home = Path(ensure_dagster_home())
    with _locked(home / LOCK_NAME):
        config = home / "dagster.yaml"
        if not config.exists():
            tmp = home / f".dagster.yaml.tmp-{os.getpid()}"
            tmp.write_text(DEFAULT_CONFIG)
            os.replace(tmp, config)
        instance = dg.DagsterInstance.get()  # creates the run and schedule storages
        instance.get_asset_keys()  # and the event log's index database, created on first use
    return instance
