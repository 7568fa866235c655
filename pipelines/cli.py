"""`motionpipe`: the command line over the Dagster graph and the stored datasets."""
from __future__ import annotations

import argparse
import sys

from assets.dataset_config import DATASETS


def _rebuild(args: argparse.Namespace) -> int:
    from assets.dataset_config import load_dataset_config
    from assets.shards.coverage import compute_coverage, print_coverage
    from pipelines.rebuild import rebuild
    from storage.root import DataRoot

    result = rebuild(args.dataset, data_root=args.data_root, source=args.manifest, limit=args.limit,
                     retry_failed=args.retry_failed, detector=args.detector, mirror=args.mirror)
    cov = compute_coverage(load_dataset_config(args.dataset), DataRoot.from_env(args.data_root))
    print_coverage(cov)
    if not result.dataset_run_ok:
        return 1
    return 0


def _status(args: argparse.Namespace) -> int:
    from assets.dataset_config import load_dataset_config
    from assets.shards.coverage import compute_coverage, print_coverage
    from storage.root import DataRoot

    cov = compute_coverage(load_dataset_config(args.dataset), DataRoot.from_env(args.data_root))
    print_coverage(cov)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="motionpipe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add_root(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-root", default=None,
                       help="local folder or fsspec URL (default: $MOTIONPIPE_DATA_ROOT or ./data)")

    p = sub.add_parser("rebuild", help="rebuild a dataset from its sources and print its coverage report")
    p.add_argument("dataset", choices=DATASETS)
    p.add_argument("--limit", type=int, default=None, help="only the first N videos of the manifest")
    p.add_argument("--manifest", default=None,
                   help="manifest path or URL instead of the default (taichi csv, TED clip list or id list)")
    p.add_argument("--retry-failed", action="store_true",
                   help="retry videos that failed permanently before (private, removed, ...)")
    p.add_argument("--detector", choices=["auto", "mediapipe", "detectron2"], default=None)
    p.add_argument("--mirror", default=None,
                   help="file:// or http(s):// folder of already-downloaded <video_id>.mp4 to use instead of YouTube")
    add_root(p)
    p.set_defaults(func=_rebuild)

    p = sub.add_parser("status", help="print a dataset's coverage report from what is on disk")
    p.add_argument("dataset", choices=DATASETS)
    add_root(p)
    p.set_defaults(func=_status)

    from training.animate import add_animate_parser
    from training.evaluate import add_evaluate_parser
    from training.leaderboard import add_leaderboard_parser
    from training.model_summary import add_models_parser

    from pipelines.lineage import add_lineage_parser

    add_models_parser(sub)
    add_animate_parser(sub)
    add_evaluate_parser(sub)
    add_leaderboard_parser(sub)
    add_lineage_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (RuntimeError, ValueError, FileNotFoundError) as exc:
        print(f"motionpipe {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
