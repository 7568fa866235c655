"""Part swap with MRAA (supplement Sec. 2, Fig. 3): chosen regions of the person in the driving video take their
appearance from the source image, everything else stays the driving frame.

Per driving frame: MRAA animates the source in standard (absolute) mode, so the source's regions land exactly on
the driving person's regions (their means and PCA affines), with no background motion, as when animating; the
driving frame's co-part segmentation (training/experiments/segmentation.py) then selects the pixels:

    out = driving * (1 - m) + animated * m,   m = [label in parts], at the heatmap resolution

m is resized to the frame bilinearly (corners onto corners), which softens the 4x-upsampled label staircase
along the swapped parts' borders only: wherever the nearby labels are all other parts or background, m is
exactly 0 and the output pixel is exactly the driving one.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import torch
import torch.nn.functional as F

from training.experiments.segmentation import BACKGROUND_THRESHOLD, require_regions, segment_heatmaps


def parse_parts(text: str | None, num_regions: int) -> tuple[int, ...]:
    """``"1,3"`` -> (1, 3): region numbers as ``motionpipe segment`` labels them (1..K; 0 is the background)."""
    if not text:
        raise ValueError(f"--mode part-swap needs --parts, e.g. --parts 1,3 (regions 1..{num_regions} as "
                         "`motionpipe segment` numbers them)")
    try:
        parts = tuple(sorted({int(p) for p in text.split(",") if p.strip()}))
    except ValueError:
        raise ValueError(f"--parts {text!r}: expected comma-separated region numbers, e.g. 1,3") from None
    bad = [p for p in parts if not 1 <= p <= num_regions]
    if not parts or bad:
        raise ValueError(f"--parts {text!r}: region numbers run from 1 to {num_regions}"
                         + (f" ({bad} out of range)" if bad else ""))
    return parts


def parts_of(animator, text: str | None) -> tuple[int, ...]:
    """``--parts`` checked against the animator's model (an MRAA with K regions)."""
    require_regions(animator)
    return parse_parts(text, animator.cfg.model_params.num_regions)


def swap_mask(labels: torch.Tensor, parts: tuple[int, ...], size: tuple[int, int]) -> torch.Tensor:
    """(B, h, w) labels -> (B, 1, H, W) float mask of the swapped parts, bilinear with corners on corners."""
    chosen = torch.zeros_like(labels, dtype=torch.bool)
    for p in parts:
        chosen |= labels == p
    return F.interpolate(chosen[:, None].float(), size=size, mode="bilinear", align_corners=True)


@torch.no_grad()
def part_swap(animator, source_image, driving_frames: Iterable, parts: tuple[int, ...], batch_size: int = 16,
              threshold: float = BACKGROUND_THRESHOLD) -> Iterator[torch.Tensor]:
    """The driving frames with ``parts`` (region numbers 1..K) taken from ``source_image``: (n, C, H, W) float32
    CPU tensors in [0, 1], ``batch_size`` frames at a time (frames as ``Animator.to_tensor`` takes them)."""
    from training.evaluation.animate import _chunks, _expand

    require_regions(animator)
    model = animator.model
    source = animator.to_tensor([source_image], "source image")
    with animator._autocast():
        src = animator.adapter.detect(model, source)
    for chunk in _chunks(driving_frames, batch_size):
        driving = animator.to_tensor(chunk, "driving frame")
        n = driving.shape[0]
        with animator._autocast():
            regions = model.region_predictor(driving)
            drv = {k: regions[k] for k in ("shift", "affine", "covar") if k in regions}
            animated = animator.adapter.generate(model, source.expand(n, -1, -1, -1).contiguous(),
                                                 _expand(src, n), drv).float()
        labels = segment_heatmaps(regions["heatmap"].float(), threshold)  # (n, h, w)
        mask = swap_mask(labels, parts, tuple(driving.shape[2:]))  # (n, 1, H, W)
        yield (driving * (1 - mask) + animated.clamp(0, 1) * mask).cpu()
