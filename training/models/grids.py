"""Coordinate grids, Gaussian heatmaps and warping: the one spatial convention used by every model.

Convention (shared by FOMM, MRAA, TPSMM and Monkey-Net):
- Coordinate grids live in [-1, 1]; pixel i of n sits at 2*i/(n-1) - 1 (every official repository builds its
  grids this way).
- The last dimension is (x, y): x indexes width (columns), y indexes height (rows).
- Every ``grid_sample`` goes through :func:`warp`, whose ``align_corners`` has no default: it is a per-model
  setting (``model_params.align_corners``), because the official checkpoints were trained under different
  torch defaults. FOMM (torch 1.0) and Monkey-Net (torch 0.4) sampled with the old behaviour, True; TPSMM passes
  True explicitly; MRAA pins torch 1.4, where the default had become False, and never passes it. With False the
  [-1, 1] grid above samples half a pixel inside the border, so an identity flow zooms in slightly: that is what
  MRAA's weights learned, and converted MRAA checkpoints only reproduce their frames with it.
"""

from __future__ import annotations

import contextlib
import functools

import torch
import torch.nn.functional as F


def float32_math(fn):
    """Run ``fn`` with autocast off and half-precision tensor arguments promoted to float32.

    Coordinates, heatmap moments, 2x2 inverses and PCA lose whole pixels in bf16/fp16, so they stay in fp32
    under mixed precision (model_anchors.md §8).
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t = next((a for a in args if torch.is_tensor(a)), None)
        if t is None or not torch.is_autocast_enabled(t.device.type):
            return fn(*args, **kwargs)
        half = (torch.float16, torch.bfloat16)
        args = [a.float() if torch.is_tensor(a) and a.dtype in half else a for a in args]
        with torch.autocast(t.device.type, enabled=False):
            return fn(*args, **kwargs)
    return wrapper


def autocast_off(like: torch.Tensor):
    """Context disabling autocast on ``like``'s device (a no-op when autocast is not active)."""
    if torch.is_autocast_enabled(like.device.type):
        return torch.autocast(like.device.type, enabled=False)
    return contextlib.nullcontext()


def make_coordinate_grid(h: int, w: int, dtype: torch.dtype | None = None,
                         device: torch.device | str | None = None) -> torch.Tensor:
    """(h, w, 2) grid of (x, y) coordinates in [-1, 1], pixel i of n at 2*i/(n-1) - 1."""
    dtype = dtype or torch.float32
    # (a single pixel sits at 0, where 2*i/(n-1) - 1 would divide by zero)
    kw = dict(dtype=dtype, device=device)
    x = torch.linspace(-1.0, 1.0, w, **kw) if w > 1 else torch.zeros(1, **kw)
    y = torch.linspace(-1.0, 1.0, h, **kw) if h > 1 else torch.zeros(1, **kw)
    yy, xx = torch.meshgrid(y, x, indexing="ij")  # (h, w) each
    return torch.stack([xx, yy], dim=-1)  # (h, w, 2)


@float32_math
def kp2gaussian(mean: torch.Tensor, spatial_size: tuple[int, int], kp_variance: float) -> torch.Tensor:
    """Isotropic Gaussian heatmaps: mean (..., K, 2) -> (..., K, h, w), unnormalised (peak 1)."""
    h, w = spatial_size
    grid = make_coordinate_grid(h, w, dtype=mean.dtype, device=mean.device)  # (h, w, 2)
    diff = grid - mean[..., None, None, :]  # (..., K, h, w, 2)
    return torch.exp(-0.5 * (diff ** 2).sum(-1) / kp_variance)


@float32_math
def region2gaussian(mean: torch.Tensor, covar: torch.Tensor | float, spatial_size: tuple[int, int]) -> torch.Tensor:
    """Full-covariance Gaussian heatmaps (MRAA): mean (..., K, 2), covar (..., K, 2, 2) -> (..., K, h, w).

    A float ``covar`` falls back to the isotropic :func:`kp2gaussian`.
    """
    if not torch.is_tensor(covar):
        return kp2gaussian(mean, spatial_size, float(covar))
    h, w = spatial_size
    grid = make_coordinate_grid(h, w, dtype=mean.dtype, device=mean.device)
    diff = grid - mean[..., None, None, :]  # (..., K, h, w, 2)
    inv = inverse_2x2(covar)[..., None, None, :, :]  # (..., K, 1, 1, 2, 2)
    # Mahalanobis distance d^T S^-1 d, written out to avoid a batched matmul over every pixel
    dx, dy = diff[..., 0], diff[..., 1]
    maha = (inv[..., 0, 0] * dx * dx + (inv[..., 0, 1] + inv[..., 1, 0]) * dx * dy + inv[..., 1, 1] * dy * dy)
    return torch.exp(-0.5 * maha)


