"""AED: how far the generated frame's identity embedding is from the real frame's.

As pose-evaluation's ``cmp.py`` computes it: per frame the **squared** Euclidean distance sum((a - b)^2) between
the two embeddings (no square root), averaged over all frames pooled across videos. Whether the embeddings are
normalised is the extractor's business (the Market-1501 re-id features are not).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from training.metrics.result import ExtractorMismatch, MetricResult, check_same_length, pool


@dataclass(frozen=True)
class Embeddings:
    """One video's identity embeddings: values (T, D) float64, from the named extractor."""

    values: np.ndarray
    extractor: str

    def __post_init__(self):
        v = np.asarray(self.values, dtype=np.float64)
        if v.ndim != 2:
            raise ValueError(f"{self.extractor}: embeddings must be (T, D), got {v.shape}")
        object.__setattr__(self, "values", v)

    def __len__(self) -> int:
        return self.values.shape[0]


def aed_per_frame(real: Embeddings, generated: Embeddings, video: str = "?") -> np.ndarray:
    """(T,) squared L2 distance between real and generated embeddings of each frame."""
    if real.extractor != generated.extractor:
        raise ExtractorMismatch(f"video {video!r}: real embeddings from {real.extractor!r}, "
                                f"generated from {generated.extractor!r}")
    check_same_length(video, len(real), len(generated))
    if real.values.shape[1] != generated.values.shape[1]:
        raise ExtractorMismatch(f"video {video!r}: embedding sizes {real.values.shape[1]} "
                                f"and {generated.values.shape[1]} differ")
    return ((real.values - generated.values) ** 2).sum(1)


def aed(videos: Mapping[str, tuple[Embeddings, Embeddings]]) -> MetricResult:
    """``AED[extractor]`` over video id -> (real embeddings, generated embeddings)."""
    names = {e.extractor for pair in videos.values() for e in pair}
    if len(names) > 1:
        raise ExtractorMismatch(f"embeddings from several extractors cannot be pooled: {sorted(names)}")
    return pool("AED", names.pop() if names else None,
                {k: aed_per_frame(r, g, video=k) for k, (r, g) in videos.items()})
