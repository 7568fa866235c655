"""The detection rate per video (issue 10, item 3): the pass counts the frames the detector ran on, the frames
where it found somebody and where somebody passed the rules, so "5x person lost" comes with its cause."""
from __future__ import annotations

import numpy as np

from assets.boxes import Box
from assets.clips.detection_stats import DetectionStats
from assets.clips.streaming_chunker import PersonSample
from assets.clips.video_pass import discover_pass
from assets.dataset_config import load_dataset_config

SAMPLE = load_dataset_config("sample")
W, H = 320, 240


def test_a_detector_that_rarely_finds_anybody_is_reported_as_such():
    """The street scene of issue 10: a person in 8 of 159 sampled frames, two of them big enough."""
    stride = SAMPLE.detect.stride
    n_frames = 159 * stride
    seen = {40, 41, 42, 90, 91, 120, 121, 150}  # sampled-frame indices with a person
    big = {90, 91}

    def detect(frame):
        k = int(frame[0, 0, 0])  # the frame carries its sampled index
        if k not in seen:
            return []
        box = Box(100, 20, 180, 230) if k in big else Box(100, 150, 130, 230)
        return [PersonSample(-1, box, True, True, 0.9)]

    frames = (np.full((H, W, 3), (i // stride) % 256, np.uint8) for i in range(n_frames))
    result = discover_pass(frames, "street", SAMPLE, detect, lambda i, f: False, lambda *a: None, W, H)
    s = result.stats
    assert (s.sampled_frames, s.frames_with_person, s.frames_with_valid_person, s.person_boxes) == (159, 8, 2, 8)
    assert s.detection_rate == 8 / 159 and s.valid_person_rate == 2 / 159
    assert result.sampled_frames == list(range(0, n_frames, stride))
    assert "person in 8/159 sampled frames (5.0%)" in s.summary()
    assert result.accepted == []  # 2 sampled frames are 10 frames: under the 32-frame minimum


def test_rates_of_an_empty_video_are_zero_not_an_error():
    empty = DetectionStats()
    assert (empty.detection_rate, empty.valid_person_rate, empty.people_per_frame) == (0.0, 0.0, 0.0)
    assert empty.to_dict()["sampled_frames"] == 0
