"""Every person in the frame, offline: SSD-MobileNet-v2 person boxes, then mediapipe Pose on each person's crop.

The default when detectron2 is not installed. mediapipe Pose alone tracks one person per image and misses people
below ~150 px (on a 768x576 street scene it found someone in 10% of sampled frames; the SSD finds people in all of
them, ~5 per frame). Pose on the crop gives each box the keypoints and the upper/full-body flags the chunk rules
read. Pose runs only on boxes at least `min_pose_height` px tall (the caller's size rule): a box too small to open
a chunk needs no keypoints, and a street scene's far pedestrians would otherwise cost ~25 ms each.
"""
from __future__ import annotations

import numpy as np

from assets.detect.base import Detection, check_frame, downscale
from assets.detect.crop_pose import CropPoseEstimator
from assets.detect.ssd_boxes import SsdPersonBoxes


class SsdPoseDetector:
    """`Detector`: SSD boxes (score >= `score_threshold`), each with Pose keypoints from its own crop."""

    name = "ssd-mobilenet-v2-coco+mediapipe-pose33"

    def __init__(self, max_side: int | None = 640, score_threshold: float = 0.4, min_pose_height: float = 0.0,
                 pose_side: int = 256, min_visibility: float = 0.5):
        self.max_side = max_side
        self.min_pose_height = min_pose_height
        self._boxes = SsdPersonBoxes(score_threshold=score_threshold)
        self._pose = CropPoseEstimator(side=pose_side, min_visibility=min_visibility)

    def detect(self, frame_rgb: np.ndarray) -> list[Detection]:
        frame = check_frame(frame_rgb)
        small, scale = downscale(frame, self.max_side)
        out = []
        for found in self._boxes(small):
            box = found.box.scaled(1 / scale, 1 / scale)
            if box.height >= self.min_pose_height:
                pose = self._pose(frame, box)
                out.append(Detection(box=box, score=found.score, kind="person", keypoints=pose.keypoints,
                                     upper_body_visible=pose.upper_body_visible,
                                     full_body_visible=pose.full_body_visible))
            else:
                out.append(Detection(box=box, score=found.score, kind="person"))
        return out

    def close(self) -> None:
        self._boxes.close()
        self._pose.close()

    def __enter__(self) -> "SsdPoseDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
