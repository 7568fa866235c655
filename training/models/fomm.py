"""First Order Motion Model (Siarohin et al., NeurIPS 2019).

(Over 400 lines: one paper's networks, losses and training wrapper, kept together as the official code has them.)

Keypoints with local affine Jacobians (KPDetector) -> dense flow as a softmax mixture of per-keypoint affine
motions plus an occlusion map (DenseMotionNetwork) -> Johnson-style encoder/decoder whose bottleneck features
are warped and occluded (OcclusionAwareGenerator). ``FOMMModel`` computes the training losses: perceptual
pyramid, equivariance on keypoint values and Jacobians, and (adv config only) LSGAN + feature matching.

Shapes: B batch, K keypoints, H x W frame, h x w the motion resolution (H * scale_factor).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import Field

from training.config import Strict
from training.models.blocks import (AntiAliasInterpolation2d, DownBlock2d, Hourglass, ImagePyramid, ResBlock2d,
                                    SameBlock2d, UpBlock2d)
from training.models.grids import (autocast_off, heatmap_mean, inverse_2x2, kp2gaussian, make_coordinate_grid,
                                   resize_flow, warp, warp_each)
from training.models.losses import (equivariance_jacobian_loss, equivariance_value_loss, feature_matching_loss,
                                    lsgan_discriminator_loss, lsgan_generator_loss, perceptual_pyramid_loss)
from training.models.transforms import RandomTps

# -----------------------------------------------------------------------------
# config


class CommonParams(Strict):
    num_kp: int = Field(ge=1)
    num_channels: int = 3
    estimate_jacobian: bool = True


class KPDetectorParams(Strict):
    temperature: float = Field(gt=0)
    block_expansion: int
    max_features: int
    num_blocks: int
    scale_factor: float = 1.0
    pad: int = 0
    single_jacobian_map: bool = False


class DenseMotionParams(Strict):
    block_expansion: int
    max_features: int
    num_blocks: int
    scale_factor: float = 1.0
    kp_variance: float = 0.01


class GeneratorParams(Strict):
    block_expansion: int
    max_features: int
    num_down_blocks: int
    num_bottleneck_blocks: int
    estimate_occlusion_map: bool = True
    dense_motion: DenseMotionParams


class DiscriminatorParams(Strict):
    scales: tuple[float, ...] = (1.0,)
    block_expansion: int = 32
    max_features: int = 512
    num_blocks: int = 4
    sn: bool = False
    use_kp: bool = False
    kp_variance: float = 0.01


class Params(Strict):
    # grid_sample convention of every warp; True is what the official weights were trained with (torch 1.0's
    # behaviour). Required: see training/models/grids.py.
    align_corners: bool
    common: CommonParams
    kp_detector: KPDetectorParams
    generator: GeneratorParams
    discriminator: DiscriminatorParams | None = None


def check_config(cfg) -> None:
    """Cross-section rules for a FOMM config (called by training.config.validate_config)."""
    groups = {"generator", "kp_detector"} | ({"discriminator"} if cfg.train.loss_weights.generator_gan else set())
    missing = groups - set(cfg.train.lr)
    if missing:
        raise ValueError(f"train.lr lacks optimiser groups {sorted(missing)} (FOMM has {sorted(groups)})")
    if cfg.train.loss_weights.generator_gan and cfg.model_params.discriminator is None:
        raise ValueError("loss_weights.generator_gan > 0 needs model_params.discriminator")
    if cfg.train.loss_weights.equivariance_jacobian and not cfg.model_params.common.estimate_jacobian:
        raise ValueError("equivariance_jacobian > 0 needs common.estimate_jacobian: true")


# -----------------------------------------------------------------------------
# keypoint detector


class KPDetector(nn.Module):
    """Hourglass -> K softmax heatmaps -> keypoints (expected coordinates) and 2x2 Jacobians."""

    def __init__(self, num_kp: int, num_channels: int, block_expansion: int, max_features: int, num_blocks: int,
                 temperature: float, estimate_jacobian: bool = True, scale_factor: float = 1.0, pad: int = 0,
                 single_jacobian_map: bool = False):
        super().__init__()
        self.num_kp, self.temperature, self.scale_factor = num_kp, temperature, scale_factor
        self.predictor = Hourglass(block_expansion, num_channels, num_blocks, max_features)
        self.kp = nn.Conv2d(self.predictor.out_filters, num_kp, kernel_size=7, padding=pad)
        self.jacobian = None
        if estimate_jacobian:
            self.num_jacobian_maps = 1 if single_jacobian_map else num_kp
            self.jacobian = nn.Conv2d(self.predictor.out_filters, 4 * self.num_jacobian_maps, kernel_size=7,
                                      padding=pad)
            # start at the identity Jacobian
            nn.init.zeros_(self.jacobian.weight)
            with torch.no_grad():
                self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0] * self.num_jacobian_maps))
        self.down = AntiAliasInterpolation2d(num_channels, scale_factor) if scale_factor != 1 else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.down is not None:
            x = self.down(x)  # (B, C, H*s, W*s)
        feature_map = self.predictor(x)  # (B, F, H*s, W*s)
        logits = self.kp(feature_map)  # (B, K, h', w'), h' = H*s - 6 with pad 0
        b, k, h, w = logits.shape
        heatmap = F.softmax(logits.view(b, k, -1).float() / self.temperature, dim=2).view(b, k, h, w)
        out = {"value": heatmap_mean(heatmap), "heatmap": heatmap}  # value (B, K, 2)
        if self.jacobian is not None:
            jmap = self.jacobian(feature_map).float().view(b, self.num_jacobian_maps, 4, h, w)
            jac = (heatmap.unsqueeze(2) * jmap).flatten(3).sum(-1)  # (B, K, 4)
            out["jacobian"] = jac.view(b, k, 2, 2)
        return out


# -----------------------------------------------------------------------------
# dense motion


class DenseMotionNetwork(nn.Module):
    """Predicts the dense backward flow (driving -> source coordinates) and an occlusion map at scale_factor."""

    def __init__(self, num_kp: int, num_channels: int, block_expansion: int, max_features: int, num_blocks: int,
                 estimate_occlusion_map: bool = True, scale_factor: float = 1.0, kp_variance: float = 0.01,
                 *, align_corners: bool):
        super().__init__()
        self.num_kp, self.kp_variance, self.scale_factor = num_kp, kp_variance, scale_factor
        self.align_corners = align_corners
        in_features = (num_kp + 1) * (num_channels + 1)  # heatmap + deformed source per motion (bg first)
        self.hourglass = Hourglass(block_expansion, in_features, num_blocks, max_features)
        self.mask = nn.Conv2d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.occlusion = nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=7, padding=3) \
            if estimate_occlusion_map else None
        self.down = AntiAliasInterpolation2d(num_channels, scale_factor) if scale_factor != 1 else None

    def heatmap_representation(self, size, kp_driving, kp_source) -> torch.Tensor:
        """Difference of Gaussians around driving and source keypoints, zero bg channel: (B, K+1, 1, h, w)."""
        heat = kp2gaussian(kp_driving["value"], size, self.kp_variance) \
            - kp2gaussian(kp_source["value"], size, self.kp_variance)  # (B, K, h, w)
        zeros = heat.new_zeros(heat.shape[0], 1, *size)
        return torch.cat([zeros, heat], dim=1).unsqueeze(2)

    def sparse_motions(self, size, kp_driving, kp_source) -> torch.Tensor:
        """Per-keypoint first-order motions z -> p_s + J_s J_d^-1 (z - p_d), bg = identity: (B, K+1, h, w, 2)."""
        h, w = size
        b = kp_source["value"].shape[0]
        grid = make_coordinate_grid(h, w, dtype=kp_source["value"].dtype, device=kp_source["value"].device)
        coords = grid.view(1, 1, h, w, 2) - kp_driving["value"].view(b, self.num_kp, 1, 1, 2)  # (B, K, h, w, 2)
        if "jacobian" in kp_driving:
            jac = kp_source["jacobian"] @ inverse_2x2(kp_driving["jacobian"])  # (B, K, 2, 2)
            coords = torch.einsum("bkij,bkhwj->bkhwi", jac, coords)
        driving_to_source = coords + kp_source["value"].view(b, self.num_kp, 1, 1, 2)
        identity = grid.view(1, 1, h, w, 2).expand(b, 1, h, w, 2)
        return torch.cat([identity, driving_to_source], dim=1)

    def forward(self, source: torch.Tensor, kp_driving, kp_source) -> dict[str, torch.Tensor]:
        if self.down is not None:
            source = self.down(source)  # (B, C, h, w)
        b, _, h, w = source.shape
        with autocast_off(source):  # coordinates stay in fp32 under mixed precision
            heat = self.heatmap_representation((h, w), kp_driving, kp_source)  # (B, K+1, 1, h, w)
            motions = self.sparse_motions((h, w), kp_driving, kp_source)  # (B, K+1, h, w, 2)
            deformed = warp_each(source, motions, align_corners=self.align_corners)  # (B, K+1, C, h, w)
        x = torch.cat([heat, deformed], dim=2).view(b, -1, h, w)  # (B, (K+1)(C+1), h, w)
        feat = self.hourglass(x)
        mask = F.softmax(self.mask(feat).float(), dim=1)  # (B, K+1, h, w)
        with autocast_off(source):
            flow = torch.einsum("bmhw,bmhwc->bhwc", mask, motions)  # (B, h, w, 2)
        out = {"sparse_deformed": deformed, "mask": mask, "deformation": flow}
        if self.occlusion is not None:
            out["occlusion_map"] = torch.sigmoid(self.occlusion(feat))  # (B, 1, h, w)
        return out


# -----------------------------------------------------------------------------
# generator


class OcclusionAwareGenerator(nn.Module):
    """Encoder -> warp + occlude bottleneck features -> residual bottleneck -> decoder -> sigmoid image."""

    def __init__(self, num_channels: int, num_kp: int, block_expansion: int, max_features: int, num_down_blocks: int,
                 num_bottleneck_blocks: int, estimate_occlusion_map: bool = True,
                 dense_motion: DenseMotionParams | dict | None = None, *, align_corners: bool):
        super().__init__()
        self.align_corners = align_corners
        self.dense_motion_network = None
        if dense_motion is not None:
            dm = dense_motion.model_dump() if hasattr(dense_motion, "model_dump") else dict(dense_motion)
            self.dense_motion_network = DenseMotionNetwork(num_kp=num_kp, num_channels=num_channels,
                                                           estimate_occlusion_map=estimate_occlusion_map,
                                                           align_corners=align_corners, **dm)
        self.first = SameBlock2d(num_channels, block_expansion, kernel_size=7, padding=3)
        ch = lambda i: min(max_features, block_expansion * 2 ** i)  # noqa: E731 - channels at level i
        self.down_blocks = nn.ModuleList([DownBlock2d(ch(i), ch(i + 1)) for i in range(num_down_blocks)])
        self.up_blocks = nn.ModuleList([UpBlock2d(ch(num_down_blocks - i), ch(num_down_blocks - i - 1))
                                        for i in range(num_down_blocks)])
        self.bottleneck = nn.Sequential(*[ResBlock2d(ch(num_down_blocks)) for _ in range(num_bottleneck_blocks)])
        self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=7, padding=3)

    def forward(self, source: torch.Tensor, kp_driving, kp_source) -> dict[str, torch.Tensor]:
        out = self.first(source)  # (B, be, H, W)
        for block in self.down_blocks:
            out = block(out)  # (B, be*2^n, H/2^n, W/2^n)
        result = {}
        if self.dense_motion_network is not None:
            motion = self.dense_motion_network(source, kp_driving, kp_source)
            result.update(mask=motion["mask"], sparse_deformed=motion["sparse_deformed"])
            flow = motion["deformation"]
            out = warp(out, resize_flow(flow, out.shape[2:]), align_corners=self.align_corners)
            if "occlusion_map" in motion:
                occ = motion["occlusion_map"]
                result["occlusion_map"] = occ
                if occ.shape[2:] != out.shape[2:]:
                    occ = F.interpolate(occ, size=out.shape[2:], mode="bilinear", align_corners=False)
                out = out * occ
            result["deformed"] = warp(source, resize_flow(flow, source.shape[2:]), align_corners=self.align_corners)
        out = self.bottleneck(out)
        for block in self.up_blocks:
            out = block(out)
        result["prediction"] = torch.sigmoid(self.final(out))  # (B, C, H, W)
        return result


# -----------------------------------------------------------------------------
# discriminator (adv fine-tuning config only)


class DiscriminatorBlock(nn.Module):
    """conv4x4 (no padding) -> [InstanceNorm] -> LeakyReLU(0.2) -> [avg-pool 2]."""

    def __init__(self, cin: int, cout: int, norm: bool, pool: bool, sn: bool):
        super().__init__()
        conv = nn.Conv2d(cin, cout, kernel_size=4)
        self.conv = nn.utils.spectral_norm(conv) if sn else conv
        self.norm = nn.InstanceNorm2d(cout, affine=True) if norm else None
        self.pool = pool

    def forward(self, x):
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        x = F.leaky_relu(x, 0.2)
        return F.avg_pool2d(x, 2) if self.pool else x


class Discriminator(nn.Module):
    """pix2pix patch discriminator; returns the block feature maps and a 1x1-conv prediction map."""

    def __init__(self, num_channels: int, num_kp: int, block_expansion: int, max_features: int, num_blocks: int,
                 sn: bool = False, use_kp: bool = False, kp_variance: float = 0.01):
        super().__init__()
        self.use_kp, self.kp_variance = use_kp, kp_variance
        blocks = []
        for i in range(num_blocks):
            cin = num_channels + num_kp * use_kp if i == 0 else min(max_features, block_expansion * 2 ** i)
            cout = min(max_features, block_expansion * 2 ** (i + 1))
            blocks.append(DiscriminatorBlock(cin, cout, norm=i != 0, pool=i != num_blocks - 1, sn=sn))
        self.down_blocks = nn.ModuleList(blocks)
        conv = nn.Conv2d(cout, 1, kernel_size=1)
        self.conv = nn.utils.spectral_norm(conv) if sn else conv

    def forward(self, x, kp_value=None):
        if self.use_kp:
            x = torch.cat([x, kp2gaussian(kp_value, x.shape[2:], self.kp_variance)], dim=1)
        feats = []
        for block in self.down_blocks:
            x = block(x)
            feats.append(x)
        return feats, self.conv(x)


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, scales, **kwargs):
        super().__init__()
        self.scales = [float(s) for s in scales]
        self.discs = nn.ModuleDict({str(s).replace(".", "-"): Discriminator(**kwargs) for s in self.scales})

    def forward(self, pyramid: dict[float, torch.Tensor], kp_value=None) -> dict[float, tuple]:
        return {s: self.discs[str(s).replace(".", "-")](pyramid[s], kp_value) for s in self.scales}


# -----------------------------------------------------------------------------
# training wrapper


class FOMMModel(nn.Module):
    """KP detector + generator (+ discriminator when generator_gan > 0) and the official training losses.

    ``forward(source, driving) -> (losses, generated)``; ``losses`` are already weighted, sum them to train
    the generator and the KP detector. The discriminator has its own ``discriminator_losses``.
    """

    def __init__(self, params: Params, train, vgg: nn.Module | None = None):
        super().__init__()
        c = params.common
        self.params, self.train_params = params, train
        self.kp_detector = KPDetector(num_kp=c.num_kp, num_channels=c.num_channels,
                                      estimate_jacobian=c.estimate_jacobian, **params.kp_detector.model_dump())
        g = params.generator
        self.generator = OcclusionAwareGenerator(
            num_channels=c.num_channels, num_kp=c.num_kp, block_expansion=g.block_expansion,
            max_features=g.max_features, num_down_blocks=g.num_down_blocks,
            num_bottleneck_blocks=g.num_bottleneck_blocks, estimate_occlusion_map=g.estimate_occlusion_map,
            dense_motion=g.dense_motion, align_corners=params.align_corners)
        w = train.loss_weights
        # the official code always builds D; we build it only when it is trained (generator_gan > 0)
        self.discriminator = None
        if w.generator_gan and params.discriminator is not None:
            d = params.discriminator.model_dump()
            self.discriminator = MultiScaleDiscriminator(num_channels=c.num_channels, num_kp=c.num_kp, **d)
        self.pyramid = ImagePyramid(train.scales, c.num_channels)
        self.disc_pyramid = ImagePyramid(self.discriminator.scales, c.num_channels) if self.discriminator else None
        if sum(w.perceptual) and vgg is None:
            raise ValueError("FOMMModel: perceptual loss weights are set but no VGG was given")
        self.vgg = vgg

    def networks(self) -> dict[str, nn.Module]:
        """The trained sub-networks, by checkpoint key (the frozen VGG is not part of a checkpoint)."""
        nets = {"kp_detector": self.kp_detector, "generator": self.generator}
        if self.discriminator is not None:
            nets["discriminator"] = self.discriminator
        return nets

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        groups = {"generator": list(self.generator.parameters()), "kp_detector": list(self.kp_detector.parameters())}
        if self.discriminator is not None:
            groups["discriminator"] = list(self.discriminator.parameters())
        return groups

    def forward(self, source: torch.Tensor, driving: torch.Tensor):
        w = self.train_params.loss_weights
        kp_source = self.kp_detector(source)
        kp_driving = self.kp_detector(driving)
        generated = self.generator(source, kp_driving=kp_driving, kp_source=kp_source)
        generated.update(kp_source=kp_source, kp_driving=kp_driving)
        losses: dict[str, torch.Tensor] = {}

        pyramid_real = self.pyramid(driving)
        pyramid_fake = self.pyramid(generated["prediction"])
        if sum(w.perceptual):
            losses["perceptual"] = perceptual_pyramid_loss(self.vgg, pyramid_real, pyramid_fake,
                                                           self.train_params.scales, w.perceptual)

        if w.generator_gan:
            real, fake = self.disc_pyramid(driving), self.disc_pyramid(generated["prediction"])
            kp = kp_driving["value"].detach()
            d_fake, d_real = self.discriminator(fake, kp), self.discriminator(real, kp)
            losses["gen_gan"] = sum(w.generator_gan * lsgan_generator_loss(d_fake[s][1]) for s in d_fake)
            if sum(w.feature_matching):
                losses["feature_matching"] = sum(feature_matching_loss(d_real[s][0], d_fake[s][0], w.feature_matching)
                                                 for s in d_fake)

        if w.equivariance_value or w.equivariance_jacobian:
            transform = RandomTps.for_batch(self.train_params.transform, driving)
            transformed_frame = transform.transform_frame(driving, align_corners=self.params.align_corners)
            kp_t = self.kp_detector(transformed_frame)
            generated.update(transformed_frame=transformed_frame, transformed_kp=kp_t)
            if w.equivariance_value:
                losses["equivariance_value"] = w.equivariance_value * equivariance_value_loss(
                    kp_driving["value"], kp_t["value"], transform)
            if w.equivariance_jacobian:
                losses["equivariance_jacobian"] = w.equivariance_jacobian * equivariance_jacobian_loss(
                    kp_driving["jacobian"], kp_t["value"], kp_t["jacobian"], transform)
        return losses, generated

    def discriminator_losses(self, driving: torch.Tensor, generated: dict) -> dict[str, torch.Tensor]:
        """LSGAN discriminator loss on detached generator output (only when a discriminator is trained)."""
        if self.discriminator is None:
            return {}
        w = self.train_params.loss_weights
        kp = generated["kp_driving"]["value"].detach()
        d_real = self.discriminator(self.disc_pyramid(driving), kp)
        d_fake = self.discriminator(self.disc_pyramid(generated["prediction"].detach()), kp)
        return {"disc_gan": sum(w.discriminator_gan * lsgan_discriminator_loss(d_real[s][1], d_fake[s][1])
                                for s in d_real)}

    @torch.no_grad()
    def reconstruct(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        """Reconstruction-mode prediction (B, C, H, W); the caller sets eval()."""
        kp_source, kp_driving = self.kp_detector(source), self.kp_detector(driving)
        return self.generator(source, kp_driving=kp_driving, kp_source=kp_source)["prediction"]


def build(cfg, vgg: nn.Module | None = None) -> FOMMModel:
    return FOMMModel(cfg.model_params, cfg.train, vgg=vgg)
