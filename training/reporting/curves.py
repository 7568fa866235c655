"""Training curves from a run's TensorBoard event files: a PNG to look at and a CSV for ``dvc plots``.

The trainer logs scalars as ``loss/<name>``, ``lr/<optimizer>``, ``perf/pairs_per_s`` and ``progress/epoch``;
one panel is drawn per prefix. A resumed run writes several event files with ``purge_step``; the
EventAccumulator applies the purge, and a step logged twice keeps its last value. Matplotlib is used through
its object API with the Agg canvas, so nothing depends on (or changes) a global pyplot state or a display.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections import defaultdict
from dataclasses import dataclass

from storage.root import DataRoot

Series = dict[str, list[tuple[int, float]]]  # tag -> [(step, value)] sorted by step


class NoEventsError(FileNotFoundError):
    """A folder with no TensorBoard scalars in it."""


def load_scalars(log_dir: str | os.PathLike) -> Series:
    """Every scalar tag in the event files directly under log_dir (the trainer's ``<run>/tensorboard``)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log_dir = os.fspath(log_dir)
    if not os.path.isdir(log_dir):
        raise NoEventsError(f"no such TensorBoard folder: {log_dir}")
    acc = EventAccumulator(log_dir, size_guidance={"scalars": 0})  # 0: keep every point, no reservoir sampling
    acc.Reload()
    series: Series = {}
    for tag in acc.Tags().get("scalars", []):
        by_step: dict[int, float] = {}
        for event in acc.Scalars(tag):
            by_step[int(event.step)] = float(event.value)
        series[tag] = sorted(by_step.items())
    if not series:
        raise NoEventsError(f"no scalars in TensorBoard event files under {log_dir}")
    return series


def to_csv(series: Series) -> str:
    """Wide CSV: ``step`` then one column per tag (sorted); empty where a tag was not logged at that step."""
    tags = sorted(series)
    table: dict[int, dict[str, float]] = defaultdict(dict)
    for tag in tags:
        for step, value in series[tag]:
            table[step][tag] = value
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["step", *tags])
    for step in sorted(table):
        writer.writerow([step, *(_cell(table[step].get(tag)) for tag in tags)])
    return buf.getvalue()


def _cell(v: float | None) -> str:
    return "" if v is None else repr(v)


def _groups(series: Series) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for tag in sorted(series):
        groups[tag.split("/", 1)[0] if "/" in tag else tag].append(tag)
    return dict(groups)


def plot_png(series: Series, title: str = "training curves", dpi: int = 100) -> bytes:
    """One panel per tag prefix (loss, lr, perf, ...), steps on x; PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = _groups(series)
    n = len(groups)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(6 * cols, 3.2 * rows), dpi=dpi)
    FigureCanvasAgg(fig)
    for i, (name, tags) in enumerate(groups.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        for tag in tags:
            steps, values = zip(*series[tag]) if series[tag] else ((), ())
            ax.plot(steps, values, label=tag.split("/", 1)[-1], linewidth=1.2)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        if name == "loss" and all(v > 0 for t in tags for _, v in series[t]):
            ax.set_yscale("log")
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


@dataclass(frozen=True)
class CurveFiles:
    png: str
    csv: str
    tags: tuple[str, ...]


def write_curves(log_dir: str | os.PathLike, out_dir: str, name: str = "curves",
                 title: str | None = None) -> CurveFiles:
    """Read log_dir's scalars and write ``<out_dir>/<name>.png`` and ``<name>.csv`` atomically."""
    series = load_scalars(log_dir)
    root = DataRoot(out_dir)
    png, csv_path = root.path(f"{name}.png"), root.path(f"{name}.csv")
    root.write_bytes(png, plot_png(series, title or f"training curves: {os.fspath(log_dir)}"))
    root.write_bytes(csv_path, to_csv(series).encode())
    return CurveFiles(png, csv_path, tuple(sorted(series)))
