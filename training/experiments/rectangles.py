"""The rotated-rectangles dataset of MRAA's toy experiment (Sec. 4.1; supplement Sec. 1, Fig. 1).

Each image holds one rectangle of a random colour on black, rotated by an angle drawn uniformly from [0, 90]
degrees; the label is that angle. Geometry is in the models' coordinate convention (training/models/grids.py: x right,
y down, both in [-1, 1]); the rectangle's long side points along (cos a, sin a), so the angle a PCA of its mask
recovers is the label itself. The long side is always at least 1.6x the short one: with a square the angle
would only be defined modulo 90 degrees.

Edges are anti-aliased by supersampling (the pixel value is the covered fraction), so angles a fraction of a
degree apart give different images even at 32x32 and no network is limited by the rendering.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from training.models.grids import make_coordinate_grid

MAX_ANGLE_DEG = 90.0


@dataclass(frozen=True)
class Rectangles:
    """images (N, 3, S, S) float32 in [0, 1]; angles (N,) float32, degrees in [0, 90]."""
    images: torch.Tensor
    angles: torch.Tensor

    def __len__(self) -> int:
        return self.angles.shape[0]

    def subset(self, n: int) -> "Rectangles":
        """The first ``n`` samples: training sets of growing size are nested, as subsets of one pool."""
        if not 0 < n <= len(self):
            raise ValueError(f"subset of {n} from a dataset of {len(self)}")
        return Rectangles(self.images[:n], self.angles[:n])


def make_rectangles(n: int, size: int, seed: int, supersample: int = 8, chunk: int = 32) -> Rectangles:
    """``n`` rectangles at ``size`` x ``size`` pixels, fully determined by ``seed``.

    In grid units (the frame spans 2): long side 0.8-1.2, short side 0.25-0.6 of the long one, centre kept far
    enough from the border that every corner stays inside; colour uniform in [0.25, 1] per channel.
    """
    rng = np.random.default_rng(seed)
    angles = rng.uniform(0.0, MAX_ANGLE_DEG, n)
    long_side = rng.uniform(0.8, 1.2, n)
    short_side = long_side * rng.uniform(0.25, 0.6, n)
    half_diag = 0.5 * np.hypot(long_side, short_side)
    reach = np.maximum(0.95 - half_diag, 0.0)  # centre offset that keeps the corners inside [-0.95, 0.95]
    centres = rng.uniform(-1.0, 1.0, (n, 2)) * reach[:, None]
    colours = rng.uniform(0.25, 1.0, (n, 3))

    fine = size * supersample
    grid = make_coordinate_grid(fine, fine)  # (fine, fine, 2)
    x, y = grid[..., 0], grid[..., 1]
    col = lambda v: torch.from_numpy(v).float()[:, None, None]  # noqa: E731 - (b,) -> (b, 1, 1)
    images = []
    for lo in range(0, n, chunk):
        sl = slice(lo, min(lo + chunk, n))
        a = np.deg2rad(angles[sl])
        cos, sin, dx, dy = col(np.cos(a)), col(np.sin(a)), x - col(centres[sl, 0]), y - col(centres[sl, 1])
        along = (dx * cos + dy * sin).abs()  # (b, fine, fine): distance along the long side
        across = (dy * cos - dx * sin).abs()  # along the short side
        inside = (along <= col(long_side[sl]) / 2) & (across <= col(short_side[sl]) / 2)
        coverage = F.avg_pool2d(inside[:, None].float(), supersample)  # (b, 1, size, size)
        images.append(coverage * torch.from_numpy(colours[sl]).float()[:, :, None, None])
    return Rectangles(torch.cat(images), torch.from_numpy(angles).float())

