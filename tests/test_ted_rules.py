"""TED's selection and chunking rules (MRAA supplement Sec. 5), driven through the real video pass with
controlled detections: person box >= 384 px tall, upper body visible, >= 64 frames, no cut inside, presenter near
the start position, one upper-body square per chunk, 384x384 output."""
from __future__ import annotations

import numpy as np
import pytest

from assets.boxes import Box
from assets.clips.geometry import upper_body_box
from assets.clips.streaming_chunker import PersonSample
from assets.clips.video_pass import discover_pass
from assets.dataset_config import load_dataset_config
from storage.frames import decode_frame

TED = load_dataset_config("ted")
W, H = 1280, 720


def run(n_frames, person_at, cuts=()):
    frames = (np.full((H, W, 3), i % 251, np.uint8) for i in range(n_frames))
    out = {}

    def sink(key, data, meta):
        out[key] = (data, meta)

    result = discover_pass(frames, "TEDtalk0001", TED, lambda f: [person_at(next(counter))],
                           lambda i, f: i in cuts, sink, W, H)
    return result, out


counter = None


@pytest.fixture(autouse=True)
def frame_counter():
    """The detect callback sees frames in order; count the sampled ones to know which frame it is."""
    global counter
    stride = TED.detect.stride
    counter = iter(range(0, 10**6, stride))
    yield


PRESENTER = Box(440, 60, 840, 700)  # 640 px tall


def sample(box, upper=True):
    return lambda i: PersonSample(i, box, upper, False)


def test_a_steady_presenter_makes_one_upper_body_chunk_at_384():
    result, out = run(200, sample(PRESENTER))
    assert [(a["start"], a["end"]) for a in result.accepted] == [(0, 200)]
    data, meta = out["TEDtalk0001#000000#000200"]
    assert len(data) == 200 and decode_frame(data[0]).shape == (384, 384, 3)
    expected = upper_body_box(PRESENTER, TED.crop.upper_body_scale)
    assert meta["box"] == list(expected.as_ints())  # the box the frames were cut with
    assert expected.width == expected.height  # square, fixed for the chunk: consistent scale


def test_small_people_and_hidden_upper_bodies_give_no_chunk():
    small = Box(600, 300, 700, 650)  # 350 px tall < 384
    assert run(200, sample(small))[0].accepted == []
    assert run(200, sample(PRESENTER, upper=False))[0].accepted == []


def test_cuts_split_and_pieces_under_64_frames_are_dropped():
    cut = TED.detect.stride + 10  # inside the second stride: detection is forced on the cut frame
    assert cut < TED.chunks.min_frames
    result, _ = run(200, sample(PRESENTER), cuts={cut})
    assert [(a["start"], a["end"]) for a in result.accepted] == [(cut, 200)]
    assert result.rejected[0]["end"] == cut and "< 64" in result.rejected[0]["reason"]


def test_presenter_moving_away_closes_the_chunk():
    def walking(i):
        return PersonSample(i, PRESENTER.translated(3 * i, 0), True, False)  # 3 px per frame to the right
    result, _ = run(300, walking)
    first = result.accepted[0]
    moved = PRESENTER.translated(3 * first["end"], 0)
    assert moved.iou(PRESENTER) < TED.chunks.iou_with_start
    assert PRESENTER.translated(3 * (first["end"] - 1), 0).iou(PRESENTER) >= TED.chunks.iou_with_start
