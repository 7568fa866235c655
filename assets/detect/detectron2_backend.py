"""Person boxes from detectron2's Keypoint R-CNN (R-50-FPN, COCO 17 keypoints), the detector MRAA used for TED.

detectron2 is not on PyPI and is not installed by default:
    pip install 'git+https://github.com/facebookresearch/detectron2.git'
Weights are never downloaded here: pass a local path (the pipeline passes MOTIONPIPE_DETECTRON2_WEIGHTS; the checkpoint
`model_final_a6e10b.pkl` of `COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml` from detectron2's model zoo).
The weights path is checked before detectron2 is imported or any model is built, so a wrong path fails in
milliseconds and names the path.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from assets.boxes import Box
from assets.detect.base import Detection, DetectorUnavailable, check_frame, downscale

WEIGHTS_ENV = "MOTIONPIPE_DETECTRON2_WEIGHTS"  # read by storage/settings.py; named in the messages here
CONFIG_NAME = "COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml"
INSTALL_HINT = "pip install 'git+https://github.com/facebookresearch/detectron2.git'"
MODEL_ZOO_URL = ("https://dl.fbaipublicfiles.com/detectron2/COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x/"
                 "137849621/model_final_a6e10b.pkl")

# COCO-17 keypoint order.
COCO_NOSE, COCO_L_SHOULDER, COCO_R_SHOULDER = 0, 5, 6
COCO_HEAD = (0, 1, 2, 3, 4)  # nose, eyes, ears
COCO_ANKLES = (15, 16)
# detectron2 reports each keypoint's heatmap softmax probability (not maskrcnn-benchmark's logit, on which the
# reference thresholded at 2); 0.05 is the threshold detectron2's own Visualizer uses to draw a keypoint.
DEFAULT_KEYPOINT_THRESHOLD = 0.05
DEFAULT_SCORE_THRESHOLD = 0.9  # crop_taichi.py --bbox_confidence_th


def coco_body_flags(keypoints: np.ndarray, threshold: float = DEFAULT_KEYPOINT_THRESHOLD) -> tuple[bool, bool]:
    """(upper body, full body) from (17, 3) COCO keypoints (x, y, score).

    Upper body: nose and both shoulders above threshold. Full body: some head keypoint (0-4) and some ankle
    (15-16) above threshold — crop_taichi.py's "full person" rule.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape != (17, 3):
        raise ValueError(f"expected (17, 3) COCO keypoints, got shape {kp.shape}")
    seen = kp[:, 2] > threshold
    upper = bool(seen[COCO_NOSE] and seen[COCO_L_SHOULDER] and seen[COCO_R_SHOULDER])
    full = bool(seen[list(COCO_HEAD)].any() and seen[list(COCO_ANKLES)].any())
    return upper, full


def resolve_weights(weights: str | os.PathLike | None) -> Path:
    """The checkpoint path from the caller; FileNotFoundError naming it if absent."""
    if not weights:
        raise DetectorUnavailable(
            f"detectron2 Keypoint R-CNN needs local weights: pass weights=... or set {WEIGHTS_ENV} to the "
            f"checkpoint of {CONFIG_NAME} (downloadable from {MODEL_ZOO_URL})")
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"detectron2 weights not found: {str(path)!r} (from the weights argument, "
                                f"or {WEIGHTS_ENV} through the pipeline's settings)")
    return path


def detectron2_importable() -> bool:
    try:
        import detectron2  # noqa: F401
    except ImportError:
        return False
    return True


class Detectron2KeypointDetector:
    """`Detector` on detectron2 Keypoint R-CNN: every person above `score_threshold`, COCO keypoints attached."""

    name = "detectron2-keypoint-rcnn-R50-FPN-3x"

    def __init__(self, weights: str | os.PathLike | None = None, score_threshold: float = DEFAULT_SCORE_THRESHOLD,
                 keypoint_threshold: float = DEFAULT_KEYPOINT_THRESHOLD, device: str = "cpu",
                 max_side: int | None = None):
        path = resolve_weights(weights)  # first: a wrong path must not cost a model build
        try:
            from detectron2 import model_zoo
            from detectron2.config import get_cfg
            from detectron2.engine import DefaultPredictor
        except ImportError as exc:
            raise DetectorUnavailable(f"detectron2 is not installed ({exc}); install it with: {INSTALL_HINT}") from exc
        cfg = get_cfg()
        cfg.merge_from_file(model_zoo.get_config_file(CONFIG_NAME))
        cfg.MODEL.WEIGHTS = str(path)
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = score_threshold
        cfg.MODEL.DEVICE = device
        self._predictor = DefaultPredictor(cfg)
        self._input_bgr = cfg.INPUT.FORMAT == "BGR"
        self.keypoint_threshold = keypoint_threshold
        self.max_side = max_side

    def detect(self, frame_rgb: np.ndarray) -> list[Detection]:
        frame = check_frame(frame_rgb)
        small, scale = downscale(frame, self.max_side)
        image = np.ascontiguousarray(small[:, :, ::-1] if self._input_bgr else small)
        instances = self._predictor(image)["instances"].to("cpu")
        boxes = instances.pred_boxes.tensor.numpy()
        scores = instances.scores.numpy()
        classes = instances.pred_classes.numpy()
        keypoints = instances.pred_keypoints.numpy() if instances.has("pred_keypoints") else None
        out = []
        inv = 1.0 / scale
        for i in range(len(scores)):
            if classes[i] != 0:  # COCO class 0 = person (the keypoint model only predicts people)
                continue
            kp = None
            upper = full = False
            if keypoints is not None:
                kp = keypoints[i].astype(np.float32).copy()
                kp[:, :2] *= inv
                upper, full = coco_body_flags(kp, self.keypoint_threshold)
            box = Box(*(float(v) for v in boxes[i])).scaled(inv, inv)
            out.append(Detection(box=box, score=float(scores[i]), kind="person", keypoints=kp,
                                 upper_body_visible=upper, full_body_visible=full))
        return out

    def close(self) -> None:
        self._predictor = None
