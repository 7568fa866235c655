"""Concurrent first runs on a fresh DAGSTER_HOME: the instance is created under a file lock, so every process opens
it, each SQLite storage carries exactly one alembic version row, and a run works afterwards.

Without the lock Dagster's storage creation races (``table runs already exists``, ``UNIQUE constraint failed``, or
two ``alembic_version`` rows that break every later run). Several fresh folders, each opened by three processes
released together by a barrier, make the race near-certain to show without the lock.
"""
from __future__ import annotations

import glob
import multiprocessing as mp
import os
import sqlite3
from pathlib import Path

import dagster as dg

from pipelines.instance import open_instance

WORKERS, HOMES = 3, 2


def _open_each(homes: list[str], barrier, queue) -> None:
    """In a fresh interpreter: for each folder, wait for the others, then open the instance as a run does."""
    for home in homes:
        os.environ["DAGSTER_HOME"] = home
        try:
            barrier.wait(timeout=120)
            instance = open_instance()
            instance.get_runs(limit=1)
            instance.all_instigator_state()
            queue.put((home, "ok"))
        except Exception as exc:  # noqa: BLE001 - reported to the test, which names it
            queue.put((home, f"{type(exc).__name__}: {str(exc)[:300]}"))


def _alembic_rows(home: str) -> dict[str, int]:
    rows = {}
    for db in glob.glob(f"{home}/**/*.db", recursive=True):
        with sqlite3.connect(db) as conn:
            rows[os.path.relpath(db, home)] = conn.execute("select count(*) from alembic_version").fetchone()[0]
    return rows


@dg.op
def _hello() -> int:
    return 1


@dg.job
def _one_op_job():
    _hello()


def test_concurrent_first_runs_share_one_sound_instance(tmp_path, monkeypatch):
    homes = [str(tmp_path / f"home{i}") for i in range(HOMES)]
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=_open_each, args=(homes, barrier, queue)) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=180) for _ in range(WORKERS * HOMES)]
    for p in procs:
        p.join(60)
    failures = [r for r in results if r[1] != "ok"]
    assert not failures, failures
    for home in homes:
        rows = _alembic_rows(home)
        assert {"history/runs.db", "history/runs/index.db", "schedules/schedules.db"} <= set(rows)
        assert set(rows.values()) == {1}, (home, rows)  # one alembic head per storage
    monkeypatch.setenv("DAGSTER_HOME", homes[-1])
    instance = open_instance()
    result = _one_op_job.execute_in_process(instance=instance)  # a run works, and is recorded
    assert result.success and instance.get_run_by_id(result.run_id) is not None
    assert Path(homes[0], "dagster.yaml").read_text().startswith("telemetry:")