@float32_math
def inverse_2x2(m: torch.Tensor) -> torch.Tensor:
    """Closed-form inverse of (..., 2, 2) matrices (no cuSOLVER call, no host sync)."""
    a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
    det = a * d - b * c
    inv = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2)
    return inv / det[..., None, None]


@float32_math
def heatmap_mean(heatmap: torch.Tensor) -> torch.Tensor:
    """Expected coordinate of normalised heatmaps: (B, K, h, w) -> (B, K, 2).

    Accumulated in float64: a float32 sum over 64x64 pixels is good to ~1e-7 per coordinate, and MRAA's PCA of
    near-isotropic regions turns errors of that size into visible frame differences. K heatmaps are small, so the
    wider accumulation costs nothing measurable, and the result is returned in the heatmap's dtype.
    """
    h, w = heatmap.shape[-2:]
    grid = make_coordinate_grid(h, w, dtype=torch.float64, device=heatmap.device)  # (h, w, 2)
    mean = (heatmap.double()[..., None] * grid).sum(dim=(-3, -2))  # (B, K, 2)
    return mean.to(heatmap.dtype)


@float32_math
def heatmap_covariance(heatmap: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Heatmap-weighted second moment about ``mean``: (B, K, h, w), (B, K, 2) -> (B, K, 2, 2).

    Float64 accumulation for the reason given in :func:`heatmap_mean` (a float32 einsum is ~10x further from the
    exact covariance than a careful float32 reduction, and the PCA amplifies it).
    """
    h, w = heatmap.shape[-2:]
    grid = make_coordinate_grid(h, w, dtype=torch.float64, device=heatmap.device)  # (h, w, 2)
    d = grid - mean.double()[:, :, None, None, :]  # (B, K, h, w, 2)
    dx, dy = d[..., 0], d[..., 1]
    heat = heatmap.double()
    xx, xy, yy = ((heat * a * b).sum(dim=(2, 3)) for a, b in ((dx, dx), (dx, dy), (dy, dy)))  # (B, K) each
    covar = torch.stack([torch.stack([xx, xy], -1), torch.stack([xy, yy], -1)], -2)  # (B, K, 2, 2)
    return covar.to(heatmap.dtype)


def warp(image: torch.Tensor, grid: torch.Tensor, *, align_corners: bool,
         padding_mode: str = "zeros") -> torch.Tensor:
    """Sample ``image`` (B, C, H, W) at ``grid`` (B, h, w, 2) in the shared [-1,1] (x, y) convention.

    ``align_corners`` is the model's sampling convention (see the module docstring); it has no default so that
    no call site can silently fall back to another model's. Both tensors are promoted to the wider dtype: a bf16
    grid would misplace samples by about a pixel at 256 px.
    """
    dtype = torch.promote_types(image.dtype, grid.dtype)
    return F.grid_sample(image.to(dtype), grid.to(dtype), mode="bilinear", padding_mode=padding_mode,
                         align_corners=align_corners)


def warp_each(image: torch.Tensor, grids: torch.Tensor, *, align_corners: bool) -> torch.Tensor:
    """Warp one image by each of M grids: (B, C, h, w), (B, M, h, w, 2) -> (B, M, C, h, w)."""
    b, c, h, w = image.shape
    m = grids.shape[1]
    rep = image.unsqueeze(1).expand(b, m, c, h, w).reshape(b * m, c, h, w)
    return warp(rep, grids.reshape(b * m, *grids.shape[2:]),
                align_corners=align_corners).view(b, m, c, *grids.shape[2:4])


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize a (B, h, w, 2) flow field to ``size`` (as the official generators do)."""
    if tuple(flow.shape[1:3]) == tuple(size):
        return flow
    flow = F.interpolate(flow.permute(0, 3, 1, 2), size=size, mode="bilinear", align_corners=False)
    return flow.permute(0, 2, 3, 1)


def to_homogeneous(coords: torch.Tensor) -> torch.Tensor:
    """(..., 2) -> (..., 3) by appending ones."""
    return torch.cat([coords, torch.ones_like(coords[..., :1])], dim=-1)


def from_homogeneous(coords: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 2) by dividing by the last coordinate."""
    return coords[..., :2] / coords[..., 2:3]
