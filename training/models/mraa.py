"""Motion Representations for Articulated Animation (Siarohin et al., CVPR 2021).

(Over 400 lines: one paper's networks, losses and training wrapper, kept together as the official code has them.)

Regions instead of keypoints: each region's shift is its heatmap mean and its affine is the PCA square root
of its heatmap covariance, A = U diag(sqrt(S)) (RegionPredictor). A global affine background motion
(BGMotionPredictor) fills the bg slot of the pixel-wise flow (PixelwiseFlowPredictor, full-covariance
heatmaps). The Johnson generator additionally blends warped, occlusion-weighted encoder skips at every
decoder resolution and the warped source at the output. ``MRAAModel`` computes the losses: perceptual
pyramid and equivariance of shifts and affines (sign-corrected under ``revert_axis_swap``).

Reference behaviour: snap-research/articulated-animation @ 9b5de78, config/taichi256.yaml, run under the
torch 1.4 it pins. Two conventions of that environment are part of what its weights learned, and both are
reproduced here (a converted official checkpoint gives the official frames in every mode):
- ``grid_sample`` without ``align_corners`` meant False in torch 1.4, so ``model_params.align_corners`` is
  False in MRAA configs (training/models/grids.py explains the effect).
- Each region's affine is U diag(sqrt S) from ``torch.svd`` of its 2x2 covariance on the CPU (LAPACK
  ``gesdd``). The signs of U's columns are LAPACK's, not a free choice: in the generator they cancel between
  source and driving, but the AVD network was trained on them and predicts affines with the same signs, so AVD
  mode needs the same U. :func:`official_pca_sqrt_2x2` computes that U in closed form (derived in its
  docstring), batched on any device, with no dependence on which SVD backend a machine has.

Shapes: B batch, R regions, H x W frame, h x w the motion resolution.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import Field

from training.config import Strict
from training.models.avd import AVDParams, RegionAVD, RegionAVDModel
from training.models.blocks import (AntiAliasInterpolation2d, DownBlock2d, Encoder, Hourglass, ImagePyramid, ResBlock2d,
                                    SameBlock2d, UpBlock2d)
from training.models.grids import (autocast_off, float32_math, from_homogeneous, heatmap_covariance, heatmap_mean,
                                   inverse_2x2, make_coordinate_grid, region2gaussian, resize_flow, to_homogeneous,
                                   warp, warp_each)
from training.models.losses import equivariance_jacobian_loss, equivariance_value_loss, perceptual_pyramid_loss
from training.models.transforms import RandomTps

# -----------------------------------------------------------------------------
# config


class RegionPredictorParams(Strict):
    temperature: float = Field(gt=0)
    block_expansion: int
    max_features: int
    num_blocks: int
    scale_factor: float = 1.0
    pca_based: bool = True
    pad: int = 0
    fast_svd: bool = False  # accepted for config parity; the closed-form PCA is always fast


class BGPredictorParams(Strict):
    block_expansion: int
    max_features: int
    num_blocks: int
    bg_type: str = Field(default="affine", pattern="^(zero|shift|affine|perspective)$")


class FlowPredictorParams(Strict):
    block_expansion: int
    max_features: int
    num_blocks: int
    scale_factor: float = 1.0
    use_deformed_source: bool = True
    use_covar_heatmap: bool = True
    estimate_occlusion_map: bool = True
    region_var: float = 0.01


class GeneratorParams(Strict):
    block_expansion: int
    max_features: int
    num_down_blocks: int
    num_bottleneck_blocks: int
    skips: bool = True
    pixelwise_flow_predictor: FlowPredictorParams


class Params(Strict):
    # grid_sample convention of every warp: False is what the official weights were trained with (torch 1.4's
    # default, never overridden there). Required: see training/models/grids.py.
    align_corners: bool
    num_regions: int = Field(ge=1)
    num_channels: int = 3
    estimate_affine: bool = True
    revert_axis_swap: bool = True
    region_predictor: RegionPredictorParams
    bg_predictor: BGPredictorParams
    generator: GeneratorParams
    avd_network: AVDParams


def check_config(cfg) -> None:
    if "generator" not in cfg.train.lr:
        raise ValueError("train.lr needs a 'generator' entry (MRAA: one Adam over all networks)")
    # PCA affines and the regressed ones of the "no pca" ablation (MRAA Table 3) both take the affine equivariance
    # loss, as the official config keeps its weight when pca_based is off
    if cfg.train.loss_weights.equivariance_affine and not cfg.model_params.estimate_affine:
        raise ValueError("equivariance_affine > 0 needs estimate_affine (region affines, PCA or regressed)")


# -----------------------------------------------------------------------------
# closed-form 2x2 PCA


@float32_math
def pca_sqrt_2x2(covar: torch.Tensor, eps: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric PSD (..., 2, 2) -> (U, S): covar = U diag(S) U^T, S descending, U a rotation.

    Batched and branch-free on the device, in float64 (a region a few pixels wide has a covariance of ~1e-5,
    whose eigenvector a float32 closed form gets wrong in the third digit). The principal eigenvector is taken
    from whichever column of (covar - S_2 I) is better conditioned; a relative 1e-9 under the square root keeps
    gradients finite at exactly isotropic covariances (where any eigen-decomposition is singular) and is below
    float32 resolution everywhere else. ``eps`` floors the smaller eigenvalue.
    """
    dtype = covar.dtype
    covar = covar.double()
    a, b, c = covar[..., 0, 0], 0.5 * (covar[..., 0, 1] + covar[..., 1, 0]), covar[..., 1, 1]
    m, d = 0.5 * (a + c), 0.5 * (a - c)
    r = torch.sqrt(d * d + b * b + (1e-9 * m) ** 2)
    s1, s2 = m + r, (m - r).clamp_min(eps)
    sign_b = torch.where(b >= 0, torch.ones_like(b), -torch.ones_like(b))
    # columns of covar - s2*I are [d + r, b] and [b, r - d], both parallel to the principal axis
    use_first = d >= 0
    vx = torch.where(use_first, d + r, b.abs())
    vy = torch.where(use_first, b, sign_b * (r - d))  # first axis oriented so that x >= 0
    norm = torch.sqrt(vx * vx + vy * vy)
    cos, sin = vx / norm, vy / norm
    u = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (..., 2, 2)
    return u.to(dtype), torch.stack([s1, s2], -1).to(dtype)


