import random
import time

import numpy as np
import pytest
import skimage.data
import skimage.transform
from skimage.util import img_as_ubyte

from assets.boxes import Box, OutOfFrameError, box_inside, crop_frame, square_box
from assets.clips.geometry import (consistent_chunk_box, replay_box, replay_frame_range, resize_antialiased,
                                    upper_body_box)


# -- Box ---------------------------------------------------------------------------------------------------------

def test_box_measures_and_iou():
    a = Box(0, 0, 10, 20)
    assert (a.width, a.height, a.area, a.center) == (10, 20, 200, (5, 10))
    assert a.iou(a) == 1.0
    assert a.iou(Box(10, 0, 20, 20)) == 0.0  # touching edges do not overlap
    assert a.iou(Box(5, 0, 15, 20)) == pytest.approx(100 / 300)
    assert a.scaled(2, 0.5) == Box(0, 0, 20, 10)
    assert Box(-5, -5, 30, 8).clipped(20, 10) == Box(0, 0, 20, 8)
    assert Box.from_list(a.to_list()) == a


def test_as_ints_keeps_a_square_square():
    x0, y0, x1, y1 = Box(0.5, 2.4, 10.9, 12.8).as_ints()  # 10.4 x 10.4 float square
    assert (x1 - x0) == (y1 - y0) == 10
    assert (x0, y0) == (1, 2)


def test_from_ltrb_string_parses_the_taichi_column():
    assert Box.from_ltrb_string("1053-109-1641-697") == Box(1053, 109, 1641, 697)


@pytest.mark.parametrize("text", ["1053-109-1641", "a-b-c-d", "10-10-5-20", "10-10-20-10", "", "1-2-3-4-5",
                                  "1.5-2-3-4"])
def test_from_ltrb_string_rejects_malformed_text_naming_it(text):
    with pytest.raises(ValueError, match="bbox"):
        Box.from_ltrb_string(text)
    if text:
        with pytest.raises(ValueError, match=text.replace(".", r"\.")):
            Box.from_ltrb_string(text)


# -- TaiChi replay -----------------------------------------------------------------------------------------------

def _brute(start, end, ref_fps, fps, n):
    """The reference loop's test on every frame (vectorised: float64 products, the same IEEE arithmetic)."""
    i = np.arange(n, dtype=np.int64)
    return np.flatnonzero((i * ref_fps >= start * fps) & (i * ref_fps < end * fps)).tolist()


def test_vectorised_brute_force_is_the_literal_loop():
    literal = [i for i in range(400) if i * 29.97 >= 80 * 30.0 and i * 29.97 < 300 * 30.0]
    assert _brute(80, 300, 29.97, 30.0, 400) == literal and literal


@pytest.mark.parametrize("ref_fps,fps", [(29.97, 30.0), (30.0, 29.97), (25.0, 29.97), (29.97, 25.0), (59.94, 30.0),
                                         (30.0, 59.94), (29.97, 30000 / 1001), (23.97, 24.0), (30.0, 30.0), (50, 25)])
def test_replay_frame_range_equals_the_reference_loop(ref_fps, fps):
    rng = random.Random(0)
    windows = [(0, 128), (80, 300), (1000, 2024), (0, 0), (7, 8)] + [
        (s, s + rng.randint(1, 1100)) for s in (rng.randint(0, 20000) for _ in range(200))]
    for start, end in windows:
        for n in (int(end * fps / ref_fps) + 50, int((start + end) / 2 * fps / ref_fps)):
            got = replay_frame_range(start, end, ref_fps, fps, n)
            assert list(got) == _brute(start, end, ref_fps, fps, n), (start, end, ref_fps, fps, n)


