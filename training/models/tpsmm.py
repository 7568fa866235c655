"""Thin-Plate Spline Motion Model (Zhao & Zhang, CVPR 2022).

(Over 400 lines: one paper's networks, losses and training wrapper, kept together as the official code has them.)

K TPS transforms, each fitted to 5 driving->source keypoint pairs from a ResNet-18 (KPDetector), plus one
background affine from a second ResNet-18 (BGMotionPredictor) -> the DenseMotionNetwork mixes the K+1 warps
with softmax contribution maps (a dropout-softmax early in training) and predicts occlusion masks at every
resolution of the InpaintingNetwork, a U-Net whose encoder features of the source are warped and masked.
``TPSMMModel`` computes the official losses: perceptual pyramid, equivariance (values only), warp loss and
background cycle loss.

Shapes: B batch, K TPS transforms (K*5 keypoints), H x W frame, h x w = the motion resolution (H * scale_factor),
D = num_down_blocks of the inpainting network (D + 1 occlusion masks, coarsest first).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import Field

from training.config import Strict
from training.models.avd import AVDParams, KeypointAVD, KeypointAVDModel
from training.models.blocks import (AntiAliasInterpolation2d, DownBlock2d, Hourglass, ImagePyramid, ResBlock2d,
                                    SameBlock2d, UpBlock2d)
from training.models.grids import from_homogeneous, kp2gaussian, make_coordinate_grid, to_homogeneous, warp
from training.models.losses import equivariance_value_loss, perceptual_pyramid_loss
from training.models.transforms import RandomTps

KP_PER_TPS = 5  # keypoints per TPS transform, fixed by the paper


def fp32(t: torch.Tensor):
    """Context that switches autocast off: coordinates, TPS solves and the flow mixture stay in fp32."""
    return torch.autocast(t.device.type, enabled=False)

# -----------------------------------------------------------------------------
# config


class CommonParams(Strict):
    num_tps: int = Field(ge=1)
    num_channels: int = 3
    bg: bool = True  # estimate the background affine
    multi_mask: bool = True  # one occlusion mask per inpainting resolution (else a single one, resized)


class DenseMotionParams(Strict):
    block_expansion: int
    max_features: int
    num_blocks: int
    scale_factor: float = 1.0
    kp_variance: float = 0.01


class GeneratorParams(Strict):
    """The inpainting network."""
    block_expansion: int
    max_features: int
    num_down_blocks: int = Field(ge=1)


class Params(Strict):
    # grid_sample convention of every warp; the official code passes True explicitly. Required: see
    # training/models/grids.py.
    align_corners: bool
    common: CommonParams
    generator: GeneratorParams
    dense_motion: DenseMotionParams
    # shape/pose disentanglement network of the second stage (``training.models.avd.KeypointAVD``)
    avd_network: AVDParams = AVDParams(id_bottle_size=128, pose_bottle_size=128)


def check_config(cfg) -> None:
    """Cross-section rules for a TPSMM config (called by training.config.validate_config)."""
    p, t = cfg.model_params, cfg.train
    need = {"generator"} | ({"bg_predictor"} if p.common.bg else set())
    missing = need - set(t.lr)
    if missing:
        raise ValueError(f"train.lr lacks optimiser groups {sorted(missing)} (TPSMM has {sorted(need)})")
    if p.common.bg and t.bg_start is None:
        raise ValueError("common.bg is true but train.bg_start is missing")
    if t.loss_weights.bg and not p.common.bg:
        raise ValueError("loss_weights.bg > 0 needs common.bg: true")
    if t.transform is not None and t.transform.kernel != "euclidean":
        raise ValueError("TPSMM's equivariance TPS uses the Euclidean kernel: set train.transform.kernel: euclidean")
    if p.common.multi_mask:
        occlusion_levels(p.dense_motion.scale_factor, p.generator.num_down_blocks, p.dense_motion.num_blocks)
    h, w = cfg.frame_size
    step = 2 ** p.generator.num_down_blocks
    if h % step or w % step or round(h * p.dense_motion.scale_factor) % 2 ** p.dense_motion.num_blocks:
        raise ValueError(f"frame {h}x{w} is not divisible by the inpainting ({step}) or dense-motion "
                         f"(scale {p.dense_motion.scale_factor}, {p.dense_motion.num_blocks} blocks) strides")


def occlusion_levels(scale_factor: float, num_down_blocks: int, num_hourglass_blocks: int) -> tuple[int, int]:
    """(masks taken from the hourglass decoder, masks from extra UpBlocks) for D+1 multi-resolution masks.

    The dense motion runs at H*s with s = 2^-u; the inpainting needs masks at H/2^D ... H. The coarsest
    D+1-u come from the last hourglass decoder levels, the u finest from u extra x2 UpBlocks.
    """
    u = math.log2(1 / scale_factor)
    if abs(u - round(u)) > 1e-6:
        raise ValueError(f"dense_motion.scale_factor must be 2^-n for multi-resolution masks, got {scale_factor}")
    u = round(u)
    from_hourglass = num_down_blocks + 1 - u
    if not 1 <= from_hourglass <= num_hourglass_blocks:
        raise ValueError(f"{num_down_blocks + 1} occlusion masks need 1..{num_hourglass_blocks} hourglass levels "
                         f"at scale {scale_factor}, got {from_hourglass}")
    return from_hourglass, u


def dropout_probability(epoch: int, dropout) -> float | None:
    """P of the dropout-softmax at ``epoch``, or None once dropout is over (paper Sec. 3.1).

    As the official code: P = min(epoch / inc_epoch * maxp + startp, maxp) while epoch < dropout_epoch.
    (startp is added to the ramp rather than interpolated from; all official configs have startp = 0.)
    """
    if epoch >= dropout.dropout_epoch:
        return None
    return min(epoch / dropout.dropout_inc_epoch * dropout.dropout_maxp + dropout.dropout_startp, dropout.dropout_maxp)


# -----------------------------------------------------------------------------
# thin-plate splines from keypoints (paper Eq. 1-3)


def tps_radial(sq_dist: torch.Tensor) -> torch.Tensor:
    """U(r) = r^2 log r^2, written on the squared distance (as the official code, with 1e-9 inside the log)."""
    return sq_dist * torch.log(sq_dist + 1e-9)


class KeypointTps:
    """K thin-plate splines, each mapping its 5 driving keypoints onto the matching source keypoints.

    ``affine`` (B, K, 2, 3) and ``weights`` (B, K, N, 2) at ``controls`` (B, K, N, 2):
        T(p) = affine @ [p, 1] + sum_n weights_n U(|p - controls_n|^2)
    ``fit`` solves the usual (N+3)x(N+3) TPS system with 0.01 added to its whole diagonal (official
    regularisation), in fp32 even under autocast.
    """

    def __init__(self, affine: torch.Tensor, weights: torch.Tensor, controls: torch.Tensor):
        self.affine, self.weights, self.controls = affine, weights, controls

    @classmethod
    def fit(cls, kp_driving: torch.Tensor, kp_source: torch.Tensor, regularization: float = 0.01) -> "KeypointTps":
        """kp_driving, kp_source: (B, K, N, 2)."""
        with fp32(kp_driving):
            src, dst = kp_driving.float(), kp_source.float()
            b, k, n, _ = src.shape
            radial = tps_radial(((src[:, :, :, None] - src[:, :, None, :]) ** 2).sum(-1))  # (B, K, N, N)
            ones = src.new_ones(b, k, n, 1)
            p = torch.cat([src, ones], dim=-1)  # (B, K, N, 3)
            top = torch.cat([radial, p], dim=-1)  # (B, K, N, N+3)
            bottom = torch.cat([p.transpose(-1, -2), src.new_zeros(b, k, 3, 3)], dim=-1)  # (B, K, 3, N+3)
            system = torch.cat([top, bottom], dim=-2)  # (B, K, N+3, N+3)
            system = system + regularization * torch.eye(n + 3, device=src.device, dtype=src.dtype)
            rhs = torch.cat([dst, src.new_zeros(b, k, 3, 2)], dim=-2)  # (B, K, N+3, 2)
            params = torch.linalg.solve_ex(system, rhs)[0]  # (B, K, N+3, 2); no error check, no host sync
        return cls(affine=params[:, :, n:].transpose(-1, -2), weights=params[:, :, :n], controls=src)

    def warp_coordinates(self, coords: torch.Tensor) -> torch.Tensor:
        """(P, 2) points -> (B, K, P, 2) their images under every transform."""
        with fp32(coords):
            coords = coords.to(self.affine.dtype)
            linear = torch.einsum("bkij,pj->bkpi", self.affine[..., :2], coords) + self.affine[:, :, None, :, 2]
            sq = ((coords[None, None, :, None, :] - self.controls[:, :, None, :, :]) ** 2).sum(-1)  # (B, K, P, N)
            return linear + tps_radial(sq) @ self.weights  # (B, K, P, 2)

    def grid(self, h: int, w: int) -> torch.Tensor:
        """Backward sampling grids (B, K, h, w, 2) in the shared [-1, 1] convention."""
        coords = make_coordinate_grid(h, w, dtype=self.affine.dtype, device=self.affine.device).view(-1, 2)
        out = self.warp_coordinates(coords)
        return out.view(*out.shape[:2], h, w, 2)


def dropout_softmax(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Softmax over dim 1 with TPS channels 1..K dropped per (sample, channel) with probability p (Eq. 7-8).

    Channel 0 (background) is always kept. As in the official code the survivors are NOT rescaled by
    1/(1-p) (its rescaling line runs after the exponential and has no effect), and 1e-6 is added to the
    partition function.
    """
    b, m = logits.shape[:2]
    keep = torch.rand(b, m, 1, 1, device=logits.device) < (1 - p)  # (B, K+1, 1, 1)
    keep[:, 0] = True
    e = torch.exp(logits - logits.amax(dim=1, keepdim=True)) * keep
    return e / (e.sum(dim=1, keepdim=True) + 1e-6)


