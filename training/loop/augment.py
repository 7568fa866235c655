"""The official training augmentations for a (source, driving) pair, on 8-bit frames, without torchvision or PIL.

What FOMM / MRAA / TPSMM (and Monkey-Net) do to a pair (model_anchors.md §5):
- **flip**, with the official quirk: time flip (swap source and driving) with probability ½; only when it was not
  taken, horizontal flip of both frames with probability ½. So P(time) = ½, P(h) = ¼, never both.
- **crop** (Monkey-Net only): one random `crop`×`crop` window for both frames.
- **colour jitter**: one set of factors per pair (brightness, contrast, saturation ~ U[max(0, 1-x), 1+x], hue ~
  U[-x, x]) applied to both frames in one random order.

The official code jitters uint8 images with PIL (through torchvision); so does this module, on planar uint8 numpy
arrays (..., 3, H, W) (the layout the tensors end up in), and its results are bit-identical to PIL's
(`ImageEnhance`, `Image.blend`, PIL's 8-bit HSV). Each op is a table lookup (OpenCV's `LUT` for 256-entry tables)
or a few vectorised integer/float steps over whole planes, which keeps it cheap enough for a data loader worker
(about 8 ms for the four ops on a 256×256 pair on one core).

Randomness comes only from the `numpy.random.Generator` passed in, so an item's augmentation is a function of the
item's seed (see `training.loop.data`), never of global RNG state or of the worker that happens to load it.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from training.config import AugmentationParams, JitterParams

_LEVELS = np.arange(256, dtype=np.float32)


def _check_u8(img: np.ndarray) -> None:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim < 3 or img.shape[-3] != 3:
        raise ValueError(f"expected planar uint8 RGB images (..., 3, H, W), got {getattr(img, 'dtype', type(img))} "
                         f"{getattr(img, 'shape', '')}")


def _blend_table(degenerate: np.ndarray, factor: float) -> np.ndarray:
    """`PIL.Image.blend(degenerate, image, factor)` for every (degenerate, image) level pair, as uint8.

    PIL computes `in1 + alpha * (in2 - in1)` in C float, then 0 if <= 0, 255 if >= 255, else truncates.
    """
    alpha = np.float32(factor)
    d = degenerate.astype(np.float32)[..., None]
    out = d + alpha * (_LEVELS - d)
    return np.floor(np.clip(out, 0, 255)).astype(np.uint8)


def _lookup(table: np.ndarray, img: np.ndarray) -> np.ndarray:
    """table[img] for a 256-entry uint8 table (OpenCV's LUT: several times faster than numpy indexing)."""
    flat = np.ascontiguousarray(img).reshape(-1, img.shape[-1])
    return cv2.LUT(flat, table).reshape(img.shape)


def luma(img: np.ndarray) -> np.ndarray:
    """PIL's RGB -> L: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16. Shape (..., 1, H, W), uint8."""
    r, g, b = (img[..., k:k + 1, :, :].astype(np.int32) for k in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def adjust_brightness(img: np.ndarray, factor: float) -> np.ndarray:
    """Blend with black (PIL `ImageEnhance.Brightness`)."""
    _check_u8(img)
    return _lookup(_blend_table(np.zeros((), np.uint8), factor), img)


def adjust_contrast(img: np.ndarray, factor: float) -> np.ndarray:
    """Blend with the image's mean grey level rounded to an integer (PIL `ImageEnhance.Contrast`); per image."""
    _check_u8(img)
    flat = img.reshape(-1, *img.shape[-3:])
    out = np.empty_like(flat)
    for k, one in enumerate(flat):
        mean = int(float(luma(one).mean(dtype=np.float64)) + 0.5)
        out[k] = _lookup(_blend_table(np.asarray(mean), factor), one)
    return out.reshape(img.shape)


def adjust_saturation(img: np.ndarray, factor: float) -> np.ndarray:
    """Blend with the image's own greyscale version (PIL `ImageEnhance.Color`)."""
    _check_u8(img)
    table = _blend_table(np.arange(256, dtype=np.uint8), factor).ravel()  # [grey * 256 + level]
    return table.take((luma(img).astype(np.int32) << 8) + img)


# ---- hue: PIL's 8-bit HSV, as lookup tables ---------------------------------------------------------------------
#
# PIL's rgb2hsv_row computes h from (max - c) / chroma in C float, so h depends only on which channel is the maximum
# (r first, then g, as PIL tests them), which of the other two is the minimum, chroma and max - mid: a table of
# 3 x 2 x 256 x 256 entries. s = trunc(chroma / max * 255) is a 256 x 256 table, v = max. Going back (hsv2rgb),
# the hue sector and the C-float quantities f*s and s - f*s depend on (h, s) only (tables), and p, q, t are
# round(v * (1 - x / 255)) in double. The tables are built once per process from the same float32/float64 steps
# as PIL's C code, so results are bit-identical.


def _pil_hue_formula(case: np.ndarray, rc: np.ndarray, gc: np.ndarray, bc: np.ndarray) -> np.ndarray:
    """h in [0, 1) stored as C float, from float32 rc, gc, bc, for case 0 (r max), 1 (g max), 2 (b max)."""
    d = np.float64
    h = np.where(case == 0, bc - gc,
                 np.where(case == 1, (2.0 + rc.astype(d) - bc.astype(d)).astype(np.float32),
                          (4.0 + gc.astype(d) - rc.astype(d)).astype(np.float32)))
    return np.fmod(h.astype(d) / 6.0 + 1.0, 1.0).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _hue_tables() -> dict[str, np.ndarray]:
    # forward: representative triples with min 0, max = chroma, mid = chroma - dmid
    case, order, chroma, dmid = (a.ravel() for a in np.meshgrid(np.arange(3), np.arange(2), np.arange(256),
                                                                 np.arange(256), indexing="ij"))
    mid = np.clip(chroma - dmid, 0, None)
    mx, mn = chroma, np.zeros_like(chroma)
    c1, c2 = np.where(order == 1, mn, mid), np.where(order == 1, mid, mn)  # order 1: the first other is the min
    r = np.where(case == 0, mx, c1)
    g = np.where(case == 0, c1, np.where(case == 1, mx, c2))
    b = np.where(case == 2, mx, c2)
    cr = np.maximum(chroma, 1).astype(np.float32)
    rc, gc, bc = ((mx - c).astype(np.float32) / cr for c in (r, g, b))
    h = _pil_hue_formula(case, rc, gc, bc)
    hue = np.clip(np.trunc(h.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    hue[(chroma == 0) | (dmid > chroma)] = 0
    # s[chroma * 256 + max]
    cr2, mx2 = (a.ravel() for a in np.meshgrid(np.arange(256), np.arange(256), indexing="ij"))
    s = cr2.astype(np.float32) / np.maximum(mx2, 1).astype(np.float32)
    sat = np.clip(np.trunc(s.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    sat[(cr2 == 0) | (cr2 > mx2)] = 0
    # backward, per (h, s): sector, 1 - f*s/255 and 1 - (s - f*s)/255; per s: 1 - s/255
    hh, ss = (a.ravel() for a in np.meshgrid(np.arange(256), np.arange(256), indexing="ij"))
    hf = hh.astype(np.float64) * 6.0 / 255.0
    i = np.floor(hf)
    f = (hf - i).astype(np.float32)
    fs = f * ss.astype(np.float32)
    sector = np.floor(np.arange(256) * 6.0 / 255.0).astype(np.int64) % 6
    select = np.array([[0, 3, 1], [2, 0, 1], [1, 0, 3], [1, 2, 0], [3, 1, 0], [0, 1, 2]])  # sector -> r, g, b
    return {
        "hue": hue, "sat": sat,
        "q": 1.0 - fs.astype(np.float64) / 255.0,
        "t": 1.0 - (ss.astype(np.float32) - fs).astype(np.float64) / 255.0,
        # p = round(v * (1 - s / 255)) for every (v, s)
        "p": np.clip(np.floor(hh * (1.0 - ss / 255.0) + 0.5), 0, 255).astype(np.uint8),
        # which of (v, p, q, t) each output channel takes, by h (PIL's switch on the sector)
        "source": select.T.take(sector, axis=1).astype(np.int32),  # (3, 256)
    }


def rgb_to_hsv(img: np.ndarray) -> np.ndarray:
    """PIL's `convert("HSV")` of planar uint8 RGB (..., 3, H, W): uint8 h, s, v (h in 256ths of a turn)."""
    _check_u8(img)
    tables = _hue_tables()
    r, g, b = (img[..., k, :, :].astype(np.int32) for k in range(3))
    mx = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    chroma = mx - mn
    not_r = r != mx
    case = not_r * (1 + (g != mx))  # PIL tests r == max first, then g
    c1 = g + (r - g) * not_r  # the two non-max channels in PIL's order: (g, b), (r, b), (r, g)
    c2 = b + (g - b) * (case == 2)
    order = c1 < c2
    dmid = mx - (c1 + c2 - mn)
    h = tables["hue"].take((((((case * 2 + order) << 8) + chroma) << 8) + dmid))
    s = tables["sat"].take((chroma << 8) + mx)
    return np.stack((h, s, mx.astype(np.uint8)), axis=-3)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """PIL's `convert("RGB")` of planar uint8 HSV (..., 3, H, W)."""
    tables = _hue_tables()
    h, s = hsv[..., 0, :, :].astype(np.int32), hsv[..., 1, :, :].astype(np.int32)
    v = hsv[..., 2, :, :].astype(np.float64)
    hs = (h << 8) + s
    values = np.stack((  # (v, p, q, t) planes; greys (s = 0) have p = q = t = v
        hsv[..., 2, :, :],
        tables["p"].take((hsv[..., 2, :, :].astype(np.int32) << 8) + s),
        np.minimum(np.floor(v * tables["q"].take(hs) + 0.5), 255).astype(np.uint8),
        np.minimum(np.floor(v * tables["t"].take(hs) + 0.5), 255).astype(np.uint8),
    )).reshape(4, -1)
    n = h.size
    pixel = np.arange(n, dtype=np.int32)
    out = [values.ravel().take(tables["source"][c].take(h).ravel() * n + pixel) for c in range(3)]
    return np.stack([o.reshape(h.shape) for o in out], axis=-3)


def adjust_hue(img: np.ndarray, factor: float) -> np.ndarray:
    """Rotate hue by `factor` of a turn, factor in [-0.5, 0.5], as torchvision's PIL path does.

    The image goes to PIL's 8-bit HSV, the hue channel is shifted by trunc(factor * 255) with uint8 wrap-around,
    and the result goes back to RGB: the official pipeline's quantisation is part of the result.
    """
    if not -0.5 <= factor <= 0.5:
        raise ValueError(f"hue factor must be in [-0.5, 0.5], got {factor}")
    hsv = rgb_to_hsv(img)
    hsv[..., 0, :, :] += np.uint8(int(np.trunc(factor * 255)) % 256)  # uint8 arithmetic wraps, as numpy's does
    return hsv_to_rgb(hsv)


_OPS = {
    "brightness": adjust_brightness,
    "contrast": adjust_contrast,
    "saturation": adjust_saturation,
    "hue": adjust_hue,
}


# ---- sampled augmentations -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Jitter:
    """One sampled colour jitter: the factor of each active op, in the order they run."""

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

    def __call__(self, img: np.ndarray) -> np.ndarray:
        """Apply to planar uint8 (..., 3, H, W); every leading image gets the same factors and order."""
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
    def sample(cls, params: AugmentationParams, rng: np.random.Generator,
               frame_hw: tuple[int, int]) -> "PairAugmentation":
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

    def apply(self, source: np.ndarray, driving: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Planar uint8 (3, H, W) source and driving -> augmented (contiguous) source and driving."""
        pair = np.stack((source, driving))  # (2, 3, H, W): one op for both frames
        if self.time_flip:
            pair = pair[::-1]
        if self.horizontal_flip:
            pair = pair[..., ::-1]
        if self.crop is not None:
            top, left, size = self.crop
            pair = pair[..., top:top + size, left:left + size]
        if self.jitter is not None:
            pair = self.jitter(np.ascontiguousarray(pair))
        pair = np.ascontiguousarray(pair)
        return pair[0], pair[1]
