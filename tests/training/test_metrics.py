"""L1, AKD, MKR and AED on hand-computed cases, as pose-evaluation and the repos' reconstruction mode compute them."""

import json
import math

import numpy as np
import pytest
import torch

from training.metrics import (Embeddings, ExtractorMismatch, FrameCountMismatch, Keypoints, aed, aed_per_frame, akd,
                              akd_per_frame, frame_l1, l1, l1_from_frames, metric_label, mkr, mkr_per_frame,
                              pair_videos)

EXT = "test-kp4"


def kp(xy, present, extractor=EXT):
    return Keypoints(xy=np.asarray(xy, float), present=np.asarray(present, bool), extractor=extractor)


# --- AKD -----------------------------------------------------------------------------------------

def test_akd_is_mean_per_coordinate_abs_difference_in_pixels():
    real = kp([[[10, 20], [30, 40], [50, 60]]], [[1, 1, 1]])
    # offsets (dx, dy): (3, 4), (-1, 0), (0, -2) -> |.| = 3, 4, 1, 0, 0, 2 -> mean 10 / 6
    gen = kp([[[13, 24], [29, 40], [50, 58]]], [[1, 1, 1]])
    got = akd_per_frame(real, gen)
    assert got.shape == (1,)
    assert got[0] == pytest.approx(10 / 6)
    # not the Euclidean distance (5 + 1 + 2) / 3
    assert got[0] != pytest.approx(8 / 3)


def test_akd_uses_only_joints_present_in_both_frames():
    real = kp([[[0, 0], [10, 10], [100, 100], [5, 5]]], [[1, 1, 0, 1]])
    gen = kp([[[2, 2], [999, 999], [0, 0], [5, 9]]], [[1, 0, 1, 1]])
    # joint 1 missing in generated, joint 2 missing in real: only joints 0 and 3 count: |2|,|2|,|0|,|4| -> 2
    assert akd_per_frame(real, gen)[0] == pytest.approx(2.0)


def test_akd_frame_without_common_joint_is_skipped_in_pooling():
    real = kp([[[0, 0], [0, 0]], [[0, 0], [0, 0]], [[0, 0], [0, 0]]], [[1, 0], [1, 1], [0, 0]])
    gen = kp([[[9, 9], [4, 4]], [[1, 3], [3, 1]], [[5, 5], [5, 5]]], [[0, 1], [1, 1], [1, 1]])
    per_frame = akd_per_frame(real, gen)
    assert math.isnan(per_frame[0]) and math.isnan(per_frame[2])
    assert per_frame[1] == pytest.approx(2.0)
    res = akd({"v": (real, gen)})
    assert res.value == pytest.approx(2.0)
    assert (res.frames_counted, res.frames_total) == (1, 3)
    assert res.label == f"AKD[{EXT}]"
    nothing = akd({"v": (kp(np.zeros((1, 2, 2)), [[0, 0]]), kp(np.zeros((1, 2, 2)), [[1, 1]]))})
    assert math.isnan(nothing.value) and nothing.summary()["value"] is None
    assert json.loads(json.dumps(res.summary()))["label"] == f"AKD[{EXT}]"


def test_akd_pools_over_frames_not_videos():
    # video a: one frame with AKD 1; video b: three frames with AKD 3
    a_real, a_gen = kp([[[0, 0]]], [[1]]), kp([[[1, 1]]], [[1]])
    b_real, b_gen = kp(np.zeros((3, 1, 2)), np.ones((3, 1))), kp(np.full((3, 1, 2), 3.0), np.ones((3, 1)))
    res = akd({"a": (a_real, a_gen), "b": (b_real, b_gen)})
    assert res.value == pytest.approx((1 + 3 * 3) / 4)
    assert res.per_video == {"a": pytest.approx(1.0), "b": pytest.approx(3.0)}
    assert res.per_video_mean == pytest.approx(2.0)


# --- MKR -----------------------------------------------------------------------------------------

def test_mkr_counts_only_joints_present_in_the_real_frame():
    real = kp(np.zeros((1, 5, 2)), [[1, 1, 1, 1, 0]])
    gen = kp(np.zeros((1, 5, 2)), [[1, 0, 0, 1, 1]])  # loses 2 of the 4 real joints; joint 4 extra: ignored
    assert mkr_per_frame(real, gen)[0] == pytest.approx(0.5)


def test_mkr_skips_frames_where_the_real_frame_has_no_joint():
    real = kp(np.zeros((3, 2, 2)), [[0, 0], [1, 1], [1, 0]])
    gen = kp(np.zeros((3, 2, 2)), [[0, 0], [0, 1], [0, 0]])
    per_frame = mkr_per_frame(real, gen)
    assert math.isnan(per_frame[0])
    assert per_frame[1:].tolist() == [0.5, 1.0]
    res = mkr({"v": (real, gen)})
    assert res.value == pytest.approx(0.75)
    assert res.frames_counted == 2
    assert res.label == f"MKR[{EXT}]"


def test_mkr_is_zero_when_nothing_is_lost_even_if_positions_differ():
    real = kp([[[1, 1], [2, 2]]], [[1, 1]])
    gen = kp([[[50, 50], [60, 60]]], [[1, 1]])
    assert mkr_per_frame(real, gen)[0] == 0.0