# -----------------------------------------------------------------------------
# ResNet-18 (torchvision layout and initialisation, so torchvision-style state dicts load as they are)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 (He et al.) with a linear head, randomly initialised as torchvision's ``resnet18()``."""

    def __init__(self, num_outputs: int, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        widths, cin = (64, 128, 256, 512), 64
        for i, cout in enumerate(widths):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout)))
            cin = cout
        self.fc = nn.Linear(512, num_outputs)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))  # (B, 64, H/4, W/4)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 512, H/32, W/32)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))  # (B, num_outputs)


# -----------------------------------------------------------------------------
# keypoint detector and background motion


class KPDetector(nn.Module):
    """ResNet-18 on the full-resolution frame -> K*5 keypoints in (-1, 1): {'fg_kp': (B, K*5, 2)}."""

    def __init__(self, num_tps: int, num_channels: int = 3):
        super().__init__()
        self.num_tps = num_tps
        self.fg_encoder = ResNet18(num_tps * KP_PER_TPS * 2, in_channels=num_channels)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        kp = torch.sigmoid(self.fg_encoder(image).float()) * 2 - 1  # (B, K*5*2)
        return {"fg_kp": kp.view(image.shape[0], self.num_tps * KP_PER_TPS, 2)}


class BGMotionPredictor(nn.Module):
    """ResNet-18 on cat(source, driving) -> background affine (B, 3, 3), last row (0, 0, 1), starting at I."""

    def __init__(self, num_channels: int = 3):
        super().__init__()
        self.bg_encoder = ResNet18(6, in_channels=2 * num_channels)
        nn.init.zeros_(self.bg_encoder.fc.weight)
        with torch.no_grad():
            self.bg_encoder.fc.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        b = source.shape[0]
        top = self.bg_encoder(torch.cat([source, driving], dim=1)).float().view(b, 2, 3)
        last = torch.zeros_like(top[:, :1])
        last[..., 2] = 1.0  # filled on the device: no host-to-device copy (and sync) per call
        return torch.cat([top, last], dim=1)  # (B, 3, 3)


