"""Co-part segmentation from MRAA's region heatmaps (supplement Sec. 2) and ``motionpipe segment``.

The rule is the supplement's: a pixel belongs to the region whose heatmap M^k responds most there,
argmax_k M^k(z), and to the background when sum_k M^k(z) < 0.001 (MRAA predicts no background region). The
heatmaps are the region predictor's softmax outputs, each summing to 1 over its pixels, so the threshold only
means something at their own resolution (e.g. 58x58 for a 256x256 frame: a quarter of the frame, less the 7x7
valid convolution). Labels are therefore computed there and only then resized to the frame, by nearest
neighbour in the models' coordinate convention (heatmap pixel i of h sits at 2i/(h-1) - 1, as the region
predictor's own means and covariances place it: training/models/grids.py).

Labels: 0 is the background, k + 1 the region k of the model (1..K), the numbers ``motionpipe animate --mode
part-swap --parts`` takes.
"""

from __future__ import annotations

import time
from typing import Iterable, Iterator

import cv2
import numpy as np
import torch

from training.reporting.visualize import palette

BACKGROUND_THRESHOLD = 1e-3


def segment_heatmaps(heatmap: torch.Tensor, threshold: float = BACKGROUND_THRESHOLD) -> torch.Tensor:
    """(B, K, h, w) region heatmaps -> (B, h, w) int64 labels: argmax_k + 1, or 0 where sum_k < threshold."""
    labels = heatmap.argmax(dim=1) + 1
    return torch.where(heatmap.sum(dim=1) < threshold, torch.zeros_like(labels), labels)


def resize_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, h, w) labels -> (B, H, W) by nearest neighbour, frame pixel j taking heatmap pixel
    round(j (h-1) / (H-1)): corners onto corners, the convention of every coordinate grid here."""
    h, w = labels.shape[-2:]
    rows = _nearest_index(size[0], h, labels.device)
    cols = _nearest_index(size[1], w, labels.device)
    return labels[..., rows, :][..., cols]


def _nearest_index(n_out: int, n_in: int, device) -> torch.Tensor:
    if n_out == 1 or n_in == 1:
        return torch.zeros(n_out, dtype=torch.long, device=device)
    return torch.round(torch.arange(n_out, device=device, dtype=torch.float64) * (n_in - 1) / (n_out - 1)).long()


def require_regions(animator) -> None:
    """Co-part segmentation and part swap need MRAA's region heatmaps."""
    if animator.cfg.model != "mraa":
        raise ValueError(f"co-part segmentation needs an MRAA checkpoint; {animator.cfg.name!r} is a "
                         f"{animator.cfg.model} model")


@torch.no_grad()
def region_heatmaps(animator, frames: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) frames on the animator's device -> (B, K, h, w) float32 heatmaps of its region predictor."""
    require_regions(animator)
    with animator._autocast():
        return animator.model.region_predictor(frames)["heatmap"].float()


@torch.no_grad()
def segment_frames(animator, frames: Iterable, batch_size: int = 16,
                   threshold: float = BACKGROUND_THRESHOLD) -> Iterator[torch.Tensor]:
    """Labels (n, h, w) at the heatmap resolution, ``batch_size`` frames at a time (uint8 or tensor frames as
    ``Animator.to_tensor`` takes them)."""
    from training.evaluation.animate import _chunks

    for chunk in _chunks(frames, batch_size):
        yield segment_heatmaps(region_heatmaps(animator, animator.to_tensor(chunk)), threshold).cpu()


# -----------------------------------------------------------------------------
# pictures


def region_colours(num_regions: int) -> np.ndarray:
    """(K + 1, 3) uint8: black for the background, then one distinct colour per region."""
    return np.concatenate([np.zeros((1, 3), np.uint8), palette(num_regions)])


def colour_labels(labels: np.ndarray, num_regions: int) -> np.ndarray:
    """(H, W) labels -> (H, W, 3) uint8 colour map."""
    return region_colours(num_regions)[labels]


def overlay(frame: np.ndarray, labels: np.ndarray, num_regions: int, alpha: float = 0.55) -> np.ndarray:
    """The frame with every region tinted in its colour and region borders drawn; the background untouched."""
    colours = colour_labels(labels, num_regions).astype(np.float32)
    fg = (labels > 0)[..., None]
    out = np.where(fg, (1 - alpha) * frame.astype(np.float32) + alpha * colours, frame.astype(np.float32))
    edges = np.zeros(labels.shape, bool)
    edges[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edges[1:, :] |= labels[1:, :] != labels[:-1, :]
    out[edges] = 255
    return out.round().clip(0, 255).astype(np.uint8)


def panel(frame: np.ndarray, labels: np.ndarray, num_regions: int, scale: int = 1) -> np.ndarray:
    """frame | overlay | colour map, side by side, each enlarged ``scale`` times (nearest)."""
    if scale > 1:
        frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        labels = cv2.resize(labels.astype(np.uint8), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    return np.concatenate([frame, overlay(frame, labels, num_regions), colour_labels(labels, num_regions)], axis=1)


def legend(num_regions: int, width: int, cell: int = 22) -> np.ndarray:
    """A white bar with one numbered swatch per label (bg, 1..K), wrapped to ``width``."""
    names = ["bg"] + [str(k) for k in range(1, num_regions + 1)]
    colours = region_colours(num_regions)
    per_row = max(1, width // (2 * cell))
    rows = -(-len(names) // per_row)
    bar = np.full((rows * cell, width, 3), 255, np.uint8)
    for i, (name, colour) in enumerate(zip(names, colours)):
        y, x = (i // per_row) * cell, (i % per_row) * 2 * cell
        cv2.rectangle(bar, (x + 2, y + 3), (x + cell - 3, y + cell - 4), tuple(int(c) for c in colour), -1)
        cv2.rectangle(bar, (x + 2, y + 3), (x + cell - 3, y + cell - 4), (0, 0, 0), 1)
        cv2.putText(bar, name, (x + cell, y + cell - 7), cv2.FONT_HERSHEY_PLAIN, 0.9, (0, 0, 0), 1, cv2.LINE_AA)
    return bar
