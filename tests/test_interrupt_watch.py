"""The rebuild's interrupt watch sees SIGINT/SIGTERM whoever handles them: its own handler between runs, and a
signal that Dagster's handler consumed during a run (a real in-process Dagster run interrupted by a real signal)."""
from __future__ import annotations

import os
import signal
import time

import dagster as dg

from pipelines.interrupt import InterruptWatch


def _deliver(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(0.05)  # handlers run in the main thread at the next bytecode


def test_a_signal_between_runs_is_recorded_not_raised():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with InterruptWatch() as watch:
        assert not watch.poll().requested
        _deliver(signal.SIGTERM)  # would end the process without the watch
        _deliver(signal.SIGINT)
        stop = watch.poll()
    assert (stop.name, stop.exit_code) == ("SIGTERM", 143)  # the first one counts
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert signal.set_wakeup_fd(-1) == -1  # the wakeup fd is given back too


def test_a_signal_another_handler_consumed_is_seen():
    with InterruptWatch() as watch:
        seen = []
        previous = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
        try:
            _deliver(signal.SIGINT)
        finally:
            signal.signal(signal.SIGINT, previous)
        assert seen == [signal.SIGINT] and watch.poll().name == "SIGINT"


@dg.op
def _interrupted_step() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(60)  # Dagster's handler raises its interruption error in here


@dg.job
def _job() -> None:
    _interrupted_step()


def test_a_dagster_run_interrupted_by_a_signal_is_seen_after_it_returns(dagster_home):
    with InterruptWatch() as watch, dg.DagsterInstance.get() as instance:
        t0 = time.monotonic()
        result = _job.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success and time.monotonic() - t0 < 30  # the step stopped at once
        assert not watch.stop.requested  # Dagster's handler ran, not the watch's ...
        assert watch.poll().name == "SIGTERM"  # ... and the watch still knows
