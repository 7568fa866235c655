"""VGG-19 feature extractor for the perceptual loss, defined here so torchvision is not needed.

The layer indices of ``features`` are torchvision's, so its published ImageNet state dict
(``vgg19-dcbfe2c3.pth``: keys ``features.N.weight/bias``) loads directly. Weights are resolved from an
explicit path (the command line's ``--vgg-weights`` or ``$MOTIONPIPE_VGG19_WEIGHTS``, read there), then torch's hub
cache, then (if the machine is online) downloaded. Without weights you get a clear error; random weights only when the caller passes
``allow_random=True`` (and must record that the perceptual loss is then not the published one).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

WEIGHTS_ENV = "MOTIONPIPE_VGG19_WEIGHTS"
WEIGHTS_FILE = "vgg19-dcbfe2c3.pth"
WEIGHTS_URL = f"https://download.pytorch.org/models/{WEIGHTS_FILE}"
WEIGHTS_HASH_PREFIX = "dcbfe2c3"  # first 8 hex digits of the file's sha256 (torchvision convention)

# torchvision vgg19 'E' configuration up to relu5_1 (index 29); 'M' = 2x2 max-pool
_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512]
# the feature taps relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 end at these (exclusive) indices
_SLICE_ENDS = (2, 7, 12, 21, 30)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Vgg19(nn.Module):
    """Frozen VGG-19 returning [relu1_1, relu2_1, relu3_1, relu4_1, relu5_1] for images in [0, 1]."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in _CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(cin, v, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                cin = v
        self.features = nn.Sequential(*layers)  # indices 0..29, identical to torchvision's
        assert len(self.features) == _SLICE_ENDS[-1]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.pretrained = False  # set by load_imagenet_weights
        self.weights_path: str | None = None

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.mean.to(x)) / self.std.to(x)
        outs, start = [], 0
        for end in _SLICE_ENDS:
            for i in range(start, end):
                x = self.features[i](x)
            outs.append(x)
            start = end
        return outs

    def load_imagenet_weights(self, path: str | os.PathLike) -> "Vgg19":
        """Load torchvision's ``vgg19`` state dict (classifier and later layers are ignored)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"VGG-19 weights not found at {path}")
        from training.checkpoint import load_weights_only
        state = load_weights_only(path)  # a file that pickles more than tensors is refused, never run
        own = self.features.state_dict()
        mapped = {}
        for key, value in own.items():
            src = f"features.{key}"
            if src not in state:
                raise KeyError(f"{path}: missing key {src!r}; is this torchvision's vgg19 state dict?")
            if state[src].shape != value.shape:
                raise ValueError(f"{path}: {src} has shape {tuple(state[src].shape)}, expected {tuple(value.shape)}")
            mapped[key] = state[src]
        self.features.load_state_dict(mapped)
        self.pretrained, self.weights_path = True, str(path)
        return self


def default_cache_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def resolve_weights(path: str | os.PathLike | None = None, download: bool = True) -> Path:
    """Find the ImageNet weights: explicit path, hub cache, then download."""
    if path is not None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"VGG-19 weights: {path} does not exist")
        return Path(path)
    cached = default_cache_path()
    if cached.is_file():
        return cached
    if download:
        cached.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(WEIGHTS_URL, str(cached), hash_prefix=WEIGHTS_HASH_PREFIX, progress=False)
            return cached
        except Exception as err:  # offline machine, proxy, hash mismatch: report every place we looked
            cached.unlink(missing_ok=True)
            reason = f"download from {WEIGHTS_URL} failed ({type(err).__name__}: {err})"
    else:
        reason = "download disabled"
    raise FileNotFoundError(
        f"VGG-19 ImageNet weights not found: no path given, nothing at {cached}; {reason}. "
        f"Put torchvision's {WEIGHTS_FILE} at {cached} or pass its path (--vgg-weights, or ${WEIGHTS_ENV} for "
        f"training.train and motionpipe train) "
        f"(or pass allow_random=True and record that the perceptual loss uses random features).")


def load_vgg19(path: str | os.PathLike | None = None, *, allow_random: bool = False,
               download: bool = True) -> Vgg19:
    """Build a frozen VGG-19 with ImageNet weights; random weights only with ``allow_random=True``."""
    vgg = Vgg19()
    try:
        return vgg.load_imagenet_weights(resolve_weights(path, download=download))
    except FileNotFoundError:
        if allow_random:
            return vgg  # vgg.pretrained is False: the caller must record it
        raise
