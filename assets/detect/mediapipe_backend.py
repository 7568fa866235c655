"""Person boxes from mediapipe Pose (33 landmarks), the backend that runs offline on a CPU.

mediapipe 0.10.21's legacy `solutions` API; only `model_complexity=1` ships in the wheel (0 and 2 try to download
their model). Pose finds one person per frame — the most prominent one — which is what the single-presenter
datasets need. Frames are downscaled to `max_side` first; landmarks are normalised, so they map straight back
to full-resolution pixels.

Landmarks are joints, not the body's outline, so the box is grown from them by a "head unit" u (the larger of
the ear-to-ear distance and 0.75 x nose-to-shoulder-midpoint distance, both about one head height):
the top goes 1.0 u above the highest eye (the crown), the sides 0.35 u beyond the outermost landmark (arms and
clothes outside the joints), the bottom 0.2 u below the lowest (soles, hands). On the astronaut photo this lands
within ~10 px of the hair line on a 512 px image.
"""
from __future__ import annotations

import numpy as np

from assets.boxes import Box
from assets.detect.base import Detection, DetectorUnavailable, check_frame, downscale

NOSE, L_EAR, R_EAR, L_SHOULDER, R_SHOULDER = 0, 7, 8, 11, 12
EYES = (1, 2, 3, 4, 5, 6)
HEAD = tuple(range(0, 11))  # nose, eyes, ears, mouth
LEGS = ((23, 25, 27), (24, 26, 28))  # (hip, knee, ankle), left and right
SCORE_LANDMARKS = tuple(range(0, 13))  # head and shoulders: what every dataset here needs visible

TOP_MARGIN_U, SIDE_MARGIN_U, BOTTOM_MARGIN_U = 1.0, 0.35, 0.2
_INSIDE_TOL = 0.01  # landmarks this far outside the image (normalised) still count as in view


def import_mediapipe():
    """The mediapipe module, or DetectorUnavailable saying which pin to install."""
    try:
        import mediapipe as mp
    except ImportError as exc:  # pragma: no cover - mediapipe is a hard dependency
        raise DetectorUnavailable(f"mediapipe is not importable ({exc}); pip install mediapipe==0.10.21") from exc
    return mp


def landmark_array(landmarks) -> np.ndarray:
    """Pose's 33 normalised landmarks as a (33, 3) float32 array of (x, y, visibility)."""
    return np.array([[p.x, p.y, p.visibility] for p in landmarks.landmark], dtype=np.float32)


def pose_flags(visible: np.ndarray, xy: np.ndarray) -> tuple[bool, bool]:
    """(upper body, full body) from a (33,) visibility mask and (33, 2) pixel landmarks.

    Upper body: nose and both shoulders. Full body: some head landmark and some ankle — the reference
    crop_taichi.py rule (a head keypoint and an ankle keypoint), transposed from COCO's 17 to mediapipe's 33 —
    with one more condition: on the ankle's side, hip, knee and ankle are all visible and run downwards in that
    order. Pose extrapolates legs it cannot see, sometimes with visibility > 0.5 (a waist-up photo on a black
    letterbox gets "ankles" on the chest); an anatomically ordered leg is the evidence that it really saw one.
    """
    upper = bool(visible[NOSE] and visible[L_SHOULDER] and visible[R_SHOULDER])
    head = any(visible[i] for i in HEAD)
    leg = any(visible[[h, k, a]].all() and xy[h, 1] < xy[k, 1] < xy[a, 1] for h, k, a in LEGS)
    return upper, bool(head and leg)


