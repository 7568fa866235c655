"""Evaluation metrics exactly as the papers measure them: L1, AKD, MKR (pose-evaluation) and AED.

Functions take per-frame extractor outputs per video and return a ``MetricResult`` with the per-frame values,
per-video means and the frame-pooled number, labelled with the extractor (``AKD[openpose-coco18]``).
"""

from training.metrics.identity import Embeddings, aed, aed_per_frame
from training.metrics.keypoints import Keypoints, akd, akd_per_frame, mkr, mkr_per_frame
from training.metrics.reconstruction import frame_l1, l1, l1_from_frames
from training.metrics.result import (ExtractorMismatch, FrameCountMismatch, MetricResult, metric_label,
                                     pair_videos, pool)

__all__ = [
    "Embeddings", "ExtractorMismatch", "FrameCountMismatch", "Keypoints", "MetricResult", "aed", "aed_per_frame",
    "akd", "akd_per_frame", "frame_l1", "l1", "l1_from_frames", "metric_label", "mkr", "mkr_per_frame",
    "pair_videos", "pool",
]
