"""TaiChiHD replay end to end, offline: rows in the published csv's format, videos served from a local mirror
(as a user with an earlier download would), at a different fps and resolution than the reference."""
from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import webdataset as wds

from assets.clips.geometry import replay_frame_range
from pipelines.rebuild import rebuild

pytestmark = pytest.mark.slow

# Reference: 640x480 at 30 fps; the mirror's files are 320x240 at 25 fps (the sample videos).
CSV = """video_id,start,end,bbox,fps,width,height,partition
Astro_A-123,000010,000140,100-40-500-440,30.0,640,480,train
Astro_A-123,000005,000135,60-0-440-380,30.0,640,480,train
CutsVideo_9,000000,000130,120-20-520-420,30.0,640,480,test
CutsVideo_9,000020,oops,120-20-520-420,30.0,640,480,test
GoneVideo_0,000000,000130,0-0-400-400,30.0,640,480,train
"""


@pytest.fixture(scope="module")
def replayed(sample_videos, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("taichi")
    mirror = tmp / "mirror"
    mirror.mkdir()
    os.symlink(sample_videos["sample-astro-a"], mirror / "Astro_A-123.mp4")
    os.symlink(sample_videos["sample-cuts"], mirror / "CutsVideo_9.mp4")
    (tmp / "taichi.csv").write_text(CSV)
    mp = pytest.MonkeyPatch()
    mp.setenv("DAGSTER_HOME", str(tmp / "dagster_home"))
    mp.setenv("MOTIONPIPE_CACHE", str(tmp / "cache"))
    result = rebuild("taichi", data_root=str(tmp / "data"), source=str(tmp / "taichi.csv"),
                     mirror=mirror.as_uri(), progress=lambda s: None)
    yield result, tmp / "data" / "datasets" / "taichi"
    mp.undo()


def test_replay_maps_frames_boxes_names_and_splits(replayed):
    result, base = replayed
    assert result.dataset_run_ok
    chunks = {c["chunk_id"]: c for c in pq.read_table(base / "catalog/chunks.parquet").to_pylist()}
    assert sorted(chunks) == ["Astro_A-123#000005#000135", "Astro_A-123#000010#000140", "CutsVideo_9#000000#000130"]
    a = chunks["Astro_A-123#000010#000140"]
    expected = replay_frame_range(10, 140, 30.0, 25.0, 125)
    assert (a["src_start"], a["src_end"], a["n_frames"]) == (expected.start, expected.stop, len(expected))
    assert list(a["box"]) == [50, 20, 250, 220]  # 640x480 reference pixels halved onto the 320x240 download
    assert (a["width"], a["height"]) == (256, 256) and a["split"] == "train"
    assert chunks["CutsVideo_9#000000#000130"]["split"] == "test"
    samples = {s["__key__"]: s for s in wds.WebDataset([str(p) for p in sorted((base / "shards").glob("*.tar"))],
                                                       shardshuffle=False).decode("rgb8")}
    assert set(samples) == set(chunks)
    assert samples["Astro_A-123#000010#000140"]["000000.jpg"].shape == (256, 256, 3)


def test_replay_reports_missing_videos_and_bad_rows(replayed):
    _, base = replayed
    videos = {v["video_id"]: v for v in pq.read_table(base / "catalog/videos.parquet").to_pylist()}
    assert videos["GoneVideo_0"]["status"] == "not_found"
    errors = pq.read_table(base / "manifest/errors.parquet").to_pylist()
    assert [e["row"] for e in errors] == [4] and "end" in errors[0]["reason"]
    cov = (base / "coverage/coverage.json").read_text()
    assert '"chunks_expected": 4' in cov and '"chunks_rebuilt": 3' in cov


def test_each_video_partition_links_its_youtube_page_with_title_and_download_facts(replayed):
    """Issue 13, item 4: the `raw_video` partition's page names the YouTube video (a link, even when a mirror served
    the file), its title and duration, and what the download got."""
    import dagster as dg

    from pipelines.instance import open_instance

    _, base = replayed
    instance = open_instance()  # the fixture's DAGSTER_HOME
    records = instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=dg.AssetKey(["taichi", "raw_video"]), asset_partitions=["Astro_A-123"]), limit=1).records
    meta = records[0].asset_materialization.metadata
    assert isinstance(meta["url"], dg.UrlMetadataValue)
    assert meta["url"].url == "https://www.youtube.com/watch?v=Astro_A-123"
    assert meta["fetched_from"].url.endswith("/mirror/Astro_A-123.mp4")
    assert isinstance(meta["title"], dg.TextMetadataValue) and meta["title"].value
    assert isinstance(meta["duration_s"], dg.FloatMetadataValue) and meta["duration_s"].value > 1
    assert meta["resolution"].value == "320x240" and meta["fps"].value == pytest.approx(25.0)
    source = next((base / "videos/Astro_A-123").glob("source.*"))
    assert isinstance(meta["download_bytes"], dg.IntMetadataValue) and meta["download_bytes"].value == \
        source.stat().st_size
    assert isinstance(meta["download_seconds"], dg.FloatMetadataValue) and meta["download_seconds"].value > 0
