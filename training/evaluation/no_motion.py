"""The no-motion baseline: each test chunk's source (frame 0) given as the prediction of every frame.

It is what a model that learned no motion would output (FOMM, MRAA and TPSMM can always fall back to copying the
source), so a trained model must beat it. It is scored by the evaluation code on the same chunks as the models
(``training.evaluation.evaluate.evaluate_no_motion``) and stands on the leaderboard as a row of its own.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

NO_MOTION = "no-motion"  # what `motionpipe evaluate` takes, and its folder under evaluations/<dataset>/
NO_MOTION_NAME = "no motion (source frame)"  # its name on the leaderboard


def no_motion_frames(real: np.ndarray, batch_size: int = 16) -> Iterator[torch.Tensor]:
    """(b, 3, H, W) uint8 batches repeating ``real[0]`` (real: (T, H, W, 3) uint8), exactly the stored frame."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    source = torch.from_numpy(np.ascontiguousarray(real[:1])).permute(0, 3, 1, 2)
    for start in range(0, len(real), batch_size):
        yield source.expand(min(batch_size, len(real) - start), -1, -1, -1)
