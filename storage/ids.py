"""Identifiers that cross the manifest boundary: validated before they reach a path, a URL or a process."""
from __future__ import annotations

import re
from dataclasses import dataclass

YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
# Local (non-YouTube) ids, e.g. the offline sample: same alphabet, bounded length, no leading dash.
LOCAL_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")
CHUNK_KEY = re.compile(r"^(?P<video_id>[A-Za-z0-9_-]{1,64})#(?P<start>\d{6,})#(?P<end>\d{6,})$")


class InvalidIdError(ValueError):
    """An id from a manifest that must not be used as a path, URL or argument."""


def validate_youtube_id(video_id: object) -> str:
    if not isinstance(video_id, str) or not YOUTUBE_ID.match(video_id):
        raise InvalidIdError(f"not an 11-character YouTube id: {video_id!r}")
    return video_id


def validate_video_id(video_id: object, *, youtube: bool = True) -> str:
    """YouTube ids for the YouTube datasets; a restricted local alphabet otherwise."""
    if youtube:
        return validate_youtube_id(video_id)
    if not isinstance(video_id, str) or not LOCAL_ID.match(video_id):
        raise InvalidIdError(f"invalid video id: {video_id!r} (letters, digits, '_' and '-', at most 64)")
    return video_id


def youtube_url(video_id: str) -> str:
    return "https://www.youtube.com/watch?v=" + validate_youtube_id(video_id)


@dataclass(frozen=True, order=True)
class ChunkKey:
    """`<video_id>#<start:06d>#<end:06d>`: the reference naming, so id-sampling by `split('#')[0]` keeps working.

    start/end are frame indices (end exclusive) in the frame numbering the chunk was defined in.
    """

    video_id: str
    start: int
    end: int

    def __post_init__(self) -> None:
        if not (0 <= self.start < self.end):
            raise ValueError(f"chunk {self.video_id}: need 0 <= start < end, got [{self.start}, {self.end})")

    def __str__(self) -> str:
        return f"{self.video_id}#{self.start:06d}#{self.end:06d}"

    @classmethod
    def parse(cls, text: str) -> "ChunkKey":
        m = CHUNK_KEY.match(text.strip())
        if not m:
            raise InvalidIdError(f"not a chunk key '<video_id>#<start>#<end>': {text!r}")
        return cls(m["video_id"], int(m["start"]), int(m["end"]))