# -----------------------------------------------------------------------------
# dense motion


class DenseMotionNetwork(nn.Module):
    """K TPS warps + the (affine) background warp -> optical flow and multi-resolution occlusion masks.

    Input of the hourglass at the motion resolution h x w: a zero background heatmap and the K*5 Gaussian
    differences (driving - source), then the source warped by each of the K+1 transforms.
    """

    def __init__(self, num_tps: int, num_channels: int, block_expansion: int, max_features: int, num_blocks: int,
                 scale_factor: float = 1.0, kp_variance: float = 0.01, multi_mask: bool = True,
                 num_occlusion_masks: int = 4, *, align_corners: bool):
        super().__init__()
        self.num_tps, self.kp_variance, self.multi_mask = num_tps, kp_variance, multi_mask
        self.align_corners = align_corners
        in_features = (num_tps * KP_PER_TPS + 1) + (num_tps + 1) * num_channels
        self.hourglass = Hourglass(block_expansion, in_features, num_blocks, max_features, norm="instance")
        channels = self.hourglass.out_channels  # per decoder level, coarsest first
        self.maps = nn.Conv2d(channels[-1], num_tps + 1, kernel_size=7, padding=3)
        if multi_mask:
            from_hourglass, num_up = occlusion_levels(scale_factor, num_occlusion_masks - 1, num_blocks)
            up_channels = [channels[-1] // 2 ** i for i in range(num_up + 1)]
            self.up = nn.ModuleList([UpBlock2d(up_channels[i], up_channels[i + 1], norm="instance")
                                     for i in range(num_up)])
            mask_channels = list(channels[len(channels) - from_hourglass:]) + up_channels[1:]
        else:
            from_hourglass, self.up, mask_channels = 1, nn.ModuleList(), [channels[-1]]
        self.from_hourglass = from_hourglass
        self.occlusion = nn.ModuleList([nn.Conv2d(c, 1, kernel_size=7, padding=3) for c in mask_channels])
        self.down = AntiAliasInterpolation2d(num_channels, scale_factor) if scale_factor != 1 else None

    def heatmap_representation(self, size, kp_driving, kp_source) -> torch.Tensor:
        """(B, 1 + K*5, h, w): zero background channel, then Gaussian(driving) - Gaussian(source)."""
        heat = kp2gaussian(kp_driving, size, self.kp_variance) - kp2gaussian(kp_source, size, self.kp_variance)
        return torch.cat([heat.new_zeros(heat.shape[0], 1, *size), heat], dim=1)

    def transformations(self, size, kp_driving, kp_source, bg_param) -> torch.Tensor:
        """(B, K+1, h, w, 2) backward grids: background (identity or bg affine) first, then the K TPS."""
        h, w = size
        b = kp_driving.shape[0]
        tps = KeypointTps.fit(kp_driving.view(b, self.num_tps, KP_PER_TPS, 2),
                              kp_source.view(b, self.num_tps, KP_PER_TPS, 2))
        tps_grids = tps.grid(h, w)  # (B, K, h, w, 2)
        identity = make_coordinate_grid(h, w, dtype=tps_grids.dtype, device=tps_grids.device)
        identity = identity.view(1, 1, h, w, 2).expand(b, 1, h, w, 2)
        if bg_param is not None:
            with fp32(bg_param):
                identity = from_homogeneous(torch.einsum("bij,bmhwj->bmhwi", bg_param.float(),
                                                         to_homogeneous(identity)))
        return torch.cat([identity, tps_grids], dim=1)

    def forward(self, source: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor,
                bg_param: torch.Tensor | None = None, dropout_p: float | None = None) -> dict:
        """kp_* are (B, K*5, 2); ``dropout_p`` switches on the dropout-softmax (training only)."""
        if self.down is not None:
            source = self.down(source)  # (B, C, h, w)
        b, c, h, w = source.shape
        heat = self.heatmap_representation((h, w), kp_driving.float(), kp_source.float())  # (B, 1+K*5, h, w)
        grids = self.transformations((h, w), kp_driving, kp_source, bg_param)  # (B, K+1, h, w, 2)
        m = grids.shape[1]
        rep = source.unsqueeze(1).expand(b, m, c, h, w).reshape(b * m, c, h, w)
        deformed = warp(rep, grids.reshape(b * m, h, w, 2),
                        align_corners=self.align_corners).view(b, m, c, h, w)  # (B, K+1, C, h, w)
        x = torch.cat([heat.to(deformed.dtype), deformed.view(b, m * c, h, w)], dim=1)

        feats = self.hourglass(x, return_all=True)  # per level, coarsest first; feats[-1] at h x w
        logits = self.maps(feats[-1]).float()  # (B, K+1, h, w)
        maps = dropout_softmax(logits, dropout_p) if dropout_p is not None else F.softmax(logits, dim=1)
        with fp32(maps):
            flow = torch.einsum("bmhw,bmhwc->bhwc", maps, grids)  # (B, h, w, 2), paper Eq. 6

        heads = iter(self.occlusion)
        occlusion = [torch.sigmoid(next(heads)(f)) for f in feats[len(feats) - self.from_hourglass:]]
        out = feats[-1]
        for up in self.up:
            out = up(out)  # (B, C/2, 2h, 2w)
            occlusion.append(torch.sigmoid(next(heads)(out)))
        return {"deformed_source": deformed, "contribution_maps": maps, "deformation": flow,
                "occlusion_map": occlusion}


# -----------------------------------------------------------------------------
# inpainting network


def resize_flow_aligned(flow: torch.Tensor, size) -> torch.Tensor:
    """Bilinear resize of a (B, h, w, 2) flow with align_corners=True (TPSMM's choice; FOMM uses False)."""
    if tuple(flow.shape[1:3]) == tuple(size):
        return flow
    return F.interpolate(flow.permute(0, 3, 1, 2), size=tuple(size), mode="bilinear",
                         align_corners=True).permute(0, 2, 3, 1)


class InpaintingNetwork(nn.Module):
    """U-Net over the source: encoder features warped by the flow and masked by the occlusion of their
    resolution feed the decoder (2 ResBlocks + UpBlock per level) through skip connections."""

    def __init__(self, num_channels: int, block_expansion: int, max_features: int, num_down_blocks: int,
                 multi_mask: bool = True, *, align_corners: bool):
        super().__init__()
        self.num_down_blocks, self.multi_mask = num_down_blocks, multi_mask
        self.align_corners = align_corners
        ch = [min(max_features, block_expansion * 2 ** i) for i in range(num_down_blocks + 1)]  # encoder widths
        self.first = SameBlock2d(num_channels, block_expansion, kernel_size=7, padding=3, norm="instance")
        self.down_blocks = nn.ModuleList([DownBlock2d(ch[i], ch[i + 1], norm="instance")
                                          for i in range(num_down_blocks)])
        d = num_down_blocks
        dec_in = [ch[d]] + [2 * ch[d - i] for i in range(1, d)]  # decoder input width per level (after concat)
        self.up_blocks = nn.ModuleList([UpBlock2d(dec_in[i], ch[d - i - 1], norm="instance") for i in range(d)])
        self.resblock = nn.ModuleList([ResBlock2d(dec_in[i // 2], norm="instance") for i in range(2 * d)])
        self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=7, padding=3)

    def occlusion_at(self, occlusion: list[torch.Tensor], level: int, size) -> torch.Tensor:
        """Mask for decoder level ``level`` (0 = coarsest); the single mask is resized when multi_mask is off."""
        occ = occlusion[level] if self.multi_mask else occlusion[0]
        if tuple(occ.shape[2:]) != tuple(size):
            occ = F.interpolate(occ, size=tuple(size), mode="bilinear", align_corners=True)
        return occ

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.first(image)]  # (B, be, H, W)
        for block in self.down_blocks:
            feats.append(block(feats[-1]))  # (B, ch[i+1], H/2^(i+1), W/2^(i+1))
        return feats

    def forward(self, source: torch.Tensor, motion: dict, keep_warped_maps: bool = True) -> dict:
        """``keep_warped_maps``: also return the detached warped encoder maps the warp loss needs."""
        enc = self.encode(source)
        flow, occlusion = motion["deformation"], motion["occlusion_map"]
        d = self.num_down_blocks

        def warp_masked(feat, level):
            """Warped + masked feature, and its copy with feature and mask detached (for the warp loss)."""
            f = resize_flow_aligned(flow, feat.shape[2:])
            occ = self.occlusion_at(occlusion, level, feat.shape[2:])
            ac = self.align_corners
            detached = warp(feat.detach(), f, align_corners=ac) * occ.detach() if keep_warped_maps else None
            return warp(feat, f, align_corners=ac) * occ, detached

        out, detached = warp_masked(enc[d], 0)  # (B, ch[D], H/2^D, W/2^D)
        warped_encoder_maps = [detached]
        for i in range(d):
            out = self.resblock[2 * i + 1](self.resblock[2 * i](out))
            out = self.up_blocks[i](out)  # (B, ch[D-i-1], H/2^(D-i-1), ...)
            skip, detached = warp_masked(enc[d - i - 1], i + 1)
            warped_encoder_maps.append(detached)
            if i < d - 1:
                out = torch.cat([out, skip], dim=1)

        deformed = warp(source, resize_flow_aligned(flow, source.shape[2:]),
                        align_corners=self.align_corners)  # (B, C, H, W)
        occ_last = self.occlusion_at(occlusion, d, out.shape[2:])
        out = out * (1 - occ_last) + skip
        out = torch.sigmoid(self.final(out))
        result = {"prediction": out * (1 - occ_last) + deformed * occ_last, "deformed": deformed}
        if keep_warped_maps:
            result["warped_encoder_maps"] = warped_encoder_maps  # coarsest first
        return result

    @torch.no_grad()
    def encode_driving(self, driving: torch.Tensor, occlusion: list[torch.Tensor]) -> list[torch.Tensor]:
        """Encoder features of the driving frame masked by the (detached) occlusions, finest first."""
        d = self.num_down_blocks
        return [f * self.occlusion_at(occlusion, d - i, f.shape[2:]) for i, f in enumerate(self.encode(driving))]


# -----------------------------------------------------------------------------
# training wrapper


class TPSMMModel(nn.Module):
    """KP detector + BG predictor + dense motion + inpainting, and the official training losses.

    ``forward(source, driving) -> (losses, generated)``; the losses are weighted, sum them to train.
    The dropout-softmax and the background start depend on the epoch: call ``set_epoch`` at every epoch.
    Optimiser groups (``optimizer_groups``): 'generator' (inpainting + dense motion + KP detector, one Adam
    in the official code) and 'bg_predictor' (its own Adam); ``clip_gradients`` applies the official
    inf-norm clipping to the motion networks after backward.
    """

    def __init__(self, params: Params, train, vgg: nn.Module | None = None):
        super().__init__()
        c, g, dm = params.common, params.generator, params.dense_motion
        self.params, self.train_params = params, train
        self.kp_detector = KPDetector(c.num_tps, c.num_channels)
        self.bg_predictor = BGMotionPredictor(c.num_channels) if c.bg else None
        self.dense_motion_network = DenseMotionNetwork(
            num_tps=c.num_tps, num_channels=c.num_channels, multi_mask=c.multi_mask,
            num_occlusion_masks=g.num_down_blocks + 1, align_corners=params.align_corners, **dm.model_dump())
        self.inpainting_network = InpaintingNetwork(c.num_channels, g.block_expansion, g.max_features,
                                                    g.num_down_blocks, multi_mask=c.multi_mask,
                                                    align_corners=params.align_corners)
        self.pyramid = ImagePyramid(train.scales, c.num_channels)
        if sum(train.loss_weights.perceptual) and vgg is None:
            raise ValueError("TPSMMModel: perceptual loss weights are set but no VGG was given")
        self.vgg = vgg
        self.epoch = 0

    # --- schedule and optimisation hooks ---------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        """The trained sub-networks, by (official) checkpoint key; the frozen VGG is not part of a checkpoint."""
        nets = {"kp_detector": self.kp_detector, "dense_motion_network": self.dense_motion_network,
                "inpainting_network": self.inpainting_network}
        if self.bg_predictor is not None:
            nets["bg_predictor"] = self.bg_predictor
        return nets

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def dropout_p(self) -> float | None:
        """Dropout probability of this epoch while training, else None."""
        if not self.training or self.train_params.dropout is None:
            return None
        return dropout_probability(self.epoch, self.train_params.dropout)

    def use_bg(self) -> bool:
        start = self.train_params.bg_start or 0
        return self.bg_predictor is not None and (not self.training or self.epoch >= start)

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        groups = {"generator": [*self.inpainting_network.parameters(), *self.dense_motion_network.parameters(),
                                *self.kp_detector.parameters()]}
        if self.bg_predictor is not None:
            groups["bg_predictor"] = list(self.bg_predictor.parameters())
        return groups

    def clip_gradients(self) -> None:
        """clip_grad_norm_(max_norm, inf) on the KP detector, dense motion and (when used) bg predictor."""
        max_norm = self.train_params.clip_grad_norm
        if max_norm is None:
            return
        modules = [self.kp_detector, self.dense_motion_network] + ([self.bg_predictor] if self.use_bg() else [])
        for module in modules:
            nn.utils.clip_grad_norm_(module.parameters(), max_norm=max_norm, norm_type=math.inf)

    # --- forward ---------------------------------------------------------------------------------
    def generate(self, source: torch.Tensor, kp_source: dict, kp_driving: dict,
                 bg_param: torch.Tensor | None = None, dropout_p: float | None = None,
                 keep_warped_maps: bool = False) -> dict:
        """Animate ``source`` from given keypoints (used by training, reconstruction and animation)."""
        motion = self.dense_motion_network(source, kp_driving["fg_kp"], kp_source["fg_kp"],
                                           bg_param=bg_param, dropout_p=dropout_p)
        out = self.inpainting_network(source, motion, keep_warped_maps=keep_warped_maps)
        out.update(contribution_maps=motion["contribution_maps"], deformed_source=motion["deformed_source"],
                   deformation=motion["deformation"], occlusion_map=motion["occlusion_map"],
                   kp_source=kp_source, kp_driving=kp_driving, bg_param=bg_param)
        return out

    def forward(self, source: torch.Tensor, driving: torch.Tensor):
        w = self.train_params.loss_weights
        kp_source = self.kp_detector(source)
        kp_driving = self.kp_detector(driving)
        bg_param = self.bg_predictor(source, driving) if self.use_bg() else None
        generated = self.generate(source, kp_source, kp_driving, bg_param=bg_param, dropout_p=self.dropout_p(),
                                  keep_warped_maps=bool(w.warp_loss))
        warped_maps = generated.pop("warped_encoder_maps", None)  # coarsest first
        losses: dict[str, torch.Tensor] = {}

        if sum(w.perceptual):
            losses["perceptual"] = perceptual_pyramid_loss(self.vgg, self.pyramid(driving),
                                                           self.pyramid(generated["prediction"]),
                                                           self.train_params.scales, w.perceptual)

        if w.equivariance_value:
            transform = RandomTps.for_batch(self.train_params.transform, driving)
            with fp32(driving):
                transformed_frame = transform.transform_frame(driving.float(),
                                                              align_corners=self.params.align_corners)
            kp_t = self.kp_detector(transformed_frame)
            generated.update(transformed_frame=transformed_frame, transformed_kp=kp_t)
            with fp32(driving):
                losses["equivariance_value"] = w.equivariance_value * equivariance_value_loss(
                    kp_driving["fg_kp"], kp_t["fg_kp"], transform)

        if w.warp_loss:
            # encoder features of the driving frame vs the warped source features; both masked by the
            # detached occlusions, only the flow receives gradients
            target = self.inpainting_network.encode_driving(driving, generated["occlusion_map"])  # finest first
            losses["warp_loss"] = w.warp_loss * sum((a - b).abs().mean()
                                                    for a, b in zip(target, reversed(warped_maps)))

        if w.bg and bg_param is not None:
            reverse = self.bg_predictor(driving, source)  # driving -> source
            eye = torch.eye(3, device=bg_param.device)
            with fp32(bg_param):
                losses["bg"] = w.bg * (eye - bg_param @ reverse).abs().mean()
        return losses, generated

    @torch.no_grad()
    def reconstruct(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        """Reconstruction-mode prediction (B, C, H, W), with the background affine; the caller sets eval()."""
        bg_param = self.bg_predictor(source, driving) if self.bg_predictor is not None else None
        return self.generate(source, self.kp_detector(source), self.kp_detector(driving), bg_param)["prediction"]


def build(cfg, vgg: nn.Module | None = None) -> TPSMMModel:
    return TPSMMModel(cfg.model_params, cfg.train, vgg=vgg)


def build_avd_network(cfg) -> KeypointAVD:
    """Stage 2's shape/pose disentanglement network on the raw TPS keypoints."""
    p = cfg.model_params
    return KeypointAVD(p.common.num_tps * KP_PER_TPS, p.avd_network.id_bottle_size, p.avd_network.pose_bottle_size)


def build_avd(cfg, main: TPSMMModel) -> KeypointAVDModel:
    """Stage 2 (``cfg.train_avd``) around the frozen keypoint detector of a trained ``main``."""
    if cfg.train_avd is None:
        raise ValueError(f"config {cfg.name!r} has no train_avd section")
    t = cfg.train_avd
    return KeypointAVDModel(main.kp_detector, build_avd_network(cfg), t.random_scale, t.lambda_shift,
                            dense_motion=main.dense_motion_network, inpainting=main.inpainting_network)
