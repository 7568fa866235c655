"""Does a model learn? Train it from scratch on videos of known motion, then ask two questions on held-out videos.

1. Reconstruction: is its L1 below the no-motion baseline's (the source frame given as the prediction)? Copying
   the source is the best a model that learned no motion can do (the generators warp the source, or its features,
   by the estimated motion); only a model that moves the object where the driving frame has it beats it.
2. Motion: do its keypoints (FOMM, TPSMM), region centres (MRAA) or keypoint means (Monkey-Net) move with the
   object? The keypoints' mean displacement from frame 0 against the object's true displacement, x and y pooled,
   over every frame of every test video: their Pearson correlation, and the gain (how far they move per pixel the
   object moves). Both are also measured on the freshly initialised model: a random heatmap detector's soft-argmax
   already drifts a little with a moving bright object (correlated, but with a gain near 0), so a model follows
   the object only with r > 0.5 and a gain > 0.25.

Training is the real loop (``Trainer.fit``) with the model's own config; only the data differ
(``training.loop.known_motion``). The config's epoch schedule (LR milestones, TPSMM's dropout and background
warm-up) is spread over the requested number of steps. Needs torch, numpy, yaml and pydantic only.
"""
from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from training.config import Config
from training.evaluation.animate import ADAPTERS, Animator
from training.loop.known_motion import KnownMotionPairs, MovingObjectVideo, held_out_videos
from training.loop.trainer import Trainer, TrainOptions


@dataclass(frozen=True)
class LearningSettings:
    steps: int
    batch_size: int | None = None  # None: the config's
    seed: int = 0
    train_videos: int = 64
    test_videos: int = 8
    frames: int = 32
    device: str = "cpu"
    vgg_weights: str | None = None  # the perceptual loss's ImageNet VGG-19 (random when not found)


MIN_CORRELATION = 0.5
MIN_GAIN = 0.25  # an untrained detector's keypoints drift with the image a little (gain ~0.05, measured)


@dataclass(frozen=True)
class MotionScores:
    """A model on the held-out videos: L1 (each video reconstructed from its frame 0), the no-motion baseline's L1
    (frame 0 as every prediction), and how its keypoints move against the object's known displacement: the Pearson
    correlation and the gain (least-squares slope through the origin; 1 = the keypoints' mean moves as far as the
    object, 0 = they stay put)."""
    l1: float
    l1_no_motion: float
    correlation: float
    gain: float

    @property
    def ratio(self) -> float:
        """L1 model / L1 no motion: below 1 beats the baseline."""
        return self.l1 / self.l1_no_motion


@dataclass(frozen=True)
class LearningResult:
    model: str
    config: str
    steps: int
    batch_size: int
    train_seconds: float
    before: MotionScores  # the freshly initialised model
    after: MotionScores  # after ``steps`` steps
    test_frames: int

    @property
    def beats_no_motion(self) -> bool:
        return self.after.l1 < self.after.l1_no_motion

    @property
    def follows_object(self) -> bool:
        """Its keypoints move with the object: correlated, and by a good part of the object's displacement (a
        random detector's soft-argmax already correlates a little with a moving bright object, but hardly moves)."""
        return self.after.correlation > MIN_CORRELATION and self.after.gain > MIN_GAIN

    @property
    def learned(self) -> bool:
        return self.beats_no_motion and self.follows_object


def _trainer(cfg: Config, settings: LearningSettings, out_dir: Path) -> tuple[Trainer, KnownMotionPairs]:
    """The real trainer for ``settings.steps`` steps on known-motion pairs; the config's epochs are spread over them."""
    batch = settings.batch_size or cfg.train.batch_size
    per_epoch = max(1, math.ceil(settings.steps / cfg.train.num_epochs))
    data = KnownMotionPairs(settings.train_videos, batch, per_epoch, cfg.frame_size[0], settings.frames, settings.seed)
    options = TrainOptions(out_dir=out_dir, max_steps=settings.steps, checkpoint_every=10 ** 9, keep_checkpoints=1,
                           log_every=max(1, settings.steps), image_every=0, seed=settings.seed, progress=False,
                           allow_random_vgg=True, vgg_weights=settings.vgg_weights, device=settings.device)
    return Trainer(cfg, options), data


@torch.no_grad()
def score(cfg: Config, model: torch.nn.Module, videos: list[MovingObjectVideo], device: str = "cpu") -> MotionScores:
    """``model`` (left in eval mode) on ``videos``."""
    animator = Animator(cfg, model, device=device)
    adapter = ADAPTERS[cfg.model]()
    l1, l1_still, kp_moves, true_moves = [], [], [], []
    for video in videos:
        frames = torch.from_numpy(video.frames())
        pred = torch.cat(list(animator.reconstruct(list(frames), batch_size=len(frames))))
        l1.append((pred - frames).abs().mean((1, 2, 3)))
        l1_still.append((frames[:1] - frames).abs().mean((1, 2, 3)))
        points = adapter.detect(animator.model, frames.to(device))[adapter.points_key].float().cpu()  # (T, K, 2)
        kp_moves.append((points - points[:1]).mean(1)[1:] * (video.size / 2))  # normalised -> pixels
        true_moves.append(torch.from_numpy(np.stack([video.displacement(t) for t in range(1, video.n_frames)])))
    kp, true = torch.cat(kp_moves).flatten().double(), torch.cat(true_moves).flatten().double()
    r = torch.corrcoef(torch.stack([kp, true]))[0, 1].item()
    gain = ((kp * true).sum() / (true * true).sum()).item()
    return MotionScores(torch.cat(l1).mean().item(), torch.cat(l1_still).mean().item(), r, gain)


def learning_check(cfg: Config, settings: LearningSettings) -> LearningResult:
    """Train ``cfg``'s model from scratch on known motion; score it on held-out videos before and after."""
    videos = held_out_videos(settings.seed, settings.test_videos, cfg.frame_size[0], settings.frames)
    with tempfile.TemporaryDirectory(prefix=f"learning-{cfg.model}-") as tmp:
        trainer, data = _trainer(cfg, settings, Path(tmp))
        before = score(cfg, trainer.model, videos, settings.device)
        start = time.perf_counter()
        trainer.fit(data)
        seconds = time.perf_counter() - start
    after = score(cfg, trainer.model, videos, settings.device)
    return LearningResult(cfg.model, cfg.name, trainer.step, data.batch_size, seconds, before, after,
                          sum(v.n_frames for v in videos))
