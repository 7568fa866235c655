"""Videos with known motion: a textured object translated over a static textured background.

The learning check needs ground truth that the real sample data cannot give cheaply: where the object is in every
frame. Here each video is drawn analytically (sums of random gratings, a soft-edged ellipse), so any sub-pixel
translation renders exactly, the object's displacement from frame 0 is known in pixels, and nothing but numpy is
needed. Train and test videos come from disjoint seed streams, so the test videos (texture, shape, background and
path) are never seen in training.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator

import numpy as np
import torch

_TRAIN, _TEST, _PAIRS = 0, 1, 2  # seed streams


def _gratings(rng: np.random.Generator, n: int, period: tuple[float, float]) -> tuple[np.ndarray, ...]:
    """n random sinusoidal gratings per channel: wave vectors (3, n, 2), phases and amplitudes (3, n)."""
    angle = rng.uniform(0, 2 * math.pi, (3, n))
    freq = 2 * math.pi / rng.uniform(*period, (3, n))
    k = np.stack([freq * np.cos(angle), freq * np.sin(angle)], -1)
    return k, rng.uniform(0, 2 * math.pi, (3, n)), rng.uniform(0.5, 1.0, (3, n)) / n


def _texture(k: np.ndarray, phase: np.ndarray, amp: np.ndarray, mean: np.ndarray, contrast: float,
             x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(3, H, W) colour texture at pixel coordinates x, y (H, W)."""
    arg = k[..., 0, None, None] * x + k[..., 1, None, None] * y + phase[..., None, None]  # (3, n, H, W)
    return mean[:, None, None] + contrast * (amp[..., None, None] * np.sin(arg)).sum(1)


def _patches(rng: np.random.Generator, period: tuple[float, float]) -> tuple[np.ndarray, ...]:
    """Two random scalar gratings and four colours: an object of a few flat-coloured patches, like a photographed
    figure (a suit, a face, a shirt), not a noise texture."""
    angle = rng.uniform(0, 2 * math.pi, 2)
    freq = 2 * math.pi / rng.uniform(*period, 2)
    k = np.stack([freq * np.cos(angle), freq * np.sin(angle)], -1)  # (2, 2)
    return k, rng.uniform(0, 2 * math.pi, 2), rng.uniform(0.05, 0.95, (2, 2, 3))


def _patch_texture(k: np.ndarray, phase: np.ndarray, colours: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(3, H, W): the four colours blended by the two gratings' soft signs (edges about two pixels wide)."""
    w = [1 / (1 + np.exp(-4 * np.sin(k[i, 0] * x + k[i, 1] * y + phase[i]))) for i in range(2)]
    out = sum(colours[a, b][:, None, None] * (w[0] if a else 1 - w[0]) * (w[1] if b else 1 - w[1])
              for a in range(2) for b in range(2))
    return out


@dataclass(frozen=True)
class MovingObjectVideo:
    """One video: an ellipse of random texture on a smooth path over a static background, ``size`` px square.

    ``frame(t)`` is float32 (3, H, W) in [0, 1]; ``position(t)`` is the object's centre (x, y) in pixels, so
    ``position(t) - position(0)`` is the displacement a motion model must recover.
    """

    seed: tuple[int, ...]
    size: int = 64
    n_frames: int = 32

    @cached_property
    def _params(self) -> dict:
        rng = np.random.default_rng(self.seed)
        s = self.size
        radii = rng.uniform(0.3, 0.4, 2) * s
        amp = rng.uniform(0.15, 0.22, 2) * s  # the path's half-extent per axis
        return {
            "bg": (*_gratings(rng, 3, (0.5 * s, 1.5 * s)), rng.uniform(0.3, 0.7, 3)),
            "fg": _patches(rng, (0.35 * s, 0.7 * s)),
            "radii": radii, "tilt": rng.uniform(0, math.pi),
            "centre": s / 2 + rng.uniform(-0.05, 0.05, 2) * s, "amp": amp,
            "freq": rng.uniform(0.5, 1.0, 2) * 2 * math.pi / self.n_frames, "phase": rng.uniform(0, 2 * math.pi, 2),
        }

    @cached_property
    def _grid(self) -> tuple[np.ndarray, np.ndarray]:
        yy, xx = np.mgrid[0:self.size, 0:self.size].astype(np.float64)
        return xx, yy

    @cached_property
    def _background(self) -> np.ndarray:
        return _texture(*self._params["bg"], 0.25, *self._grid)

    def position(self, t: float) -> np.ndarray:
        p = self._params
        return p["centre"] + p["amp"] * np.sin(p["freq"] * t + p["phase"])

    def displacement(self, t: float) -> np.ndarray:
        """(dx, dy) in pixels from frame 0 to frame t."""
        return self.position(t) - self.position(0)

    def frame(self, t: float) -> np.ndarray:
        p = self._params
        xx, yy = self._grid
        cx, cy = self.position(t)
        u, v = xx - cx, yy - cy  # object coordinates: the texture moves with the object
        c, s = math.cos(p["tilt"]), math.sin(p["tilt"])
        r = np.hypot((c * u + s * v) / p["radii"][0], (-s * u + c * v) / p["radii"][1])
        alpha = np.clip((1 - r) * min(p["radii"]) + 0.5, 0, 1)  # a one-pixel soft edge
        fg = _patch_texture(*p["fg"], u, v)
        img = alpha * fg + (1 - alpha) * self._background
        return np.clip(img, 0, 1).astype(np.float32)

    def frames(self) -> np.ndarray:
        """(T, 3, H, W) float32: the whole video."""
        return np.stack([self.frame(t) for t in range(self.n_frames)])


def train_video(seed: int, index: int, size: int = 64, n_frames: int = 32) -> MovingObjectVideo:
    return MovingObjectVideo((seed, _TRAIN, index), size, n_frames)


def held_out_videos(seed: int, count: int, size: int = 64, n_frames: int = 32) -> list[MovingObjectVideo]:
    """Held-out videos: a seed stream no training video is drawn from."""
    return [MovingObjectVideo((seed, _TEST, i), size, n_frames) for i in range(count)]


class KnownMotionPairs:
    """(source, driving) frame pairs of ``num_videos`` training videos, for ``Trainer.fit``.

    An epoch is ``batches_per_epoch`` batches; item i of epoch e is a pair of frames of a video, all drawn from
    (seed, epoch, i), never from global RNG state, so a run is reproducible and resumes exactly.
    """

    def __init__(self, num_videos: int, batch_size: int, batches_per_epoch: int, size: int = 64,
                 n_frames: int = 32, seed: int = 0):
        if min(num_videos, batch_size, batches_per_epoch) < 1:
            raise ValueError("num_videos, batch_size and batches_per_epoch must be >= 1")
        self.videos = [train_video(seed, i, size, n_frames) for i in range(num_videos)]
        self.batch_size, self.batches, self.seed = batch_size, batches_per_epoch, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for b in range(self.batches):
            src, drv = [], []
            for i in range(b * self.batch_size, (b + 1) * self.batch_size):
                rng = np.random.default_rng((self.seed, _PAIRS, self.epoch, i))
                video = self.videos[int(rng.integers(len(self.videos)))]
                t0, t1 = rng.integers(0, video.n_frames, 2)
                src.append(video.frame(t0))
                drv.append(video.frame(t1))
            yield {"source": torch.from_numpy(np.stack(src)), "driving": torch.from_numpy(np.stack(drv))}