@float32_math
def official_pca_sqrt_2x2(covar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(U, S) of symmetric PSD (..., 2, 2) with the column signs of LAPACK's ``gesdd`` (the official torch.svd).

    Derivation (reference LAPACK, followed step by step for C = [[a, b], [b, c]], a > 0, b != 0):
    - ``dgebrd`` reduces C to upper bidiagonal form with one Householder reflection from the left,
      Q = [[-a, -b], [-b, a]] / r, r = hypot(a, b), so B = Q C = [[-r, -b(a+c)/r], [0, (ac - b^2)/r]] (the
      right transform is the identity for 2x2);
    - ``dbdsqr`` diagonalises B with ``dlasv2``'s rotations, U = Q R_left (the sign fixes of negative singular
      values go to V^T only). Q is a reflection and R_left a rotation, so det U = -1 whenever b != 0: U is
      [[x, y], [y, -x]] for the principal unit eigenvector (x, y);
    - ``dlasv2`` puts the principal direction's sign at x < 0, except when it swaps the diagonal, i.e.
      |(ac - b^2)/r| > r, and b > 0, where x > 0.
    For b == 0, Q is the identity and U is I (a >= c) or the swap [[0, 1], [1, 0]] (the sort of ``dbdsqr``).
    Checked against torch.svd on the CPU (MKL and OpenBLAS LAPACK agree) in tests/training/test_mraa.py. The one
    place this may differ is b so small that ``dbdsqr`` treats the superdiagonal as zero (|b| below ~1e-6 of
    det/(a + c) in float32): an axis-aligned region, whose sign the AVD network sees in at most a handful of frames.
    """
    u_rot, s = pca_sqrt_2x2(covar)  # principal direction (cos, sin) with cos >= 0
    a, b, c = covar[..., 0, 0], 0.5 * (covar[..., 0, 1] + covar[..., 1, 0]), covar[..., 1, 1]
    swapped = (a * c - b * b) > (a * a + b * b)
    sign = torch.where((b > 0) & swapped, 1.0, -1.0).to(covar.dtype)
    x, y = sign * u_rot[..., 0, 0], sign * u_rot[..., 1, 0]
    u = torch.stack([torch.stack([x, y], -1), torch.stack([y, -x], -1)], -2)  # (..., 2, 2), det -1
    one, zero = torch.ones_like(a), torch.zeros_like(a)
    diagonal = torch.where((a >= c)[..., None, None],
                           torch.stack([torch.stack([one, zero], -1), torch.stack([zero, one], -1)], -2),
                           torch.stack([torch.stack([zero, one], -1), torch.stack([one, zero], -1)], -2))
    return torch.where((b == 0)[..., None, None], diagonal, u), s


def heatmap_to_region(heatmap: torch.Tensor, pca: bool = True) -> dict[str, torch.Tensor]:
    """Normalised heatmaps (B, R, h, w) -> shift (B, R, 2) [+ covar, affine = U diag(sqrt S) (B, R, 2, 2)].

    U has the official (LAPACK) column signs: see :func:`official_pca_sqrt_2x2`.
    """
    shift = heatmap_mean(heatmap)
    if not pca:
        return {"shift": shift}
    covar = heatmap_covariance(heatmap, shift)
    u, s = official_pca_sqrt_2x2(covar)
    return {"shift": shift, "covar": covar, "affine": u * s.sqrt()[..., None, :]}


# -----------------------------------------------------------------------------
# region predictor


class RegionPredictor(nn.Module):
    """Hourglass -> R softmax heatmaps -> shift (mean), covariance and PCA affine per region."""

    def __init__(self, num_regions: int, num_channels: int, block_expansion: int, max_features: int, num_blocks: int,
                 temperature: float, estimate_affine: bool = True, scale_factor: float = 1.0, pca_based: bool = True,
                 pad: int = 0, fast_svd: bool = False):
        super().__init__()
        del fast_svd
        self.temperature, self.scale_factor, self.pca_based = temperature, scale_factor, pca_based
        self.predictor = Hourglass(block_expansion, num_channels, num_blocks, max_features)
        self.regions = nn.Conv2d(self.predictor.out_filters, num_regions, kernel_size=7, padding=pad)
        self.jacobian = None
        if estimate_affine and not pca_based:  # the FOMM-like regression ablation
            self.jacobian = nn.Conv2d(self.predictor.out_filters, 4, kernel_size=7, padding=pad)
            nn.init.zeros_(self.jacobian.weight)
            with torch.no_grad():
                self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0]))
        self.down = AntiAliasInterpolation2d(num_channels, scale_factor) if scale_factor != 1 else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.down is not None:
            x = self.down(x)  # (B, C, H*s, W*s)
        feature_map = self.predictor(x)
        logits = self.regions(feature_map)  # (B, R, h', w')
        b, r, h, w = logits.shape
        heatmap = F.softmax(logits.view(b, r, -1).float() / self.temperature, dim=2).view(b, r, h, w)
        if self.jacobian is not None:
            out = {"shift": heatmap_mean(heatmap), "heatmap": heatmap}
            jmap = self.jacobian(feature_map).float().view(b, 1, 4, h, w)
            affine = (heatmap.unsqueeze(2) * jmap).flatten(3).sum(-1).view(b, r, 2, 2)
            out.update(affine=affine, covar=affine @ affine.transpose(-1, -2))
            return out
        out = heatmap_to_region(heatmap, pca=self.pca_based)
        out["heatmap"] = heatmap
        return out


# -----------------------------------------------------------------------------
# background motion


class BGMotionPredictor(nn.Module):
    """Encoder over cat(source, driving) -> global mean -> Linear -> 3x3 matrix (identity at init)."""

    def __init__(self, num_channels: int, block_expansion: int, max_features: int, num_blocks: int,
                 bg_type: str = "affine"):
        super().__init__()
        self.bg_type = bg_type
        self.bg_encoder = self.fc = None
        if bg_type != "zero":
            self.bg_encoder = Encoder(block_expansion, num_channels * 2, num_blocks, max_features)
            n_out, init = {"shift": (2, [0, 0]), "affine": (6, [1, 0, 0, 0, 1, 0]),
                           "perspective": (8, [1, 0, 0, 0, 1, 0, 0, 0])}[bg_type]
            self.fc = nn.Linear(min(max_features, block_expansion * 2 ** num_blocks), n_out)
            nn.init.zeros_(self.fc.weight)
            with torch.no_grad():
                self.fc.bias.copy_(torch.tensor(init, dtype=torch.float32))

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        b = source.shape[0]
        eye = torch.eye(3, device=source.device, dtype=torch.float32).expand(b, 3, 3)
        if self.bg_type == "zero":
            return eye.clone()
        feat = self.bg_encoder(torch.cat([source, driving], dim=1))[-1].mean(dim=(2, 3))  # (B, F)
        p = self.fc(feat).float()
        if self.bg_type == "shift":
            top = torch.cat([eye[:, :2, :2], p.view(b, 2, 1)], dim=2)
            return torch.cat([top, eye[:, 2:]], dim=1)
        if self.bg_type == "affine":
            return torch.cat([p.view(b, 2, 3), eye[:, 2:]], dim=1)
        return torch.cat([p[:, :6].view(b, 2, 3), torch.cat([p[:, 6:], eye[:, 2, 2:]], 1).view(b, 1, 3)], dim=1)


# -----------------------------------------------------------------------------
# pixel-wise flow


class PixelwiseFlowPredictor(nn.Module):
    """Softmax mixture of per-region affine motions plus the bg motion -> flow and occlusion at scale_factor."""

    def __init__(self, num_regions: int, num_channels: int, block_expansion: int, max_features: int,
                 num_blocks: int, scale_factor: float = 1.0, use_deformed_source: bool = True,
                 use_covar_heatmap: bool = True, estimate_occlusion_map: bool = True, region_var: float = 0.01,
                 revert_axis_swap: bool = True, *, align_corners: bool):
        super().__init__()
        self.num_regions, self.region_var, self.scale_factor = num_regions, region_var, scale_factor
        self.align_corners = align_corners
        self.use_deformed_source, self.use_covar_heatmap = use_deformed_source, use_covar_heatmap
        self.revert_axis_swap = revert_axis_swap
        in_features = (num_regions + 1) * (num_channels * use_deformed_source + 1)
        self.hourglass = Hourglass(block_expansion, in_features, num_blocks, max_features)
        self.mask = nn.Conv2d(self.hourglass.out_filters, num_regions + 1, kernel_size=7, padding=3)
        self.occlusion = nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=7, padding=3) \
            if estimate_occlusion_map else None
        self.down = AntiAliasInterpolation2d(num_channels, scale_factor) if scale_factor != 1 else None

    def heatmap_representation(self, size, driving, source) -> torch.Tensor:
        """Difference of (full-covariance) Gaussians, zero bg channel first: (B, R+1, 1, h, w)."""
        cov_d = driving["covar"] if self.use_covar_heatmap else self.region_var
        cov_s = source["covar"] if self.use_covar_heatmap else self.region_var
        heat = region2gaussian(driving["shift"], cov_d, size) - region2gaussian(source["shift"], cov_s, size)
        zeros = heat.new_zeros(heat.shape[0], 1, *size)
        return torch.cat([zeros, heat], dim=1).unsqueeze(2)

    def sparse_motions(self, size, driving, source, bg_params=None) -> torch.Tensor:
        """z -> s_s + A_s A_d^-1 (z - s_d) per region; bg slot = bg affine (or identity): (B, R+1, h, w, 2)."""
        h, w = size
        b = source["shift"].shape[0]
        grid = make_coordinate_grid(h, w, dtype=source["shift"].dtype, device=source["shift"].device)
        coords = grid.view(1, 1, h, w, 2) - driving["shift"].view(b, self.num_regions, 1, 1, 2)
        if "affine" in driving:
            affine = source["affine"] @ inverse_2x2(driving["affine"])  # (B, R, 2, 2)
            if self.revert_axis_swap:
                affine = affine * torch.sign(affine[..., 0:1, 0:1])
            coords = torch.einsum("brij,brhwj->brhwi", affine, coords)
        driving_to_source = coords + source["shift"].view(b, self.num_regions, 1, 1, 2)
        bg = grid.view(1, 1, h, w, 2).expand(b, 1, h, w, 2)
        if bg_params is not None:
            bg = from_homogeneous(torch.einsum("bij,bmhwj->bmhwi", bg_params.to(bg.dtype), to_homogeneous(bg)))
        return torch.cat([bg, driving_to_source], dim=1)

    def forward(self, source_image: torch.Tensor, driving, source, bg_params=None) -> dict[str, torch.Tensor]:
        if self.down is not None:
            source_image = self.down(source_image)
        b, _, h, w = source_image.shape
        with autocast_off(source_image):  # coordinates stay in fp32 under mixed precision
            heat = self.heatmap_representation((h, w), driving, source)  # (B, R+1, 1, h, w)
            motions = self.sparse_motions((h, w), driving, source, bg_params)  # (B, R+1, h, w, 2)
            deformed = warp_each(source_image, motions, align_corners=self.align_corners)  # (B, R+1, C, h, w)
        x = torch.cat([heat, deformed], dim=2) if self.use_deformed_source else heat
        feat = self.hourglass(x.view(b, -1, h, w))
        mask = F.softmax(self.mask(feat).float(), dim=1)  # (B, R+1, h, w)
        with autocast_off(source_image):
            flow = torch.einsum("bmhw,bmhwc->bhwc", mask, motions)  # (B, h, w, 2)
        out = {"optical_flow": flow, "mask": mask, "sparse_deformed": deformed}
        if self.occlusion is not None:
            out["occlusion_map"] = torch.sigmoid(self.occlusion(feat))
        return out


# -----------------------------------------------------------------------------
# generator


class Generator(nn.Module):
    """Johnson encoder/decoder; warped + occluded features at the bottleneck and (skips) at every level."""

    def __init__(self, num_channels: int, num_regions: int, block_expansion: int, max_features: int,
                 num_down_blocks: int, num_bottleneck_blocks: int, skips: bool = True,
                 pixelwise_flow_predictor: FlowPredictorParams | dict | None = None, revert_axis_swap: bool = True,
                 *, align_corners: bool):
        super().__init__()
        self.skips, self.align_corners = skips, align_corners
        self.pixelwise_flow_predictor = None
        if pixelwise_flow_predictor is not None:
            fp = pixelwise_flow_predictor.model_dump() if hasattr(pixelwise_flow_predictor, "model_dump") \
                else dict(pixelwise_flow_predictor)
            self.pixelwise_flow_predictor = PixelwiseFlowPredictor(num_regions=num_regions, num_channels=num_channels,
                                                                   revert_axis_swap=revert_axis_swap,
                                                                   align_corners=align_corners, **fp)
        self.first = SameBlock2d(num_channels, block_expansion, kernel_size=7, padding=3)
        ch = lambda i: min(max_features, block_expansion * 2 ** i)  # noqa: E731 - channels at level i
        self.down_blocks = nn.ModuleList([DownBlock2d(ch(i), ch(i + 1)) for i in range(num_down_blocks)])
        self.up_blocks = nn.ModuleList([UpBlock2d(ch(num_down_blocks - i), ch(num_down_blocks - i - 1))
                                        for i in range(num_down_blocks)])
        self.bottleneck = nn.Sequential(*[ResBlock2d(ch(num_down_blocks)) for _ in range(num_bottleneck_blocks)])
        self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=7, padding=3)

    def apply_optical(self, skip: torch.Tensor, previous: torch.Tensor | None, motion: dict | None) -> torch.Tensor:
        """Warp ``skip`` by the flow and blend: skip*occ + previous*(1-occ) (or skip*occ without previous)."""
        if motion is None:
            return previous if previous is not None else skip
        skip = warp(skip, resize_flow(motion["optical_flow"], skip.shape[2:]), align_corners=self.align_corners)
        occ = motion.get("occlusion_map")
        if occ is None:
            return skip
        if occ.shape[2:] != skip.shape[2:]:
            occ = F.interpolate(occ, size=skip.shape[2:], mode="bilinear", align_corners=False)
        return skip * occ if previous is None else skip * occ + previous * (1 - occ)

    def forward(self, source: torch.Tensor, driving_region_params, source_region_params, bg_params=None):
        out = self.first(source)  # (B, be, H, W)
        skips = [out]
        for block in self.down_blocks:
            out = block(out)
            skips.append(out)
        result, motion = {}, None
        if self.pixelwise_flow_predictor is not None:
            motion = self.pixelwise_flow_predictor(source, driving_region_params, source_region_params, bg_params)
            result.update(deformed=warp(source, resize_flow(motion["optical_flow"], source.shape[2:]),
                                        align_corners=self.align_corners),
                          optical_flow=motion["optical_flow"], mask=motion["mask"],
                          sparse_deformed=motion["sparse_deformed"])
            if "occlusion_map" in motion:
                result["occlusion_map"] = motion["occlusion_map"]
        out = self.apply_optical(out, None, motion)
        out = self.bottleneck(out)
        for i, block in enumerate(self.up_blocks):
            if self.skips:
                out = self.apply_optical(skips[-(i + 1)], out, motion)
            out = block(out)
        if self.skips:
            out = self.apply_optical(skips[0], out, motion)
        out = torch.sigmoid(self.final(out))
        if self.skips:
            out = self.apply_optical(source, out, motion)
        result["prediction"] = out  # (B, C, H, W)
        return result


# -----------------------------------------------------------------------------
# training wrapper


class MRAAModel(nn.Module):
    """Region predictor + bg predictor + generator, trained jointly with one optimiser (group 'generator')."""

    def __init__(self, params: Params, train, vgg: nn.Module | None = None):
        super().__init__()
        self.params, self.train_params = params, train
        self.region_predictor = RegionPredictor(num_regions=params.num_regions, num_channels=params.num_channels,
                                                estimate_affine=params.estimate_affine,
                                                **params.region_predictor.model_dump())
        self.bg_predictor = BGMotionPredictor(num_channels=params.num_channels, **params.bg_predictor.model_dump())
        g = params.generator
        self.generator = Generator(num_channels=params.num_channels, num_regions=params.num_regions,
                                   block_expansion=g.block_expansion, max_features=g.max_features,
                                   num_down_blocks=g.num_down_blocks, num_bottleneck_blocks=g.num_bottleneck_blocks,
                                   skips=g.skips, pixelwise_flow_predictor=g.pixelwise_flow_predictor,
                                   revert_axis_swap=params.revert_axis_swap, align_corners=params.align_corners)
        self.pyramid = ImagePyramid(train.scales, params.num_channels)
        if sum(train.loss_weights.perceptual) and vgg is None:
            raise ValueError("MRAAModel: perceptual loss weights are set but no VGG was given")
        self.vgg = vgg

    def networks(self) -> dict[str, nn.Module]:
        """The trained sub-networks, by checkpoint key (the frozen VGG is not part of a checkpoint)."""
        return {"region_predictor": self.region_predictor, "bg_predictor": self.bg_predictor,
                "generator": self.generator}

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"generator": [*self.generator.parameters(), *self.region_predictor.parameters(),
                              *self.bg_predictor.parameters()]}

    def forward(self, source: torch.Tensor, driving: torch.Tensor):
        w = self.train_params.loss_weights
        src = self.region_predictor(source)
        drv = self.region_predictor(driving)
        bg_params = self.bg_predictor(source, driving)  # (B, 3, 3)
        generated = self.generator(source, driving_region_params=drv, source_region_params=src, bg_params=bg_params)
        generated.update(source_region_params=src, driving_region_params=drv, bg_params=bg_params)
        losses: dict[str, torch.Tensor] = {}

        if sum(w.perceptual):
            losses["perceptual"] = perceptual_pyramid_loss(self.vgg, self.pyramid(driving),
                                                           self.pyramid(generated["prediction"]),
                                                           self.train_params.scales, w.perceptual)

        if w.equivariance_shift or w.equivariance_affine:
            transform = RandomTps.for_batch(self.train_params.transform, driving)
            transformed_frame = transform.transform_frame(driving, align_corners=self.params.align_corners)
            trn = self.region_predictor(transformed_frame)
            generated.update(transformed_frame=transformed_frame, transformed_region_params=trn)
            if w.equivariance_shift:
                losses["equivariance_shift"] = w.equivariance_shift * equivariance_value_loss(
                    drv["shift"], trn["shift"], transform)
            if w.equivariance_affine:
                losses["equivariance_affine"] = w.equivariance_affine * equivariance_jacobian_loss(
                    drv["affine"], trn["shift"], trn["affine"], transform, sign_fix=self.params.revert_axis_swap)
        return losses, generated

    @torch.no_grad()
    def reconstruct(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        """Reconstruction-mode prediction, with the bg predictor as in the official evaluation."""
        src, drv = self.region_predictor(source), self.region_predictor(driving)
        return self.generator(source, drv, src, self.bg_predictor(source, driving))["prediction"]


def build(cfg, vgg: nn.Module | None = None) -> MRAAModel:
    return MRAAModel(cfg.model_params, cfg.train, vgg=vgg)


def build_avd_network(cfg) -> RegionAVD:
    """Stage 2's shape/pose disentanglement network on region parameters."""
    p = cfg.model_params
    return RegionAVD(p.num_regions, p.avd_network.id_bottle_size, p.avd_network.pose_bottle_size,
                     revert_axis_swap=p.revert_axis_swap)


def build_avd(cfg, main: MRAAModel) -> RegionAVDModel:
    """Stage 2 (``cfg.train_avd``) around the frozen region predictor of a trained ``main``."""
    if cfg.train_avd is None:
        raise ValueError(f"config {cfg.name!r} has no train_avd section")
    t = cfg.train_avd
    return RegionAVDModel(main.region_predictor, build_avd_network(cfg), t.random_scale, t.lambda_shift,
                          1.0 if t.lambda_affine is None else t.lambda_affine, generator=main.generator)
