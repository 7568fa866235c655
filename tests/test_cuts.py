import gc
import weakref

import cv2
import numpy as np
import pytest
import skimage.data

from assets.clips.cuts import CutDetector

W, H = 192, 108


def _shot(photo: np.ndarray, n: int, dx: int = 1):
    """n frames of a slow pan over a photo (a few pixels per frame: motion, but one shot)."""
    big = cv2.resize(photo, (W + n * dx + 1, H + 20), interpolation=cv2.INTER_AREA)
    for t in range(n):
        yield np.ascontiguousarray(big[10:10 + H, t * dx:t * dx + W])


def _colour_shot(rgb, n: int):
    """A flat colour with a small white square moving across it."""
    for t in range(n):
        f = np.empty((H, W, 3), np.uint8)
        f[:] = rgb
        f[40:60, 10 + 2 * t:30 + 2 * t] = 255
        yield f


def _video():
    shots = [_shot(skimage.data.astronaut(), 20), _shot(skimage.data.coffee(), 25),
             _shot(skimage.data.chelsea(), 30), _colour_shot((200, 30, 40), 22), _colour_shot((20, 60, 210), 15)]
    frames = [f for s in shots for f in s]
    return frames, [20, 45, 75, 97]


def test_hard_cuts_are_found_at_the_exact_frames():
    frames, expected = _video()
    det = CutDetector(fps=25)
    reported = []
    for i, f in enumerate(frames):
        reported += det.push(i, f)
    assert reported == expected  # reported as soon as the new shot's first frame is pushed
    assert det.cuts() == expected


def test_adaptive_detector_finds_the_same_cuts():
    frames, expected = _video()
    det = CutDetector(fps=25, method="adaptive")
    for i, f in enumerate(frames):
        det.push(i, f)
    assert det.cuts() == expected


def test_a_single_panning_shot_has_no_cut():
    det = CutDetector()
    for i, f in enumerate(_shot(skimage.data.astronaut(), 80, dx=3)):
        assert det.push(i, f) == []
    assert det.cuts() == []


def test_min_scene_len_suppresses_cuts_too_close_together():
    frames = list(_shot(skimage.data.astronaut(), 20)) + list(_shot(skimage.data.coffee(), 3)) + \
        list(_shot(skimage.data.chelsea(), 20))
    det = CutDetector(min_scene_len=8)
    for i, f in enumerate(frames):
        det.push(i, f)
    assert det.cuts() == [20]
    det = CutDetector(min_scene_len=2)
    for i, f in enumerate(frames):
        det.push(i, f)
    assert det.cuts() == [20, 23]


def test_threshold_is_configurable():
    frames, _ = _video()
    det = CutDetector(threshold=250.0)
    for i, f in enumerate(frames):
        det.push(i, f)
    assert det.cuts() == []


def test_pushed_frames_are_not_kept():
    det = CutDetector()
    refs = []
    for i, f in enumerate(_shot(skimage.data.coffee(), 6)):
        f = f.copy()
        refs.append(weakref.ref(f))
        det.push(i, f)
        del f
    gc.collect()
    assert all(r() is None for r in refs)


def test_stream_errors_name_the_problem():
    det = CutDetector()
    frame = np.zeros((H, W, 3), np.uint8)
    det.push(5, frame)
    with pytest.raises(ValueError, match="increase"):
        det.push(5, frame)
    with pytest.raises(ValueError, match="frame 6"):
        det.push(6, frame[..., 0])
    det.cuts()
    with pytest.raises(RuntimeError, match="after cuts"):
        det.push(7, frame)
    with pytest.raises(ValueError, match="method"):
        CutDetector(method="histogram")
