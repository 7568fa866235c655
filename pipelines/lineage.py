"""`motionpipe lineage ARTIFACT`: from a checkpoint or an evaluation back to the YouTube ids it came from (the
records are read by `storage/lineage.py`; this loads the checkpoint and prints them)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from storage.lineage import checkpoint_lineage, evaluation_checkpoint, is_evaluation


def lineage_of(artifact: str, data_root: str | None = None) -> dict:
    from training.checkpoint import load_checkpoint

    path = Path(artifact)
    if is_evaluation(path):
        folder, checkpoint, root = evaluation_checkpoint(path, data_root)
        return {"evaluation": str(folder), **checkpoint_lineage(checkpoint, load_checkpoint(checkpoint), root.url)}
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint or evaluation: {artifact}")
    return checkpoint_lineage(path, load_checkpoint(path), data_root)


def lineage_command(args: argparse.Namespace) -> int:
    info = lineage_of(args.artifact, args.data_root)
    if args.json:
        print(json.dumps(info, indent=1, default=str))
        return 0
    d = info["dataset"]
    print(f"checkpoint {info['checkpoint']}  sha256 {info['sha256'][:16]}")
    print(f"  model {info['model']} ({info['config']}), step {info['step']}, config {info['config_hash']}, "
          f"git {info['git_commit']}, motionpipe {info['motionpipe']}, VGG pretrained: {info['vgg_pretrained']}")
    print(f"  trained on {d.get('dataset')}/{d.get('split')} shards {str(d.get('shards_content_hash'))[:16]}"
          + (f", read from data root {info['data_root']}" if "data_root" in info else ""))
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
    p.add_argument("--data-root", default=None,
                   help="data root to read from (default: the one the artifact lies in, else MOTIONPIPE_DATA_ROOT / "
                        "./data); a record of another root is refused without it")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=lineage_command)
