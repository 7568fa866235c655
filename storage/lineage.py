"""Lineage records: from a checkpoint or an evaluation back to the YouTube ids it came from.

checkpoint → dataset shards (content hash, checked against what is on disk now) → catalog chunks of the split it
trained on → source videos and the manifest they came from; and forward to the evaluations scored with it. The
checkpoint arrives already loaded (`training.checkpoint.load_checkpoint`), so this reader stays below training;
`motionpipe lineage` (pipelines/lineage.py) prints it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from storage import paths
from storage.catalog import read_records
from storage.root import DataRoot, sha256_file
from storage.shards import read_shard_manifest


def checkpoint_lineage(checkpoint: Path, state: Mapping[str, Any], data_root: str | None = None) -> dict:
    """The lineage of `checkpoint`, whose loaded contents are `state`; `data_root` overrides the recorded one."""
    meta = state.get("meta", {})
    data = meta.get("lineage", {})
    out = {
        "checkpoint": str(checkpoint), "sha256": sha256_file(checkpoint), "model": state.get("model"),
        "config": (state.get("config") or {}).get("name"), "config_hash": meta.get("config_hash"),
        "git_commit": meta.get("git_commit"), "motionpipe": meta.get("motionpipe_version"),
        "step": state.get("step"), "vgg_pretrained": state.get("vgg_pretrained"), "dataset": data,
    }
    dataset = data.get("dataset")
    root_url = data_root or data.get("data_root")
    if not dataset or not root_url or dataset == "synthetic":
        return out
    root = DataRoot(root_url)
    shards = read_shard_manifest(root, paths.shards_dir(root, dataset))
    out["shards_now"] = {"content_hash": shards.content_hash,
                         "matches_checkpoint": shards.content_hash == data.get("shards_content_hash"),
                         "shards": [s.name for s in shards.shards if s.split == data.get("split", "train")]}
    chunks = [c for c in read_records(root, paths.catalog_path(root, dataset, "chunks"))
              if c["split"] == data.get("split", "train")]
    out["chunks"] = sorted(c["chunk_id"] for c in chunks)
    videos = {v["video_id"]: v for v in read_records(root, paths.catalog_path(root, dataset, "videos"))}
    out["videos"] = [{"video_id": vid, "url": videos.get(vid, {}).get("url"), "sha256": videos.get(vid, {}).get("sha256")}
                     for vid in sorted({c["video_id"] for c in chunks})]
    manifest = paths.manifest_path(root, dataset, "videos")
    if root.exists(manifest):
        import pyarrow.parquet as pq
        with root.fs.open(manifest, "rb") as f:
            meta_kv = pq.read_schema(f).metadata or {}
        out["manifest"] = {k.decode(): v.decode() for k, v in meta_kv.items() if k in (b"source", b"sha256")}
    out["evaluations"] = _evaluations_of(root, out["sha256"])
    return out


def _evaluations_of(root: DataRoot, checkpoint_sha: str) -> list[dict]:
    found = []
    for path in sorted(root.fs.glob(root.path("evaluations", "*", "*", "evaluation.json"))):
        doc = json.loads(root.read_bytes(path))
        if doc.get("provenance", {}).get("checkpoint_sha256") == checkpoint_sha:
            metrics = json.loads(root.read_bytes(path.rpartition("/")[0] + "/metrics.json"))
            found.append({"evaluation": path.rpartition("/")[0],
                          "scores": {k: v for k, v in metrics.items() if not isinstance(v, dict)}})
    return found


def evaluation_checkpoint(path: Path) -> tuple[Path, Path]:
    """An evaluation (its folder, evaluation.json or metrics.json) → (its folder, the checkpoint it scored)."""
    if path.is_dir():
        path = path / "evaluation.json"
    doc = json.loads((path.parent / "evaluation.json").read_text())
    checkpoint = doc.get("provenance", {}).get("checkpoint")
    if not checkpoint or not Path(checkpoint).exists():
        raise FileNotFoundError(f"{path}: its checkpoint {checkpoint!r} is not on disk")
    return path.parent, Path(checkpoint)


def is_evaluation(path: Path) -> bool:
    return path.is_dir() or path.name in ("evaluation.json", "metrics.json")
