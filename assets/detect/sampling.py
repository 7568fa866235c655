"""Sparse detection (every k-th frame) and the per-frame track interpolated from it.

A presenter moves little in a third of a second, so detecting every `stride` frames and interpolating the box
costs 1/stride of the detector time and changes chunk boundaries by less than a stride.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from assets.clips.geometry import Box
from assets.detect.base import Detection, Detector


def main_person(detections: Iterable[Detection]) -> Detection | None:
    """The subject of the frame: the person with the largest area x score (big and confident wins;
    a small confident bystander loses to the presenter)."""
    people = [d for d in detections if d.kind == "person" and d.box.area > 0]
    if not people:
        return None
    return max(people, key=lambda d: (d.box.area * d.score, d.score))


def detect_sparse(frames: Iterable[tuple[int, np.ndarray]], detector: Detector, stride: int,
                  include_last: bool = True) -> dict[int, Detection | None]:
    """The main person on every frame whose index is a multiple of `stride` (None where nobody is found).

    `frames` may yield every frame of the video (only sampled ones are detected) and is consumed lazily. With
    `include_last`, the last frame is detected too, so the tail after the last multiple can be interpolated;
    only that one frame is held back.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    out: dict[int, Detection | None] = {}
    last: tuple[int, np.ndarray] | None = None
    previous = -1
    for index, frame in frames:
        if index <= previous:
            raise ValueError(f"frame indices must increase: {index} after {previous}")
        previous = index
        if index % stride == 0:
            out[index] = main_person(detector.detect(frame))
            last = None
        elif include_last:
            last = (index, frame)
    if last is not None:
        out[last[0]] = main_person(detector.detect(last[1]))
    return out


def _lerp_box(a: Box, b: Box, t: float) -> Box:
    return Box(a.x0 + (b.x0 - a.x0) * t, a.y0 + (b.y0 - a.y0) * t, a.x1 + (b.x1 - a.x1) * t, a.y1 + (b.y1 - a.y1) * t)


def _between(a: Detection, b: Detection, t: float) -> Detection:
    kp = None
    if a.keypoints is not None and b.keypoints is not None and a.keypoints.shape == b.keypoints.shape:
        kp = (a.keypoints + (b.keypoints - a.keypoints) * t).astype(np.float32)
    near = a if t <= 0.5 else b  # flags are held from the nearer sample
    return Detection(box=_lerp_box(a.box, b.box, t), score=a.score + (b.score - a.score) * t, kind=a.kind,
                     keypoints=kp, upper_body_visible=near.upper_body_visible,
                     full_body_visible=near.full_body_visible)


def interpolate_track(sparse: dict[int, Detection | None], n_frames: int, stride: int,
                      max_gap: int | None = None) -> list[Detection | None]:
    """One entry per frame: sampled frames as detected; frames between two samples linearly interpolated when both
    samples found the person, their boxes overlap (IoU > 0: the same person, not a jump to someone else) and they
    are at most `max_gap` frames apart (default `stride`; a longer gap means frames were missing). Everything else,
    including frames before the first and after the last sample, is None.
    """
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    gap = stride if max_gap is None else max_gap
    keys = sorted(sparse)
    if keys and (keys[0] < 0 or keys[-1] >= n_frames):
        raise ValueError(f"sampled frames {keys[0]}..{keys[-1]} fall outside a video of {n_frames} frames")
    track: list[Detection | None] = [None] * n_frames
    for k in keys:
        track[k] = sparse[k]
    for a, b in zip(keys, keys[1:]):
        da, db = sparse[a], sparse[b]
        if da is None or db is None or b - a > gap or da.box.iou(db.box) <= 0:
            continue
        for i in range(a + 1, b):
            track[i] = _between(da, db, (i - a) / (b - a))
    return track
