"""The catalog tables: typed rows in, the same rows out, and files any Parquet reader understands."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage.catalog import (
    CHUNKS_SCHEMA,
    VIDEOS_SCHEMA,
    CatalogError,
    ChunkRow,
    VideoRow,
    read_rows,
    read_table,
    write_rows,
)
from storage.root import DataRoot


def video(video_id: str = "abcdefghijk", **kw) -> VideoRow:
    fields = dict(
        video_id=video_id, dataset="taichi", url=f"https://www.youtube.com/watch?v={video_id}", status="ok",
        format_id="137", ext="mp4", width=1920, height=1080, fps=29.97, n_frames=900, duration=30.03,
        sha256="ab" * 32, bytes=123456, attempts=1, downloaded_at="2024-05-01T12:00:00Z",
        ref_width=1280, ref_height=720, ref_fps=30.0, n_chunks=2,
    )
    fields.update(kw)
    return VideoRow(**fields)


def chunk(video_id: str = "abcdefghijk", start: int = 0, end: int = 64, split: str = "train", **kw) -> ChunkRow:
    fields = dict(
        chunk_id=f"{video_id}#{start:06d}#{end:06d}", video_id=video_id, dataset="taichi", split=split,
        start=start, end=end, src_start=start, src_end=end, box=[10, 20, 310, 320], fps=25.0, n_frames=end - start,
        width=256, height=256, frame_format="jpeg", jpeg_quality=95, out_of_frame="pad", sha256="cd" * 32,
        shard=None, bytes=4096, provenance=json.dumps({"manifest_row": 3, "motionpipe": "0.1.0"}),
    )
    fields.update(kw)
    return ChunkRow(**fields)


@pytest.fixture
def root(tmp_path) -> DataRoot:
    return DataRoot(str(tmp_path))


def test_video_rows_round_trip(root):
    rows = [
        video(),
        video("-a_b-c_d-e_", status="private", error="Private video", format_id=None, ext=None, width=None,
              height=None, fps=None, n_frames=None, duration=None, sha256=None, bytes=None, attempts=3,
              downloaded_at=None, n_chunks=0),
    ]
    path = root.path("catalog", "videos.parquet")
    assert write_rows(root, path, rows, VIDEOS_SCHEMA) == 2
    back = read_rows(root, path, VideoRow)
    assert back == rows
    assert back[0].downloaded_at == datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    assert read_table(root, path).schema.field("downloaded_at").type == pa.timestamp("us", tz="UTC")


def test_chunk_rows_round_trip(root):
    png = dict(frame_format="png", jpeg_quality=None, shard="test-000000.tar")
    rows = [chunk(), chunk(start=64, end=128, split="test", **png)]
    path = root.path("catalog", "chunks.parquet")
    write_rows(root, path, rows, CHUNKS_SCHEMA)
    back = read_rows(root, path, ChunkRow)
    assert back == rows
    assert back[0].box == (10, 20, 310, 320)


def test_readable_without_motionpipe(root, tmp_path):
    """pyarrow and DuckDB read the catalog in a fresh interpreter that never imports motionpipe code."""
    rows = [chunk(start=i * 10, end=i * 10 + 10, split="test" if i % 3 == 0 else "train") for i in range(6)]
    write_rows(root, root.path("chunks.parquet"), rows, CHUNKS_SCHEMA)
    write_rows(root, root.path("videos.parquet"), [video()], VIDEOS_SCHEMA)
    script = (
        "import json, sys, duckdb, pyarrow.parquet as pq\n"
        "t = pq.read_table('chunks.parquet')\n"
        "v = pq.read_table('videos.parquet').to_pylist()[0]\n"
        "by_split = dict(duckdb.sql(\"select split, count(*) from 'chunks.parquet' group by split\").fetchall())\n"
        "box = duckdb.sql(\"select box[3] from 'chunks.parquet' limit 1\").fetchone()[0]\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('storage', 'assets', 'pipelines', 'training')]\n"
        "print(json.dumps(dict(n=t.num_rows, split=by_split, box=box, fps=v['fps'], bad=bad)))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-I", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                         text=True, check=True)
    result = json.loads(out.stdout)
    assert result == {"n": 6, "split": {"train": 4, "test": 2}, "box": 310, "fps": 29.97, "bad": []}


def test_schema_mismatch_names_file_and_column(root):
    path = root.path("chunks.parquet")
    table = pa.Table.from_pylist([{"chunk_id": "x", "start": "0"}])  # wrong types, missing columns
    pq.write_table(table, path)
    with pytest.raises(CatalogError, match=r"chunks\.parquet: schema mismatch: missing columns .*'video_id'"):
        read_rows(root, path, ChunkRow)
    # Same names, one type changed.
    good = pa.Table.from_pylist([vars(chunk()) | {"box": [10, 20, 310, 320]}], schema=CHUNKS_SCHEMA)
    pq.write_table(good.set_column(good.schema.get_field_index("fps"), "fps", pa.array(["25"])), path)
    with pytest.raises(CatalogError, match=r"fps: string \(expected double"):
        read_rows(root, path, ChunkRow)


def test_corrupt_and_missing_files_are_named(root):
    path = root.path("catalog", "videos.parquet")
    with pytest.raises(FileNotFoundError, match="videos.parquet"):
        read_table(root, path)
    root.write_bytes(path, b"PAR1 this is not parquet")
    with pytest.raises(CatalogError, match=r"videos\.parquet: not a readable Parquet file"):
        read_rows(root, path, VideoRow)


def test_rows_validate_themselves():
    with pytest.raises(ValueError, match="status 'gone'"):
        video(status="gone")
    with pytest.raises(ValueError, match="id does not match"):
        chunk(chunk_id="abcdefghijk#000000#000065")
    with pytest.raises(ValueError, match="split 'val'"):
        chunk(split="val")
    with pytest.raises(ValueError, match="box"):
        chunk(box=[10, 20, 5, 320])
    with pytest.raises(ValueError, match="jpeg_quality"):
        chunk(jpeg_quality=None)
    with pytest.raises(ValueError, match="provenance"):
        chunk(provenance="not json")


def test_non_null_column_is_refused_and_nothing_written(root):
    path = root.path("catalog", "videos.parquet")
    record = vars(video()) | {"status": None}
    with pytest.raises(CatalogError, match="'status' may not be null"):
        write_rows(root, path, [record], VIDEOS_SCHEMA)
    assert not root.exists(path)


def test_failed_write_leaves_existing_file_and_no_temp(root, tmp_path):
    path = root.path("catalog", "videos.parquet")
    write_rows(root, path, [video()], VIDEOS_SCHEMA)
    before = root.read_bytes(path)

    def rows():
        yield video("bbbbbbbbbbb")
        raise RuntimeError("row source died")

    with pytest.raises(RuntimeError, match="row source died"):
        write_rows(root, path, rows(), VIDEOS_SCHEMA)
    assert root.read_bytes(path) == before
    assert sorted(os.listdir(tmp_path / "catalog")) == ["videos.parquet"]
