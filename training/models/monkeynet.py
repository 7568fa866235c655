"""Monkey-Net: Animating Arbitrary Objects via Deep Motion Transfer (Siarohin et al., CVPR 2019).

(Over 400 lines: one paper's networks, losses and training wrapper, kept together as the official code has them.)

Keypoints with a full 2x2 covariance (KPDetector: U-Net heatmaps -> softmax -> mean and covariance) -> a
dense flow made of per-keypoint shifts mixed by softmax part masks, plus a residual "correction" flow
(DenseMotionModule) -> a U-Net generator whose source skips are all warped by that flow and concatenated with
keypoint-difference heatmaps, then refined (MotionTransferGenerator). Trained adversarially: an LSGAN
pix2pix discriminator conditioned on keypoint heatmaps, whose feature maps (and the input image itself) give
the feature-matching reconstruction loss. ``MonkeyNetModel`` holds the three networks and both steps.

The official code uses 3-D convolutions with (1, 3, 3) kernels on (B, C, T, H, W) videos, i.e. per-frame 2-D
convolutions, with BatchNorm over all frames. Here frames are folded into the batch and the layers are 2-D
with the same parameter counts (a converter squeezes the kernels' depth axis); the keypoint detector sees
source and driving frames in one batch, so its BatchNorm statistics cover both, as in the official code.

Shapes: B batch, K keypoints, H x W frame, h x w the motion / embedding resolution (H * scale_factor).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import Field

from training.config import Strict
from training.models.blocks import Encoder, Hourglass, ResBlock2d, SameBlock2d, UpBlock2d
from training.models.grids import kp2gaussian, make_coordinate_grid, region2gaussian, warp
from training.models.losses import feature_matching_loss, lsgan_discriminator_loss, lsgan_generator_loss

# -----------------------------------------------------------------------------
# config


class CommonParams(Strict):
    num_kp: int = Field(ge=1)
    kp_variance: Literal["matrix"] | float = "matrix"  # learned 2x2 covariance, or a fixed isotropic variance
    num_channels: int = 3


class KPDetectorParams(Strict):
    temperature: float = Field(gt=0)
    block_expansion: int
    max_features: int
    num_blocks: int
    scale_factor: float = 1.0
    clip_variance: float | None = None  # lower bound on the smallest singular value of the covariance


class EmbeddingParams(Strict):
    """MovementEmbeddingModule: per-keypoint heatmaps, shifts and/or source shifted by each keypoint motion."""
    use_heatmap: bool = True
    use_deformed_source_image: bool = False
    use_difference: bool = False
    heatmap_type: Literal["gaussian", "difference"] = "gaussian"
    norm_const: float | Literal["sum"] = "sum"
    scale_factor: float = 1.0


class DenseMotionParams(Strict):
    block_expansion: int
    max_features: int
    num_blocks: int
    use_mask: bool = True
    use_correction: bool = True
    bg_init: float = 2.0
    num_group_blocks: int = 0
    scale_factor: float = 1.0
    mask_embedding: EmbeddingParams


class GeneratorParams(Strict):
    block_expansion: int
    max_features: int
    num_blocks: int
    num_refinement_blocks: int
    # how the flow and the keypoint embedding are resized to every skip: the official default is 'nearest';
    # vox-256 uses 'trilinear' (on one frame identical to 'bilinear', align_corners=False)
    interpolation_mode: Literal["nearest", "bilinear", "trilinear"] = "nearest"
    dense_motion: DenseMotionParams | None = None
    kp_embedding: EmbeddingParams | None = None


class DiscriminatorParams(Strict):
    block_expansion: int = 64
    max_features: int = 512
    num_blocks: int = 4
    scale_factor: float = 1.0
    kp_embedding: EmbeddingParams | None = None


class Params(Strict):
    # grid_sample convention of every warp; True is what the official weights were trained with (torch 0.4's
    # behaviour). Required: see training/models/grids.py.
    align_corners: bool
    common: CommonParams
    kp_detector: KPDetectorParams
    generator: GeneratorParams
    discriminator: DiscriminatorParams


OPTIMIZER_GROUPS = ("generator", "discriminator", "kp_detector")

# Official checkpoint (monkey-net 0c8aa4e) -> these modules: every other key is identical once the 3-D
# (1, k, k) kernels are squeezed to 2-D; the two output convs live outside the shared Hourglass here.
OFFICIAL_KEY_RENAMES = {
    "kp_detector.predictor.decoder.conv.": "kp_detector.conv.",
    "generator.dense_motion_module.hourglass.decoder.conv.": "generator.dense_motion_module.conv.",
}


def check_config(cfg) -> None:
    """Cross-section rules for a Monkey-Net config (called by training.config.validate_config)."""
    p, t = cfg.model_params, cfg.train
    missing = set(OPTIMIZER_GROUPS) - set(t.lr)
    if missing:
        raise ValueError(f"train.lr lacks optimiser groups {sorted(missing)} (Monkey-Net has {list(OPTIMIZER_GROUPS)})")
    n_maps = p.discriminator.num_blocks + 1  # the input image and every discriminator block
    if len(t.loss_weights.reconstruction) != n_maps:
        raise ValueError(f"loss_weights.reconstruction needs {n_maps} weights (image + {n_maps - 1} discriminator "
                         f"feature maps), got {list(t.loss_weights.reconstruction)}")
    if t.detach_kp_discriminator is False:
        raise ValueError("detach_kp_discriminator: false is not supported (the official code then needs "
                         "retain_graph across the generator and discriminator steps); every official config uses true")
    h, w = cfg.frame_size
    for name, scale, blocks in (("kp_detector", p.kp_detector.scale_factor, p.kp_detector.num_blocks),
                                ("generator", 1.0, p.generator.num_blocks)):
        step = 2 ** blocks
        if round(h * scale) % step or round(w * scale) % step:
            raise ValueError(f"frame {h}x{w} at scale {scale} is not divisible by the {name} U-Net stride {step}")


# -----------------------------------------------------------------------------
# keypoints with covariance


def downsample_nearest(x: torch.Tensor, scale: float) -> torch.Tensor:
    """The official (non anti-aliased) resize of Monkey-Net: nearest neighbour, i.e. every 1/scale-th pixel."""
    return x if scale == 1 else F.interpolate(x, scale_factor=scale, mode="nearest")


def smallest_singular_value(m: torch.Tensor) -> torch.Tensor:
    """sigma_min of (..., 2, 2) matrices as |det| / sigma_max (the official closed form, without its
    cancellation: sqrt((s1 - s2) / 2) loses every digit when the covariance is thin)."""
    a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
    s1 = a ** 2 + b ** 2 + c ** 2 + d ** 2
    s2 = torch.sqrt((a ** 2 + b ** 2 - c ** 2 - d ** 2) ** 2 + 4 * (a * c + b * d) ** 2)
    return (a * d - b * c).abs() / torch.sqrt((s1 + s2) / 2)


def gaussian2kp(heatmap: torch.Tensor, clip_variance: float | None = None) -> dict[str, torch.Tensor]:
    """Mean (B, K, 2) and covariance (B, K, 2, 2) of normalised heatmaps (B, K, h, w), in fp32."""
    h, w = heatmap.shape[-2:]
    with torch.autocast(heatmap.device.type, enabled=False):  # einsum would otherwise run in bf16
        heatmap = heatmap.float() + 1e-7  # official: keeps the covariance away from singular
        grid = make_coordinate_grid(h, w, dtype=heatmap.dtype, device=heatmap.device)  # (h, w, 2)
        mean = torch.einsum("bkhw,hwc->bkc", heatmap, grid)
        diff = grid - mean[:, :, None, None, :]  # (B, K, h, w, 2)
        var = torch.einsum("bkhw,bkhwi,bkhwj->bkij", heatmap, diff, diff)  # (B, K, 2, 2)
        if clip_variance:
            sg = smallest_singular_value(var)[..., None, None]
            var = torch.clamp(sg, min=clip_variance) * var / sg  # rescale so that sigma_min >= clip_variance
    return {"mean": mean, "var": var}


def kp_heatmaps(kp: dict[str, torch.Tensor], size, kp_variance) -> torch.Tensor:
    """Unnormalised Gaussians (B, K, h, w): full covariance for 'matrix', else isotropic."""
    if kp_variance == "matrix":
        return region2gaussian(kp["mean"], kp["var"], size)
    return kp2gaussian(kp["mean"], size, float(kp_variance))


class KPDetector(nn.Module):
    """U-Net -> K heatmaps (softmax over space at a temperature) -> keypoint mean and covariance."""

    def __init__(self, num_kp: int, num_channels: int, block_expansion: int, max_features: int, num_blocks: int,
                 temperature: float, kp_variance="matrix", scale_factor: float = 1.0,
                 clip_variance: float | None = None):
        super().__init__()
        self.temperature, self.kp_variance = temperature, kp_variance
        self.scale_factor, self.clip_variance = scale_factor, clip_variance
        self.predictor = Hourglass(block_expansion, num_channels, num_blocks, max_features)
        self.conv = nn.Conv2d(self.predictor.out_filters, num_kp, kernel_size=3, padding=1)  # official decoder.conv

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = downsample_nearest(x, self.scale_factor)  # (B, C, h, w)
        logits = self.conv(self.predictor(x)).float()  # (B, K, h, w)
        b, k, h, w = logits.shape
        heatmap = F.softmax(logits.view(b, k, -1) / self.temperature, dim=2).view(b, k, h, w)
        kp = gaussian2kp(heatmap, self.clip_variance if self.kp_variance == "matrix" else None)
        if self.kp_variance != "matrix":
            kp.pop("var")
        return kp


# -----------------------------------------------------------------------------
# movement embedding and dense motion


class MovementEmbedding(nn.Module):
    """Per-keypoint motion features (B, (K [+1]) * F, h, w), grouped by keypoint (background group first):
    [heatmap (1), shift kp_source - kp_driving (2), source shifted by that motion (C)], each part optional."""

    def __init__(self, num_kp: int, num_channels: int, kp_variance="matrix", use_heatmap: bool = True,
                 use_deformed_source_image: bool = False, use_difference: bool = False,
                 heatmap_type: str = "gaussian", norm_const="sum", scale_factor: float = 1.0,
                 add_bg_feature_map: bool = False, *, align_corners: bool):
        super().__init__()
        self.align_corners = align_corners
        if not (use_heatmap or use_deformed_source_image or use_difference):
            raise ValueError("MovementEmbedding needs at least one of heatmap, deformed source, difference")
        self.kp_variance, self.heatmap_type, self.norm_const = kp_variance, heatmap_type, norm_const
        self.use_heatmap, self.use_difference = use_heatmap, use_difference
        self.use_deformed_source_image, self.scale_factor = use_deformed_source_image, scale_factor
        self.add_bg = add_bg_feature_map
        per_kp = use_heatmap + 2 * use_difference + num_channels * use_deformed_source_image
        self.out_channels = per_kp * (num_kp + add_bg_feature_map)

    def normalize(self, heatmap: torch.Tensor) -> torch.Tensor:
        if self.norm_const == "sum":
            return heatmap / heatmap.flatten(2).sum(-1)[..., None, None]
        return heatmap / self.norm_const

    def forward(self, source: torch.Tensor, kp_driving: dict, kp_source: dict) -> torch.Tensor:
        source = downsample_nearest(source, self.scale_factor)
        b, c, h, w = source.shape
        parts = []
        if self.use_heatmap:
            heat = self.normalize(kp_heatmaps(kp_driving, (h, w), self.kp_variance))  # (B, K, h, w)
            if self.heatmap_type == "difference":
                heat = heat - self.normalize(kp_heatmaps(kp_source, (h, w), self.kp_variance))
            if self.add_bg:
                heat = torch.cat([heat.new_zeros(b, 1, h, w), heat], dim=1)
            parts.append(heat.unsqueeze(2))  # (B, K', 1, h, w)
        if self.use_difference or self.use_deformed_source_image:
            shift = kp_source["mean"] - kp_driving["mean"]  # (B, K, 2)
            if self.add_bg:
                shift = torch.cat([shift.new_zeros(b, 1, 2), shift], dim=1)
            k = shift.shape[1]
            if self.use_difference:
                parts.append(shift[..., None, None].expand(b, k, 2, h, w))
            if self.use_deformed_source_image:
                grid = make_coordinate_grid(h, w, dtype=shift.dtype, device=shift.device)
                grids = grid[None, None] + shift[:, :, None, None, :]  # (B, K', h, w, 2)
                rep = source.unsqueeze(1).expand(b, k, c, h, w).reshape(b * k, c, h, w)
                parts.append(warp(rep, grids.reshape(b * k, h, w, 2),
                                  align_corners=self.align_corners).view(b, k, c, h, w))
        out = torch.cat([p.to(source.dtype) for p in parts], dim=2)  # (B, K', F, h, w)
        return out.flatten(1, 2)  # (B, K' * F, h, w)


def movement_embedding(num_kp: int, num_channels: int, kp_variance, params: "EmbeddingParams | dict | None", *,
                       align_corners: bool):
    """The optional keypoint-movement embedding of the generator / discriminator inputs (None when not configured)."""
    if params is None:
        return None
    kwargs = params.model_dump() if hasattr(params, "model_dump") else dict(params)
    return MovementEmbedding(num_kp, num_channels, kp_variance, align_corners=align_corners, **kwargs)


class DenseMotionModule(nn.Module):
    """Flow = grid + sum_k mask_k * shift_k + correction, with masks over the K keypoints and a background."""

    def __init__(self, num_kp: int, num_channels: int, kp_variance, block_expansion: int, max_features: int,
                 num_blocks: int, mask_embedding: EmbeddingParams | dict, use_mask: bool = True,
                 use_correction: bool = True, bg_init: float = 2.0, num_group_blocks: int = 0,
                 scale_factor: float = 1.0, *, align_corners: bool):
        super().__init__()
        if not (use_mask or use_correction):
            raise ValueError("DenseMotionModule needs use_mask or use_correction")
        me = mask_embedding.model_dump() if hasattr(mask_embedding, "model_dump") else dict(mask_embedding)
        self.num_kp, self.scale_factor = num_kp, scale_factor
        self.use_mask, self.use_correction = use_mask, use_correction
        self.mask_embedding = MovementEmbedding(num_kp, num_channels, kp_variance, add_bg_feature_map=True,
                                                align_corners=align_corners, **me)
        self.difference_embedding = MovementEmbedding(num_kp, num_channels, kp_variance, use_heatmap=False,
                                                      use_difference=True, add_bg_feature_map=True,
                                                      align_corners=align_corners)
        c = self.mask_embedding.out_channels
        # grouped 1x1 conv blocks: each keypoint's features mixed on their own (the official LeakyReLU that
        # follows each block acts on ReLU outputs and is the identity, so it is left out)
        self.group_blocks = nn.ModuleList([SameBlock2d(c, c, groups=num_kp + 1, kernel_size=1, padding=0)
                                           for _ in range(num_group_blocks)])
        self.hourglass = Hourglass(block_expansion, c, num_blocks, max_features)
        out = (num_kp + 1) * use_mask + 2 * use_correction
        self.conv = nn.Conv2d(self.hourglass.out_filters, out, kernel_size=3, padding=1)  # official decoder.conv
        nn.init.zeros_(self.conv.weight)  # start from the background mask (logit bg_init) and zero correction
        with torch.no_grad():
            self.conv.bias.copy_(torch.tensor(([bg_init] + [0.0] * num_kp) * use_mask + [0.0, 0.0] * use_correction))

    def forward(self, source: torch.Tensor, kp_driving: dict, kp_source: dict) -> dict:
        source = downsample_nearest(source, self.scale_factor)  # (B, C, h, w)
        b, _, h, w = source.shape
        x = self.mask_embedding(source, kp_driving, kp_source)  # (B, (K+1)(1+C), h, w)
        for block in self.group_blocks:
            x = block(x)
        prediction = self.conv(self.hourglass(x)).float()  # (B, (K+1) + 2, h, w)
        out, relative = {}, prediction.new_zeros(b, 2, h, w)
        if self.use_mask:
            mask = F.softmax(prediction[:, :self.num_kp + 1], dim=1)  # (B, K+1, h, w)
            shifts = self.difference_embedding(source, kp_driving, kp_source).float().view(b, self.num_kp + 1, 2, h, w)
            relative = (shifts * mask.unsqueeze(2)).sum(1)  # (B, 2, h, w)
            out["mask"] = mask
        if self.use_correction:
            out["correction"] = prediction[:, -2:]
            relative = relative + out["correction"]
        grid = make_coordinate_grid(h, w, dtype=relative.dtype, device=relative.device)
        out["deformation"] = grid + relative.permute(0, 2, 3, 1)  # (B, h, w, 2) backward flow into the source
        return out


# -----------------------------------------------------------------------------
# generator


def resize(x: torch.Tensor, size, mode: str) -> torch.Tensor:
    """Resize (B, C, h, w) maps as the official generator's F.interpolate (trilinear == bilinear on 1 frame)."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    if mode == "nearest":
        return F.interpolate(x, size=tuple(size), mode="nearest")
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class EmbeddingDecoder(nn.Module):
    """U-Net decoder whose skips each carry ``extra`` keypoint-embedding channels (the shared Decoder's
    widths assume plain encoder skips). Output: (B, block_expansion + in_features + extra, H, W)."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int, extra: int):
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            cin = (1 if i == num_blocks - 1 else 2) * min(max_features, block_expansion * 2 ** (i + 1)) + extra
            blocks.append(UpBlock2d(cin, min(max_features, block_expansion * 2 ** i)))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features + extra

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        skips = list(skips)
        out = skips.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return out


class MotionTransferGenerator(nn.Module):
    """Appearance encoder -> every skip warped by the dense flow (+ keypoint embedding) -> decoder ->
    refinement ResBlocks -> sigmoid. Also returns the source warped by the flow ('deformed')."""

    def __init__(self, num_kp: int, num_channels: int, kp_variance, block_expansion: int, max_features: int,
                 num_blocks: int, num_refinement_blocks: int, interpolation_mode: str = "nearest",
                 dense_motion: DenseMotionParams | dict | None = None,
                 kp_embedding: EmbeddingParams | dict | None = None, *, align_corners: bool):
        super().__init__()
        self.interpolation_mode = "nearest" if interpolation_mode == "nearest" else "bilinear"
        self.align_corners = align_corners
        self.appearance_encoder = Encoder(block_expansion, num_channels, num_blocks, max_features)
        self.kp_embedding = movement_embedding(num_kp, num_channels, kp_variance, kp_embedding,
                                               align_corners=align_corners)
        extra = self.kp_embedding.out_channels if self.kp_embedding is not None else 0
        self.dense_motion_module = None  # None: identity flow (the official IdentityDeformation)
        if dense_motion is not None:
            dm = dense_motion.model_dump() if hasattr(dense_motion, "model_dump") else dict(dense_motion)
            self.dense_motion_module = DenseMotionModule(num_kp, num_channels, kp_variance,
                                                         align_corners=align_corners, **dm)
        self.video_decoder = EmbeddingDecoder(block_expansion, num_channels, num_blocks, max_features, extra)
        c = self.video_decoder.out_filters
        refinement = [(f"r{i}", ResBlock2d(c)) for i in range(num_refinement_blocks)]
        refinement.append(("conv-last", nn.Conv2d(c, num_channels, kernel_size=1)))  # official module names
        self.refinement_module = nn.Sequential(OrderedDict(refinement))

    def forward(self, source: torch.Tensor, kp_driving: dict, kp_source: dict) -> dict:
        b, _, hh, ww = source.shape
        skips = self.appearance_encoder(source)  # [(B, C, H, W), (B, c1, H/2, W/2), ...]
        out = {}
        if self.dense_motion_module is not None:
            out = self.dense_motion_module(source, kp_driving, kp_source)
            flow = out["deformation"]  # (B, h, w, 2)
        else:
            flow = make_coordinate_grid(hh, ww, dtype=source.dtype, device=source.device).expand(b, hh, ww, 2)
        flow_maps = flow.permute(0, 3, 1, 2)  # (B, 2, h, w): resized like an image
        warped = [warp(s, resize(flow_maps, s.shape[2:], self.interpolation_mode).permute(0, 2, 3, 1),
                       align_corners=self.align_corners) for s in skips]
        out["deformed"] = warped[0]  # skip 0 is the source itself
        if self.kp_embedding is not None:
            emb = self.kp_embedding(source, kp_driving, kp_source)  # (B, E, h', w')
            warped = [torch.cat([s, resize(emb, s.shape[2:], self.interpolation_mode).to(s.dtype)], dim=1)
                      for s in warped]
        x = self.video_decoder(warped)  # (B, be + C + E, H, W)
        out["prediction"] = torch.sigmoid(self.refinement_module(x))
        return out


# -----------------------------------------------------------------------------
# discriminator


class DiscriminatorBlock(nn.Module):
    """conv4x4 (no padding) -> [InstanceNorm] -> LeakyReLU(0.2) -> 2x2 average pool (after every block)."""

    def __init__(self, cin: int, cout: int, norm: bool):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=4)
        self.norm = nn.InstanceNorm2d(cout, affine=True) if norm else None

    def forward(self, x):
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return F.avg_pool2d(F.leaky_relu(x, 0.2), 2)


class Discriminator(nn.Module):
    """pix2pix discriminator on cat(image, keypoint heatmaps).

    Returns [image, block_1, ..., block_n, prediction map]: the first n+1 feed the feature-matching
    reconstruction loss, the last one the LSGAN losses.
    """

    def __init__(self, num_kp: int, num_channels: int, kp_variance, block_expansion: int = 64,
                 max_features: int = 512, num_blocks: int = 4, scale_factor: float = 1.0,
                 kp_embedding: EmbeddingParams | dict | None = None, *, align_corners: bool):
        super().__init__()
        self.scale_factor = scale_factor
        self.kp_embedding = movement_embedding(num_kp, num_channels, kp_variance, kp_embedding,
                                               align_corners=align_corners)
        extra = self.kp_embedding.out_channels if self.kp_embedding is not None else 0
        blocks = []
        for i in range(num_blocks):
            cin = num_channels + extra if i == 0 else min(max_features, block_expansion * 2 ** i)
            blocks.append(DiscriminatorBlock(cin, min(max_features, block_expansion * 2 ** (i + 1)), norm=i != 0))
        self.down_blocks = nn.ModuleList(blocks)
        self.conv = nn.Conv2d(min(max_features, block_expansion * 2 ** num_blocks), 1, kernel_size=1)

    def forward(self, image: torch.Tensor, kp_driving: dict, kp_source: dict) -> list[torch.Tensor]:
        maps = [image]
        x = downsample_nearest(image, self.scale_factor)
        if self.kp_embedding is not None:
            x = torch.cat([x, self.kp_embedding(x, kp_driving, kp_source)], dim=1)
        for block in self.down_blocks:
            x = block(x)
            maps.append(x)
        maps.append(self.conv(x))  # (B, 1, h', w') LSGAN scores
        return maps


# -----------------------------------------------------------------------------
# training wrapper


def detach_kp(kp: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in kp.items()}


class MonkeyNetModel(nn.Module):
    """KP detector, generator and discriminator, with the official two-step adversarial training.

    Generator step: ``forward(source, driving) -> (losses, generated)``; sum the (weighted) losses, backward,
    step the 'generator' and 'kp_detector' optimisers (``optimizer_groups``). That backward also reaches the
    discriminator (feature matching on its maps, as in the official code): zero its gradients before the
    discriminator step. Discriminator step: ``discriminator_losses(driving, generated)`` on the detached
    prediction and keypoints, then step the 'discriminator' optimiser.
    """

    def __init__(self, params: Params, train, vgg: nn.Module | None = None):
        super().__init__()
        c = params.common
        self.params, self.train_params = params, train
        self.kp_detector = KPDetector(num_kp=c.num_kp, num_channels=c.num_channels, kp_variance=c.kp_variance,
                                      **params.kp_detector.model_dump())
        g = params.generator
        self.generator = MotionTransferGenerator(
            num_kp=c.num_kp, num_channels=c.num_channels, kp_variance=c.kp_variance,
            block_expansion=g.block_expansion, max_features=g.max_features, num_blocks=g.num_blocks,
            num_refinement_blocks=g.num_refinement_blocks, interpolation_mode=g.interpolation_mode,
            dense_motion=g.dense_motion, kp_embedding=g.kp_embedding, align_corners=params.align_corners)
        d = params.discriminator
        self.discriminator = Discriminator(num_kp=c.num_kp, num_channels=c.num_channels, kp_variance=c.kp_variance,
                                           block_expansion=d.block_expansion, max_features=d.max_features,
                                           num_blocks=d.num_blocks, scale_factor=d.scale_factor,
                                           kp_embedding=d.kp_embedding, align_corners=params.align_corners)
        # vgg is accepted for a uniform factory signature; Monkey-Net has no perceptual loss

    def networks(self) -> dict[str, nn.Module]:
        """The trained sub-networks, by (official) checkpoint key."""
        return {"kp_detector": self.kp_detector, "generator": self.generator, "discriminator": self.discriminator}

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"generator": list(self.generator.parameters()),
                "discriminator": list(self.discriminator.parameters()),
                "kp_detector": list(self.kp_detector.parameters())}

    def detect(self, source: torch.Tensor, driving: torch.Tensor) -> tuple[dict, dict]:
        """Keypoints of both frames from one batch (shared BatchNorm statistics, as the official code)."""
        kp = self.kp_detector(torch.cat([source, driving], dim=0))
        b = source.shape[0]
        return {k: v[:b] for k, v in kp.items()}, {k: v[b:] for k, v in kp.items()}

    def forward(self, source: torch.Tensor, driving: torch.Tensor):
        w = self.train_params.loss_weights
        kp_source, kp_driving = self.detect(source, driving)
        if self.train_params.detach_kp_generator:
            generated = self.generator(source, detach_kp(kp_driving), detach_kp(kp_source))
        else:
            generated = self.generator(source, kp_driving, kp_source)
        generated.update(kp_source=kp_source, kp_driving=kp_driving)

        # the official generator step conditions D on the non-detached keypoints and does not detach the real maps
        maps_fake = self.discriminator(generated["prediction"], kp_driving, kp_source)
        maps_real = self.discriminator(driving, kp_driving, kp_source)
        losses: dict[str, torch.Tensor] = {}
        if w.reconstruction_deformed:
            deformed_l1 = (driving - generated["deformed"]).abs().mean()
            losses["reconstruction_deformed"] = w.reconstruction_deformed * deformed_l1
        if w.reconstruction and w.reconstruction[0]:
            losses["reconstruction"] = w.reconstruction[0] * (maps_real[0] - maps_fake[0]).abs().mean()
        if sum(w.reconstruction[1:]):
            losses["feature_matching"] = feature_matching_loss(maps_real[1:-1], maps_fake[1:-1], w.reconstruction[1:])
        if w.generator_gan:
            losses["gen_gan"] = w.generator_gan * lsgan_generator_loss(maps_fake[-1])
        return losses, generated

    def discriminator_losses(self, driving: torch.Tensor, generated: dict) -> dict[str, torch.Tensor]:
        """LSGAN discriminator loss on the detached prediction (keypoints detached: detach_kp_discriminator)."""
        kp_driving, kp_source = detach_kp(generated["kp_driving"]), detach_kp(generated["kp_source"])
        maps_fake = self.discriminator(generated["prediction"].detach(), kp_driving, kp_source)
        maps_real = self.discriminator(driving, kp_driving, kp_source)
        w = self.train_params.loss_weights.discriminator_gan
        return {"disc_gan": w * lsgan_discriminator_loss(maps_real[-1], maps_fake[-1])}

    @torch.no_grad()
    def reconstruct(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        """Reconstruction-mode prediction (B, C, H, W); the caller sets eval()."""
        kp_source, kp_driving = self.detect(source, driving)
        return self.generator(source, kp_driving, kp_source)["prediction"]


def build(cfg, vgg: nn.Module | None = None) -> MonkeyNetModel:
    return MonkeyNetModel(cfg.model_params, cfg.train, vgg=vgg)
