"""AED embeddings from the Market-1501 ResNet-50 re-id network, with pose-evaluation's quirks reproduced.

The network is layumi's Person_reID_baseline ``ft_net(751)``: an ImageNet ResNet-50 fine-tuned on Market-1501.
pose-evaluation replaces its ``fc`` and ``classifier`` with identities, so a frame's embedding is the 2048-d
average-pooled feature, unnormalised. Its published ``reid_model.pth`` keeps the backbone under ``model.``
(torchvision's ResNet-50 names); the ``model.fc`` and ``classifier`` weights are dropped as the protocol drops them.

The input transform and two quirks that the published AED numbers depend on:
- PIL bicubic resize of the RGB frame to 288x144 (h x w), then ``ToTensor`` (/255), then ``Normalize(0, 255)``
  (**a second /255**), then ImageNet mean/std;
- the network is never put in ``eval()``, so every BatchNorm normalises with the statistics of the one image it
  is given (batch of 1). Here each BatchNorm normalises per image (instance statistics with the BN's affine),
  which is the same computation and lets frames be batched without mixing their statistics. The running
  statistics in the file are loaded but, as in the protocol, never used.
The weights cannot be installed here: pass their path or set ``$MOTIONPIPE_REID_WEIGHTS``.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from training.extractors.base import IdentityExtractor, as_uint8_frames, load_state_dict, resolve_weights
from training.metrics.identity import Embeddings

WEIGHTS_ENV = "MOTIONPIPE_REID_WEIGHTS"
WHAT = "Market-1501 ResNet-50 re-id network (pose-evaluation's reid_model.pth)"
INPUT_HW = (288, 144)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BACKBONE_PREFIX = "model."
DROPPED_PREFIXES = ("model.fc.", "classifier.")  # replaced by identities in the protocol


class PerImageBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm in train mode on a batch of one image, for every image of a batch: per-image, per-channel
    statistics (biased variance) with the layer's affine; running statistics are kept but never used."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, weight=self.weight, bias=self.bias, use_input_stats=True, eps=self.eps)


class Bottleneck(nn.Module):
    """torchvision's ResNet bottleneck (stride on the 3x3 conv), same attribute names."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int, norm: type[nn.BatchNorm2d]):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = norm(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = norm(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = norm(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), norm(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNetFeatures(nn.Module):
    """ResNet with torchvision's names, ending at the global average pool: (N, 3, H, W) -> (N, 4 * 8 * width).

    ``layers=(3, 4, 6, 3), width=64`` is ResNet-50; ``norm`` picks the protocol's per-image BatchNorm or a
    plain ``nn.BatchNorm2d`` (whose train-mode, batch-of-one behaviour is the reference it reproduces).
    """

    def __init__(self, layers: Sequence[int] = (3, 4, 6, 3), width: int = 64,
                 norm: type[nn.BatchNorm2d] = PerImageBatchNorm2d):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = norm(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = width
        for i, blocks in enumerate(layers):
            w, stride = width * 2 ** i, (1 if i == 0 else 2)
            stage = []
            for b in range(blocks):
                stage.append(Bottleneck(cin, w, stride if b == 0 else 1, norm))
                cin = w * Bottleneck.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.num_layers = len(layers)
        self.dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.num_layers):
            x = getattr(self, f"layer{i + 1}")(x)
        return x.mean((2, 3))  # AdaptiveAvgPool2d((1, 1)) + squeeze


def reid_input(frames: np.ndarray) -> torch.Tensor:
    """(T, 3, 288, 144) float32 network input from (T, H, W, 3) uint8 RGB frames, with the double /255."""
    size = (INPUT_HW[1], INPUT_HW[0])  # PIL takes (w, h)
    resized = np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BICUBIC)) for f in frames])
    x = torch.from_numpy(resized).permute(0, 3, 1, 2).contiguous().float().div(255)  # ToTensor
    x = x.sub(0.0).div(255.0)  # Normalize([0, 0, 0], [255, 255, 255]): the second /255
    return x.sub(torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)).div(torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))


def load_reid_backbone(path: str | os.PathLike | None = None) -> ResNetFeatures:
    """ResNet-50 features with the published weights; the backbone's keys and shapes must all match."""
    p = resolve_weights(path, WEIGHTS_ENV, WHAT)
    state = load_state_dict(p, WHAT)
    with torch.device("meta"):  # shapes only: every tensor comes from the file
        net = ResNetFeatures()
    backbone = {k[len(BACKBONE_PREFIX):]: v for k, v in state.items()
                if k.startswith(BACKBONE_PREFIX) and not k.startswith(DROPPED_PREFIXES)}
    unknown = sorted(k for k in state if not k.startswith(BACKBONE_PREFIX) and not k.startswith(DROPPED_PREFIXES))
    own = net.state_dict()
    # files saved by torch < 0.4.1 have no num_batches_tracked; it is never used here
    missing = sorted(k for k in set(own) - set(backbone) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(backbone) - set(own))
    if missing or unexpected or unknown:
        raise KeyError(f"{p}: not ft_net's layout; missing {[BACKBONE_PREFIX + k for k in missing[:4]]} "
                       f"({len(missing)}), unexpected {(unexpected + unknown)[:4]} ({len(unexpected) + len(unknown)})")
    for k, v in backbone.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"{p}: {BACKBONE_PREFIX}{k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
    for k in set(own) - set(backbone):  # only num_batches_tracked can be absent
        backbone[k] = torch.zeros((), dtype=torch.long)
    net.load_state_dict(backbone, assign=True)
    return net


class ReidResNet50Market1501(IdentityExtractor):
    name = "reid-resnet50-market1501"
    paper_comparable = True
    dim = 2048

    def __init__(self, weights: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                 batch_size: int = 64, net: nn.Module | None = None):
        """``net`` replaces the published network (tests); otherwise the weights load from ``weights``."""
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.net = (net if net is not None else load_reid_backbone(weights)).to(self.device)

    @torch.no_grad()
    def extract(self, frames: np.ndarray | torch.Tensor) -> Embeddings:
        frames = as_uint8_frames(frames)
        rows = [self.net(reid_input(frames[s:s + self.batch_size]).to(self.device)).float().cpu()
                for s in range(0, len(frames), self.batch_size)]
        values = torch.cat(rows).numpy() if rows else np.zeros((0, self.dim))
        return Embeddings(values=values, extractor=self.name)
