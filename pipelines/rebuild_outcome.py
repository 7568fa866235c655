"""What a rebuild did, in counts, and the exit code that tells it truthfully.

Exit codes of `motionpipe rebuild`:
  0    something was rebuilt and published (some videos may have failed: the summary line counts them)
  1    nothing was rebuilt (no video went through, or no chunk came out), or a dataset step or check failed
  2    the command or its manifest is wrong (cli.py)
  3    stopped early by the circuit breaker (every video failing the same way; pipelines/circuit_breaker.py)
  130  stopped by Ctrl-C (SIGINT), 143 by SIGTERM: 128 + the signal, as a shell reports it
"""
from __future__ import annotations

from dataclasses import dataclass, field

EXIT_OK, EXIT_NOTHING_REBUILT, EXIT_BREAKER = 0, 1, 3


@dataclass
class VideoOutcome:
    video_id: str
    status: str  # ok | failed | skipped
    detail: str = ""
    seconds: float = 0.0
    chunks: int = 0


@dataclass(frozen=True)
class Stop:
    """Why a rebuild ended before its last video: a signal, or the circuit breaker."""

    kind: str  # interrupted | breaker
    at: str  # the video (or step) in progress
    message: str
    exit_code: int


@dataclass
class RebuildResult:
    dataset: str
    outcomes: list[VideoOutcome] = field(default_factory=list)
    dataset_run_ok: bool = False
    videos_total: int = 0
    stop: Stop | None = None
    checks_failed: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def chunks(self) -> int:
        return sum(o.chunks for o in self.outcomes if o.status == "ok")


def exit_code(result: RebuildResult) -> int:
    if result.stop is not None:
        return result.stop.exit_code
    if not result.count("ok") or not result.chunks or not result.dataset_run_ok or result.checks_failed:
        return EXIT_NOTHING_REBUILT
    return EXIT_OK


def _verdict(result: RebuildResult) -> str:
    if result.stop is not None:
        return f"stopped ({result.stop.kind} at {result.stop.at})"
    if not result.count("ok"):
        return "nothing rebuilt: no video went through"
    if not result.chunks:
        return "nothing rebuilt: no chunk came out of any video"
    if not result.dataset_run_ok:
        return "the catalog/shards step failed"
    if result.checks_failed:
        return f"check(s) failed: {', '.join(result.checks_failed)}"
    return "done"


def summary_line(result: RebuildResult) -> str:
    """'[taichi] summary: 0 ok, 3 failed, 0 skipped, 277 not attempted of 280 videos; 0 chunks; exit 3: ...'"""
    unvisited = result.videos_total - len(result.outcomes)
    return (f"[{result.dataset}] summary: {result.count('ok')} ok, {result.count('failed')} failed, "
            f"{result.count('skipped')} skipped, {unvisited} not attempted of {result.videos_total} videos; "
            f"{result.chunks} chunks; exit {exit_code(result)}: {_verdict(result)}")
