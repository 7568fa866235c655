"""Moving Gaussian blobs instead of a dataset: smoke tests and speed checks on machines without data
(``python -m training.train --synthetic N``)."""

from __future__ import annotations

import numpy as np
import torch


class SyntheticPairs:
    """Moving Gaussian blobs: an index-driven stand-in for the shard loader (no files, fully deterministic).

    Video ``v`` has ``num_blobs`` coloured blobs moving on smooth periodic paths. An epoch holds
    ``num_videos * num_repeats`` items in an order drawn from (seed, epoch); item ``i`` of the epoch is the
    frame pair of its video at two sorted times drawn from (seed, epoch, i). Each global batch of
    ``batch_size * world_size`` items is split by rank, so N ranks see exactly the batch one process would.
    """

    def __init__(self, num_videos: int = 8, batch_size: int = 2, size: int = 64, seed: int = 0,
                 num_repeats: int = 1, rank: int = 0, world_size: int = 1, num_blobs: int = 3):
        if num_videos * num_repeats < batch_size * world_size:
            raise ValueError(f"{num_videos} videos x {num_repeats} repeats cannot fill one global batch of "
                             f"{batch_size} x {world_size}")
        self.num_videos, self.batch_size, self.size, self.seed = num_videos, batch_size, size, seed
        self.num_repeats, self.rank, self.world_size, self.num_blobs = num_repeats, rank, world_size, num_blobs
        self.epoch = 0
        grid = np.linspace(-1, 1, size, dtype=np.float32)
        self._yy, self._xx = np.meshgrid(grid, grid, indexing="ij")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_videos * self.num_repeats // (self.batch_size * self.world_size)

    def _frame(self, video: int, t: float) -> np.ndarray:
        rng = np.random.default_rng((self.seed, 7919, video))
        colours = rng.uniform(0.2, 1.0, (self.num_blobs, 3)).astype(np.float32)
        centre = rng.uniform(-0.5, 0.5, (self.num_blobs, 2))
        amp, freq, phase = rng.uniform(0.1, 0.4, (self.num_blobs, 2)), rng.uniform(0.5, 2, (self.num_blobs, 2)), \
            rng.uniform(0, 2 * np.pi, (self.num_blobs, 2))
        pos = centre + amp * np.sin(freq * t + phase)  # (N, 2) (x, y)
        sigma = rng.uniform(0.1, 0.25, self.num_blobs)
        img = np.full((3, self.size, self.size), 0.1, np.float32)
        for (x, y), s, c in zip(pos, sigma, colours):
            blob = np.exp(-((self._xx - x) ** 2 + (self._yy - y) ** 2) / (2 * s * s)).astype(np.float32)
            img = np.maximum(img, c[:, None, None] * blob[None])
        return img

    def __iter__(self):
        n_items = self.num_videos * self.num_repeats
        order = np.random.default_rng((self.seed, self.epoch)).permutation(n_items)
        g = self.batch_size * self.world_size
        for b in range(len(self)):
            idx = range(b * g + self.rank * self.batch_size, b * g + (self.rank + 1) * self.batch_size)
            src, drv = [], []
            for i in idx:
                t0, t1 = np.sort(np.random.default_rng((self.seed, self.epoch, i)).uniform(0, 10, 2))
                video = int(order[i]) % self.num_videos
                src.append(self._frame(video, t0))
                drv.append(self._frame(video, t1))
            yield {"source": torch.from_numpy(np.stack(src)), "driving": torch.from_numpy(np.stack(drv))}
