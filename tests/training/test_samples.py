"""Animation samples: deterministic pairs, and MP4/GIF/contact-sheet files with the right frames and size."""
import numpy as np
import pytest
from PIL import Image

from storage.video import iter_frames, probe
from training.evaluation.samples import (HEADER_PX, SamplePair, Stream, choose_pairs, contact_sheet, sample_streams,
                                         write_sample)

KEYS = [f"vid{v}#{s:06d}#{s + 64:06d}" for v in "ABCD" for s in (0, 100)]


def test_pairs_are_deterministic_cross_video_and_order_free():
    a = choose_pairs("taichi", KEYS, n=4, seed=0)
    assert a == choose_pairs("taichi", list(reversed(KEYS)), n=4, seed=0)
    assert len(a) == 4 and len({p.source for p in a}) == 4
    assert all(p.source.split("#")[0] != p.driving.split("#")[0] for p in a)
    assert a != choose_pairs("taichi", KEYS, n=4, seed=1) or a != choose_pairs("ted", KEYS, n=4, seed=0)
    assert a[0].name.count("--") == 1 and "#" not in a[0].name
    # one video only: pairs within it; more pairs asked than distinct sources: no repeats
    one = choose_pairs("sample", ["v#000000#000010", "v#000010#000020"], n=3)
    assert len(one) == 3 and len(set(one)) == 3
    with pytest.raises(ValueError, match="not a chunk key"):
        choose_pairs("taichi", ["bad key"])
    with pytest.raises(ValueError, match="no test chunk keys"):
        choose_pairs("taichi", [])


def _moving_square(n, h, w, colour, phase=0):
    frames = np.full((n, h, w, 3), 40, np.uint8)
    for t in range(n):
        x = (t * 3 + phase) % (w - 12)
        frames[t, 20:32, x:x + 12] = colour
    return frames


@pytest.fixture
def streams():
    n, h, w = 9, 64, 64
    source = np.zeros((h, w, 3), np.float32) + 0.5
    driving = _moving_square(n, h, w, (255, 0, 0))
    outputs = {"fomm": {"relative": _moving_square(n, h, w, (0, 255, 0))},
               "mraa": {"avd": _moving_square(n, h, w, (0, 0, 255), 5),
                        "relative": _moving_square(n, h, w, (255, 255, 0), 2)}}
    kp = np.array([[-0.5, -0.5], [0.5, 0.5]])
    overlays = {"source": kp, "mraa/avd": np.repeat(kp[None], n, axis=0)}
    return sample_streams(source, driving, outputs, overlays)


def test_columns_and_overlays(streams):
    assert [s.label for s in streams] == ["source", "driving", "fomm/relative", "mraa/relative", "mraa/avd"]
    src = streams[0].frame(3)
    assert src.shape == (64, 64, 3)
    assert not np.array_equal(src[16, 16], [128, 128, 128])  # keypoint drawn at (-0.5, -0.5) -> pixel ~(16, 16)
    assert np.array_equal(src[40, 5], [128, 128, 128])
    with pytest.raises(ValueError, match="mraa/avd: 3 frames, but the driving chunk has 9"):
        sample_streams(streams[0].frames[0], streams[1].frames, {"mraa": {"avd": streams[1].frames[:3]}})
    with pytest.raises(ValueError, match="unknown columns"):
        sample_streams(streams[0].frames[0], streams[1].frames, {}, {"tpsmm/avd": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="keypoints must be"):
        Stream("x", streams[1].frames, np.zeros((3, 3)))


def test_write_sample_files(streams, tmp_path):
    files = write_sample(streams, str(tmp_path / "samples"), "pair0", fps=10, sheet_rows=3)
    assert files.frames == 9
    info = probe(files.mp4, count_frames=True)
    assert info.n_frames == 9 and (info.width, info.height) == (5 * 64, 64 + HEADER_PX)
    first = next(iter_frames(files.mp4))
    assert first[HEADER_PX:, 64:128, 0].max() > 200  # the driving column's red square survived encoding

    with Image.open(files.gif) as gif:
        assert gif.n_frames == 9 and gif.info.get("loop") == 0

    with Image.open(files.png) as sheet:
        assert sheet.size == (5 * 64, HEADER_PX + 3 * 64)
    assert contact_sheet(streams, rows=50).shape == (HEADER_PX + 9 * 64, 5 * 64, 3)  # at most T rows
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["pair0.gif", "pair0.mp4", "pair0.png"]


def test_sample_pair_name():
    assert SamplePair("abc#000010#000074", "xyz#000000#000064").name == "abc_000010--xyz_000000"