def test_pose_evaluation_sentinel_round_trip():
    values = np.array([[[10.0, 20.0], [-1.0, -1.0], [0.0, 5.0]]])
    k = Keypoints.from_sentinel(values, extractor="openpose-coco18")
    assert k.present.tolist() == [[True, False, True]]
    assert np.array_equal(k.to_sentinel(), values)


# --- AED -----------------------------------------------------------------------------------------

def test_aed_is_the_squared_euclidean_distance():
    real = Embeddings(np.array([[0.0, 0.0], [1.0, 1.0]]), "test-id")
    gen = Embeddings(np.array([[3.0, 4.0], [1.0, 1.0]]), "test-id")
    assert aed_per_frame(real, gen).tolist() == [25.0, 0.0]  # 25, not 5
    res = aed({"v": (real, gen)})
    assert res.value == pytest.approx(12.5)
    assert res.label == "AED[test-id]"


def test_aed_pooled_and_per_video():
    e = lambda rows: Embeddings(np.asarray(rows, float), "test-id")  # noqa: E731
    res = aed({"a": (e([[0.0]]), e([[2.0]])), "b": (e([[0.0], [0.0]]), e([[1.0], [1.0]]))})
    assert res.value == pytest.approx((4 + 1 + 1) / 3)
    assert res.per_video_mean == pytest.approx((4 + 1) / 2)


# --- L1 ------------------------------------------------------------------------------------------

def test_l1_per_frame_on_unit_range():
    real = np.zeros((2, 4, 4, 3), np.uint8)
    gen = np.zeros((2, 4, 4, 3), np.float32)
    gen[0] = 0.5  # frame 0: |0.5 - 0| everywhere
    gen[1, :2] = 1.0  # frame 1: half the pixels off by 1
    assert frame_l1(real, gen).tolist() == pytest.approx([0.5, 0.5])
    real255 = np.full((1, 2, 2, 3), 255, np.uint8)
    assert frame_l1(real255, np.full((1, 2, 2, 3), 0.75))[0] == pytest.approx(0.25)


def test_l1_pooled_over_all_frames_vs_per_video_mean():
    # video a: 1 frame at L1 0.1; video b: 3 frames at L1 0.5 -> pooled 0.4, Monkey-Net's per-video mean 0.3
    a_real, a_gen = np.zeros((1, 2, 2, 3)), np.full((1, 2, 2, 3), 0.1)
    b_real, b_gen = np.zeros((3, 2, 2, 3)), np.full((3, 2, 2, 3), 0.5)
    res = l1({"a": (a_real, a_gen), "b": (b_real, b_gen)})
    assert res.label == "L1" and res.extractor is None
    assert res.value == pytest.approx(0.4)
    assert res.per_video_mean == pytest.approx(0.3)
    assert res.frames_total == 4


def test_l1_on_tensors_matches_arrays_and_stays_on_device():
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (3, 3, 8, 8), dtype=np.uint8)
    gen = rng.random((3, 3, 8, 8)).astype(np.float32)
    expected = frame_l1(real, gen)
    got = frame_l1(torch.from_numpy(real), torch.from_numpy(gen))
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    assert np.allclose(got.numpy(), expected, atol=1e-6)
    assert l1_from_frames({"v": got}).value == pytest.approx(expected.mean(), abs=1e-6)


# --- bad inputs ----------------------------------------------------------------------------------

def test_generated_video_with_another_frame_count_is_a_clear_error():
    with pytest.raises(FrameCountMismatch, match=r"'clip7'.*generated has 2 frames.*real chunk has 3"):
        l1({"clip7": (np.zeros((3, 2, 2, 3)), np.zeros((2, 2, 2, 3)))})
    with pytest.raises(FrameCountMismatch, match="clip8"):
        akd({"clip8": (kp(np.zeros((3, 1, 2)), np.ones((3, 1))), kp(np.zeros((4, 1, 2)), np.ones((4, 1))))})
    with pytest.raises(FrameCountMismatch, match="clip9"):
        aed({"clip9": (Embeddings(np.zeros((2, 4)), "x"), Embeddings(np.zeros((1, 4)), "x"))})


def test_outputs_of_different_extractors_never_mix():
    with pytest.raises(ExtractorMismatch, match="mediapipe-pose33.*openpose-coco18"):
        akd_per_frame(kp(np.zeros((1, 1, 2)), [[1]], "mediapipe-pose33"),
                      kp(np.zeros((1, 1, 2)), [[1]], "openpose-coco18"))
    same = kp(np.zeros((1, 1, 2)), [[1]], "a")
    other = kp(np.zeros((1, 1, 2)), [[1]], "b")
    with pytest.raises(ExtractorMismatch, match="several extractors"):
        akd({"v1": (same, same), "v2": (other, other)})
    with pytest.raises(ExtractorMismatch):
        aed_per_frame(Embeddings(np.zeros((1, 2)), "a"), Embeddings(np.zeros((1, 2)), "b"))


def test_pair_videos_names_unmatched_videos():
    assert pair_videos({"a": 1, "b": 2}, {"b": 3, "a": 4}) == {"a": (1, 4), "b": (2, 3)}
    with pytest.raises(ValueError, match=r"missing generated for \['b'\].*no real chunk for \['c'\]"):
        pair_videos({"a": 1, "b": 2}, {"a": 1, "c": 3})


def test_metric_labels():
    assert metric_label("AKD", "openpose-coco18") == "AKD[openpose-coco18]"
    assert metric_label("L1", None) == "L1"
