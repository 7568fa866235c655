"""Chunks per person: one StreamingChunker per track, so a chunk follows the person it opened on.

Several people may be in chunks at once (a TaiChi group, two presenters). Chunk keys are
`<video_id>#<start>#<end>`, so two chunks must never share both ends: at most one chunk opens per sampled frame
(the most prominent person first, by box area x score); another person's chunk opens at the next sampled frame.
That gives every chunk of a video its own start frame, hence its own key.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from assets.clips.streaming_chunker import ClosedChunk, OpenChunk, PersonSample, StreamingChunker


@dataclass(frozen=True)
class TrackChunk:
    """A closed chunk and the track it followed."""

    track: int
    chunk: ClosedChunk


@dataclass
class TrackChunker:
    new_chunker: Callable[[], StreamingChunker]
    closed: list[TrackChunk] = field(default_factory=list)
    _chunkers: dict[int, StreamingChunker] = field(default_factory=dict)

    @property
    def active(self) -> list[tuple[int, OpenChunk]]:
        """(track, open chunk) of every chunk open now, oldest first."""
        opened = [(t, c.active) for t, c in self._chunkers.items() if c.active is not None]
        return sorted(opened, key=lambda o: o[1].start)

    def why_invalid(self, s: PersonSample) -> str | None:
        """Why this person cannot carry a chunk (size, visibility), None if they can."""
        return self.new_chunker().why_invalid(s)

    def on_cut(self, frame: int) -> None:
        """A new shot starts at `frame`: every chunk closes before it, and every track ends (PersonTracker.reset)."""
        for c in self._chunkers.values():
            c.on_cut(frame)
        self._collect()
        self._chunkers = {}

    def before_frame(self, frame: int) -> None:
        for c in self._chunkers.values():
            c.before_frame(frame)
        self._collect()

    def on_detections(self, frame: int, people: list[PersonSample], ended: list[int]) -> None:
        """The tracked people of a sampled frame, and the tracks that ended there (their chunks close after the
        person's last detection). A track in neither list was missed once and is still followed."""
        for track in ended:
            c = self._chunkers.pop(track, None)
            if c is not None:
                c.on_detection(PersonSample(frame, None, False, False, 0.0, track))
                self._collect_from(track, c)
        opened = False
        for p in sorted(people, key=_prominence):
            c = self._chunkers.setdefault(p.track, self.new_chunker())
            c.on_detection(p, may_open=not opened)
            self._collect()
            opened = opened or (c.active is not None and c.active.start == frame)

    def finish(self, n_frames: int) -> list[TrackChunk]:
        for c in self._chunkers.values():
            c.finish(n_frames)
        self._collect()
        return self.closed

    def _collect(self) -> None:
        """Move every chunker's newly closed chunks to `closed`."""
        for track, c in self._chunkers.items():
            self._collect_from(track, c)

    def _collect_from(self, track: int, c: StreamingChunker) -> None:
        self.closed.extend(TrackChunk(track, ch) for ch in c.closed)
        c.closed.clear()


def _prominence(p: PersonSample) -> tuple[float, int]:
    area = p.box.area if p.box is not None else 0.0
    return -area * p.score, p.track if p.track is not None else -1
