"""Shot-cut detection with PySceneDetect 0.7.2, fed one frame at a time during the single decode pass.

The detector's own `process_frame(timecode, bgr)` API is used directly (no VideoStream, no SceneManager), so
frames come from our decoder and only the detector's one previous (downscaled) frame is held. Frames are shrunk to
`max_width` first: ContentDetector scores mean HSV differences, which hardly change with scale, and a 128 px frame
costs a small fraction of a 1080p one.
"""
from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from scenedetect.common import FrameTimecode
from scenedetect.detector import FlashFilter
from scenedetect.detectors import AdaptiveDetector, ContentDetector

Method = Literal["content", "adaptive"]


class CutDetector:
    """push() every frame in order; cuts() gives the frame indices where a new shot starts.

    method 'content': ContentDetector, a cut where the HSV difference to the previous frame >= `threshold`
    (default 27, PySceneDetect's). With `immediate` (default) its flash filter runs in SUPPRESS mode, so a cut is
    reported at the frame that starts the new shot, as soon as that frame is pushed; cuts closer than
    `min_scene_len` frames to the previous one are suppressed. method 'adaptive': AdaptiveDetector (threshold is its
    `adaptive_threshold`, default 3), which compares against a rolling window and reports cuts a few frames late.
    """

    def __init__(self, fps: float = 30.0, threshold: float | None = None, min_scene_len: int = 8,
                 method: Method = "content", max_width: int = 128, immediate: bool = True):
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if min_scene_len < 1:
            raise ValueError(f"min_scene_len must be >= 1, got {min_scene_len}")
        self.fps = float(fps)
        self.max_width = max_width
        if method == "content":
            mode = FlashFilter.Mode.SUPPRESS if immediate else FlashFilter.Mode.MERGE
            self._detector = ContentDetector(threshold=27.0 if threshold is None else threshold,
                                             min_scene_len=min_scene_len, filter_mode=mode)
        elif method == "adaptive":
            self._detector = AdaptiveDetector(adaptive_threshold=3.0 if threshold is None else threshold,
                                              min_scene_len=min_scene_len)
        else:
            raise ValueError(f"unknown cut method {method!r} (use 'content' or 'adaptive')")
        self._cuts: list[int] = []
        self._last_index: int | None = None
        self._finished = False

    def _small_bgr(self, frame_rgb: np.ndarray) -> np.ndarray:
        h, w = frame_rgb.shape[:2]
        if self.max_width and w > self.max_width:
            size = (self.max_width, max(1, round(h * self.max_width / w)))
            # Nearest-neighbour decimation: mean HSV differences over ~10k pixels barely notice aliasing, and it
            # costs ~20x less than INTER_AREA on a 720p frame (this runs on every frame of every video).
            frame_rgb = cv2.resize(frame_rgb, size, interpolation=cv2.INTER_NEAREST)
        return cv2.cvtColor(np.ascontiguousarray(frame_rgb), cv2.COLOR_RGB2BGR)

    def push(self, frame_index: int, frame_rgb: np.ndarray) -> list[int]:
        """Feed the next frame (RGB uint8); returns the cuts confirmed by this frame (usually [] or [frame_index])."""
        if self._finished:
            raise RuntimeError("CutDetector.push after cuts(): the stream is already closed")
        if self._last_index is not None and frame_index <= self._last_index:
            raise ValueError(f"frame indices must increase: {frame_index} after {self._last_index}")
        frame = np.asarray(frame_rgb)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frame {frame_index}: expected HxWx3 uint8 RGB, got {frame.shape} {frame.dtype}")
        self._last_index = frame_index
        found = self._detector.process_frame(FrameTimecode(frame_index, self.fps), self._small_bgr(frame))
        return self._record(found)

    def _record(self, found: list) -> list[int]:
        new = sorted({int(tc.frame_num) for tc in found} - set(self._cuts) - {0})
        self._cuts.extend(new)
        return new

    def cuts(self) -> list[int]:
        """All cut frames, sorted. Ends the stream (lets a detector flush cuts it was still holding)."""
        if not self._finished:
            self._finished = True
            if self._last_index is not None:
                self._record(self._detector.post_process(FrameTimecode(self._last_index, self.fps)))
        return sorted(self._cuts)
