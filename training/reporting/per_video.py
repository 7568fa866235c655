"""Per-video scores beside the leaderboard: every evaluation's ``per_frame.parquet`` averaged per video id.

The leaderboard pools frames across videos, as the papers do; this table says which (YouTube) video a number comes
from, so a researcher can find the videos a model fails on. A video's score is the mean over its counted frames
(a frame where an extractor found no keypoint is NaN and does not count), as ``MetricResult.per_video``; ``frames``
is every scored frame of the video.

Output beside ``leaderboard.md``: ``per_video.csv`` (dataset, model, video_id, frames, one column per metric label)
and ``per_video.md`` (one table per dataset, models side by side on each video).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Sequence

import pyarrow.parquet as pq

from storage.root import DataRoot
from training.reporting.leaderboard import fmt_value, label_order, parse_label

PER_FRAME_FILE = "per_frame.parquet"
CSV_FILE = "per_video.csv"
MARKDOWN_FILE = "per_video.md"


@dataclass(frozen=True)
class VideoScores:
    dataset: str
    model: str
    video_id: str
    frames: int
    scores: dict[str, float | None]  # metric label -> mean over the video's counted frames (None: none counted)


def per_video_scores(root: DataRoot, results: Sequence[dict], sources: Sequence[str]) -> list[VideoScores]:
    """One row per evaluation x video, from the ``per_frame.parquet`` beside each ``metrics.json`` in ``sources``
    (as ``collect_results`` found them); an evaluation without one (scored before it existed) is left out."""
    rows: list[VideoScores] = []
    for result, source in zip(results, sources):
        path = source.rpartition("/")[0] + "/" + PER_FRAME_FILE
        if not root.exists(path):
            continue
        table = pq.read_table(io.BytesIO(root.read_bytes(path))).to_pydict()
        labels = [c for c in table if parse_label(c) is not None]
        by_video: dict[str, list[int]] = {}
        for i, video in enumerate(table["video_id"]):
            by_video.setdefault(video, []).append(i)
        for video, idx in by_video.items():
            scores = {label: _mean([table[label][i] for i in idx]) for label in labels}
            rows.append(VideoScores(result["dataset"], result["model"], video, len(idx), scores))
    return sorted(rows, key=lambda r: (r.dataset, r.video_id, r.model))


def _mean(values: list) -> float | None:
    counted = [v for v in values if v is not None and not math.isnan(v)]
    return sum(counted) / len(counted) if counted else None


def _labels(rows: Sequence[VideoScores]) -> list[str]:
    return sorted({label for r in rows for label in r.scores}, key=label_order)


def to_csv(rows: Sequence[VideoScores]) -> str:
    labels = _labels(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["dataset", "model", "video_id", "frames", *labels])
    for r in rows:
        writer.writerow([r.dataset, r.model, r.video_id, r.frames,
                         *("" if r.scores.get(label) is None else repr(r.scores[label]) for label in labels)])
    return buf.getvalue()


def to_markdown(rows: Sequence[VideoScores]) -> str:
    lines = ["# Per-video scores", "",
             "Each video's mean over its scored frames (units as in leaderboard.md; lower is better); the "
             "leaderboard pools all frames instead. — : the metric was not measured, or no frame of the video "
             "counted.", ""]
    for dataset in sorted({r.dataset for r in rows}):
        mine = [r for r in rows if r.dataset == dataset]
        labels = _labels(mine)
        lines += [f"## {dataset}", "", "| video_id | model | frames | " + " | ".join(labels) + " |",
                  "|" + " --- |" * (3 + len(labels))]
        lines += [f"| {r.video_id} | {r.model} | {r.frames} | "
                  + " | ".join(fmt_value(r.scores.get(label)) for label in labels) + " |" for r in mine]
        lines.append("")
    if not rows:
        lines.append(f"No {PER_FRAME_FILE} found beside the evaluations.")
    return "\n".join(lines).rstrip() + "\n"


def write_per_video(rows: Sequence[VideoScores], out_dir: str) -> dict[str, str]:
    """Write per_video.csv and per_video.md atomically under out_dir (a folder or fsspec URL)."""
    root = DataRoot(out_dir)
    paths = {"csv": root.path(CSV_FILE), "markdown": root.path(MARKDOWN_FILE)}
    root.write_bytes(paths["csv"], to_csv(rows).encode())
    root.write_bytes(paths["markdown"], to_markdown(rows).encode())
    return paths
