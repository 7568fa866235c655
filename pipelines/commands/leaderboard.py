"""`motionpipe leaderboard`: every evaluation beside the papers' numbers, as Markdown and DVC metrics JSON."""
from __future__ import annotations

import argparse

from storage import paths
from storage.root import DataRoot
from training.reporting.leaderboard import EVALUATIONS_DIR, METRICS_FILE, build_leaderboard, collect_results


def add_leaderboard_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("leaderboard", help="tabulate every evaluation beside the published numbers")
    p.add_argument("--data-root", default=None,
                   help="local folder or fsspec URL (default: $MOTIONPIPE_DATA_ROOT or ./data); evaluations are "
                        "read from <data-root>/evaluations/<dataset>/<config>/metrics.json")
    p.add_argument("--out", default=None, help="output folder (default: <data-root>/leaderboard)")
    p.set_defaults(func=leaderboard_command)
    return p


def leaderboard_command(args: argparse.Namespace) -> int:
    root = DataRoot.from_env(args.data_root)
    results, sources = collect_results(root)
    if not results:
        raise FileNotFoundError(f"no evaluations found under {root.path(EVALUATIONS_DIR)}/*/{METRICS_FILE}")
    board = build_leaderboard(results, sources)
    out = args.out or paths.leaderboard_dir(root)
    if args.out is None and not root.is_local:
        out = root.fs.unstrip_protocol(out)  # keep the object store's scheme
    files = board.write(out)
    print(board.to_markdown())
    print(f"wrote {files['markdown']} and {files['json']}")
    return 0
