"""The leaderboard, the per-video tables and the plots `dvc plots show` displays, built and written together from one
set of evaluations, so that `motionpipe leaderboard` (and `dvc repro`) and the Dagster leaderboard asset write the
same files."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from storage.root import DataRoot
from training.reporting.leaderboard import Leaderboard, build_leaderboard
from training.reporting.overlay_plots import write_overlay_plots
from training.reporting.per_video import VideoScores, per_video_scores, write_per_video


@dataclass
class WrittenReports:
    board: Leaderboard
    videos: list[VideoScores]
    files: dict[str, str]  # markdown, json, per_video_csv, per_video_markdown, plot/<dataset>/<name> -> path


def write_reports(root: DataRoot, results: Sequence[dict], sources: Sequence[str], out_dir: str) -> WrittenReports:
    """``results``/``sources`` as ``leaderboard.collect_results`` found them under ``root``; files under ``out_dir``."""
    board = build_leaderboard(results, sources)
    files = board.write(out_dir)
    videos = per_video_scores(root, results, sources)
    files |= {f"per_video_{kind}": path for kind, path in write_per_video(videos, out_dir).items()}
    files |= {f"plot/{name}": path for name, path in write_overlay_plots(root, board, out_dir).items()}
    return WrittenReports(board, videos, files)
