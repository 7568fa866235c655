"""AKD/MKR keypoints from mediapipe 0.10.21 Pose: 33 landmarks, the body extractor that runs offline here.

Not comparable with the papers (they used OpenPose COCO-18): different joints, different detector. Only
``model_complexity=1`` ships in the wheel (0 and 2 download their model at first use). Every frame is detected
afresh (``static_image_mode=True``), as pose-evaluation runs OpenPose on each frame on its own, so a frame's
keypoints do not depend on its neighbours and frames can be split across worker processes with identical results.
A landmark is present when its ``visibility`` is at least ``min_visibility``; a frame with no person has none.
mediapipe takes one image per call, so "batching" means spreading frames over ``workers`` processes.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import torch

from training.extractors.base import KeypointExtractor, as_uint8_frames
from training.metrics.keypoints import Keypoints

JOINT_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)


def _new_pose(min_detection_confidence: float):
    import mediapipe as mp

    return mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=False,
                                  min_detection_confidence=min_detection_confidence)


def _landmarks(pose, frames: np.ndarray) -> np.ndarray:
    """(T, 33, 3) normalised x, y and visibility; NaN rows where no person was found."""
    out = np.full((len(frames), len(JOINT_NAMES), 3), np.nan)
    for i, frame in enumerate(frames):
        result = pose.process(frame)
        if result.pose_landmarks is not None:
            out[i] = [(p.x, p.y, p.visibility) for p in result.pose_landmarks.landmark]
    return out


# One Pose graph per worker process, built by the pool initializer (state of that process only).
_worker_pose: Any = None


def _init_worker(min_detection_confidence: float) -> None:
    global _worker_pose
    torch.set_num_threads(1)
    _worker_pose = _new_pose(min_detection_confidence)


def _worker_landmarks(frames: np.ndarray) -> np.ndarray:
    return _landmarks(_worker_pose, frames)


class MediapipePose33(KeypointExtractor):
    name = "mediapipe-pose33"
    paper_comparable = False
    joint_names = JOINT_NAMES

    def __init__(self, min_visibility: float = 0.5, min_detection_confidence: float = 0.5, workers: int = 1,
                 frames_per_task: int = 32):
        if not 0.0 <= min_visibility <= 1.0:
            raise ValueError(f"min_visibility must be in [0, 1], got {min_visibility}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.min_visibility = min_visibility
        self.min_detection_confidence = min_detection_confidence
        self.workers = workers
        self.frames_per_task = frames_per_task
        self._pose = None
        self._pool: ProcessPoolExecutor | None = None

    def _raw(self, frames: np.ndarray) -> np.ndarray:
        if self.workers == 1:
            if self._pose is None:
                self._pose = _new_pose(self.min_detection_confidence)
            return _landmarks(self._pose, frames)
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_worker, initargs=(self.min_detection_confidence,))
        step = self.frames_per_task
        parts = list(self._pool.map(_worker_landmarks, [frames[i:i + step] for i in range(0, len(frames), step)]))
        return np.concatenate(parts) if parts else np.zeros((0, len(JOINT_NAMES), 3))

    def extract(self, frames: np.ndarray | torch.Tensor) -> Keypoints:
        frames = as_uint8_frames(frames)
        height, width = frames.shape[1:3]
        raw = self._raw(frames)
        xy = raw[..., :2] * np.array([width, height], dtype=np.float64)
        present = np.nan_to_num(raw[..., 2], nan=-1.0) >= self.min_visibility
        return Keypoints(xy=np.nan_to_num(xy, nan=-1.0), present=present, extractor=self.name)

    def close(self) -> None:
        if self._pose is not None:
            self._pose.close()
            self._pose = None
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
