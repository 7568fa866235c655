"""Chunking of one person in one streamed pass: decide chunk spans while frames go by, never looking back more than
one stride. Each tracked person has their own chunker (track_chunker.py), so a chunk follows one person.

The rules are video-preprocessing's (crop_taichi/crop_vox) and MRAA's for TED:
- a chunk opens at a detection of a valid person (big enough, upper/full body visible as the dataset asks) and its
  crop box is fixed there, so the scale is consistent through the chunk;
- it closes at a shot cut, when the person is lost, when the person's box drifts from the start box
  (IoU < `iou_with_start`: the presenter stays near the chunk's start position), or at `max_frames`;
- a closed chunk shorter than `min_frames` is rejected with its reason.

Detections arrive every `stride` frames. Between two detections the box is interpolated linearly, so a drift closes
the chunk at the first frame whose interpolated box leaves the start box, not a whole stride late. Frames after the
last confirmed detection before a loss are not kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from assets.boxes import Box

# Decides the crop box for a chunk opening on a person box, or None if that box cannot open a chunk.
CropBoxFn = Callable[[Box], "Box | None"]


@dataclass(frozen=True)
class PersonSample:
    """What the detector said about one person in one sampled frame (None box = the person is not there).

    track: the person's identity across sampled frames (PersonTracker), None before tracking.
    """

    frame: int
    box: Box | None
    upper_body: bool = True
    full_body: bool = True
    score: float = 1.0
    track: int | None = None


@dataclass(frozen=True)
class ClosedChunk:
    start: int
    end: int  # exclusive
    crop_box: Box
    person_box: Box
    accepted: bool
    reason: str  # why it closed, or why it was rejected


@dataclass
class OpenChunk:
    start: int
    crop_box: Box
    person_box: Box
    last_ok_frame: int
    last_ok_box: Box


@dataclass
class StreamingChunker:
    min_frames: int
    max_frames: int
    iou_with_start: float
    min_box_size: float
    require_upper_body: bool
    require_full_body: bool
    crop_box_for: CropBoxFn
    closed: list[ClosedChunk] = field(default_factory=list)
    _open: OpenChunk | None = None

    # -- the person rules -------------------------------------------------------------------------------------------
    def why_invalid(self, s: PersonSample) -> str | None:
        """None if the sample can carry a chunk, else the reason it cannot."""
        if s.box is None:
            return "person lost"
        if s.box.height < self.min_box_size:
            return f"person box {s.box.height:.0f} px < {self.min_box_size:.0f} px"
        if self.require_upper_body and not s.upper_body:
            return "upper body not visible"
        if self.require_full_body and not s.full_body:
            return "full body not visible"
        return None

    # -- the stream -------------------------------------------------------------------------------------------------
    @property
    def active(self) -> OpenChunk | None:
        return self._open

    def frame_in_chunk(self, frame: int) -> bool:
        """Whether the frame about to be processed belongs to the open chunk (call after `on_frame`)."""
        return self._open is not None and frame >= self._open.start

    def on_cut(self, frame: int) -> None:
        """A new shot starts at `frame`: the open chunk ends before it."""
        if self._open is not None:
            self._close(frame, "shot cut")

    def on_detection(self, s: PersonSample, may_open: bool = True) -> None:
        """The person's box at a sampled frame: continue, close or (when `may_open`) open a chunk on it."""
        o = self._open
        if o is not None:
            reason = self.why_invalid(s)
            if reason is not None:
                self._close(o.last_ok_frame + 1, reason)
            elif s.box.iou(o.person_box) < self.iou_with_start:
                self._close(self._drift_frame(o, s), f"person left the start box (IoU < {self.iou_with_start})")
            else:
                o.last_ok_frame, o.last_ok_box = s.frame, s.box
        if may_open and self._open is None and self.why_invalid(s) is None:
            crop = self.crop_box_for(s.box)
            if crop is not None:
                self._open = OpenChunk(s.frame, crop, s.box, s.frame, s.box)

    def before_frame(self, frame: int) -> None:
        """Enforce the length cap before `frame` is added."""
        o = self._open
        if o is not None and frame - o.start >= self.max_frames:
            self._close(frame, f"reached max length {self.max_frames}")

    def finish(self, n_frames: int) -> list[ClosedChunk]:
        o = self._open
        if o is not None:
            # Frames after the last detection are trusted only up to the end of the video.
            self._close(n_frames, "end of video")
        return self.closed

    # -- internals --------------------------------------------------------------------------------------------------
    def _drift_frame(self, o: OpenChunk, s: PersonSample) -> int:
        a, b = o.last_ok_frame, s.frame
        for f in range(a + 1, b + 1):
            t = (f - a) / (b - a)
            box = _lerp(o.last_ok_box, s.box, t)
            if box.iou(o.person_box) < self.iou_with_start:
                return f
        return b

    def _close(self, end: int, reason: str) -> None:
        o = self._open
        assert o is not None
        self._open = None
        length = end - o.start
        if length < self.min_frames:
            self.closed.append(ClosedChunk(o.start, end, o.crop_box, o.person_box, False,
                                           f"{length} frames < {self.min_frames} ({reason})"))
        else:
            self.closed.append(ClosedChunk(o.start, end, o.crop_box, o.person_box, True, reason))


def _lerp(a: Box, b: Box, t: float) -> Box:
    return Box(a.x0 + (b.x0 - a.x0) * t, a.y0 + (b.y0 - a.y0) * t, a.x1 + (b.x1 - a.x1) * t, a.y1 + (b.y1 - a.y1) * t)
