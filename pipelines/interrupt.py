"""Ctrl-C and SIGTERM stop the whole rebuild, not only the video in progress.

Dagster's in-process execution swaps in its own SIGINT/SIGTERM handler for the length of a run: the signal raises
``DagsterExecutionInterruptedError`` inside the running step, the run fails, and ``execute_in_process`` returns as
for any failed video, so a loop over partitions would simply go on to the next one. The signal itself is not
visible afterwards (Dagster resets its flag). So the rebuild watches for it on its own: between runs through a
handler that only records the signal, during a run through the signal wakeup fd, which the interpreter writes for
every handled signal whoever's handler runs. The step's own exception stops its writes where they are; every write
goes to a temporary name and is renamed into place, so the interrupted video keeps nothing half-done and the next
run resumes it.
"""
from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass, field
from types import FrameType

WATCHED = (signal.SIGINT, signal.SIGTERM)
_INTERRUPTED_ERRORS = ("DagsterExecutionInterruptedError", "KeyboardInterrupt")


@dataclass
class StopRequest:
    """The first SIGINT or SIGTERM the run received (None: keep going)."""

    signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number (130 for Ctrl-C)."""
        return 128 + int(self.signum or 0)


@dataclass
class InterruptWatch:
    """Context manager owning the run's SIGINT/SIGTERM handling; ``poll()`` tells whether to stop.

    Outside the main thread (where signals cannot be handled) it watches nothing, like Dagster itself."""

    stop: StopRequest = field(default_factory=StopRequest)
    _previous: dict = field(default_factory=dict, init=False, repr=False)
    _pipe: tuple[int, int] | None = field(default=None, init=False, repr=False)
    _previous_fd: int = field(default=-1, init=False, repr=False)

    def __enter__(self) -> "InterruptWatch":
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in WATCHED:
            self._previous[signum] = signal.signal(signum, self._record)
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        os.set_blocking(write_end, False)
        self._pipe = (read_end, write_end)
        self._previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        return self

    def __exit__(self, *exc) -> None:
        if self._pipe is None:
            return
        self.poll()
        signal.set_wakeup_fd(self._previous_fd)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        for fd in self._pipe:
            os.close(fd)
        self._pipe = None

    def _record(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.signum is None:
            self.stop.signum = signum

    def poll(self) -> StopRequest:
        """Whether a SIGINT/SIGTERM arrived since the watch began, under our handler or anyone's."""
        if self._pipe is None:
            return self.stop
        read_end, write_end = self._pipe
        try:
            received = os.read(read_end, 4096)
        except BlockingIOError:
            received = b""
        for signum in received:
            if signum in WATCHED and self.stop.signum is None:
                self.stop.signum = signum
        # Ours again for the next run, should anyone (an event loop closing) have reset it during this one.
        signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        return self.stop

    def saw_interrupted_run(self, error_class_names: list[str]) -> StopRequest:
        """``poll()``, also counting a run whose step failed with Dagster's interruption error as a SIGINT (the
        fallback should the wakeup fd have been taken over during the run)."""
        stop = self.poll()
        if not stop.requested and any(name in _INTERRUPTED_ERRORS for name in error_class_names):
            stop.signum = signal.SIGINT
        return stop
