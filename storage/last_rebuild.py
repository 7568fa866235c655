"""What the last `motionpipe rebuild` of a dataset did, kept beside the dataset (``last_rebuild.json``).

The per-video records say what happened to each video; only this file says how the run itself ended: finished,
interrupted (Ctrl-C, SIGTERM) at which video, stopped early by the circuit breaker and why, or killed (the file
still says ``running`` and its writer is gone). ``motionpipe status`` reads it, so a report after an interrupted run
says so instead of passing the unvisited videos off as a finished run's.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from storage import paths
from storage.leftovers import owner_tag, writer_alive
from storage.root import DataRoot

RUNNING, FINISHED, INTERRUPTED, STOPPED = "running", "finished", "interrupted", "stopped"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class LastRebuild:
    dataset: str
    videos_total: int
    state: str = RUNNING  # running | finished | interrupted | stopped (circuit breaker)
    started_at: str = field(default_factory=_now)
    ended_at: str | None = None
    writer: str = field(default_factory=owner_tag)  # <pid>@<host>: a 'running' file whose writer is gone was killed
    videos_done: int = 0  # videos handled (ok, failed or skipped) before the run ended
    counts: dict[str, int] = field(default_factory=dict)  # ok / failed / skipped
    stopped_at: str | None = None  # the video (or step) in progress when it stopped
    reason: str | None = None  # SIGINT / SIGTERM, or the circuit breaker's message

    def end(self, state: str, stopped_at: str | None = None, reason: str | None = None) -> "LastRebuild":
        return dataclasses.replace(self, state=state, ended_at=_now(), stopped_at=stopped_at, reason=reason)

    def killed(self) -> bool:
        """Still 'running' on paper, but its process is gone (SIGKILL, a crash, a reboot)."""
        return self.state == RUNNING and writer_alive(self.writer) is False

    def describe(self) -> str:
        """One line for a report."""
        done = f"{self.videos_done} of {self.videos_total} videos handled"
        if self.killed():
            return f"the last rebuild (started {self.started_at}) was killed after {done}; rerun it to resume"
        if self.state == RUNNING:
            return f"a rebuild is running (since {self.started_at}, {self.writer}): {done} so far"
        if self.state == INTERRUPTED:
            return (f"the last rebuild was interrupted by {self.reason} at {self.stopped_at} ({self.ended_at}) "
                    f"after {done}; rerun it to resume")
        if self.state == STOPPED:
            return f"the last rebuild stopped early at {self.stopped_at} after {done}: {self.reason}"
        return f"the last rebuild finished at {self.ended_at}: {done}"


def write_last_rebuild(root: DataRoot, record: LastRebuild) -> None:
    root.write_bytes(paths.last_rebuild_path(root, record.dataset),
                     json.dumps(dataclasses.asdict(record), indent=1).encode())


def read_last_rebuild(root: DataRoot, dataset: str) -> LastRebuild | None:
    path = paths.last_rebuild_path(root, dataset)
    if not root.exists(path):
        return None
    data = json.loads(root.read_bytes(path))
    known = {f.name for f in dataclasses.fields(LastRebuild)}
    return LastRebuild(**{k: v for k, v in data.items() if k in known})
