"""The shape every evaluation number takes: per-frame values, per-video means and the frame-pooled score.

pose-evaluation pools over frames (every frame of every test video counts once), while Monkey-Net averaged per
video and then over videos; a ``MetricResult`` carries both so neither has to be recomputed. A frame that does
not count (AKD with no joint found in both frames, MKR with no joint in the real frame) holds NaN in
``per_frame`` and is left out of every mean, as the compare scripts skip it.

Numbers from different extractors never mix: a result is labelled ``METRIC[extractor]`` (``AKD[openpose-coco18]``)
and pairing real with generated outputs of two different extractors is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, TypeVar

import numpy as np

T = TypeVar("T")


class FrameCountMismatch(ValueError):
    """A generated video does not have exactly the frames of its real chunk (pose-evaluation asserts this)."""


class ExtractorMismatch(ValueError):
    """Real and generated outputs come from different extractors (or keypoint layouts) and cannot be compared."""


def metric_label(metric: str, extractor: str | None) -> str:
    """``AKD[mediapipe-pose33]``; a metric computed on pixels alone (L1) carries no extractor."""
    return metric if extractor is None else f"{metric}[{extractor}]"


@dataclass(frozen=True)
class MetricResult:
    """One metric over a set of videos.

    value: mean over every counted frame of every video (the papers' number for L1, AKD, MKR, AED).
    per_video: video id -> mean over that video's counted frames (NaN when none counted).
    per_frame: video id -> (T,) float64 values, NaN where the frame does not count.
    """

    metric: str
    extractor: str | None
    value: float
    per_video: dict[str, float]
    per_frame: dict[str, np.ndarray] = field(repr=False)
    frames_counted: int
    frames_total: int

    @property
    def label(self) -> str:
        return metric_label(self.metric, self.extractor)

    @property
    def per_video_mean(self) -> float:
        """Mean of the per-video means (Monkey-Net's averaging); videos with no counted frame are left out."""
        vals = [v for v in self.per_video.values() if not np.isnan(v)]
        return float(np.mean(vals)) if vals else float("nan")

    def summary(self) -> dict[str, object]:
        """Plain, JSON-ready numbers (no per-frame arrays; NaN, i.e. nothing counted, becomes None)."""
        def num(x: float) -> float | None:
            return None if np.isnan(x) else float(x)

        return {
            "label": self.label, "metric": self.metric, "extractor": self.extractor, "value": num(self.value),
            "per_video_mean": num(self.per_video_mean), "frames_counted": self.frames_counted,
            "frames_total": self.frames_total, "videos": len(self.per_video),
        }


def check_same_length(video: str, real_frames: int, generated_frames: int) -> None:
    if real_frames != generated_frames:
        raise FrameCountMismatch(
            f"video {video!r}: generated has {generated_frames} frames but the real chunk has {real_frames}; "
            "every generated video must have exactly the frames of its real chunk")


def pair_videos(real: Mapping[str, T], generated: Mapping[str, T]) -> dict[str, tuple[T, T]]:
    """Match real and generated outputs by video id; a video on one side only is an error naming it."""
    only_real = sorted(set(real) - set(generated))
    only_gen = sorted(set(generated) - set(real))
    if only_real or only_gen:
        raise ValueError(f"videos do not match: missing generated for {only_real[:5]} ({len(only_real)}), "
                         f"no real chunk for {only_gen[:5]} ({len(only_gen)})")
    return {k: (real[k], generated[k]) for k in sorted(real)}


def pool(metric: str, extractor: str | None, per_frame: Mapping[str, np.ndarray]) -> MetricResult:
    """Frame-pooled and per-video means of per-frame values (NaN = frame not counted)."""
    frames = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in per_frame.items()}
    per_video = {}
    for k, v in frames.items():
        counted = v[~np.isnan(v)]
        per_video[k] = float(counted.mean()) if counted.size else float("nan")
    allv = np.concatenate(list(frames.values())) if frames else np.zeros(0)
    counted = allv[~np.isnan(allv)]
    value = float(counted.mean()) if counted.size else float("nan")
    return MetricResult(metric=metric, extractor=extractor, value=value, per_video=per_video,
                        per_frame=frames, frames_counted=int(counted.size), frames_total=int(allv.size))
