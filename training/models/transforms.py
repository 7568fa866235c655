"""Random affine + thin-plate-spline transform used by the equivariance losses (FOMM, MRAA, TPSMM).

T(p) = A p + t + sum_k c_k U(p - q_k) * (1, 1), where
- theta = [A | t] = I(2x3) + N(0, sigma_affine) per sample,
- q_k is a points_tps x points_tps control grid over [-1, 1], c_k ~ N(0, sigma_tps) per sample,
- the same scalar TPS displacement is added to x and to y (an official quirk, kept),
- U depends on ``kernel``:
  'l1'        (FOMM, MRAA)  r = |dx| + |dy|,  U = r^2 log(r + 1e-6)
  'euclidean' (TPSMM)       s = dx^2 + dy^2,  U = s log(s + 1e-9)

The Jacobian is computed in closed form (it equals the official autograd result, including the zero
subgradient of |.| at 0), so it works under ``no_grad`` and needs no ``create_graph``.
"""

from __future__ import annotations

import torch

from training.models.grids import float32_math, make_coordinate_grid, warp

KERNELS = ("l1", "euclidean")


class RandomTps:
    """One random transform per sample of a batch. Not an nn.Module: it holds no trainable state."""

    def __init__(self, batch_size: int, sigma_affine: float, sigma_tps: float, points_tps: int,
                 kernel: str = "l1", device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                 generator: torch.Generator | None = None):
        if kernel not in KERNELS:
            raise ValueError(f"RandomTps: unknown kernel {kernel!r}; expected one of {KERNELS}")
        if points_tps < 1:
            raise ValueError(f"RandomTps: points_tps must be >= 1, got {points_tps}")
        self.bs, self.kernel = batch_size, kernel
        noise = torch.randn(batch_size, 2, 3, device=device, dtype=dtype, generator=generator)
        self.theta = torch.eye(2, 3, device=device, dtype=dtype) + sigma_affine * noise  # (B, 2, 3)
        grid = make_coordinate_grid(points_tps, points_tps, dtype=dtype, device=device)
        self.control_points = grid.view(-1, 2)  # (P, 2), P = points_tps^2
        params = torch.randn(batch_size, points_tps ** 2, device=device, dtype=dtype, generator=generator)
        self.control_params = sigma_tps * params  # (B, P)

    @classmethod
    def for_batch(cls, params, batch: torch.Tensor) -> "RandomTps":
        """One random transform per sample of `batch`, drawn with a config's `transform` params (sigma_affine,
        sigma_tps, points_tps, kernel) on the batch's device: the equivariance losses' transform."""
        return cls(batch.shape[0], params.sigma_affine, params.sigma_tps, params.points_tps, kernel=params.kernel,
                   device=batch.device)

    @classmethod
    def from_params(cls, theta: torch.Tensor, control_params: torch.Tensor, points_tps: int,
                    kernel: str = "l1") -> "RandomTps":
        """Build a transform with given theta (B, 2, 3) and TPS coefficients (B, points_tps^2)."""
        t = cls(theta.shape[0], 0.0, 0.0, points_tps, kernel, device=theta.device, dtype=theta.dtype)
        if control_params.shape != (theta.shape[0], points_tps ** 2):
            raise ValueError(f"RandomTps.from_params: control_params shape {tuple(control_params.shape)} "
                             f"!= {(theta.shape[0], points_tps ** 2)}")
        t.theta, t.control_params = theta, control_params
        return t

    # --- the TPS radial term and its derivative ------------------------------------------------
    def _radial(self, coords: torch.Tensor):
        """U and dU/d(dx, dy) for every (point, control point): (B, N, P) and (B, N, P, 2)."""
        d = coords[:, :, None, :] - self.control_points.to(coords)[None, None]  # (B, N, P, 2)
        if self.kernel == "l1":
            r = d.abs().sum(-1)
            u = r ** 2 * torch.log(r + 1e-6)
            du_dr = 2 * r * torch.log(r + 1e-6) + r ** 2 / (r + 1e-6)
            grad = du_dr[..., None] * torch.sign(d)
        else:
            s = (d ** 2).sum(-1)
            u = s * torch.log(s + 1e-9)
            du_ds = torch.log(s + 1e-9) + s / (s + 1e-9)
            grad = du_ds[..., None] * 2 * d
        return u, grad

    @float32_math
    def warp_coordinates(self, coords: torch.Tensor) -> torch.Tensor:
        """Apply T to points: (B or 1, N, 2) -> (B, N, 2)."""
        theta = self.theta.to(coords)
        coords = coords.expand(self.bs, -1, -1)
        out = torch.einsum("bij,bnj->bni", theta[:, :, :2], coords) + theta[:, None, :, 2]  # (B, N, 2)
        u, _ = self._radial(coords)  # (B, N, P)
        tps = (u * self.control_params.to(coords)[:, None, :]).sum(-1, keepdim=True)  # (B, N, 1)
        return out + tps

    @float32_math
    def jacobian(self, coords: torch.Tensor) -> torch.Tensor:
        """dT/dp at points: (B or 1, N, 2) -> (B, N, 2, 2), rows = output (x, y), cols = input (x, y)."""
        coords = coords.expand(self.bs, -1, -1)
        _, grad = self._radial(coords)  # (B, N, P, 2)
        tps_grad = (grad * self.control_params.to(coords)[:, None, :, None]).sum(2)  # (B, N, 2)
        lin = self.theta.to(coords)[:, None, :, :2]  # (B, 1, 2, 2)
        return lin + tps_grad[:, :, None, :]  # same TPS gradient added to both rows

    def transform_frame(self, frame: torch.Tensor, *, align_corners: bool) -> torch.Tensor:
        """Resample frames (B, C, H, W) at T(grid), reflection padding, as the official training code; with the
        model's own ``align_corners`` (its official code samples these frames like every other warp)."""
        b, _, h, w = frame.shape
        grid = make_coordinate_grid(h, w, dtype=frame.dtype, device=frame.device).view(1, h * w, 2)
        grid = self.warp_coordinates(grid).view(self.bs, h, w, 2)
        return warp(frame, grid, align_corners=align_corners, padding_mode="reflection")
