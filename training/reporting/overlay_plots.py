"""The pictures `dvc plots show` puts on its page: per dataset, every model's training losses overlaid (one panel per
loss term) and every model's scores beside the no-motion baseline and the paper's number (one panel per metric).

They are PNGs on purpose: DVC draws its own charts with Vega scripts that its HTML page loads from a CDN, so on a
closed machine that page is blank, while images DVC shows as they are, online or not (and `dvc plots diff` puts the
revisions' images side by side). Matplotlib's object API with the Agg canvas: no pyplot state, no display.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

from storage.root import DataRoot
from training.evaluation.no_motion import NO_MOTION_NAME
from training.reporting.curves import Series
from training.reporting.leaderboard import Leaderboard

PLOTS_DIR = "plots"  # under the leaderboard's folder: <out>/plots/<dataset>/{training_losses,scores}.png
MAX_LOSS_PANELS = 6  # total first, then the terms that most models log


@dataclass(frozen=True)
class ModelCurves:
    model: str
    series: Series  # loss/<term> -> [(step, value)]


def read_curves_csv(text: str) -> Series:
    """The wide CSV of ``training.reporting.curves.to_csv`` back into its series (``loss/*`` columns only)."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or rows[0][:1] != ["step"]:
        raise ValueError("not a curves CSV: its first column must be 'step'")
    header = rows[0]
    series: Series = {tag: [] for tag in header[1:] if tag.startswith("loss/")}
    for row in rows[1:]:
        for tag, cell in zip(header[1:], row[1:]):
            if tag in series and cell:
                series[tag].append((int(row[0]), float(cell)))
    return {tag: points for tag, points in series.items() if points}


def dataset_curves(root: DataRoot, dataset: str) -> list[ModelCurves]:
    """Every model of ``dataset`` whose published checkpoint has its curves.csv beside it, by model name."""
    base = root.path("models", dataset)
    if not root.fs.isdir(base):
        return []
    found = []
    for model_dir in sorted(root.fs.ls(base, detail=False)):
        path = f"{model_dir.rstrip('/')}/curves.csv"
        if root.fs.isfile(path):
            with root.fs.open(path, "r") as f:
                series = read_curves_csv(f.read())
            if series:
                found.append(ModelCurves(model_dir.rstrip("/").rsplit("/", 1)[-1], series))
    return found


def _loss_terms(curves: list[ModelCurves]) -> list[str]:
    counts: dict[str, int] = {}
    for c in curves:
        for tag in c.series:
            counts[tag] = counts.get(tag, 0) + 1
    ordered = sorted(counts, key=lambda t: (t != "loss/total", -counts[t], t))
    return ordered[:MAX_LOSS_PANELS]


def _figure(panels: int, title: str, panel_size=(5.0, 3.2)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = min(panels, 3)
    rows = math.ceil(panels / cols)
    fig = Figure(figsize=(panel_size[0] * cols, panel_size[1] * rows + 0.6), dpi=100)
    FigureCanvasAgg(fig)
    fig.suptitle(title)
    return fig, [fig.add_subplot(rows, cols, i + 1) for i in range(panels)]


def _png(fig) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def training_losses_png(dataset: str, curves: list[ModelCurves]) -> bytes:
    """One panel per loss term, one line per model in the same colour in every panel (log scale where every value
    is positive)."""
    terms = _loss_terms(curves)
    colour = {c.model: f"C{i % 10}" for i, c in enumerate(sorted(curves, key=lambda c: c.model))}  # one per model
    fig, axes = _figure(len(terms), f"{dataset}: training losses of every model")
    for ax, term in zip(axes, terms):
        values = []
        for c in curves:
            if term in c.series:
                steps, ys = zip(*c.series[term])
                ax.plot(steps, ys, label=c.model, linewidth=1.2, color=colour[c.model])
                values += ys
        if values and all(v > 0 for v in values):
            ax.set_yscale("log")
        ax.set_title(term)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    return _png(fig)


def scores_png(board: Leaderboard, dataset: str) -> bytes | None:
    """One panel per metric label measured on ``dataset``: a bar per model (the no-motion baseline grey), the
    paper's number as a black tick where it is comparable. Lower is better for every metric."""
    rows = [r for r in board.rows if r.dataset == dataset and r.ours is not None]
    labels = sorted({r.label for r in rows}, key=lambda lab: (lab != "L1", lab))
    if not labels:
        return None
    models = sorted({r.model for r in rows if r.model != NO_MOTION_NAME})
    colour = {m: f"C{i % 10}" for i, m in enumerate(models)} | {NO_MOTION_NAME: "#999999"}  # one per model
    fig, axes = _figure(len(labels), f"{dataset}: scores on the test split (lower is better)", (4.6, 3.0))
    for ax, label in zip(axes, labels):
        mine = sorted((r for r in rows if r.label == label), key=lambda r: (r.model != NO_MOTION_NAME, r.model))
        y = list(range(len(mine)))
        ax.barh(y, [r.ours for r in mine], color=[colour[r.model] for r in mine])
        for i, r in enumerate(mine):
            if r.published is not None and r.comparable:
                ax.plot([r.published.value], [i], marker="|", color="black", markersize=14, mew=2)
        ax.set_yticks(y, [r.model for r in mine], fontsize=7)
        ax.invert_yaxis()
        ax.set_title(label, fontsize=9)
        ax.grid(True, axis="x", alpha=0.3)
    return _png(fig)


def write_overlay_plots(root: DataRoot, board: Leaderboard, out_dir: str) -> dict[str, str]:
    """``<out_dir>/plots/<dataset>/training_losses.png`` and ``scores.png`` for every dataset on the board (each
    written atomically); returns ``"<dataset>/<name>" -> path`` of what was written."""
    out = DataRoot(out_dir)
    written: dict[str, str] = {}
    for dataset in board.datasets():
        curves = dataset_curves(root, dataset)
        images = {"training_losses": training_losses_png(dataset, curves) if curves else None,
                  "scores": scores_png(board, dataset)}
        for name, png in images.items():
            if png is not None:
                path = out.path(PLOTS_DIR, dataset, f"{name}.png")
                out.write_bytes(path, png)
                written[f"{dataset}/{name}"] = path
    return written