def test_replay_frame_range_known_values():
    # 29.97 reference, 30 fps download: 10 s at 29.97 fps is 300.3 frames at 30 fps.
    assert replay_frame_range(0, 2997, 29.97, 30.0, 10_000) == range(0, 3000)
    # 59.94 reference onto a 30 fps download keeps about every other frame's time span.
    r = replay_frame_range(120, 360, 59.94, 30.0, 10_000)
    assert r.start == 61 and len(r) == 120
    # The video ends inside the window.
    assert replay_frame_range(100, 400, 25.0, 25.0, 250) == range(100, 250)
    assert replay_frame_range(300, 400, 25.0, 25.0, 250) == range(250, 250)


def test_replay_frame_range_rejects_bad_input():
    with pytest.raises(ValueError, match="fps"):
        replay_frame_range(0, 10, 0, 30, 100)
    with pytest.raises(ValueError, match="start"):
        replay_frame_range(10, 5, 30, 30, 100)


def test_replay_box_rescales_like_load_videos():
    ref = Box.from_ltrb_string("1053-109-1641-697")  # a 1920x1080 reference row
    assert replay_box(ref, 1920, 1080, 1280, 720) == Box(702, 72, 1094, 464)
    assert replay_box(ref, 1920, 1080, 640, 360) == Box(351, 36, 547, 232)
    assert replay_box(ref, 1920, 1080, 1920, 1080) == ref
    # int() truncates: 697 / 1.5 = 464.67 -> 464, not 465.
    assert replay_box(Box(0, 0, 3, 697), 1920, 1080, 1280, 720).y1 == 464
    # x uses the width ratio and y the height ratio (640x480 reference onto a 854x480 download).
    assert replay_box(Box(100, 100, 400, 400), 640, 480, 854, 480) == Box(133, 100, 533, 400)


# -- square / upper body / chunk boxes ---------------------------------------------------------------------------

def _reference_aspect_preserved(box: Box, a: float) -> Box:
    """video-preprocessing's compute_aspect_preserved_bbox, without its int truncation."""
    w, h = box.width, box.height
    w_inc = max(a, ((1 + 2 * a) * h - w) / (2 * w))
    h_inc = max(a, ((1 + 2 * a) * w - h) / (2 * h))
    return Box(box.x0 - w_inc * w, box.y0 - h_inc * h, box.x1 + w_inc * w, box.y1 + h_inc * h)


def test_square_box_matches_the_reference_growth():
    assert square_box(Box(0, 0, 100, 200), 0.05).to_list() == pytest.approx([-60, -10, 160, 210])
    rng = random.Random(1)
    for _ in range(200):
        x0, y0 = rng.uniform(0, 500), rng.uniform(0, 500)
        b = Box(x0, y0, x0 + rng.uniform(5, 400), y0 + rng.uniform(5, 400))
        a = rng.choice([0.0, 0.05, 0.1, 0.3])
        got, ref = square_box(b, a), _reference_aspect_preserved(b, a)
        assert got.to_list() == pytest.approx(ref.to_list())
        assert got.width == pytest.approx(got.height)
        assert got.width == pytest.approx((1 + 2 * a) * max(b.width, b.height))
        assert got.center == pytest.approx(b.center)


def test_upper_body_box_is_a_square_on_the_head_and_torso():
    person = Box(100, 50, 300, 650)
    ub = upper_body_box(person, side_scale=0.55, top_margin=0.06)
    assert ub.width == pytest.approx(330) and ub.height == pytest.approx(330)
    assert ub.center[0] == pytest.approx(200)
    assert ub.y0 == pytest.approx(50 - 0.06 * 330)
    assert ub.y1 < person.y0 + 0.55 * person.height  # ends around the hips: the legs stay out
    assert upper_body_box(person, 0.5, 0.0).y0 == 50


