"""storage.video against the real bundled ffmpeg: probe, streamed decode, atomic encode, damaged files."""
from __future__ import annotations

import os
import subprocess
from fractions import Fraction

import numpy as np
import psutil
import pytest

from storage.video import (
    CorruptVideoError,
    VideoWriter,
    exact_fps,
    ffmpeg_exe,
    iter_frames,
    probe,
    use_ffmpeg,
)
from storage.settings import resolve_settings

W, H, FPS, N = 160, 120, 25, 50


def _lavfi(args: list[str]) -> bytes:
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
           "-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate={FPS}", "-frames:v", str(N), *args]
    return subprocess.run(cmd, check=True, capture_output=True).stdout


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("clip") / "testsrc2.mp4")
    _lavfi(["-c:v", "libx264", "-crf", "10", "-pix_fmt", "yuv420p", "-movflags", "+faststart", path])
    return path


@pytest.fixture(scope="module")
def reference_frames() -> np.ndarray:
    """The same test pattern straight from the generator, never encoded."""
    raw = _lavfi(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
    return np.frombuffer(raw, np.uint8).reshape(N, H, W, 3)


def _gradient(i: int, w: int, h: int) -> np.ndarray:
    """A smooth, frame-specific image: survives lossy coding with small error and tells frames apart."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 255 // w + 3 * i) % 256, (y * 255 // h) + 0 * x, np.full_like(x, (7 * i) % 256)],
                    axis=-1).astype(np.uint8)


def test_probe_reads_the_header(clip):
    info = probe(clip)
    assert (info.width, info.height, info.fps, info.codec) == (W, H, 25.0, "h264")
    assert info.duration == pytest.approx(N / FPS, abs=0.05)
    assert info.n_frames is None
    assert probe(clip, count_frames=True).n_frames == N


def test_decode_gives_every_frame_with_the_right_pixels(clip, reference_frames):
    frames = list(iter_frames(clip))
    assert len(frames) == N
    assert all(f.shape == (H, W, 3) and f.dtype == np.uint8 for f in frames)
    for i in (0, N // 2, N - 1):
        err = np.abs(frames[i].astype(int) - reference_frames[i]).mean()
        assert err < 3.0, f"frame {i}: mean abs error {err:.2f}"
    # distinct frames, in order: each decoded frame is closest to its own reference
    assert np.abs(frames[1].astype(int) - reference_frames[0]).mean() > 2 * np.abs(
        frames[1].astype(int) - reference_frames[1]).mean()
    frames[0][0, 0] = 0  # writable: consumers may draw on frames


def test_decode_scaled_and_resampled(clip):
    small = list(iter_frames(clip, size=(80, 60)))
    assert len(small) == N and small[0].shape == (60, 80, 3)
    keep_aspect = next(iter_frames(clip, size=(64, -1)))
    assert keep_aspect.shape == (48, 64, 3)
    assert len(list(iter_frames(clip, fps=12.5))) == N // 2


@pytest.mark.parametrize("fps, exact", [(29.97, Fraction(30000, 1001)), (25, Fraction(25))])
def test_writer_round_trip_keeps_fps_and_frames(tmp_path, fps, exact):
    path = tmp_path / "out" / "clip.mp4"
    n = 37
    with VideoWriter(path, fps, size=(96, 64), crf=12) as writer:
        for i in range(n):
            writer.write(_gradient(i, 96, 64))
    assert sorted(os.listdir(path.parent)) == ["clip.mp4"]  # no temp file left beside it
    info = probe(path, count_frames=True)
    assert info.fps == float(exact) and info.n_frames == n and (info.width, info.height) == (96, 64)
    decoded = list(iter_frames(path))
    assert len(decoded) == n
    for i in (0, n - 1):
        assert np.abs(decoded[i].astype(int) - _gradient(i, 96, 64)).mean() < 3


def test_writer_publishes_nothing_when_the_block_fails(tmp_path):
    path = tmp_path / "clip.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(path, 25, size=(32, 32)) as writer:
            writer.write(np.zeros((32, 32, 3), np.uint8))
            ffmpeg_pid = writer._proc.pid
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    assert ffmpeg_pid not in [c.pid for c in psutil.Process().children()]


def test_writer_rejects_bad_sizes_and_frames(tmp_path):
    with pytest.raises(ValueError, match="odd side"):
        VideoWriter(tmp_path / "odd.mp4", 25, size=(33, 32))
    with pytest.raises(ValueError, match=r"frame 0 is uint8\(32, 30, 3\)"):
        with VideoWriter(tmp_path / "bad.mp4", 25, size=(32, 32)) as writer:
            writer.write(np.zeros((32, 30, 3), np.uint8))
    assert os.listdir(tmp_path) == []


def test_truncated_file_yields_good_frames_then_names_the_file(tmp_path, clip):
    data = open(clip, "rb").read()
    bad = tmp_path / "truncated.mp4"
    bad.write_bytes(data[: len(data) * 6 // 10])  # the index (moov first) survives, the tail does not
    got = []
    with pytest.raises(CorruptVideoError, match="truncated.mp4") as err:
        for frame in iter_frames(bad):
            got.append(frame)
    assert 0 < len(got) < N
    assert err.value.path == str(bad)
    with pytest.raises(CorruptVideoError, match="truncated.mp4"):
        probe(bad, count_frames=True)


def test_truncated_to_garbage_and_non_video_files(tmp_path, clip):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    head = tmp_path / "head.mp4"
    head.write_bytes(open(clip, "rb").read()[:200])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for path in (text, head, empty, tmp_path / "missing.mp4"):
        with pytest.raises(CorruptVideoError, match=path.name):
            probe(path)
        with pytest.raises(CorruptVideoError, match=path.name):
            next(iter_frames(path))


def test_closing_the_generator_early_kills_and_reaps_ffmpeg(clip):
    before = {c.pid for c in psutil.Process().children()}
    frames = iter_frames(clip)
    next(frames)
    spawned = [c for c in psutil.Process().children() if c.pid not in before]
    assert len(spawned) == 1 and "ffmpeg" in spawned[0].name()
    frames.close()
    assert spawned[0].pid not in {c.pid for c in psutil.Process().children()}  # gone, not a zombie
    assert not psutil.pid_exists(spawned[0].pid) or spawned[0].status() != psutil.STATUS_ZOMBIE


def test_exact_fps():
    assert exact_fps(29.97) == Fraction(30000, 1001)
    assert exact_fps(23.976) == Fraction(24000, 1001)
    assert exact_fps(59.94) == Fraction(60000, 1001)
    assert exact_fps(25) == 25 and exact_fps("30000/1001") == Fraction(30000, 1001)
    assert exact_fps(12.5) == Fraction(25, 2)
    with pytest.raises(ValueError):
        exact_fps(0)


def test_ffmpeg_exe_is_the_settings_choice():
    assert os.access(ffmpeg_exe(), os.X_OK)
    chosen = resolve_settings({"MOTIONPIPE_FFMPEG": "/opt/custom/ffmpeg"}).ffmpeg
    try:
        use_ffmpeg(chosen)
        assert ffmpeg_exe() == "/opt/custom/ffmpeg"
    finally:
        use_ffmpeg(None)
    assert os.access(ffmpeg_exe(), os.X_OK)


def test_rotated_video_is_probed_and_decoded_upright(tmp_path, clip):
    rotated = tmp_path / "rotated.mp4"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-display_rotation", "90",
                    "-i", clip, "-c", "copy", str(rotated)], check=True)
    info = probe(rotated)
    assert (info.width, info.height) == (H, W)
    assert next(iter_frames(rotated)).shape == (W, H, 3)
