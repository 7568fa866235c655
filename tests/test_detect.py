import cv2
import numpy as np
import pytest
import skimage.data

from assets.boxes import Box
from assets.detect.base import Detection, DetectorUnavailable
from assets.detect.detectron2_backend import (
    INSTALL_HINT,
    WEIGHTS_ENV,
    Detectron2KeypointDetector,
    coco_body_flags,
    detectron2_importable,
)
from assets.detect.mediapipe_backend import MediapipePoseDetector, box_from_landmarks, pose_flags
from assets.detect.registry import make_detector, resolve_backend
from assets.detect.base import main_person
from storage.settings import resolve_settings

OFFSET = (384, 104)  # astronaut (512x512) pasted in the middle of a 1280x720 frame
# The astronaut as drawn by hand on the photo: hair top to the bottom edge, sleeve to sleeve.
ASTRONAUT_PERSON = Box(20, 12, 365, 512)


def letterboxed(h=720, w=1280):
    """The astronaut photo, shrunk to fit if needed, centred on a black frame."""
    photo = skimage.data.astronaut()
    side = min(512, h)
    if side < 512:
        photo = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
    frame = np.zeros((h, w, 3), np.uint8)
    x, y = (w - side) // 2, (h - side) // 2
    frame[y:y + side, x:x + side] = photo
    return frame


@pytest.fixture(scope="module")
def mp_detector():
    det = MediapipePoseDetector(max_side=640, with_face=True)
    yield det
    det.close()


# -- mediapipe on a real photograph --------------------------------------------------------------------------------

def test_mediapipe_finds_the_astronaut_with_a_sensible_box(mp_detector):
    found = mp_detector.detect(letterboxed())
    people = [d for d in found if d.kind == "person"]
    assert len(people) == 1
    p = people[0]
    truth = ASTRONAUT_PERSON.translated(*OFFSET)
    assert p.box.iou(truth) > 0.6, p.box
    face_centre = (OFFSET[0] + 224, OFFSET[1] + 120)
    assert p.box.x0 < face_centre[0] < p.box.x1 and p.box.y0 < OFFSET[1] + 40 < face_centre[1] < p.box.y1
    assert p.upper_body_visible and not p.full_body_visible  # cut at the waist: no ankles
    assert p.keypoints.shape == (33, 3)
    nose = p.keypoints[0, :2]  # mapped back to full-resolution pixels
    assert np.hypot(*(nose - (OFFSET[0] + 223, OFFSET[1] + 128))) < 15
    assert 0.5 < p.score <= 1.0
    faces = [d for d in found if d.kind == "face"]
    assert len(faces) == 1
    f = faces[0].box
    assert p.box.x0 <= f.x0 and f.x1 <= p.box.x1 and p.box.y0 <= f.y0 and f.y1 <= p.box.y1
    assert 60 < f.width < 160


def test_mediapipe_finds_nobody_in_a_blank_frame(mp_detector):
    assert mp_detector.detect(np.zeros((360, 640, 3), np.uint8)) == []
    assert mp_detector.detect(np.full((360, 640, 3), 200, np.uint8)) == []


