"""A discovery rebuild through the real Dagster instance, yt-dlp, ffmpeg and mediapipe, with good and bad videos
side by side: each bad one is reported with its reason and none blocks the others."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from assets.dataset_config import load_dataset_config
from assets.shards.coverage import compute_coverage
from pipelines.rebuild import rebuild
from storage.root import DataRoot
from storage.video import VideoWriter

pytestmark = pytest.mark.slow


def _write(path: Path, frames: np.ndarray, fps: float = 25) -> str:
    with VideoWriter(str(path), fps, (frames.shape[2], frames.shape[1])) as w:
        for f in frames:
            w.write(f)
    return path.resolve().as_uri()


@pytest.fixture(scope="module")
def rebuilt(sample_videos, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad-inputs")
    mp = pytest.MonkeyPatch()
    mp.setenv("DAGSTER_HOME", str(tmp / "dagster_home"))
    mp.setenv("MOTIONPIPE_CACHE", str(tmp / "cache"))
    blank = _write(tmp / "blank.mp4", np.full((60, 240, 320, 3), 90, np.uint8))
    corrupt = tmp / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    good = {k: Path(v).as_uri() for k, v in sample_videos.items()}
    whole = Path(sample_videos["sample-astro-a"]).read_bytes()
    truncated = tmp / "truncated.mp4"  # header intact (faststart), frames cut off part-way
    truncated.write_bytes(whole[: len(whole) * 6 // 10])
    rows = [
        "video_id,url",
        f"sample-cuts,{good['sample-cuts']}",
        f"sample-walkoff,{good['sample-walkoff']}",
        f"dead-link,{(tmp / 'does-not-exist.mp4').resolve().as_uri()}",
        f"corrupt-file,{corrupt.resolve().as_uri()}",
        f"no-person,{blank}",
        f"truncated,{truncated.resolve().as_uri()}",
        f"../../etc/passwd,{good['sample-cuts']}",      # invalid id: rejected with its row number
        f"bad-url,ftp://example.org/video.mp4",         # unsupported URL scheme
    ]
    manifest = tmp / "videos.csv"
    manifest.write_text("\n".join(rows) + "\n")
    root = tmp / "data"
    result = rebuild("sample", data_root=str(root), source=str(manifest), progress=lambda s: None)
    yield result, DataRoot(str(root)), tmp
    mp.undo()


def test_each_bad_video_gets_its_reason_and_good_ones_proceed(rebuilt):
    result, root, _ = rebuilt
    assert result.dataset_run_ok
    cov = compute_coverage(load_dataset_config("sample"), root)
    assert cov.videos_total == 6 and cov.videos_rebuilt == 2
    reasons = {m["video_id"]: m["reason"] for m in cov.missing}
    assert reasons == {"dead-link": "not_found", "corrupt-file": "corrupt", "no-person": "no_person",
                       "truncated": "corrupt"}
    assert "videos/truncated/source.mp4" in next(m["error"] for m in cov.missing if m["video_id"] == "truncated")
    # Nothing of the truncated video is published: no clip tar, no stamp.
    assert not Path(root.base, "datasets/sample/videos/truncated/clips.tar").exists()
    assert cov.manifest_rows_rejected == 2
    errors = pq.read_table(f"{root.base}/datasets/sample/manifest/errors.parquet").to_pylist()
    assert {e["row"] for e in errors} == {7, 8}
    assert "invalid video id" in errors[0]["reason"] and "ftp://" in errors[1]["reason"]
    assert not Path(root.base, "etc").exists()


def test_catalog_and_shards_read_back_without_motionpipe(rebuilt):
    _, root, _ = rebuilt
    base = f"{root.base}/datasets/sample"
    chunks = pq.read_table(f"{base}/catalog/chunks.parquet").to_pylist()
    assert {c["video_id"] for c in chunks} == {"sample-cuts", "sample-walkoff"}
    cut_chunks = sorted((c["start"], c["end"]) for c in chunks if c["video_id"] == "sample-cuts")
    assert cut_chunks == [(0, 50), (50, 100), (100, 150)]  # split exactly at the two hard cuts
    walk = [c for c in chunks if c["video_id"] == "sample-walkoff"]
    assert walk and all(c["end"] <= 105 for c in walk)  # the presenter is gone from frame 105
    per_split = duckdb.sql(f"select split, count(*) n from '{base}/catalog/chunks.parquet' group by split").fetchall()
    assert sum(n for _, n in per_split) == len(chunks)
    videos = {v["video_id"]: v for v in pq.read_table(f"{base}/catalog/videos.parquet").to_pylist()}
    assert videos["sample-cuts"]["status"] == "ok" and videos["sample-cuts"]["sha256"]
    assert videos["dead-link"]["status"] == "not_found" and "does-not-exist" in videos["dead-link"]["error"]
    shards = sorted(Path(base, "shards").glob("*.tar"))
    seen = {}
    for sample in wds.WebDataset([str(s) for s in shards], shardshuffle=False).decode("rgb8"):
        frames = sorted(k for k in sample if k.endswith(".jpg"))
        seen[sample["__key__"]] = len(frames)
        assert sample[frames[0]].shape == (64, 64, 3)
        assert sample["json"]["n_frames"] == len(frames)
    assert seen == {c["chunk_id"]: c["n_frames"] for c in chunks}


def test_rerun_resumes_from_what_is_done(rebuilt, monkeypatch):
    result, root, tmp = rebuilt
    monkeypatch.setenv("DAGSTER_HOME", str(tmp / "dagster_home"))
    manifest_json = json.loads(Path(root.base, "datasets/sample/shards/manifest.json").read_text())
    lines = []
    again = rebuild("sample", data_root=root.base, source=str(tmp / "videos.csv"), progress=lines.append)
    assert again.dataset_run_ok
    # Permanent failures are not retried; transient ones and good videos are, the latter from their stamps.
    skipped = {o.video_id for o in again.outcomes if o.status == "skipped"}
    assert skipped == {"dead-link", "corrupt-file"}
    stamps = [json.loads(p.read_text()) for p in Path(root.base, "datasets/sample/videos").glob("*/video_pass.json")]
    assert stamps and all(s["inputs"]["source_sha256"] for s in stamps)
    after = json.loads(Path(root.base, "datasets/sample/shards/manifest.json").read_text())
    assert after["content_hash"] == manifest_json["content_hash"]
