"""The three angle predictors of MRAA's toy experiment (supplement Sec. 1), on the project's own blocks.

- ``naive``: an encoder and one fully-connected layer regress the angle from the image.
- ``regression`` (FOMM-like): an hourglass predicts a heatmap and a per-pixel angle; the angle is the
  heatmap-weighted sum of the per-pixel ones, as FOMM pools its per-pixel Jacobians.
- ``pca`` (MRAA): the hourglass predicts only the heatmap; the angle comes from its principal axis, computed
  exactly as MRAA's region predictor computes region affines (``heatmap_to_region``: heatmap mean and
  covariance, then the closed-form 2x2 PCA), as arctan(U10 / U00).

All three predict radians and share two initialisation choices, so that they differ only in their heads:
- the angle outputs start at the middle of the label range (pi/4; weights as initialised, bias pi/4), as
  MRAA starts its background affine at the identity;
- the heatmap logits start 10x smaller than PyTorch's default: a softmax at temperature 0.1 over default
  logits (std ~0.5) starts as a few random spikes, and gradients reach only the pixels under them; the PCA
  head then fits the training angles with a few pixels and generalises poorly (reduced setting, 32 samples:
  0.9 deg on them, 9.8 deg on the test set; 1.9 deg on the test set from the smaller start). A spread-out
  start lets the whole rectangle get gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from training.models.blocks import Encoder, Hourglass
from training.models.mraa import heatmap_to_region

NETWORKS = ("naive", "regression", "pca")
MID_ANGLE = math.pi / 4


@dataclass(frozen=True)
class NetSize:
    """Widths shared by the three networks, so that they differ only in their heads. Defaults: MRAA's region
    predictor (mraa-taichi-256: hourglass of 5 blocks, 32 to 1,024 channels, at 64x64)."""
    image_size: int = 64
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    temperature: float = 0.1  # heatmap softmax temperature, as MRAA's region predictor


def wrap_line_angle(rad: torch.Tensor) -> torch.Tensor:
    """A principal axis is a line, defined modulo pi: its representative in [-pi/4, 3pi/4), the window centred
    on the labels' [0, pi/2], so that no label near 0 or 90 degrees sits at the wrap-around."""
    return torch.remainder(rad + math.pi / 4, math.pi) - math.pi / 4


def _heatmap_head(in_features: int) -> nn.Conv2d:
    """7x7 conv to one heatmap logit, its initial weights scaled by 0.1 and bias 0 (see the module docstring)."""
    conv = nn.Conv2d(in_features, 1, kernel_size=7, padding=3)
    with torch.no_grad():
        conv.weight.mul_(0.1)
        conv.bias.zero_()
    return conv


def _softmax_heatmap(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """(B, 1, h, w) logits -> (B, 1, h, w) heatmap summing to 1 over the pixels."""
    b, c, h, w = logits.shape
    return F.softmax(logits.view(b, c, -1).float() / temperature, dim=2).view(b, c, h, w)


class NaiveNet(nn.Module):
    """Encoder -> flatten -> Linear -> angle: the fully-connected layer sees the whole encoded image.

    Averaging the features over space first instead (as MRAA's ``BGMotionPredictor`` does for its background
    affine) makes this baseline markedly stronger with little data: see the README's toy-experiment section."""

    def __init__(self, size: NetSize):
        super().__init__()
        self.encoder = Encoder(size.block_expansion, 3, size.num_blocks, size.max_features)
        cells = (size.image_size // 2 ** size.num_blocks) ** 2
        self.fc = nn.Linear(self.encoder.out_channels[-1] * cells, 1)
        nn.init.constant_(self.fc.bias, MID_ANGLE)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feat = self.encoder(images)[-1]  # (B, C, S/2^n, S/2^n)
        return self.fc(feat.flatten(1))[:, 0]  # (B,)


class RegressionNet(nn.Module):
    """Hourglass -> (heatmap logits, per-pixel angle) -> heatmap-weighted angle."""

    def __init__(self, size: NetSize):
        super().__init__()
        self.temperature = size.temperature
        self.predictor = Hourglass(size.block_expansion, 3, size.num_blocks, size.max_features)
        self.heat = _heatmap_head(self.predictor.out_filters)
        self.angle = nn.Conv2d(self.predictor.out_filters, 1, kernel_size=7, padding=3)
        nn.init.constant_(self.angle.bias, MID_ANGLE)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feat = self.predictor(images)  # (B, F, S, S)
        heatmap = _softmax_heatmap(self.heat(feat), self.temperature)  # (B, 1, S, S)
        return (heatmap * self.angle(feat)).sum(dim=(1, 2, 3))  # (B,)


class PcaNet(nn.Module):
    """Hourglass -> heatmap -> MRAA's region PCA -> angle of the principal axis."""

    def __init__(self, size: NetSize):
        super().__init__()
        self.temperature = size.temperature
        self.predictor = Hourglass(size.block_expansion, 3, size.num_blocks, size.max_features)
        self.heat = _heatmap_head(self.predictor.out_filters)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return pca_angle(_softmax_heatmap(self.heat(self.predictor(images)), self.temperature))


def pca_angle(heatmap: torch.Tensor) -> torch.Tensor:
    """(B, 1, h, w) normalised heatmaps -> (B,) angle of their principal axis, radians in [-pi/4, 3pi/4)."""
    u = heatmap_to_region(heatmap)["affine"][:, 0]  # (B, 2, 2): U diag(sqrt S), first column the long axis
    # arctan(U10 / U00), made sign-free: the column's sign (LAPACK's choice) is a rotation by pi
    return wrap_line_angle(torch.atan2(u[:, 1, 0], u[:, 0, 0]))


def build_angle_net(name: str, size: NetSize) -> nn.Module:
    nets = {"naive": NaiveNet, "regression": RegressionNet, "pca": PcaNet}
    if name not in nets:
        raise ValueError(f"unknown toy network {name!r}; expected one of {list(NETWORKS)}")
    return nets[name](size)
