"""mediapipe Pose on one person's crop: the keypoints and body flags of a person a box detector found.

Pose tracks one person per image and misses people below ~150 px in a full frame; on a square crop around one
detected box (x1.2, resized to `side`) it sees that person large and alone. Only `model_complexity=1` ships in
the mediapipe 0.10.21 wheel (0 and 2 download their model).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from assets.boxes import Box, crop_frame, square_box
from assets.detect.mediapipe_backend import import_mediapipe, landmark_array, pose_flags

CROP_INCREASE = 0.1  # square_box's growth per side: a square of 1.2 x the box's longer side


@dataclass(frozen=True)
class CropPose:
    """Keypoints (33, 3) in full-frame pixels (x, y, visibility), and the rules' flags; None when Pose saw nobody."""

    keypoints: np.ndarray | None
    upper_body_visible: bool
    full_body_visible: bool


NO_POSE = CropPose(None, False, False)


class CropPoseEstimator:
    """Pose on a square crop around each person box, mapped back to the frame."""

    def __init__(self, side: int = 256, min_visibility: float = 0.5, min_detection_confidence: float = 0.5):
        mp = import_mediapipe()
        self.side = side
        self.min_visibility = min_visibility
        # static_image_mode: each crop is another person or another moment, never the previous image moved a bit.
        self._pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1,
                                            min_detection_confidence=min_detection_confidence)

    def __call__(self, frame: np.ndarray, person: Box) -> CropPose:
        square = square_box(person, CROP_INCREASE)
        x0, y0, x1, y1 = square.as_ints()
        crop = crop_frame(frame, square, "pad")  # zeros outside the frame: the square keeps Pose's aspect
        crop = np.ascontiguousarray(cv2.resize(crop, (self.side, self.side), interpolation=cv2.INTER_AREA
                                               if crop.shape[0] > self.side else cv2.INTER_LINEAR))
        result = self._pose.process(crop)
        if result.pose_landmarks is None:
            return NO_POSE
        norm = landmark_array(result.pose_landmarks)
        h, w = frame.shape[:2]
        kps = np.stack([x0 + norm[:, 0] * (x1 - x0), y0 + norm[:, 1] * (y1 - y0), norm[:, 2]], axis=1)
        # A landmark counts only if Pose is confident and it lies inside both the frame and the person's own box
        # (a little slack): a joint placed on the neighbour or the zero padding is not this person's.
        slack = 0.1 * max(person.width, person.height)
        inside = ((kps[:, 0] >= max(0.0, person.x0 - slack)) & (kps[:, 0] <= min(w, person.x1 + slack))
                  & (kps[:, 1] >= max(0.0, person.y0 - slack)) & (kps[:, 1] <= min(h, person.y1 + slack)))
        visible = (norm[:, 2] >= self.min_visibility) & inside
        upper, full = pose_flags(visible, kps[:, :2])
        return CropPose(kps.astype(np.float32), upper, full)

    def close(self) -> None:
        self._pose.close()
