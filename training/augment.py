"""The official training augmentations for a (source, driving) pair, in torch, without torchvision or PIL.

What FOMM / MRAA / TPSMM (and Monkey-Net) do, per pair (model_anchors.md §5):
- **flip** with the official quirk: time flip (swap source and driving) with probability ½; only when it was *not*
  taken, horizontal flip of both frames with probability ½. So P(time) = ½, P(h) = ¼, never both.
- **crop** (Monkey-Net only): one random window of `crop`×`crop` for both frames.
- **colour jitter**: one set of factors per pair (brightness, contrast, saturation ~ U[max(0, 1-x), 1+x], hue ~
  U[-x, x]), applied to both frames in one random order. The official code runs PIL on uint8 images, so every op
  here works on 8-bit levels and truncates the way PIL's `Image.blend` does; results stay on the k/255 lattice.

Randomness comes only from the `numpy.random.Generator` passed in, so an item's augmentation is a function of the
item's seed (see `training.data`), never of global RNG state or of the worker that happens to load it.
Images are float tensors in [0, 1], shape (..., 3, H, W); leading dimensions are independent images.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from training.config import AugmentationParams, JitterParams

JITTER_OPS = ("brightness", "contrast", "saturation", "hue")


# ---- PIL-equivalent colour ops on 8-bit levels ---------------------------------------------------------------------


def _levels(img: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> integral 0..255 levels (as float32), the uint8 image PIL would see."""
    return torch.round(img.float().clamp(0, 1) * 255)


def _blend(levels: torch.Tensor, degenerate: torch.Tensor | float, factor: float) -> torch.Tensor:
    """`PIL.Image.blend(degenerate, image, factor)`: degenerate + factor * (image - degenerate), clipped, truncated."""
    out = degenerate + factor * (levels - degenerate)
    return torch.floor(out.clamp(0, 255))


def _luma(levels: torch.Tensor) -> torch.Tensor:
    """PIL's RGB -> L: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16, on integer levels. Shape (..., 1, H, W)."""
    rgb = levels.to(torch.int64)
    luma = (rgb[..., 0, :, :] * 19595 + rgb[..., 1, :, :] * 38470 + rgb[..., 2, :, :] * 7471 + 0x8000) >> 16
    return luma.unsqueeze(-3).to(levels.dtype)