def test_detector_rejects_frames_that_are_not_rgb_uint8(mp_detector):
    with pytest.raises(ValueError, match="uint8"):
        mp_detector.detect(np.zeros((36, 64, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(36, 64\)"):
        mp_detector.detect(np.zeros((36, 64), np.uint8))


def test_pose_rules_on_landmarks():
    visible = np.zeros(33, bool)
    xy = np.zeros((33, 2))
    xy[[23, 25, 27], 1] = (300, 400, 500)  # left hip, knee, ankle, downwards
    visible[[0, 11, 12]] = True
    assert pose_flags(visible, xy) == (True, False)
    visible[27] = True
    assert pose_flags(visible, xy) == (True, False)  # an ankle alone is not a leg
    visible[[23, 25]] = True
    assert pose_flags(visible, xy) == (True, True)
    visible[0] = False
    assert pose_flags(visible, xy) == (False, False)  # no head landmark either
    visible[5] = True
    assert pose_flags(visible, xy) == (False, True)
    xy[25, 1] = 250  # knee above the hip: an extrapolated, impossible leg
    assert pose_flags(visible, xy) == (False, False)


def test_box_from_landmarks_grows_from_the_joints_to_the_outline():
    xy = np.zeros((33, 2))
    visible = np.zeros(33, bool)
    pts = {0: (100, 100), 2: (110, 90), 5: (90, 90), 7: (120, 95), 8: (80, 95), 11: (140, 140), 12: (60, 140),
           27: (110, 300), 28: (90, 300)}
    for i, p in pts.items():
        xy[i], visible[i] = p, True
    box = box_from_landmarks(xy, visible, 1000, 1000)
    u = max(40.0, 0.75 * 40.0)  # ear distance 40, nose-to-shoulders 40
    assert box.to_list() == pytest.approx([60 - 0.35 * u, 90 - 1.0 * u, 140 + 0.35 * u, 300 + 0.2 * u])
    assert box_from_landmarks(xy, visible, 150, 1000).x1 == 150  # clipped to the frame
    assert box_from_landmarks(xy, np.zeros(33, bool), 1000, 1000) is None


def test_detection_record_round_trip():
    d = Detection(Box(1, 2, 3, 4), 0.5, "person", np.arange(9, dtype=np.float32).reshape(3, 3), True, False)
    back = Detection.from_dict(d.to_dict())
    assert back.box == d.box and back.score == 0.5 and back.upper_body_visible and not back.full_body_visible
    np.testing.assert_array_equal(back.keypoints, d.keypoints)


# -- detectron2 (not installable here: the failure paths and the keypoint rules) -----------------------------------

def test_detectron2_missing_weights_is_a_file_not_found_naming_the_path(tmp_path, monkeypatch):
    missing = tmp_path / "nope" / "model_final_a6e10b.pkl"
    with pytest.raises(FileNotFoundError, match="model_final_a6e10b.pkl"):
        Detectron2KeypointDetector(weights=missing)
    monkeypatch.setenv(WEIGHTS_ENV, str(missing))  # the library reads no environment: the settings pass it
    with pytest.raises(DetectorUnavailable, match=WEIGHTS_ENV):
        Detectron2KeypointDetector()
    assert resolve_settings().detectron2_weights == str(missing)


@pytest.mark.skipif(detectron2_importable(), reason="detectron2 is installed")
def test_detectron2_not_installed_says_how_to_install(tmp_path):
    weights = tmp_path / "w.pkl"
    weights.write_bytes(b"not really weights")
    with pytest.raises(DetectorUnavailable) as err:
        make_detector("detectron2", weights=str(weights))
    assert INSTALL_HINT in str(err.value)


def test_coco_keypoints_to_body_flags():
    kp = np.zeros((17, 3))
    kp[[0, 5, 6], 2] = 0.9
    assert coco_body_flags(kp) == (True, False)
    kp[16, 2] = 0.9
    assert coco_body_flags(kp) == (True, True)
    kp[0, 2] = 0.01  # nose below threshold; an ear still counts as a head keypoint
    kp[4, 2] = 0.9
    assert coco_body_flags(kp) == (False, True)
    assert coco_body_flags(kp, threshold=0.95) == (False, False)
    with pytest.raises(ValueError, match="17, 3"):
        coco_body_flags(np.zeros((33, 3)))


def test_registry_auto_falls_back_to_the_multi_person_ssd(tmp_path):
    weights = tmp_path / "w.pkl"
    weights.write_bytes(b"x")
    expected = "detectron2" if detectron2_importable() else "ssd"
    assert resolve_backend("auto", str(weights)) == expected
    assert resolve_backend("auto", str(tmp_path / "missing.pkl")) == "ssd"
    det = make_detector("auto", weights=str(tmp_path / "missing.pkl"), max_side=320)
    try:
        assert det.name == "ssd-mobilenet-v2-coco+mediapipe-pose33" and det.max_side == 320
    finally:
        det.close()
    with pytest.raises(ValueError, match="yolo"):
        make_detector("yolo")
    with pytest.raises(TypeError, match="colour"):
        make_detector("auto", colour="red")
    with pytest.raises(TypeError, match="weights"):
        make_detector("mediapipe", weights="w.pkl")


# -- sparse detection and interpolation ----------------------------------------------------------------------------

def _det(x0, upper=True, score=0.9, w=100.0):
    return Detection(Box(x0, 0, x0 + w, 200), score, "person", None, upper, False)


def test_main_person_prefers_the_big_confident_one():
    big, small = _det(0, w=200), _det(300, score=0.99, w=40)
    face = Detection(Box(0, 0, 500, 500), 1.0, "face")
    assert main_person([small, face, big]) is big
    assert main_person([face]) is None and main_person([]) is None
