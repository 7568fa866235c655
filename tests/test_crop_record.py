"""The box recorded for a chunk is the box its frames were cut with (issue 10, item 7).

The crop uses `Box.as_ints()` (corner rounded, then the size rounded, so a square stays square); a record that
rounds each corner on its own can be one pixel off: a 240x241 record for a 240x240 crop. Here every recorded box
is checked by cutting the source frames again with it: the bytes must be the stored ones.
"""
from __future__ import annotations

import numpy as np
import pytest

from assets.boxes import Box, crop_frame, square_box
from assets.clips.geometry import resize_antialiased, upper_body_box
from assets.clips.streaming_chunker import PersonSample
from assets.clips.video_pass import discover_pass
from assets.dataset_config import load_dataset_config
from storage.frames import encode_frame

W, H = 320, 240


def _frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    base = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    return [np.roll(base, 3 * i, axis=1) for i in range(n)]  # every frame different, all deterministic


def _recut(frame: np.ndarray, box: list[int], cfg) -> bytes:
    crop = crop_frame(frame, Box.from_list(box), cfg.crop.out_of_frame)
    return encode_frame(resize_antialiased(crop, cfg.crop.size), cfg.crop.frame_format, cfg.crop.jpeg_quality)


def _run(cfg, person: Box, n_frames: int):
    frames = _frames(n_frames)
    out: dict[str, tuple[list[bytes], dict]] = {}

    def sink(key, data, meta):
        out[key] = (data, meta)

    result = discover_pass(iter(frames), "vid", cfg, lambda f: [PersonSample(-1, person, True, True)],
                           lambda i, f: False, sink, W, H)
    return frames, result, out


# Sample: the square around this person is 240.24 px with corners at x 20.18 / 260.42, y 0.38 / 240.62; rounding
# each corner gives 240 x 241, the crop is 240 x 240. TED: the upper-body square at x 98.18 / 222.62 rounds to a
# 125-px-wide record for a 124-px crop.
@pytest.mark.parametrize("dataset, person", [("sample", Box(100.3, 20.4, 180.3, 220.6)),
                                             ("ted", Box(80.3, 11.05, 240.5, 237.3))])
def test_every_recorded_box_is_the_cropped_one(dataset, person):
    cfg = load_dataset_config(dataset)
    if dataset == "ted":  # the TED rules at this frame size: small boxes, no upscaling limit, short chunks
        cfg = cfg.model_copy(update={
            "chunks": cfg.chunks.model_copy(update={"min_box_size": 100, "min_frames": 8}),
            "crop": cfg.crop.model_copy(update={"min_crop_side": 16, "size": 64}),
            "detect": cfg.detect.model_copy(update={"stride": 5})})
    expected = (upper_body_box(person, cfg.crop.upper_body_scale) if cfg.crop.style == "upper_body"
                else square_box(person, cfg.crop.increase))
    assert [round(v) for v in expected.to_list()] != list(expected.as_ints())  # the case that went wrong
    frames, result, out = _run(cfg, person, 40)
    assert out, result.rejected
    for key, (data, meta) in out.items():
        box = meta["box"]
        assert box == list(expected.as_ints()), (key, box)
        assert box[2] - box[0] == box[3] - box[1]  # square, like the crop
        for k, stored in enumerate(data):
            assert _recut(frames[meta["src_start"] + k], box, cfg) == stored, (key, k)