def adjust_brightness(img: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with black (PIL `ImageEnhance.Brightness`)."""
    return _blend(_levels(img), 0.0, factor) / 255


def adjust_contrast(img: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the image's mean grey level, rounded to an integer (PIL `ImageEnhance.Contrast`)."""
    levels = _levels(img)
    mean = torch.floor(_luma(levels).mean(dim=(-3, -2, -1), keepdim=True, dtype=torch.float64) + 0.5)
    return _blend(levels, mean.to(levels.dtype), factor) / 255


def adjust_saturation(img: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the image's own greyscale version (PIL `ImageEnhance.Color`)."""
    levels = _levels(img)
    return _blend(levels, _luma(levels), factor) / 255


def _rgb_to_hsv_levels(levels: torch.Tensor) -> torch.Tensor:
    """PIL's RGB -> HSV on 8-bit levels: h, s, v all 0..255 (h truncated from a fraction of a turn).

    The float32/float64 split follows PIL's C code (`rgb2hsv_row`), so the 8-bit results match it exactly.
    """
    x = levels.to(torch.float32)
    r, g, b = x.unbind(-3)
    maxc, _ = x.max(dim=-3)
    minc, _ = x.min(dim=-3)
    grey = maxc == minc
    chroma = torch.where(grey, torch.ones_like(maxc), maxc - minc)
    s = (maxc - minc) / torch.where(maxc == 0, torch.ones_like(maxc), maxc)
    rc, gc, bc = (maxc - r) / chroma, (maxc - g) / chroma, (maxc - b) / chroma
    is_r = r == maxc
    is_g = (g == maxc) & ~is_r
    d = torch.float64
    h = torch.where(is_r, bc - gc, torch.where(is_g, (2.0 + rc.to(d) - bc.to(d)).float(),
                                               (4.0 + gc.to(d) - rc.to(d)).float()))
    h = torch.remainder(h.to(d) / 6.0 + 1.0, 1.0).float().to(d)  # stored in a C float
    h = torch.where(grey, torch.zeros_like(h), torch.trunc(h * 255.0).clamp(0, 255))
    s = torch.where(grey, torch.zeros_like(h), torch.trunc(s.to(d) * 255.0).clamp(0, 255))
    return torch.stack((h, s, maxc.to(d)), dim=-3)


def _hsv_levels_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """PIL's HSV -> RGB on 8-bit levels (`hsv2rgb`; C `round` is half away from zero)."""
    h, s, v = hsv.to(torch.float64).unbind(-3)
    i = torch.floor(h * 6.0 / 255.0)
    f = (h * 6.0 / 255.0 - i).float()
    fs = (f * s.float()).double()
    p = torch.floor(v * (1.0 - s / 255.0) + 0.5).clamp(0, 255)
    q = torch.floor(v * (1.0 - fs / 255.0) + 0.5).clamp(0, 255)
    t = torch.floor(v * (1.0 - (s - fs) / 255.0) + 0.5).clamp(0, 255)
    sector = i.to(torch.int64) % 6
    table = torch.stack((  # sector -> (r, g, b)
        torch.stack((v, t, p), -3), torch.stack((q, v, p), -3), torch.stack((p, v, t), -3),
        torch.stack((p, q, v), -3), torch.stack((t, p, v), -3), torch.stack((v, p, q), -3),
    ))
    index = sector.unsqueeze(-3).expand_as(table[0]).unsqueeze(0)
    rgb = torch.gather(table, 0, index).squeeze(0)
    grey = (s == 0).unsqueeze(-3)
    return torch.where(grey, v.unsqueeze(-3).expand_as(rgb), rgb).float()


def adjust_hue(img: torch.Tensor, factor: float) -> torch.Tensor:
    """Rotate hue by `factor` of a turn, factor in [-0.5, 0.5], the way torchvision's PIL path does it.

    The image goes to PIL's 8-bit HSV, the hue channel is shifted by trunc(factor * 255) with uint8 wrap-around,
    and the result goes back to RGB levels; the quantisation of the official pipeline is part of the result.
    """
    if not -0.5 <= factor <= 0.5:
        raise ValueError(f"hue factor must be in [-0.5, 0.5], got {factor}")
    hsv = _rgb_to_hsv_levels(_levels(img))
    shift = float(int(np.trunc(factor * 255)) % 256)
    h = torch.remainder(hsv[..., 0, :, :] + shift, 256.0)
    rgb = _hsv_levels_to_rgb(torch.stack((h, hsv[..., 1, :, :], hsv[..., 2, :, :]), dim=-3))
    return rgb.to(img.dtype if img.is_floating_point() else torch.float32) / 255


_OPS = {
    "brightness": adjust_brightness,
    "contrast": adjust_contrast,
    "saturation": adjust_saturation,
    "hue": adjust_hue,
}


# ---- sampled augmentations -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Jitter:
    """One sampled colour jitter: the factor of each active op and the order they run in."""

    factors: tuple[tuple[str, float], ...]  # (op name, factor) in application order

    @classmethod
    def sample(cls, params: JitterParams, rng: np.random.Generator) -> "Jitter":
        ranges = {
            "brightness": (max(0.0, 1 - params.brightness), 1 + params.brightness) if params.brightness else None,
            "contrast": (max(0.0, 1 - params.contrast), 1 + params.contrast) if params.contrast else None,
            "saturation": (max(0.0, 1 - params.saturation), 1 + params.saturation) if params.saturation else None,
            "hue": (-params.hue, params.hue) if params.hue else None,
        }
        active = [(name, float(rng.uniform(*r))) for name, r in ranges.items() if r is not None]
        order = rng.permutation(len(active))
        return cls(tuple(active[i] for i in order))

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        """Apply to (..., 3, H, W); every leading image gets the same factors and order."""
        for name, factor in self.factors:
            img = _OPS[name](img, factor)
        return img


@dataclass(frozen=True)
class PairAugmentation:
    """One sampled augmentation of a pair; `apply` is a pure function of the pair."""

    time_flip: bool = False
    horizontal_flip: bool = False
    crop: tuple[int, int, int] | None = None  # (top, left, size)
    jitter: Jitter | None = None

    @classmethod
    def sample(cls, params: AugmentationParams, rng: np.random.Generator, frame_hw: tuple[int, int]) -> "PairAugmentation":
        """Draw in the official order: flip, crop, jitter."""
        time_flip = horizontal_flip = False
        if rng.random() < 0.5 and params.time_flip:
            time_flip = True
        elif params.horizontal_flip and rng.random() < 0.5:
            horizontal_flip = True
        crop = None
        if params.crop is not None:
            h, w = frame_hw
            if params.crop > min(h, w):
                raise ValueError(f"augmentation crop {params.crop} is larger than the {h}x{w} frames")
            crop = (int(rng.integers(0, h - params.crop + 1)), int(rng.integers(0, w - params.crop + 1)), params.crop)
        jitter = Jitter.sample(params.jitter, rng) if params.jitter is not None else None
        return cls(time_flip, horizontal_flip, crop, jitter)

    def apply(self, source: torch.Tensor, driving: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pair = torch.stack((source, driving))  # (2, 3, H, W): one op for both frames
        if self.time_flip:
            pair = pair.flip(0)
        if self.horizontal_flip:
            pair = pair.flip(-1)
        if self.crop is not None:
            top, left, size = self.crop
            pair = pair[..., top:top + size, left:left + size]
        if self.jitter is not None:
            pair = self.jitter(pair)
        pair = pair.contiguous()
        return pair[0], pair[1]
