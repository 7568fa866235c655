"""One's own videos rebuilt with a rules file through the CLI (real Dagster, yt-dlp, ffmpeg, mediapipe), then the
shards exported to the official repositories' layout and read back as their `frames_dataset.py` reads it."""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pyarrow.parquet as pq
import pytest

from assets.dataset_config import rules_env_var, shipped_config
from assets.rules import apply_rules
from pipelines.cli import main
from storage import paths
from storage.root import DataRoot
from storage.shards import iter_chunks
from storage.video import iter_frames, probe

pytestmark = pytest.mark.slow

RULES = "extends: sample\ncrop: {size: 96, frame_format: png}\nchunks: {min_frames: 32, max_frames: 60}\n"


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(list(argv))
    return rc, out.getvalue()


@pytest.fixture(scope="module")
def rebuilt(sample_videos, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("own-rules")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(tmp / "dagster_home"))
        mp.setenv("MOTIONPIPE_CACHE", str(tmp / "cache"))
        mp.delenv(rules_env_var("sample"), raising=False)
        (tmp / "videos.csv").write_text("video_id,url\n" + "".join(
            f"{v},{Path(sample_videos[v]).as_uri()}\n" for v in ("sample-astro-a", "sample-astro-b")))
        (tmp / "rules.yaml").write_text(RULES)
        rc, out = run_cli("rebuild", "sample", "--manifest", str(tmp / "videos.csv"), "--rules",
                          str(tmp / "rules.yaml"), "--data-root", str(tmp / "data"))
        assert rules_env_var("sample") not in os.environ  # the run's rules do not outlive it
    root = DataRoot(str(tmp / "data"))
    chunks = pq.read_table(paths.catalog_path(root, "sample", "chunks")).to_pylist()
    return rc, out, root, chunks, tmp


def test_own_videos_get_the_rules_files_size_and_lengths(rebuilt):
    rc, out, root, chunks, tmp = rebuilt
    assert rc == 0, out
    assert ("[sample] rules " + str(tmp / "rules.yaml") + ": 96x96 square crops, chunks of at least 32 frames and "
            "at most 60 frames, person box >= 100 px") in out
    assert "check chunk_rules: passed" in out
    expected = apply_rules(shipped_config("sample"), str(tmp / "rules.yaml"))
    assert {c["split"] for c in chunks} == {"train", "test"}
    for c in chunks:
        assert (c["width"], c["height"], c["frame_format"]) == (96, 96, "png")
        assert 32 <= c["n_frames"] <= 60
        assert json.loads(c["provenance"])["rules"] == expected.fingerprint() != shipped_config("sample").fingerprint()


def shard_frames(root: DataRoot) -> dict[str, tuple[dict, list[np.ndarray]]]:
    """Every chunk as plain webdataset decodes it (PIL), independent of the exporter's reader."""
    shards = paths.shards_dir(root, "sample")
    return {key: (meta, frames) for split in ("train", "test")
            for key, meta, frames in iter_chunks(root, shards, split)}


def test_png_export_is_the_official_layout_frame_for_frame(rebuilt):
    _, _, root, chunks, tmp = rebuilt
    dest = tmp / "taichi-png-like"
    rc, out = run_cli("export", "sample", str(dest), "--data-root", root.base)
    assert rc == 0, out
    assert f"{len(chunks)} chunks in {dest}" in out
    for split in ("train", "test"):  # what FramesDataset lists: one <chunk id>.mp4 entry per chunk, by split
        assert sorted(os.listdir(dest / split)) == sorted(f"{c['chunk_id']}.mp4" for c in chunks
                                                          if c["split"] == split)
    stored = shard_frames(root)
    for c in chunks:
        folder = dest / c["split"] / f"{c['chunk_id']}.mp4"
        names = sorted(os.listdir(folder))  # read_video: sorted(os.listdir(name)), then io.imread each
        assert names == [f"{i:07d}.png" for i in range(c["n_frames"])]
        got = np.stack([imageio.imread(folder / n) for n in names])
        np.testing.assert_array_equal(got, np.stack(stored[c["chunk_id"]][1]))

    rc, again = run_cli("export", "sample", str(dest), "--data-root", root.base)
    assert rc == 0 and "0 written" in again and "removed" in again
    assert not any(p.name.startswith(".") for split in ("train", "test") for p in (dest / split).rglob("*"))


def test_mp4_export_reads_back_with_the_projects_reader(rebuilt):
    _, _, root, chunks, tmp = rebuilt
    dest = tmp / "mp4"
    rc, out = run_cli("export", "sample", str(dest), "--format", "mp4", "--data-root", root.base)
    assert rc == 0, out
    stored = shard_frames(root)
    for c in chunks:
        path = dest / c["split"] / f"{c['chunk_id']}.mp4"
        info = probe(path)
        assert (info.width, info.height) == (96, 96) and abs(info.fps - c["fps"]) < 1e-3
        ours = np.stack(list(iter_frames(path)))
        assert ours.shape[0] == c["n_frames"]
        assert np.abs(ours.astype(int) - np.stack(stored[c["chunk_id"]][1]).astype(int)).mean() < 4
        assert len(imageio.mimread(path, memtest=False)) == c["n_frames"]  # the official reader's call


def test_lengths_in_seconds_are_held_at_the_videos_own_fps(rebuilt, tmp_path):
    from assets.clips.video_stage import run_video_pass

    _, _, root, _, tmp = rebuilt
    other = tmp_path / "data"
    for part in ("manifest", "videos/sample-astro-a"):  # the downloaded video and its manifest, nothing built
        src = Path(root.base, "datasets/sample", part)
        shutil.copytree(src, other / "datasets/sample" / part,
                        ignore=shutil.ignore_patterns("clips.tar", "chunks.json", "video_pass.json"))
    rules = tmp_path / "seconds.yaml"
    rules.write_text("chunks: {min_frames: 32, max_frames: 96, max_seconds: 2.0}\n")  # 2 s = 50 frames at 25 fps
    run_video_pass(apply_rules(shipped_config("sample"), str(rules)), DataRoot(str(other)), "sample-astro-a")
    accepted = json.loads((other / "datasets/sample/videos/sample-astro-a/chunks.json").read_text())["accepted"]
    assert accepted and all(a["end"] - a["start"] <= 50 for a in accepted)
