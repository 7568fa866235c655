"""The data root may be any fsspec URL: the whole chain runs against an in-memory object store."""
from pathlib import Path

import fsspec
import pyarrow.parquet as pq
import pytest

from pipelines.rebuild import rebuild
from storage.root import DataRoot
from storage.shards import verify_shards

pytestmark = pytest.mark.slow


def test_rebuild_into_an_object_store(sample_videos, tmp_path, dagster_home):
    manifest = tmp_path / "one.csv"
    manifest.write_text(f"video_id,url\nsample-cuts,{Path(sample_videos['sample-cuts']).as_uri()}\n")
    result = rebuild("sample", data_root="memory://motionpipe-test", source=str(manifest), progress=lambda s: None)
    assert result.dataset_run_ok and [o.status for o in result.outcomes] == ["ok"]
    fs = fsspec.filesystem("memory")
    with fs.open("/motionpipe-test/datasets/sample/catalog/chunks.parquet", "rb") as f:
        chunks = pq.read_table(f).to_pylist()
    assert sorted((c["start"], c["end"]) for c in chunks) == [(0, 50), (50, 100), (100, 150)]
    root = DataRoot("memory://motionpipe-test")
    assert verify_shards(root, root.path("datasets", "sample", "shards")) == []
    assert not any(".tmp-" in p for p in fs.find("/motionpipe-test"))
    fs.rm("/motionpipe-test", recursive=True)
