"""L1 of video reconstruction, as the repos' ``reconstruction`` mode prints it.

Per frame: mean |generated - real| over every pixel and channel, on [0, 1] values. The papers' number pools
every frame of every test video (FOMM, MRAA, TPSMM); Monkey-Net averaged per video, then over videos, which is
``MetricResult.per_video_mean``. pose-evaluation does not compute L1.

uint8 frames are read as value / 255 (the datasets' frames); float frames must already lie in [0, 1] (the
models' output, before any PNG quantisation, as the repos compute it).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from training.metrics.result import MetricResult, check_same_length, pool

Frames = np.ndarray | torch.Tensor


def _unit_tensor(x: Frames, device: torch.device) -> torch.Tensor:
    x = torch.as_tensor(x, device=device)
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def _unit_array(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x.astype(np.float64) / 255.0 if x.dtype == np.uint8 else x.astype(np.float64, copy=False)


def frame_l1(real: Frames, generated: Frames, video: str = "?") -> Frames:
    """Per-frame L1 of two (T, ...) frame stacks of one layout.

    With a tensor on either side the work happens on that tensor's device and a float64 tensor comes back;
    with two arrays, a float64 array.
    """
    check_same_length(video, len(real), len(generated))
    if tuple(real.shape) != tuple(generated.shape):
        raise ValueError(f"video {video!r}: real frames {tuple(real.shape)} and generated {tuple(generated.shape)} "
                         "differ in size or layout")
    if isinstance(real, torch.Tensor) or isinstance(generated, torch.Tensor):
        device = (real if isinstance(real, torch.Tensor) else generated).device
        diff = (_unit_tensor(real, device) - _unit_tensor(generated, device)).abs()
        return diff.flatten(1).mean(1, dtype=torch.float64)
    diff = np.abs(_unit_array(real) - _unit_array(generated))
    return diff.reshape(diff.shape[0], int(np.prod(diff.shape[1:]))).mean(1)


def l1_from_frames(per_frame: Mapping[str, Frames]) -> MetricResult:
    """``L1`` from per-frame values already computed (e.g. batch by batch on the device)."""
    return pool("L1", None, {k: (v.detach().double().cpu().numpy() if isinstance(v, torch.Tensor) else v)
                             for k, v in per_frame.items()})


def l1(videos: Mapping[str, tuple[Frames, Frames]]) -> MetricResult:
    """``L1`` over whole videos: video id -> (real frames, generated frames)."""
    return l1_from_frames({k: frame_l1(r, g, video=k) for k, (r, g) in videos.items()})
