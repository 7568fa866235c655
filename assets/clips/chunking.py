"""Chunk rules: split a per-frame person track into clips, the way the reference datasets were cut.

A chunk is a run of frames with one valid person, inside one shot, where the person stays near where the chunk
started (crop_vox's IoU-with-initial-box test, MRAA's "presenter did not move too far"), at most `max_frames`
long. Short runs and runs whose person is too small for the target resolution are rejected, each with a reason,
so a coverage report can say why a video gave no clips.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Literal, Sequence

from assets.clips.geometry import Box, consistent_chunk_box
from assets.detect.base import Detection


@dataclass(frozen=True)
class ChunkRules:
    """min_box_size is on the person box *height* in source pixels (TED: >= 384 px), judged on the chunk's median."""

    min_frames: int
    max_frames: int = 1024
    iou_with_start: float = 0.25
    min_box_size: float = 0.0
    require_upper_body: bool = False
    require_full_body: bool = False

    def __post_init__(self) -> None:
        if self.min_frames < 1 or self.max_frames < self.min_frames:
            raise ValueError(f"need 1 <= min_frames <= max_frames, got {self.min_frames}, {self.max_frames}")
        if not 0.0 <= self.iou_with_start <= 1.0:
            raise ValueError(f"iou_with_start must be in [0, 1], got {self.iou_with_start}")
        if self.min_box_size < 0:
            raise ValueError(f"min_box_size must be >= 0, got {self.min_box_size}")

    @classmethod
    def taichi(cls) -> "ChunkRules":
        """crop_taichi.py: 128-1024 frames, 256 px, a full person (head and ankle keypoints)."""
        return cls(min_frames=128, max_frames=1024, iou_with_start=0.25, min_box_size=256, require_full_body=True)

    @classmethod
    def ted(cls) -> "ChunkRules":
        """MRAA supplement Sec. 5: 64-1024 frames, person box >= 384 px tall, upper body visible."""
        return cls(min_frames=64, max_frames=1024, iou_with_start=0.25, min_box_size=384, require_upper_body=True)

    @classmethod
    def sample(cls) -> "ChunkRules":
        """The offline sample: short clips of small frames."""
        return cls(min_frames=24, max_frames=96, iou_with_start=0.25, min_box_size=100, require_upper_body=True)

    @classmethod
    def from_settings(cls, settings: Any) -> "ChunkRules":
        """From any object with the same attribute names (e.g. the dataset config's `chunks` section)."""
        return cls(min_frames=settings.min_frames, max_frames=settings.max_frames,
                   iou_with_start=settings.iou_with_start, min_box_size=settings.min_box_size,
                   require_upper_body=settings.require_upper_body, require_full_body=settings.require_full_body)


@dataclass(frozen=True)
class ChunkSpan:
    """Frames [start, end) of the video, cropped with one square `box` (the person box, consistent scale)."""

    start: int
    end: int
    box: Box
    closed_by: str = ""

    @property
    def n_frames(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Rejected:
    start: int
    end: int
    reason: str


def frame_problem(det: Detection | None, rules: ChunkRules) -> str | None:
    """None if this frame can be part of a chunk, else why not."""
    if det is None:
        return "person lost"
    if rules.require_upper_body and not det.upper_body_visible:
        return "upper body not visible"
    if rules.require_full_body and not det.full_body_visible:
        return "full body not visible"
    return None


def split_into_chunks(track: Sequence[Detection | None], cuts: Sequence[int], rules: ChunkRules,
                      box_method: Literal["median", "union"] = "median") -> tuple[list[ChunkSpan], list[Rejected]]:
    """Cut a per-frame track (one entry per frame, None = no person) into accepted spans and rejected ones.

    A chunk opens at the first valid frame and closes (end exclusive) at a shot cut, at a frame whose person is
    missing or fails the visibility rule, when IoU(start box, current box) < `iou_with_start`, or after
    `max_frames`; in the last three cases with a valid person a new chunk opens on the same frame.
    Deterministic: a pure function of its inputs.
    """
    cut_set = {c for c in cuts if 0 < c < len(track)}
    spans: list[tuple[int, int, str]] = []
    start: int | None = None
    start_box: Box | None = None

    for i, det in enumerate(track):
        problem = frame_problem(det, rules)
        if start is not None:
            reason = None
            if i in cut_set:
                reason = "shot cut"
            elif problem is not None:
                reason = problem
            elif det.box.iou(start_box) < rules.iou_with_start:
                reason = f"moved from start position (IoU {det.box.iou(start_box):.2f} < {rules.iou_with_start})"
            elif i - start >= rules.max_frames:
                reason = f"max length {rules.max_frames}"
            if reason is not None:
                spans.append((start, i, reason))
                start = None
        if start is None and problem is None:
            start, start_box = i, det.box
    if start is not None:
        spans.append((start, len(track), "end of video"))

    accepted: list[ChunkSpan] = []
    rejected: list[Rejected] = []
    for s, e, closed_by in spans:
        n = e - s
        if n < rules.min_frames:
            rejected.append(Rejected(s, e, f"too short: {n} frames < {rules.min_frames} (closed by {closed_by})"))
            continue
        boxes = [track[i].box for i in range(s, e)]
        height = statistics.median(b.height for b in boxes)
        if height < rules.min_box_size:
            rejected.append(Rejected(s, e, f"person too small: median box height {height:.0f} px "
                                           f"< {rules.min_box_size:g} px"))
            continue
        accepted.append(ChunkSpan(s, e, consistent_chunk_box(boxes, box_method), closed_by))
    return accepted, rejected
