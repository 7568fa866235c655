"""The chain after the dataset, on the real sample shards: train briefly, reconstruct and score the test split,
tabulate beside the published numbers."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.cli import main as motionpipe

pytestmark = pytest.mark.slow


def test_brief_training_then_evaluation_then_leaderboard(sample_videos, tmp_path, dagster_home):
    from pipelines.rebuild import rebuild

    rows = ["video_id,url"] + [f"{v},{Path(sample_videos[v]).as_uri()}" for v in ("sample-cuts", "sample-astro-b")]
    (tmp_path / "videos.csv").write_text("\n".join(rows) + "\n")
    root = tmp_path / "data"
    assert rebuild("sample", data_root=str(root), source=str(tmp_path / "videos.csv"),
                   progress=lambda s: None).dataset_run_ok
    run = root / "runs" / "fomm-sample"
    train = subprocess.run([sys.executable, "-m", "training.train", "--config", "fomm-sample-64", "--data-root",
                            str(root), "--out", str(run), "--max-steps", "2", "--batch-size", "2", "--no-progress"],
                           capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-3000:]
    checkpoint = sorted((run / "checkpoints").glob("step-*.pt"))[-1]
    assert motionpipe(["evaluate", "fomm", "--dataset", "sample", "--checkpoint", str(checkpoint),
                       "--data-root", str(root), "--extractors", "mobilenetv2-imagenet"]) == 0
    metrics = json.loads((root / "evaluations/sample/fomm/metrics.json").read_text())
    assert 0 < metrics["L1"] < 1 and metrics["AED[mobilenetv2-imagenet]"] >= 0
    assert motionpipe(["leaderboard", "--data-root", str(root)]) == 0
    board = json.loads((root / "leaderboard/leaderboard.json").read_text())
    assert board["sample"]["fomm-sample-64"]["L1"]["ours"] == pytest.approx(metrics["L1"])
    assert "AED[mobilenetv2-imagenet]" in (root / "leaderboard/leaderboard.md").read_text()

    # Lineage: the checkpoint names exactly the train chunks it saw, their videos, and the scores made with it.
    from pipelines.lineage import lineage_of

    trail = lineage_of(str(checkpoint))
    train_chunks = sorted(c["chunk_id"] for c in pq.read_table(root / "datasets/sample/catalog/chunks.parquet")
                          .to_pylist() if c["split"] == "train")
    assert trail["chunks"] == train_chunks and trail["shards_now"]["matches_checkpoint"]
    assert {v["video_id"] for v in trail["videos"]} == {c.split("#")[0] for c in train_chunks}
    assert trail["config_hash"] and trail["evaluations"][0]["scores"]["L1"] == pytest.approx(metrics["L1"])
    assert lineage_of(str(root / "evaluations/sample/fomm"))["sha256"] == trail["sha256"]
