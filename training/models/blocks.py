"""Convolutional building blocks shared by Monkey-Net, FOMM, MRAA and TPSMM.

Layer shapes follow the official repositories (first-order-model ``modules/util.py``), so parameter counts
match the published models. ``norm`` picks BatchNorm (FOMM, MRAA, Monkey-Net; convert to SyncBatchNorm for DDP)
or affine InstanceNorm (TPSMM).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

NORMS = ("batch", "instance")


def make_norm(norm: str, channels: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=True)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")


# -----------------------------------------------------------------------------
# small blocks


class ResBlock2d(nn.Module):
    """Pre-activation residual block, channels kept: x + conv(relu(norm(conv(relu(norm(x))))))."""

    def __init__(self, in_features: int, kernel_size: int = 3, padding: int = 1, norm: str = "batch"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_features, in_features, kernel_size, padding=padding)
        self.conv2 = nn.Conv2d(in_features, in_features, kernel_size, padding=padding)
        self.norm1 = make_norm(norm, in_features)
        self.norm2 = make_norm(norm, in_features)

    def forward(self, x):
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return x + out


class UpBlock2d(nn.Module):
    """Nearest x2 upsample -> conv -> norm -> relu."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1,
                 groups: int = 1, norm: str = "batch"):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding, groups=groups)
        self.norm = make_norm(norm, out_features)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2, mode="nearest")  # (B, C, 2H, 2W)
        return F.relu(self.norm(self.conv(x)))


class DownBlock2d(nn.Module):
    """conv -> norm -> relu -> 2x2 average pool."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1,
                 groups: int = 1, norm: str = "batch"):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding, groups=groups)
        self.norm = make_norm(norm, out_features)
        self.pool = nn.AvgPool2d(kernel_size=2)

    def forward(self, x):
        return self.pool(F.relu(self.norm(self.conv(x))))  # (B, C', H/2, W/2)


class SameBlock2d(nn.Module):
    """conv -> norm -> relu at constant resolution."""

    def __init__(self, in_features: int, out_features: int, groups: int = 1, kernel_size: int = 3,
                 padding: int = 1, norm: str = "batch"):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding, groups=groups)
        self.norm = make_norm(norm, out_features)

    def forward(self, x):
        return F.relu(self.norm(self.conv(x)))


# -----------------------------------------------------------------------------
# U-Net hourglass


class Encoder(nn.Module):
    """Stack of DownBlocks; returns the input and every block output (the skips), finest first."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256,
                 norm: str = "batch"):
        super().__init__()
        blocks = []
        for i in range(num_blocks):
            cin = in_features if i == 0 else min(max_features, block_expansion * 2 ** i)
            cout = min(max_features, block_expansion * 2 ** (i + 1))
            blocks.append(DownBlock2d(cin, cout, kernel_size=3, padding=1, norm=norm))
        self.down_blocks = nn.ModuleList(blocks)
        self.out_channels = [in_features] + [b.conv.out_channels for b in blocks]

    def forward(self, x) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs  # [(B, Cin, H, W), (B, C1, H/2, W/2), ..., (B, Cn, H/2^n, W/2^n)]


class Decoder(nn.Module):
    """Stack of UpBlocks, each followed by concatenation with the matching encoder skip.

    ``out_filters`` is the channel count of the final output (block_expansion + encoder input channels);
    ``out_channels`` lists the channel count after every level, coarsest first (TPSMM uses all of them).
    """

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256,
                 norm: str = "batch"):
        super().__init__()
        blocks, out_channels = [], []
        for i in reversed(range(num_blocks)):
            cin = (1 if i == num_blocks - 1 else 2) * min(max_features, block_expansion * 2 ** (i + 1))
            cout = min(max_features, block_expansion * 2 ** i)
            blocks.append(UpBlock2d(cin, cout, kernel_size=3, padding=1, norm=norm))
            skip = in_features if i == 0 else min(max_features, block_expansion * 2 ** i)
            out_channels.append(cout + skip)
        self.up_blocks = nn.ModuleList(blocks)
        self.out_channels = out_channels
        self.out_filters = block_expansion + in_features

    def forward(self, skips: list[torch.Tensor], return_all: bool = False):
        skips = list(skips)
        out = skips.pop()
        outs = []
        for block in self.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
            outs.append(out)
        return outs if return_all else out  # (B, out_filters, H, W)


class Hourglass(nn.Module):
    """U-Net: Encoder + Decoder with concatenated skips. Output has ``out_filters`` channels at input size."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256,
                 norm: str = "batch"):
        super().__init__()
        self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features, norm=norm)
        self.decoder = Decoder(block_expansion, in_features, num_blocks, max_features, norm=norm)
        self.out_filters = self.decoder.out_filters
        self.out_channels = self.decoder.out_channels

    def forward(self, x, return_all: bool = False):
        return self.decoder(self.encoder(x), return_all=return_all)


# -----------------------------------------------------------------------------
# anti-aliased downsampling


class AntiAliasInterpolation2d(nn.Module):
    """Gaussian blur (sigma = (1/s - 1)/2, kernel 2*round(4*sigma)+1) then strided subsampling by 1/s.

    ``scale`` must be 1 or the inverse of an integer (0.5, 0.25, ...), as in every official config.
    """

    def __init__(self, channels: int, scale: float):
        super().__init__()
        self.scale = float(scale)
        self.channels = channels
        if self.scale == 1.0:
            return
        inv = 1.0 / self.scale
        if not (0 < self.scale < 1) or abs(inv - round(inv)) > 1e-6:
            raise ValueError(f"AntiAliasInterpolation2d: scale must be 1/n for an integer n, got {scale}")
        self.step = int(round(inv))
        sigma = (inv - 1) / 2
        size = 2 * round(sigma * 4) + 1
        ka = size // 2
        kb = ka - 1 if size % 2 == 0 else ka
        self.pad = (ka, kb, ka, kb)
        coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
        g = torch.exp(-coords ** 2 / (2 * sigma ** 2))
        kernel = g[:, None] * g[None, :]
        kernel = kernel / kernel.sum()
        # persistent buffer: official checkpoints store it as '...down.weight'
        self.register_buffer("weight", kernel.expand(channels, 1, size, size).clone())

    def forward(self, x):
        if self.scale == 1.0:
            return x
        out = F.conv2d(F.pad(x, self.pad), self.weight.to(x.dtype), groups=self.channels)
        return out[:, :, ::self.step, ::self.step]  # (B, C, H*s, W*s)


class ImagePyramid(nn.Module):
    """Anti-aliased image pyramid for the multi-scale perceptual loss: {scale: (B, C, H*s, W*s)}."""

    def __init__(self, scales: list[float], num_channels: int):
        super().__init__()
        self.scales = [float(s) for s in scales]
        self.downs = nn.ModuleDict({str(s).replace(".", "-"): AntiAliasInterpolation2d(num_channels, s)
                                    for s in self.scales})

    def forward(self, x) -> dict[float, torch.Tensor]:
        return {s: self.downs[str(s).replace(".", "-")](x) for s in self.scales}


def count_parameters(module: nn.Module) -> int:
    """Number of trainable and frozen parameters (buffers excluded)."""
    return sum(p.numel() for p in module.parameters())
