"""The evaluation's progress bar: frames scored of the total, the chunk it is on, and tqdm's rate and ETA.

Off unless the caller turns it on with ``show_progress()`` (``motionpipe evaluate`` does, unless ``--no-progress``),
so the Dagster assets and the tests print nothing; and drawn only when stderr is a terminal, so a log file or CI
output never fills with carriage-return redraws. A context variable rather than a parameter, because the scorer
(``scoring.py``) stands between the command line and the chunk loop and has no say in how progress is shown.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

_ENABLED: ContextVar[bool] = ContextVar("motionpipe_evaluation_progress", default=False)


@contextmanager
def show_progress(enabled: bool = True) -> Iterator[None]:
    """Within this block, ``evaluate_videos`` draws its bar (on a terminal)."""
    token = _ENABLED.set(enabled)
    try:
        yield
    finally:
        _ENABLED.reset(token)


def progress_wanted(stream=None) -> bool:
    """True when the caller asked for progress and ``stream`` (default stderr) is a terminal."""
    stream = sys.stderr if stream is None else stream
    return _ENABLED.get() and hasattr(stream, "isatty") and stream.isatty()


def chunk_bar(total_frames: int, n_chunks: int, desc: str):
    """A tqdm bar counting frames (chunks differ in length, so frames give the honest ETA); disabled as above."""
    from tqdm.auto import tqdm

    return tqdm(total=total_frames, unit="frame", desc=desc, dynamic_ncols=True, file=sys.stderr,
                disable=not progress_wanted(), postfix=f"chunk 0/{n_chunks}")
