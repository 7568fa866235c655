"""`motionpipe lineage ARTIFACT`: from a checkpoint or an evaluation back to the YouTube ids it came from.

checkpoint → dataset shards (content hash, checked against what is on disk now) → catalog chunks of the split it
trained on → source videos and the manifest they came from; and forward to the evaluations scored with it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from storage import paths
from storage.catalog import read_records
from storage.root import DataRoot
from storage.shards import read_shard_manifest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_lineage(checkpoint: Path, data_root: str | None = None) -> dict:
    from training.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint)
    meta = state.get("meta", {})
    data = meta.get("lineage", {})
    out = {
        "checkpoint": str(checkpoint), "sha256": _sha256(checkpoint), "model": state.get("model"),
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


def lineage_of(artifact: str, data_root: str | None = None) -> dict:
    path = Path(artifact)
    if path.is_dir():
        path = path / "evaluation.json"
    if path.name in ("evaluation.json", "metrics.json"):
        doc = json.loads((path.parent / "evaluation.json").read_text())
        checkpoint = doc.get("provenance", {}).get("checkpoint")
        if not checkpoint or not Path(checkpoint).exists():
            raise FileNotFoundError(f"{path}: its checkpoint {checkpoint!r} is not on disk")
        return {"evaluation": str(path.parent), **checkpoint_lineage(Path(checkpoint), data_root)}
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint or evaluation: {artifact}")
    return checkpoint_lineage(path, data_root)


def lineage_command(args: argparse.Namespace) -> int:
    info = lineage_of(args.artifact, args.data_root)
    if args.json:
        print(json.dumps(info, indent=1, default=str))
        return 0
    d = info["dataset"]
    print(f"checkpoint {info['checkpoint']}  sha256 {info['sha256'][:16]}")
    print(f"  model {info['model']} ({info['config']}), step {info['step']}, config {info['config_hash']}, "
          f"git {info['git_commit']}, motionpipe {info['motionpipe']}, VGG pretrained: {info['vgg_pretrained']}")
    print(f"  trained on {d.get('dataset')}/{d.get('split')} shards {str(d.get('shards_content_hash'))[:16]}")
    if "shards_now" in info:
        now = info["shards_now"]
        state = "same shards on disk" if now["matches_checkpoint"] else f"shards CHANGED since (now {now['content_hash'][:16]})"
        print(f"  {state}: {', '.join(now['shards'])}")
        print(f"  {len(info['chunks'])} chunks from {len(info['videos'])} videos; manifest {info.get('manifest', {})}")
        for v in info["videos"]:
            chunk_ids = [c for c in info["chunks"] if c.split("#")[0] == v["video_id"]]
            print(f"    {v['video_id']}  {v['url']}  -> {', '.join(chunk_ids)}")
        for e in info.get("evaluations", []):
            print(f"  scored in {e['evaluation']}: " + ", ".join(f"{k} {v}" for k, v in e["scores"].items()))
    return 0


def add_lineage_parser(subparsers) -> None:
    p = subparsers.add_parser("lineage", help="trace a checkpoint or evaluation back to its chunks and videos")
    p.add_argument("artifact", help="a checkpoint (.pt) or an evaluation folder / its metrics.json")
    p.add_argument("--data-root", default=None, help="data root (default: the one recorded in the checkpoint)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=lineage_command)
