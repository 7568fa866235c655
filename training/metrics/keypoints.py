"""AKD and MKR, as pose-evaluation's ``cmp_with_missing.py`` computes them.

Per frame, with joints present in the real (``gt``) frame R, in the generated frame G:
- AKD = mean |real - generated| over the x and y coordinates of the joints in R ∩ G: a mean per-coordinate L1 in
  pixels of the dataset-resolution frame, not a Euclidean distance. A frame with R ∩ G empty does not count.
- MKR = |R \\ G| / |R|: the share of the real frame's joints the generated frame lost. A frame with R empty does
  not count; joints found only in the generated frame change nothing.
Both are then averaged over frames pooled across all videos.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from training.metrics.result import ExtractorMismatch, MetricResult, check_same_length, pool

MISSING = -1.0  # pose-evaluation's marker for a joint not found (both coordinates)


@dataclass(frozen=True)
class Keypoints:
    """One video's keypoints from one extractor.

    xy: (T, J, 2) float64 pixel coordinates (x, y) in the frame the extractor was given.
    present: (T, J) bool, whether the extractor found the joint (a missing joint's xy is meaningless).
    extractor: the extractor's registry name, e.g. ``openpose-coco18``.
    """

    xy: np.ndarray
    present: np.ndarray
    extractor: str

    def __post_init__(self):
        xy = np.asarray(self.xy, dtype=np.float64)
        present = np.asarray(self.present, dtype=bool)
        if xy.ndim != 3 or xy.shape[-1] != 2:
            raise ValueError(f"{self.extractor}: keypoints must be (T, J, 2), got {xy.shape}")
        if present.shape != xy.shape[:2]:
            raise ValueError(f"{self.extractor}: presence {present.shape} does not match keypoints {xy.shape}")
        object.__setattr__(self, "xy", xy)
        object.__setattr__(self, "present", present)

    def __len__(self) -> int:
        return self.xy.shape[0]

    @property
    def num_joints(self) -> int:
        return self.xy.shape[1]

    @classmethod
    def from_sentinel(cls, values: np.ndarray, extractor: str) -> "Keypoints":
        """From pose-evaluation's per-frame arrays, where a missing joint is (-1, -1)."""
        values = np.asarray(values, dtype=np.float64)
        return cls(xy=values, present=(values != MISSING).all(-1), extractor=extractor)

    def to_sentinel(self) -> np.ndarray:
        """(T, J, 2) with missing joints written as (-1, -1), as pose-evaluation stores them."""
        return np.where(self.present[..., None], self.xy, MISSING)


def _check_pair(real: Keypoints, generated: Keypoints, video: str) -> None:
    if real.extractor != generated.extractor:
        raise ExtractorMismatch(f"video {video!r}: real keypoints from {real.extractor!r}, "
                                f"generated from {generated.extractor!r}")
    if real.num_joints != generated.num_joints:
        raise ExtractorMismatch(f"video {video!r}: {real.num_joints} real joints vs {generated.num_joints} generated")
    check_same_length(video, len(real), len(generated))


def akd_per_frame(real: Keypoints, generated: Keypoints, video: str = "?") -> np.ndarray:
    """(T,) mean per-coordinate |Δ| in pixels over joints present in both frames; NaN where none is."""
    _check_pair(real, generated, video)
    common = real.present & generated.present  # (T, J)
    absdiff = np.abs(real.xy - generated.xy).sum(-1)  # (T, J): |dx| + |dy|
    n = common.sum(1)
    total = np.where(common, absdiff, 0.0).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / (2.0 * n), np.nan)


def mkr_per_frame(real: Keypoints, generated: Keypoints, video: str = "?") -> np.ndarray:
    """(T,) share of the real frame's joints missing in the generated frame; NaN where the real frame has none."""
    _check_pair(real, generated, video)
    n_real = real.present.sum(1)
    lost = (real.present & ~generated.present).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_real > 0, lost / np.maximum(n_real, 1), np.nan)


def _extractor_of(videos: Mapping[str, tuple[Keypoints, Keypoints]]) -> str | None:
    names = {kp.extractor for pair in videos.values() for kp in pair}
    if len(names) > 1:
        raise ExtractorMismatch(f"keypoints from several extractors cannot be pooled: {sorted(names)}")
    return names.pop() if names else None


def akd(videos: Mapping[str, tuple[Keypoints, Keypoints]]) -> MetricResult:
    """``AKD[extractor]`` over video id -> (real keypoints, generated keypoints)."""
    ext = _extractor_of(videos)
    return pool("AKD", ext, {k: akd_per_frame(r, g, video=k) for k, (r, g) in videos.items()})


def mkr(videos: Mapping[str, tuple[Keypoints, Keypoints]]) -> MetricResult:
    """``MKR[extractor]`` over video id -> (real keypoints, generated keypoints)."""
    ext = _extractor_of(videos)
    return pool("MKR", ext, {k: mkr_per_frame(r, g, video=k) for k, (r, g) in videos.items()})
