"""The offline sample videos: deterministic, detectable by the offline pose model, ground truth that holds after
encoding, and downloadable by yt-dlp from the loopback server and from file:// URLs."""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import urllib.error
import urllib.request

import numpy as np
import pytest
import yt_dlp

from assets.ingest.http_server import serve_directory
from assets.ingest.sample_source import (
    SampleVideoSpec,
    _background,
    _shots,
    default_sample_specs,
    render_frames,
    sprite_box,
    write_sample_videos,
)
from storage.ids import InvalidIdError
from storage.video import ffmpeg_exe, iter_frames, probe

SPECS = {s.video_id: s for s in default_sample_specs()}


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("samples")
    write_sample_videos(folder)
    return str(folder)


@pytest.fixture(scope="module")
def decoded(sample_dir) -> dict[str, np.ndarray]:
    return {vid: np.stack(list(iter_frames(os.path.join(sample_dir, f"{vid}.mp4")))) for vid in SPECS}


@pytest.fixture(scope="module")
def pose():
    import mediapipe as mp

    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as model:
        yield model


def _has_person(pose, frame: np.ndarray) -> bool:
    return pose.process(np.ascontiguousarray(frame)).pose_landmarks is not None


def _digest(spec: SampleVideoSpec) -> str:
    h = hashlib.sha256()
    for frame in render_frames(spec):
        h.update(frame.tobytes())
    return h.hexdigest()


def test_default_specs_cover_every_kind():
    specs = default_sample_specs()
    kinds = [s.kind for s in specs]
    assert kinds.count("smooth") >= 2 and "walk_off" in kinds and "cuts" in kinds
    for s in specs:
        assert re.fullmatch(r"[A-Za-z0-9_-]+", s.video_id)
        assert 100 <= s.n_frames <= 160 and (s.width, s.height, s.fps) == (320, 240, 25.0)
    cuts = SPECS["sample-cuts"]
    assert cuts.cut_frames == (50, 100) and cuts.person_gone_from is None
    walk = SPECS["sample-walkoff"]
    assert walk.cut_frames == () and 0.5 * walk.n_frames < walk.person_gone_from < walk.n_frames
    assert sprite_box(walk, walk.person_gone_from - 1) is not None
    for s in specs:  # the person is at least 60% of the frame height wherever fully in view
        box = sprite_box(s, 0)
        assert box[3] - box[1] >= 0.6 * s.height


def test_bad_specs_are_rejected():
    with pytest.raises(InvalidIdError):
        SampleVideoSpec("../escape", "smooth", 100, 25.0, 320, 240, 0)
    with pytest.raises(ValueError, match="unknown kind"):
        SampleVideoSpec("ok", "spin", 100, 25.0, 320, 240, 0)
    with pytest.raises(ValueError, match="even"):
        SampleVideoSpec("ok", "smooth", 100, 25.0, 321, 240, 0)


def test_rendering_is_deterministic_and_seeded():
    spec = SampleVideoSpec("det", "smooth", 30, 25.0, 160, 120, seed=7)
    assert _digest(spec) == _digest(dataclasses.replace(spec))
    assert _digest(spec) != _digest(dataclasses.replace(spec, seed=8))
    frames = list(render_frames(spec))
    assert len(frames) == 30 and frames[0].shape == (120, 160, 3) and frames[0].dtype == np.uint8


def test_files_match_their_specs_and_are_reused(sample_dir, decoded, tmp_path):
    for vid, spec in SPECS.items():
        info = probe(os.path.join(sample_dir, f"{vid}.mp4"))
        assert (info.width, info.height, info.fps) == (spec.width, spec.height, spec.fps)
        assert decoded[vid].shape == (spec.n_frames, spec.height, spec.width, 3)
    # encoding at crf 12 stays close to the rendered pixels
    rendered = list(render_frames(SPECS["sample-astro-a"]))
    for i in (0, 60, 124):
        assert np.abs(decoded["sample-astro-a"][i].astype(int) - rendered[i]).mean() < 4.0

    spec = SampleVideoSpec("tiny", "cuts", 30, 25.0, 96, 64, seed=0)
    path = write_sample_videos(tmp_path, [spec])["tiny"]
    stamp = os.stat(path).st_mtime_ns
    assert write_sample_videos(tmp_path, [spec])["tiny"] == path and os.stat(path).st_mtime_ns == stamp
    longer = dataclasses.replace(spec, n_frames=40)  # same id, new spec: redrawn
    write_sample_videos(tmp_path, [longer])
    assert probe(path, count_frames=True).n_frames == 40
    assert sorted(os.listdir(tmp_path)) == ["tiny.json", "tiny.mp4"]