def box_from_landmarks(xy: np.ndarray, visible: np.ndarray, width: int, height: int) -> Box | None:
    """The person box (full-frame pixels) from (33, 2) pixel landmarks and a visibility mask; None if too few."""
    if visible.sum() < 2:
        return None
    pts = xy[visible]
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    units = []
    if visible[L_EAR] and visible[R_EAR]:
        units.append(float(np.linalg.norm(xy[L_EAR] - xy[R_EAR])))
    if visible[NOSE] and visible[L_SHOULDER] and visible[R_SHOULDER]:
        mid = (xy[L_SHOULDER] + xy[R_SHOULDER]) / 2
        units.append(0.75 * float(np.linalg.norm(xy[NOSE] - mid)))
    u = max(units) if units else 0.1 * max(y1 - y0, x1 - x0)
    eyes = [xy[i, 1] for i in EYES if visible[i]] or ([xy[NOSE, 1]] if visible[NOSE] else [])
    if eyes:
        y0 = min(y0, min(eyes) - TOP_MARGIN_U * u)
    box = Box(x0 - SIDE_MARGIN_U * u, y0, x1 + SIDE_MARGIN_U * u, y1 + BOTTOM_MARGIN_U * u).clipped(width, height)
    if box.width < 2 or box.height < 2:
        return None
    return box


class MediapipePoseDetector:
    """`Detector` on mediapipe Pose (+ optional FaceDetection for kind='face' results)."""

    name = "mediapipe-pose33"

    def __init__(self, max_side: int | None = 640, min_visibility: float = 0.5, min_detection_confidence: float = 0.5,
                 with_face: bool = False, face_model_selection: int = 1):
        mp = import_mediapipe()
        self.max_side = max_side
        self.min_visibility = min_visibility
        # static_image_mode: every sampled frame is detected afresh; frames are `stride` apart, so tracking
        # between them would follow a person who is no longer there.
        self._pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1,
                                            min_detection_confidence=min_detection_confidence)
        self._face = (mp.solutions.face_detection.FaceDetection(model_selection=face_model_selection,
                                                                min_detection_confidence=min_detection_confidence)
                      if with_face else None)

    def detect(self, frame_rgb: np.ndarray) -> list[Detection]:
        frame = check_frame(frame_rgb)
        height, width = frame.shape[:2]
        small, _ = downscale(frame, self.max_side)
        small = np.ascontiguousarray(small)
        out: list[Detection] = []
        person = self._person(small, width, height)
        if person is not None:
            out.append(person)
        if self._face is not None:
            out.extend(self._faces(small, width, height))
        return out

    def _person(self, small: np.ndarray, width: int, height: int) -> Detection | None:
        result = self._pose.process(small)
        if result.pose_landmarks is None:
            return None
        norm = landmark_array(result.pose_landmarks)
        inside = ((norm[:, 0] >= -_INSIDE_TOL) & (norm[:, 0] <= 1 + _INSIDE_TOL)
                  & (norm[:, 1] >= -_INSIDE_TOL) & (norm[:, 1] <= 1 + _INSIDE_TOL))
        visible = (norm[:, 2] >= self.min_visibility) & inside
        kps = np.stack([norm[:, 0] * width, norm[:, 1] * height, norm[:, 2]], axis=1)
        box = box_from_landmarks(kps[:, :2], visible, width, height)
        if box is None:
            return None
        upper, full = pose_flags(visible, kps[:, :2])
        # Pose has no person score; the mean visibility of head and shoulders stands in for one.
        score = float(norm[list(SCORE_LANDMARKS), 2].mean())
        return Detection(box=box, score=score, kind="person", keypoints=kps,
                         upper_body_visible=upper, full_body_visible=full)

    def _faces(self, small: np.ndarray, width: int, height: int) -> list[Detection]:
        result = self._face.process(small)
        faces = []
        for det in result.detections or []:
            rb = det.location_data.relative_bounding_box
            box = Box(rb.xmin * width, rb.ymin * height, (rb.xmin + rb.width) * width,
                      (rb.ymin + rb.height) * height).clipped(width, height)
            if box.area <= 0:
                continue
            kps = np.array([[k.x * width, k.y * height, 1.0] for k in det.location_data.relative_keypoints],
                           dtype=np.float32)
            faces.append(Detection(box=box, score=float(det.score[0]), kind="face", keypoints=kps))
        return faces

    def close(self) -> None:
        self._pose.close()
        if self._face is not None:
            self._face.close()

    def __enter__(self) -> "MediapipePoseDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