def test_consistent_chunk_box_median_ignores_an_outlier_union_covers_all():
    boxes = [Box(100 + i, 100, 200 + i, 300) for i in range(9)] + [Box(600, 600, 700, 700)]
    med = consistent_chunk_box(boxes, "median")
    assert med.width == pytest.approx(med.height) == pytest.approx(200)
    assert med.center == pytest.approx((154.5, 200))
    uni = consistent_chunk_box(boxes, "union")
    assert uni.width == pytest.approx(uni.height)
    assert all(uni.x0 <= b.x0 and uni.y0 <= b.y0 and uni.x1 >= b.x1 and uni.y1 >= b.y1 for b in boxes)
    with pytest.raises(ValueError, match="at least one"):
        consistent_chunk_box([])
    with pytest.raises(ValueError, match="method"):
        consistent_chunk_box(boxes, "mean")


# -- cropping ------------------------------------------------------------------------------------------------------

FRAME = (np.arange(10 * 12 * 3) % 251 + 1).astype(np.uint8).reshape(10, 12, 3)  # never 0: padding shows


def test_crop_inside_is_the_same_for_every_policy():
    box = Box(2, 3, 8, 9)
    for policy in ("clip", "pad", "reject"):
        np.testing.assert_array_equal(crop_frame(FRAME, box, policy), FRAME[3:9, 2:8])
    assert box_inside(box, 12, 10)


def test_crop_policies_when_the_box_leaves_the_frame():
    box = Box(-2, 6, 6, 14)  # 8x8, sticks out left and bottom
    assert not box_inside(box, 12, 10)
    clipped = crop_frame(FRAME, box, "clip")
    np.testing.assert_array_equal(clipped, FRAME[6:10, 0:6])  # clamped, not wrapped to the far edge
    padded = crop_frame(FRAME, box, "pad")
    assert padded.shape == (8, 8, 3)
    np.testing.assert_array_equal(padded[0:4, 2:8], FRAME[6:10, 0:6])
    assert not padded[:, :2].any() and not padded[4:].any()
    edge = crop_frame(FRAME, box, "pad", pad_mode="edge")
    np.testing.assert_array_equal(edge[0:4, 0], FRAME[6:10, 0])
    np.testing.assert_array_equal(edge[7, 2:8], FRAME[9, 0:6])
    with pytest.raises(OutOfFrameError, match="reject"):
        crop_frame(FRAME, box, "reject")
    for policy in ("clip", "pad", "reject"):
        with pytest.raises(OutOfFrameError, match="does not intersect"):
            crop_frame(FRAME, Box(20, 20, 30, 30), policy)
    with pytest.raises(ValueError, match="policy"):
        crop_frame(FRAME, box, "wrap")


# -- resizing ------------------------------------------------------------------------------------------------------

def test_resize_downscale_is_antialiased_and_close_to_skimage():
    photo = skimage.data.astronaut()
    t0 = time.perf_counter()
    ours = resize_antialiased(photo, (256, 256))
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = img_as_ubyte(skimage.transform.resize(photo, (256, 256), anti_aliasing=True))
    t_ref = time.perf_counter() - t0
    assert ours.dtype == np.uint8 and ours.shape == (256, 256, 3)
    assert np.abs(ours.astype(int) - ref.astype(int)).mean() < 3.0
    assert t_ours < t_ref
    # A one-pixel checkerboard must come out grey, not as a moire of black and white.
    checker = ((np.indices((512, 512)).sum(0) % 2) * 255).astype(np.uint8)
    small = resize_antialiased(checker, 100)
    assert small.shape == (100, 100) and small.std() < 10 and abs(small.mean() - 127.5) < 5


def test_resize_upscale_and_float_input():
    up = resize_antialiased(np.full((50, 40, 3), 77, np.uint8), (200, 160))
    assert up.shape == (200, 160, 3) and up.dtype == np.uint8 and (up == 77).all()
    f = resize_antialiased(np.ones((20, 20, 3), np.float32) * 0.5, 10)
    assert f.dtype == np.uint8 and (f == 128).all()
    with pytest.raises(TypeError, match="int64"):
        resize_antialiased(np.zeros((4, 4), np.int64), 2)