def test_cuts_are_the_largest_frame_differences_exactly_at_the_declared_frames(decoded):
    for vid, spec in SPECS.items():
        frames = decoded[vid].astype(np.int16)
        diff = np.abs(frames[1:] - frames[:-1]).mean(axis=(1, 2, 3))  # diff[i - 1]: frame i vs i - 1
        cut = np.zeros(len(diff), bool)
        cut[[c - 1 for c in spec.cut_frames]] = True
        if spec.cut_frames:
            assert diff[cut].min() > 3 * diff[~cut].max(), (vid, diff[cut], diff[~cut].max())
        else:
            assert diff.max() < 30, vid


def test_mediapipe_pose_finds_the_person_where_the_spec_says(decoded, pose):
    for vid, spec in SPECS.items():
        n = spec.n_frames
        if spec.kind == "walk_off":
            gone = spec.person_gone_from
            present = [0, n // 8, n // 4, round(0.4 * n) - 1]
            absent = [gone, gone + (n - gone) // 2, n - 1]
        else:
            present = sorted({0, n // 4, n // 2, 3 * n // 4, n - 1, *spec.cut_frames, *(c - 1 for c in spec.cut_frames)})
            absent = []
        for i in present:
            box = sprite_box(spec, i)
            assert box is not None and box[2] - box[0] > 0.4 * spec.height, (vid, i)  # well inside the frame
            assert _has_person(pose, decoded[vid][i]), f"{vid}: no person detected in frame {i}"
        for i in absent:
            assert not _has_person(pose, decoded[vid][i]), f"{vid}: person detected in frame {i} after walking off"


def test_walk_off_leaves_only_background():
    spec = SPECS["sample-walkoff"]
    (shot,) = _shots(spec)
    background = _background(shot.background, spec.width, spec.height, spec.seed)
    frames = list(render_frames(spec))
    assert all(np.array_equal(f, background) for f in frames[spec.person_gone_from:])
    assert not np.array_equal(frames[spec.person_gone_from - 1], background)


def _ydl(out_dir, **extra) -> yt_dlp.YoutubeDL:
    return yt_dlp.YoutubeDL({"outtmpl": os.path.join(str(out_dir), "%(id)s.%(ext)s"), "quiet": True,
                             "no_warnings": True, "noprogress": True, "ffmpeg_location": ffmpeg_exe(), **extra})


def test_yt_dlp_downloads_a_sample_byte_identically_over_loopback_and_file_urls(sample_dir, tmp_path):
    source = os.path.join(sample_dir, "sample-cuts.mp4")
    original = open(source, "rb").read()
    with serve_directory(sample_dir) as base:
        with _ydl(tmp_path / "http") as ydl:
            info = ydl.extract_info(f"{base}/sample-cuts.mp4", download=True)
    got = info["requested_downloads"][0]["filepath"]
    assert open(got, "rb").read() == original

    with _ydl(tmp_path / "file", enable_file_urls=True) as ydl:
        info = ydl.extract_info("file://" + source, download=True)
    assert open(info["requested_downloads"][0]["filepath"], "rb").read() == original


def test_server_ranges_and_error_overrides(sample_dir, tmp_path):
    data = open(os.path.join(sample_dir, "sample-cuts.mp4"), "rb").read()
    with serve_directory(sample_dir, {"/gone.mp4": 404, "/busy.mp4": 429}) as base:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base)
        url = f"{base}/sample-cuts.mp4"
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=100-199"})) as r:
            assert r.status == 206 and r.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
            assert r.read() == data[100:200]
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=-10"})) as r:
            assert r.read() == data[-10:]
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD")) as r:
            assert int(r.headers["Content-Length"]) == len(data) and r.read() == b""
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(urllib.request.Request(url, headers={"Range": f"bytes={len(data)}-"}))
        assert err.value.code == 416
        for path, code in (("/gone.mp4", "404"), ("/busy.mp4", "429")):
            with _ydl(tmp_path) as ydl, pytest.raises(yt_dlp.utils.DownloadError, match=code):
                ydl.extract_info(base + path, download=True)
    with pytest.raises(urllib.error.URLError):  # shut down on exit
        urllib.request.urlopen(url, timeout=2)
