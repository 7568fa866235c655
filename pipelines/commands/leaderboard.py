"""`motionpipe leaderboard`: every evaluation beside the papers' numbers, as Markdown and DVC metrics JSON, and every
evaluation's per-video means (per_video.csv / .md) so a video id leads to its scores."""
from __future__ import annotations

import argparse

from storage import paths
from storage.root import DataRoot
from training.reporting.leaderboard import EVALUATIONS_DIR, METRICS_FILE, collect_results
from training.reporting.per_video import to_markdown
from training.reporting.reports import write_reports


def add_leaderboard_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("leaderboard", help="tabulate every evaluation beside the published numbers")
    p.add_argument("--data-root", default=None,
                   help="local folder or fsspec URL (default: $MOTIONPIPE_DATA_ROOT or ./data); evaluations are "
                        "read from <data-root>/evaluations/<dataset>/<config>/metrics.json")
    p.add_argument("--out", default=None, help="output folder (default: <data-root>/leaderboard)")
    p.add_argument("--per-video", action="store_true",
                   help="print the per-video table (each video's mean scores per model) instead of the leaderboard; "
                        "both are written either way (per_video.csv, per_video.md)")
    p.set_defaults(func=leaderboard_command)
    return p


def scored_evaluations(root: DataRoot) -> tuple[list[dict], list[str]]:
    """Every evaluation under the data root (``collect_results``); none is an error naming where they were sought."""
    results, sources = collect_results(root)
    if not results:
        raise FileNotFoundError(f"no evaluations found under {root.path(EVALUATIONS_DIR)}/*/{METRICS_FILE}")
    return results, sources


def output_dir(root: DataRoot, out: str | None, default: str) -> str:
    """``--out``, else ``default`` under the data root, with an object store's scheme kept."""
    if out:
        return out
    return default if root.is_local else root.fs.unstrip_protocol(default)


def leaderboard_command(args: argparse.Namespace) -> int:
    root = DataRoot.from_env(args.data_root)
    results, sources = scored_evaluations(root)
    out = output_dir(root, args.out, paths.leaderboard_dir(root))
    written = write_reports(root, results, sources, out)
    files = written.files
    print(to_markdown(written.videos) if getattr(args, "per_video", False) else written.board.to_markdown())
    print(f"wrote {files['markdown']}, {files['json']}, {files['per_video_csv']} and {files['per_video_markdown']}")
    plots = [path for name, path in files.items() if name.startswith("plot/")]
    if plots:
        print(f"plots (shown by `dvc plots show`): {', '.join(plots)}")
    if args.out is None:  # the asset's own outputs: the UI shows them
        from assets.evaluation.defs import leaderboard_report
        from pipelines.instance_reports import report_to_dagster
        from storage.settings import resolve_settings
        report_to_dagster(leaderboard_report(written, len(results)), resolve_settings(data_root=args.data_root),
                          "motionpipe leaderboard")
    return 0
