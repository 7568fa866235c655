"""Lineage records: from a checkpoint or an evaluation back to the YouTube ids it came from.

checkpoint → dataset shards (content hash, checked against what is on disk now) → catalog chunks of the split it
trained on → source videos and the manifest they came from; and forward to the evaluations scored with it. The
checkpoint arrives already loaded (`training.checkpoint.load_checkpoint`), so this reader stays below training;
`motionpipe lineage` (pipelines/lineage.py) prints it.

The data root read is the one given (``--data-root``), else the data root the artifact lies in, else the settings'
default; a checkpoint or evaluation that recorded another root (an absolute record of an older version, read in a
moved or second clone) is refused rather than read against the other clone's scores (storage/recorded_paths.py).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from storage import paths
from storage.catalog import read_records
from storage.recorded_paths import mismatch, resolve_path, root_holding
from storage.root import DataRoot, sha256_file
from storage.shards import read_shard_manifest


def data_root_of(artifact: Path, dataset: str | None, recorded: str | None, data_root: str | None) -> DataRoot:
    """The data root to read ``artifact``'s lineage from: ``data_root`` when given; else the root it lies in (or,
    outside every root, the one an old record names, else the settings' default). ``recorded``: an old absolute
    root record, refused when it is not the root in use."""
    if data_root:
        return DataRoot(data_root)
    here = root_holding(artifact, dataset)
    if here is None:
        return DataRoot(recorded) if recorded else DataRoot.from_env()
    root = DataRoot(here)
    if recorded and DataRoot(recorded).base != root.base:
        raise mismatch(str(artifact), DataRoot(recorded).base, root.base)
    return root


def checkpoint_lineage(checkpoint: Path, state: Mapping[str, Any], data_root: str | None = None) -> dict:
    """The lineage of `checkpoint`, whose loaded contents are `state`; `data_root` overrides the root it is read
    from (see data_root_of)."""
    meta = state.get("meta", {})
    data = meta.get("lineage", {})
    out = {
        "checkpoint": str(checkpoint), "sha256": sha256_file(checkpoint), "model": state.get("model"),
        "config": (state.get("config") or {}).get("name"), "config_hash": meta.get("config_hash"),
        "git_commit": meta.get("git_commit"), "motionpipe": meta.get("motionpipe_version"),
        "step": state.get("step"), "vgg_pretrained": state.get("vgg_pretrained"), "dataset": data,
    }
    dataset = data.get("dataset")
    if not dataset or dataset == "synthetic":
        return out
    root = data_root_of(checkpoint, dataset, data.get("data_root"), data_root)
    if not root.exists(paths.shards_dir(root, dataset)):
        raise FileNotFoundError(f"{checkpoint} was trained on {dataset!r}, which is not in the data root {root.url}: "
                                f"pass --data-root with the data root it was trained from")
    out["data_root"] = root.url
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


def evaluation_checkpoint(path: Path, data_root: str | None = None) -> tuple[Path, Path, DataRoot]:
    """An evaluation (its folder, evaluation.json or metrics.json) → (its folder, the checkpoint it scored, the data
    root both are read from: ``data_root`` when given, else the one the evaluation lies in)."""
    if path.is_dir():
        path = path / "evaluation.json"
    prov = json.loads((path.parent / "evaluation.json").read_text()).get("provenance", {})
    recorded = prov.get("checkpoint")
    if not recorded:
        raise FileNotFoundError(f"{path}: it records no checkpoint")
    if data_root:
        root = DataRoot(data_root)
    else:
        here = root_holding(path.parent, prov.get("dataset"))
        root = DataRoot(here) if here else DataRoot.from_env()
    checkpoint = resolve_path(recorded, root, f"the checkpoint of {path.parent}", overridden=bool(data_root))
    if not checkpoint.exists():
        raise FileNotFoundError(f"{path.parent}: its checkpoint {recorded!r} is not in the data root {root.url} "
                                f"(looked for {checkpoint}); pass --data-root with the root it was scored in")
    return path.parent, checkpoint, root


def is_evaluation(path: Path) -> bool:
    return path.is_dir() or path.name in ("evaluation.json", "metrics.json")
