"""Stop a rebuild early when videos keep failing for a reason that is not theirs.

With no network, each of TaiChi's 280 videos spent ~13.6 s retrying the same DNS failure: an hour of identical
lines. The breaker watches the videos' outcomes in order; when ``after`` videos in a row fail with the same
machine-wide cause (assets/ingest/outage.py: name resolution, no route, a refused connection or proxy, a time-out,
a bot check or a 429 for every video), the run stops with one message naming the cause and the ways around it.
A success, or a failure of the video's own (private, removed, corrupt), resets the count; skipped videos leave it
as it is. ``MOTIONPIPE_BREAKER_AFTER`` (Settings.breaker_after) sets ``after`` (0 turns the breaker off).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from assets.ingest.outage import Outage, outage_of
from storage.settings import DEFAULT_BREAKER_AFTER as DEFAULT_AFTER

BREAKER_ENV = "MOTIONPIPE_BREAKER_AFTER"  # read by storage/settings.py; named in the advice
OPTIONS = ("--mirror file:///path/to/videos (videos you already have, as <video_id>.mp4; or MOTIONPIPE_MIRROR), "
           "a proxy through MOTIONPIPE_PROXY=http://host:port, cookies of a signed-in browser through "
           "MOTIONPIPE_COOKIES=cookies.txt (for bot checks)")


@dataclass(frozen=True)
class Trip:
    """Why the breaker stopped the run."""

    outage: Outage
    video_ids: tuple[str, ...]  # the videos that failed in a row
    last_error: str

    def advice(self) -> str:
        """The cause on the first line; the options and how to resume on the next ones."""
        return (f"{len(self.video_ids)} videos in a row ({', '.join(self.video_ids)}) failed the same way, which "
                f"is not about the videos: {self.outage.explain()}\n"
                f"  options: {OPTIONS}\n"
                f"  a rerun resumes where this one stopped ({BREAKER_ENV}=0 turns this stop off)")

    def message(self) -> str:
        """The advice, then the last error whole."""
        return f"{self.advice()}\n  last error: {self.last_error}"


@dataclass
class CircuitBreaker:
    after: int = DEFAULT_AFTER
    _streak: list[str] = field(default_factory=list, init=False)
    _cause: Outage | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.after < 0:
            raise ValueError(f"{BREAKER_ENV}: the breaker's count must be >= 0 (0: off), got {self.after}")

    def record_ok(self) -> None:
        self._streak, self._cause = [], None

    def record_failure(self, video_id: str, error: str | None) -> Trip | None:
        """Count one failed video; the Trip when this failure completes a streak of ``after`` alike."""
        outage = outage_of(error)
        if outage is None:
            self.record_ok()
            return None
        if self._cause is None or outage.cause != self._cause.cause:
            self._streak, self._cause = [], outage
        self._streak.append(video_id)
        if self.after and len(self._streak) >= self.after:
            return Trip(self._cause, tuple(self._streak), error or "")
        return None
