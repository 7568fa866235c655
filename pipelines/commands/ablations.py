"""`motionpipe ablations`: the papers' ablation tables (MRAA Tables 1 and 3, TPSMM Tables 3 and 4) from the scored
experiments, each beside the paper's row; what the Dagster `ablations` asset writes."""
from __future__ import annotations

import argparse

from pipelines.commands.leaderboard import output_dir, scored_evaluations
from storage import paths
from storage.root import DataRoot
from training.reporting.ablation_tables import ablation_tables, to_markdown, write_ablation_tables
from training.reporting.leaderboard import build_leaderboard


def add_ablations_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("ablations", help="the papers' ablation tables from the scored experiments")
    p.add_argument("--data-root", default=None,
                   help="local folder or fsspec URL (default: $MOTIONPIPE_DATA_ROOT or ./data)")
    p.add_argument("--out", default=None, help="output folder (default: <data-root>/ablations)")
    p.set_defaults(func=ablations_command)
    return p


def ablations_command(args: argparse.Namespace) -> int:
    root = DataRoot.from_env(args.data_root)
    results, sources = scored_evaluations(root)
    out = output_dir(root, args.out, paths.ablations_dir(root))
    board = build_leaderboard(results, sources)
    files = write_ablation_tables(board, out)
    print(to_markdown(ablation_tables(board)))
    print(f"wrote {files['markdown']} and {files['json']}")
    return 0
