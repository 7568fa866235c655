"""Pick a detector backend by name.

'auto' takes detectron2's Keypoint R-CNN (the papers' multi-person detector) when it can run, else the offline
multi-person SSD + per-person Pose ('ssd'), else mediapipe Pose alone (one person per frame).
"""
from __future__ import annotations

import inspect
import os
from typing import Any, Literal

from assets.detect.base import Detector, DetectorUnavailable
from assets.detect.detectron2_backend import Detectron2KeypointDetector, detectron2_importable
from assets.detect.mediapipe_backend import MediapipePoseDetector
from assets.detect.ssd_backend import SsdPoseDetector
from assets.detect.ssd_boxes import ssd_model_files

BackendName = Literal["auto", "ssd", "mediapipe", "detectron2"]
_BACKENDS = {"ssd": SsdPoseDetector, "mediapipe": MediapipePoseDetector, "detectron2": Detectron2KeypointDetector}


def _options_of(cls: type) -> set[str]:
    return {p for p in inspect.signature(cls.__init__).parameters if p != "self"}


def backend_accepts(backend: str, option: str) -> bool:
    """Whether a concrete backend's constructor takes `option` (callers pass backend-specific hints with it)."""
    return option in _options_of(_BACKENDS[backend])


def _detectron2_ready(weights: Any) -> bool:
    return bool(weights) and os.path.isfile(os.path.expanduser(str(weights))) and detectron2_importable()


def _ssd_ready() -> bool:
    try:
        ssd_model_files()
    except DetectorUnavailable:
        return False
    return True


def resolve_backend(name: BackendName, weights: Any = None) -> str:
    """The concrete backend 'auto' stands for here and now."""
    if name == "auto":
        if _detectron2_ready(weights):
            return "detectron2"
        return "ssd" if _ssd_ready() else "mediapipe"
    if name not in _BACKENDS:
        raise ValueError(f"unknown detector backend {name!r} (use 'auto', 'ssd', 'mediapipe' or 'detectron2')")
    return name


def make_detector(name: BackendName = "auto", **options: Any) -> Detector:
    """Build a detector. Options go to the backend's constructor; under 'auto' an option only another backend
    takes (e.g. `weights` when ssd is chosen) is dropped, while one no backend knows is an error."""
    backend = resolve_backend(name, options.get("weights"))
    known = set().union(*(_options_of(c) for c in _BACKENDS.values()))
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown detector option(s) {unknown}; known: {sorted(known)}")
    cls = _BACKENDS[backend]
    accepted = _options_of(cls)
    if name != "auto":
        wrong = sorted(set(options) - accepted)
        if wrong:
            raise TypeError(f"detector {backend!r} does not take option(s) {wrong}; it takes {sorted(accepted)}")
    return cls(**{k: v for k, v in options.items() if k in accepted})
