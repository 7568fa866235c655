"""Pixel boxes and the crops they cut: the vocabulary the detectors and the clips stage share (neither imports the
other for it). Pure functions on numbers and arrays."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal, Sequence

import cv2
import numpy as np

OutOfFrame = Literal["clip", "pad", "reject"]
PadMode = Literal["constant", "edge"]


class OutOfFrameError(ValueError):
    """A crop box leaves the frame and the policy is 'reject' (or the box misses the frame entirely)."""


def _round_half_up(v: float) -> int:
    return math.floor(v + 0.5)


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels, (x0, y0) top-left, (x1, y1) bottom-right, x1/y1 exclusive like a slice."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def center(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def iou(self, other: "Box") -> float:
        """Continuous intersection over union (no +1 pixel convention); 0 for empty boxes."""
        iw = min(self.x1, other.x1) - max(self.x0, other.x0)
        ih = min(self.y1, other.y1) - max(self.y0, other.y0)
        if iw <= 0 or ih <= 0:
            return 0.0
        inter = iw * ih
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def scaled(self, sx: float, sy: float) -> "Box":
        return Box(self.x0 * sx, self.y0 * sy, self.x1 * sx, self.y1 * sy)

    def translated(self, dx: float, dy: float) -> "Box":
        return Box(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)

    def clipped(self, w: float, h: float) -> "Box":
        """The part inside a w x h frame (may be empty: width or height 0)."""
        x0, x1 = min(max(self.x0, 0.0), w), min(max(self.x1, 0.0), w)
        y0, y1 = min(max(self.y0, 0.0), h), min(max(self.y1, 0.0), h)
        return Box(x0, y0, x1, y1)

    def union(self, other: "Box") -> "Box":
        return Box(min(self.x0, other.x0), min(self.y0, other.y0), max(self.x1, other.x1), max(self.y1, other.y1))

    def as_ints(self) -> tuple[int, int, int, int]:
        """Integer pixel box: the corner rounded half-up, then the *size* rounded, so a square stays square."""
        x0, y0 = _round_half_up(self.x0), _round_half_up(self.y0)
        return x0, y0, x0 + _round_half_up(self.width), y0 + _round_half_up(self.height)

    def to_list(self) -> list[float]:
        return [float(self.x0), float(self.y0), float(self.x1), float(self.y1)]

    @classmethod
    def from_list(cls, values: Sequence[float]) -> "Box":
        if len(values) != 4:
            raise ValueError(f"a box needs 4 numbers [x0, y0, x1, y1], got {list(values)!r}")
        return cls(*(float(v) for v in values))

    @classmethod
    def from_ltrb_string(cls, text: str) -> "Box":
        """Parse the taichi-metadata.csv `bbox` column, 'left-top-right-bot' in reference pixels."""
        m = re.fullmatch(r"\s*(\d+)-(\d+)-(\d+)-(\d+)\s*", text) if isinstance(text, str) else None
        if m is None:
            raise ValueError(f"bbox {text!r} is not 'left-top-right-bot' (four non-negative integers joined by '-')")
        left, top, right, bot = (int(g) for g in m.groups())
        if right <= left or bot <= top:
            raise ValueError(f"bbox {text!r} is empty or inverted (need right > left and bot > top)")
        return cls(float(left), float(top), float(right), float(bot))


def square_box(box: Box, increase: float = 0.1) -> Box:
    """video-preprocessing's `compute_aspect_preserved_bbox`: a centred square of side (1 + 2a) * max(w, h).

    The reference grows each side by max(a, what makes it square); the result is exactly this square (kept in
    floats here instead of truncated to ints, so repeated use does not drift).
    """
    if increase < 0:
        raise ValueError(f"increase must be >= 0, got {increase}")
    cx, cy = box.center
    half = (1 + 2 * increase) * max(box.width, box.height) / 2
    return Box(cx - half, cy - half, cx + half, cy + half)


def box_inside(box: Box, w: int, h: int) -> bool:
    """Whether the integer crop box lies entirely inside a w x h frame."""
    x0, y0, x1, y1 = box.as_ints()
    return x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h


def crop_frame(frame: np.ndarray, box: Box, policy: OutOfFrame = "pad", pad_mode: PadMode = "constant") -> np.ndarray:
    """Cut `box` out of an HxWxC frame.

    'clip'   — the reference behaviour (a numpy slice): only the part inside the frame, so the crop may be smaller
               and not square. Negative coordinates are clamped to 0 (a raw slice would wrap around to the far edge).
    'pad'    — keep the exact box size: the outside is filled with zeros ('constant', default: static and plainly
               artificial, nothing for a motion model to explain) or the replicated border ('edge').
    'reject' — raise OutOfFrameError if any part of the box is outside.
    A box that misses the frame entirely raises OutOfFrameError under every policy.
    """
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = box.as_ints()
    if x1 <= x0 or y1 <= y0:
        raise OutOfFrameError(f"empty crop box {box.to_list()}")
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx1 <= cx0 or cy1 <= cy0:
        raise OutOfFrameError(f"crop box {[x0, y0, x1, y1]} does not intersect the {w}x{h} frame")
    inside = frame[cy0:cy1, cx0:cx1]
    if policy == "clip":
        return inside
    if policy == "reject":
        if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):
            raise OutOfFrameError(f"crop box {[x0, y0, x1, y1]} leaves the {w}x{h} frame (policy 'reject')")
        return inside
    if policy != "pad":
        raise ValueError(f"unknown out-of-frame policy {policy!r} (use 'clip', 'pad' or 'reject')")
    pads = ((cy0 - y0, y1 - cy1), (cx0 - x0, x1 - cx1)) + ((0, 0),) * (frame.ndim - 2)
    if not any(p for pair in pads for p in pair):
        return inside
    borders = {"constant": cv2.BORDER_CONSTANT, "edge": cv2.BORDER_REPLICATE}
    if pad_mode not in borders:
        raise ValueError(f"unknown pad_mode {pad_mode!r} (use 'constant' or 'edge')")
    (top, bottom), (left, right) = pads[0], pads[1]
    # cv2 pads in C, ~10x faster than np.pad on a video frame.
    out = cv2.copyMakeBorder(inside, top, bottom, left, right, borders[pad_mode], value=0)
    return out[:, :, None] if inside.ndim == 3 and out.ndim == 2 else out
