"""An S3 data root for real (moto's server on loopback): a rebuild writes shards and catalog there, a training run
reads its shards from there."""
import io
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.rebuild import rebuild
from storage.root import DataRoot
from storage.shards import verify_shards

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_rebuild_writes_shards_and_catalog_to_an_s3_data_root(sample_videos, tmp_path, dagster_home, s3_server,
                                                              s3_bucket):
    manifest = tmp_path / "one.csv"
    manifest.write_text(f"video_id,url\nsample-cuts,{Path(sample_videos['sample-cuts']).as_uri()}\n")
    url = f"s3://{s3_bucket}/motionpipe"
    result = rebuild("sample", data_root=url, source=str(manifest), progress=lambda s: None)
    assert result.dataset_run_ok and [o.status for o in result.outcomes] == ["ok"]
    root = DataRoot(url)
    assert not root.is_local and root.base == f"{s3_bucket}/motionpipe"
    with root.fs.open(root.path("datasets", "sample", "catalog", "chunks.parquet"), "rb") as f:
        chunks = pq.read_table(f).to_pylist()
    assert sorted((c["start"], c["end"]) for c in chunks) == [(0, 50), (50, 100), (100, 150)]
    assert verify_shards(root, root.path("datasets", "sample", "shards")) == []
    assert not any(".tmp-" in p for p in root.fs.find(root.base))
    import boto3  # and another S3 client sees plain tar shards in the bucket
    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint_url)
    listing = s3.list_objects_v2(Bucket=s3_bucket, Prefix="motionpipe/datasets/sample/shards/")
    shard = next(o["Key"] for o in listing["Contents"] if o["Key"].endswith(".tar"))
    with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=s3_bucket, Key=shard)["Body"].read())) as tar:
        assert any(name.endswith(".000000.jpg") or name.endswith(".000000.png") for name in tar.getnames())


def test_training_reads_its_shards_from_an_s3_data_root(tmp_path, s3_bucket):
    """The same steps on the same shards, once from a local root and once from S3 (through a DataLoader worker
    process, which opens its own S3 connection): identical weights."""
    import torch
    import yaml

    from tests.training.test_data import build_dataset
    from training.checkpoint import load_checkpoint
    from training.config import config_to_dict, load_config
    from training.train import main

    raw = config_to_dict(load_config("monkeynet-sample-64"))
    raw["train"]["num_repeats"] = 1
    config = tmp_path / "monkeynet-sample-64.yaml"
    config.write_text(yaml.safe_dump(raw))
    common = ["--config", str(config), "--batch-size", "1", "--device", "cpu", "--no-progress", "--image-every", "0",
              "--seed", "2", "--max-steps", "2"]
    runs = {}
    for name, url, workers in (("local", str(tmp_path / "data"), "0"), ("s3", f"s3://{s3_bucket}/data", "1")):
        build_dataset(DataRoot(url))
        assert main(common + ["--data-root", url, "--workers", workers, "--out", str(tmp_path / name)]) == 0
        runs[name] = load_checkpoint(tmp_path / name / "checkpoints" / "step-000000002.pt")
    local, s3 = runs["local"], runs["s3"]
    assert s3["meta"]["lineage"]["shards_content_hash"] == local["meta"]["lineage"]["shards_content_hash"]
    for name, net in local["networks"].items():
        assert all(torch.equal(v, s3["networks"][name][k]) for k, v in net.items()), name
