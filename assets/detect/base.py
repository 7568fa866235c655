"""The detector interface every backend implements, and the one result type the rest of the pipeline reads."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Literal, Protocol

import cv2
import numpy as np

from assets.boxes import Box

Kind = Literal["person", "face"]


class DetectorUnavailable(RuntimeError):
    """A backend cannot run here (package or weights missing); the message says how to fix it."""


@dataclass(frozen=True, eq=False)
class Detection:
    """One person (or face) in one frame, in full-resolution pixels of that frame.

    keypoints: (K, 3) array of x, y, visibility/score in the backend's keypoint layout (mediapipe 33, COCO 17),
    or None. The two flags are what the chunking rules need, computed by the backend from its own keypoints.
    """

    box: Box
    score: float
    kind: Kind = "person"
    keypoints: np.ndarray | None = None
    upper_body_visible: bool = False
    full_body_visible: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON/Parquet-friendly record."""
        return {
            "box": self.box.to_list(),
            "score": float(self.score),
            "kind": self.kind,
            "keypoints": None if self.keypoints is None else np.asarray(self.keypoints, float).tolist(),
            "upper_body_visible": bool(self.upper_body_visible),
            "full_body_visible": bool(self.full_body_visible),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Detection":
        kp = d.get("keypoints")
        return cls(
            box=Box.from_list(d["box"]),
            score=float(d["score"]),
            kind=d.get("kind", "person"),
            keypoints=None if kp is None else np.asarray(kp, dtype=np.float32).reshape(-1, 3),
            upper_body_visible=bool(d.get("upper_body_visible", False)),
            full_body_visible=bool(d.get("full_body_visible", False)),
        )


class Detector(Protocol):
    """detect() takes an HxWx3 uint8 RGB frame and returns its people (and faces, if the backend does them)."""

    name: str

    def detect(self, frame_rgb: np.ndarray) -> list[Detection]: ...

    def close(self) -> None: ...


def check_frame(frame_rgb: np.ndarray) -> np.ndarray:
    """Detectors take HxWx3 uint8; say which input was wrong instead of failing deep inside a model."""
    frame = np.asarray(frame_rgb)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB frame, got shape {frame.shape} dtype {frame.dtype}")
    return frame


def downscale(frame: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """A copy no larger than `max_side` on its longest side (INTER_AREA), and the factor applied (<= 1).

    Detectors find presenters perfectly well at ~640 px and run several times faster than on 1080p.
    """
    h, w = frame.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return frame, 1.0
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA), scale


def main_person(detections: Iterable[Detection]) -> Detection | None:
    """The subject of the frame: the person with the largest area x score (big and confident wins;
    a small confident bystander loses to the presenter)."""
    people = [d for d in detections if d.kind == "person" and d.box.area > 0]
    if not people:
        return None
    return max(people, key=lambda d: (d.box.area * d.score, d.score))
