"""The bookkeeping of one rebuild, whichever way its videos are run: each outcome goes into the result, the
circuit breaker and ``last_rebuild.json`` (so `motionpipe status` knows how far a run got even if it is killed), and
a stop (signal or breaker) is recorded as where the run stopped, never as a failure of the video in progress."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

from pipelines.circuit_breaker import CircuitBreaker
from pipelines.interrupt import StopRequest
from pipelines.rebuild_outcome import EXIT_BREAKER, RebuildResult, Stop, VideoOutcome
from storage.last_rebuild import FINISHED, INTERRUPTED, STOPPED, LastRebuild, write_last_rebuild
from storage.root import DataRoot


@dataclass
class RebuildTracker:
    result: RebuildResult
    root: DataRoot
    breaker: CircuitBreaker
    progress: Callable[[str], None]
    record: LastRebuild = field(init=False)
    started: float = field(init=False, default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self.record = LastRebuild(self.result.dataset, self.result.videos_total)
        write_last_rebuild(self.root, self.record)

    def eta(self, done: int) -> str:
        """', ETA m:ss' for the videos still to come once `done` are handled, at this run's pace so far (skipped
        videos count, they are quick); '' before the first video or after the last."""
        left = self.result.videos_total - done
        if done == 0 or left <= 0:
            return ""
        seconds = (time.perf_counter() - self.started) / done * left
        return f", ETA {int(seconds) // 60}:{int(seconds) % 60:02d}" if math.isfinite(seconds) else ""

    def add(self, outcome: VideoOutcome) -> Stop | None:
        """Count one video's outcome; the breaker's Stop when this failure completes a streak of alike ones."""
        self.result.outcomes.append(outcome)
        if outcome.status == "ok":
            self.breaker.record_ok()
        trip = self.breaker.record_failure(outcome.video_id, outcome.detail) if outcome.status == "failed" else None
        self.record.videos_done += 1
        self.record.counts[outcome.status] = self.record.counts.get(outcome.status, 0) + 1
        if trip is None:
            write_last_rebuild(self.root, self.record)
            return None
        stop = Stop("breaker", outcome.video_id, trip.message(), EXIT_BREAKER)
        self._end(stop, STOPPED, reason=trip.advice())  # the videos' errors are in their own records
        self.progress(f"[{self.result.dataset}] STOPPED EARLY: {stop.message}")
        return stop

    def interrupted(self, signal: StopRequest, at: str) -> Stop:
        """A signal arrived while ``at`` (a video, or a step) was in progress: nothing of it is kept."""
        stop = Stop("interrupted", at, f"{signal.name}: stopped at {at}; what it had half done was discarded, "
                                       f"a rerun resumes there", signal.exit_code)
        self._end(stop, INTERRUPTED, reason=signal.name)
        self.progress(f"[{self.result.dataset}] interrupted by {signal.name} at {at}: stopping; what it had half "
                      f"done is discarded and a rerun resumes there ({self.record.videos_done} of "
                      f"{self.result.videos_total} videos handled)")
        return stop

    def finish(self) -> None:
        if self.result.stop is None:
            self.record = self.record.end(FINISHED)
            write_last_rebuild(self.root, self.record)

    def _end(self, stop: Stop, state: str, reason: str | None = None) -> None:
        self.result.stop = stop
        self.record = self.record.end(state, stopped_at=stop.at, reason=reason or stop.message)
        write_last_rebuild(self.root, self.record)
