"""Our evaluation numbers beside the papers': one table per dataset, one row per model, one column per metric label.

The Markdown is in the papers' shape (units in the headers, each paper's own row above ours); the JSON keeps one
entry per dataset x model x metric label (``Row``), numbers only.

A published number is shown as comparable only when our label names the extractor the paper used
(``AKD[openpose-coco18]``, ``AED[reid-resnet50-market1501]``, plain ``L1``); a number from another extractor
(``AKD[mediapipe-pose33]``) gets a column of its own, never the paper's, and no difference (its ``Row.status``:
"not comparable (extractor X)"), so an offline stand-in is never read as a reproduction or a regression.

The no-motion baseline (``training.evaluation.no_motion``: each chunk's source frame as every prediction, scored on the same
chunks) is a row of its own per dataset, listed first; every model gets, per metric the baseline has, the ratio
ours / no motion (below 1: better than not moving at all).

Input: each evaluation's ``metrics.json`` (labels -> numbers, plus ``model``, ``dataset`` and provenance), found at
``<data-root>/evaluations/<run>/metrics.json`` by ``motionpipe leaderboard``.
Output: ``leaderboard.md`` and ``leaderboard.json`` (DVC metrics: nested dict of numbers only).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from storage.root import DataRoot
from training.evaluation.no_motion import NO_MOTION_NAME
from training.experiments.variants import variant_of
from training.reporting.published import (METHODS, PAPER_EXTRACTOR, PublishedResult, display_name, primary,
                                          published)

EVALUATIONS_DIR = "evaluations"
METRICS_FILE = "metrics.json"
LEADERBOARD_DIR = "leaderboard"
_LABEL = re.compile(r"^(?P<metric>L1|AKD|MKR|AED)(?:\[(?P<extractor>[A-Za-z0-9_.-]+)\])?$")


class LeaderboardInputError(ValueError):
    """A metrics.json that cannot be placed on the leaderboard; the message names it and why."""


def parse_label(label: str) -> tuple[str, str | None] | None:
    """``AKD[openpose-coco18]`` -> ("AKD", "openpose-coco18"); ``L1`` -> ("L1", None); anything else -> None."""
    m = _LABEL.match(label)
    return (m["metric"], m["extractor"]) if m else None


def method_of(model: str) -> str:
    """The published method a model name refers to: "fomm-taichi-256" -> "fomm", a variant's config
    "mraa-k5-taichi-256" -> "mraa-k5" (its own published row); unknown names stay as they are."""
    variant = variant_of(model)
    if variant is not None:
        return variant
    head = model.split("-", 1)[0].lower()
    return head if head in METHODS else model


@dataclass(frozen=True)
class Row:
    dataset: str
    model: str
    label: str  # our label, or the paper's label when we did not measure it
    ours: float | None
    published: PublishedResult | None  # the paper's number for this metric (whatever the extractor)
    comparable: bool

    @property
    def metric(self) -> str:
        return parse_label(self.label)[0]

    @property
    def extractor(self) -> str | None:
        return parse_label(self.label)[1]

    @property
    def difference(self) -> float | None:
        """ours - published; positive means worse than the paper (every metric is lower-is-better)."""
        if self.comparable and self.ours is not None and self.published is not None:
            return self.ours - self.published.value
        return None

    @property
    def status(self) -> str:
        if self.published is None:
            return "not published"
        if self.ours is None:
            return "not measured"
        if not self.comparable:
            return f"not comparable (extractor {self.extractor})"
        return "comparable"


def _number(value: Any) -> float | None:
    """A metric value: a number, or a MetricResult summary dict {"value": ...}; NaN/None -> None."""
    if isinstance(value, dict):
        value = value.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) or math.isinf(value) else float(value)


def _rows_for(result: dict, where: str) -> list[Row]:
    for key in ("model", "dataset"):
        if not isinstance(result.get(key), str) or not result[key]:
            raise LeaderboardInputError(f"{where}: missing or empty {key!r}")
    dataset, model = result["dataset"], result["model"]
    method = method_of(model)
    rows: list[Row] = []
    measured_paper_labels: set[str] = set()
    for key in sorted(result):
        parsed = parse_label(key)
        if parsed is None:
            continue  # provenance
        metric, extractor = parsed
        raw = result[key]
        if raw is not None and not isinstance(raw, (int, float, dict)) or isinstance(raw, bool):
            raise LeaderboardInputError(f"{where}: {key} is not a number: {raw!r}")
        value = _number(raw)
        pub = primary(dataset, method, metric)
        comparable = pub is not None and extractor == PAPER_EXTRACTOR[metric]
        if comparable:
            measured_paper_labels.add(key)
        rows.append(Row(dataset, model, key, value, pub, comparable))
    # the paper's numbers we did not measure like-for-like still appear, so the table shows the target
    for pub in published(dataset, method, primary_only=True):
        if pub.label not in measured_paper_labels and pub.label not in result:
            rows.append(Row(dataset, model, pub.label, None, pub, True))
    return rows


@dataclass
class Leaderboard:
    rows: list[Row] = field(default_factory=list)
    resolutions: dict[str, tuple[int, int]] = field(default_factory=dict)  # dataset -> (height, width) scored

    def datasets(self) -> list[str]:
        return sorted({r.dataset for r in self.rows})

    def row(self, dataset: str, model: str, label: str) -> Row:
        for r in self.rows:
            if (r.dataset, r.model, r.label) == (dataset, model, label):
                return r
        raise KeyError(f"no leaderboard row for {dataset}/{model}/{label}")

    def no_motion(self, dataset: str, label: str) -> float | None:
        """The no-motion baseline's value of ``label`` on ``dataset``, if it was scored."""
        return next((r.ours for r in self.rows
                     if (r.dataset, r.model, r.label) == (dataset, NO_MOTION_NAME, label)), None)

    def ratio_to_no_motion(self, r: Row) -> float | None:
        """ours / no motion for a model row (None for the baseline itself or where either is missing or 0)."""
        base = None if r.model == NO_MOTION_NAME else self.no_motion(r.dataset, r.label)
        return r.ours / base if r.ours is not None and base else None

    def to_dict(self) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
        """dataset -> model -> label -> {ours, published, difference, ratio_to_no_motion}: numbers only (DVC
        metrics)."""
        out: dict = {}
        for r in self.rows:
            entry: dict[str, float] = {}
            if r.ours is not None:
                entry["ours"] = r.ours
            ratio = self.ratio_to_no_motion(r)
            if ratio is not None:
                entry["ratio_to_no_motion"] = ratio
            if r.published is not None and r.comparable:
                entry["published"] = r.published.value
            if r.difference is not None:
                entry["difference"] = r.difference
            if entry:
                out.setdefault(r.dataset, {}).setdefault(r.model, {})[r.label] = entry
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def columns(self, dataset: str) -> list[str]:
        """The metric labels of ``dataset``'s table: every label a row has a number for, in metric order."""
        labels = {r.label for r in self.rows if r.dataset == dataset and (r.ours is not None or r.comparable)}
        return sorted(labels, key=label_order)

    def to_markdown(self) -> str:
        """One table per dataset in the papers' shape: one row per model, one column per metric label (units in
        the header), the no-motion baseline first, each paper's own row right above ours."""
        lines = ["# Leaderboard: video reconstruction", "", *_LEGEND, ""]
        for dataset in self.datasets():
            lines += self._table(dataset) + [""]
        if not self.rows:
            lines.append("No evaluations found.")
        return "\n".join(lines).rstrip() + "\n"

    def _table(self, dataset: str) -> list[str]:
        cols = self.columns(dataset)
        size = self.resolutions.get(dataset)
        akd = any(parse_label(c)[0] == "AKD" for c in cols)
        title = f"## {dataset}" + (f" ({size[1]}×{size[0]} frames{': AKD in pixels of that size' if akd else ''})"
                                   if size else "")
        head = ["model", *(_header(c) for c in cols), "× no motion", "source / ours − paper"]
        lines = [title, "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        rows = [r for r in self.rows if r.dataset == dataset]
        models = sorted({r.model for r in rows}, key=lambda m: (m != NO_MOTION_NAME, method_of(m), m))
        shown_papers: set[str] = set()
        for model in models:
            mine = {r.label: r for r in rows if r.model == model}
            method = method_of(model)
            papers = {lbl: r.published for lbl, r in mine.items() if r.comparable and r.published is not None}
            if papers and method not in shown_papers:  # the paper's row once, above the first model of its method
                shown_papers.add(method)
                source = ", ".join(sorted({p.source for p in papers.values()}))
                lines.append(_md_row(f"{display_name(method)} (paper)",
                                     [f"{papers[c].value:g}" if c in papers else "—" for c in cols], "—", source))
            cells = [fmt_value(mine[c].ours) if c in mine else "—" for c in cols]
            if model == NO_MOTION_NAME:
                lines.append(_md_row(model, cells, "—", "baseline: the source frame as every prediction"))
                continue
            ratios = [(c, self.ratio_to_no_motion(mine[c])) for c in cols if c in mine]
            vs = ", ".join(f"{_short(c, cols)} {x:.2f}" for c, x in ratios if x is not None) or "—"
            diffs = ", ".join(f"{_short(c, cols)} {mine[c].difference:+.4g}" for c in cols
                              if c in mine and mine[c].difference is not None)
            lines.append(_md_row(f"{model} (ours)", cells, vs, diffs or "not published"))
        return lines

    def write(self, out_dir: str) -> dict[str, str]:
        """Write leaderboard.md and leaderboard.json atomically under out_dir (a folder or fsspec URL)."""
        root = DataRoot(out_dir)
        paths = {"markdown": root.path("leaderboard.md"), "json": root.path("leaderboard.json")}
        root.write_bytes(paths["markdown"], self.to_markdown().encode())
        root.write_bytes(paths["json"], self.to_json().encode())
        return paths


_UNITS = {"L1": "0–1", "AKD": "px", "MKR": "fraction", "AED": "embedding distance²"}
_LEGEND = [
    "Lower is better in every column. **L1**: mean |generated − real| over pixels and channels, on a 0–1 scale (as "
    "the papers). **AKD**: mean per-coordinate |Δ| of the keypoints found in both frames, in pixels of the frames as "
    "evaluated (the dataset's resolution, in each table's title; the papers: TaiChiHD 256×256, TED 384×384). "
    "**MKR**: fraction (0–1) of the real frame's keypoints missing in the generated one. **AED**: squared Euclidean "
    "distance between the identity embeddings of the real and generated frame (the extractor's embedding space).",
    "",
    "Each metric column names the extractor that measured it; a paper's number sits only in the column of the "
    "paper's own extractor (AKD/MKR: openpose-coco18, AED: reid-resnet50-market1501), so a number from another "
    "extractor is never set beside it. \"(paper)\" rows are the method's own publication, listed above our models "
    "of that method; ours − paper is positive where we are worse. × no motion = ours / the no-motion baseline's "
    "(the source frame as every prediction, scored on the same test chunks): below 1 beats not moving at all.",
]
_METRIC_ORDER = {"L1": 0, "AKD": 1, "MKR": 2, "AED": 3}


def label_order(label: str) -> tuple:
    """Column order: L1, AKD, MKR, AED; within a metric the paper's extractor first, so its numbers line up."""
    metric, extractor = parse_label(label)
    return (_METRIC_ORDER[metric], extractor != PAPER_EXTRACTOR[metric], extractor or "")


def _header(label: str) -> str:
    metric = parse_label(label)[0]
    return f"{label} ({_UNITS[metric]})"


def _short(label: str, columns: list[str]) -> str:
    """``AKD`` for ``AKD[x]`` when it is the table's only AKD column, else the whole label."""
    metric = parse_label(label)[0]
    return metric if sum(parse_label(c)[0] == metric for c in columns) == 1 else label


def _md_row(name: str, cells: list[str], vs: str, note: str) -> str:
    return "| " + " | ".join([name, *cells, vs, note]) + " |"


def fmt_value(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.3f}" if abs(v) >= 1 else f"{v:.4f}"


def build_leaderboard(results: Iterable[dict], sources: Iterable[str] | None = None) -> Leaderboard:
    """One Leaderboard from evaluations' metrics.json contents; sources name them in errors (default: index)."""
    results = list(results)
    names = list(sources) if sources is not None else [f"result #{i}" for i in range(len(results))]
    rows: list[Row] = []
    resolutions: dict[str, tuple[int, int]] = {}
    seen: dict[tuple[str, str], str] = {}
    for result, where in zip(results, names):
        if not isinstance(result, dict):
            raise LeaderboardInputError(f"{where}: expected a JSON object, got {type(result).__name__}")
        new = _rows_for(result, where)
        key = (result["dataset"], result["model"])
        if key in seen:
            raise LeaderboardInputError(f"{where}: a second result for dataset {key[0]!r} model {key[1]!r} "
                                        f"(first: {seen[key]}); keep one evaluation per dataset and model")
        seen[key] = where
        rows += new
        size = _frame_size(result["model"])
        if size is not None:
            resolutions.setdefault(result["dataset"], size)
    return Leaderboard(rows, resolutions)


def _frame_size(model: str) -> tuple[int, int] | None:
    """(height, width) a model config scores at (the evaluation checks it is its dataset's), None for a name that is
    no config (the baseline, an official checkpoint's free name): read from the code, so every clone agrees."""
    from training.config import ConfigError, load_config

    try:
        return tuple(load_config(model).frame_size)
    except (ConfigError, ValueError, OSError):
        return None


def collect_results(root: DataRoot) -> tuple[list[dict], list[str]]:
    """Every evaluation under ``<root>/evaluations/`` (``<dataset>/<config>/metrics.json`` as `motionpipe evaluate`
    writes them, or ``<run>/metrics.json``), in path order. The model and dataset come from the sibling
    ``evaluation.json`` provenance when the metrics file itself (numbers only, for DVC) does not name them."""
    paths = sorted({*root.fs.glob(root.path(EVALUATIONS_DIR, "*", METRICS_FILE)),
                    *root.fs.glob(root.path(EVALUATIONS_DIR, "*", "*", METRICS_FILE))})
    results = []
    for path in paths:
        try:
            result = json.loads(root.read_bytes(path))
            sibling = path.rpartition("/")[0] + "/evaluation.json"
            if ("model" not in result or "dataset" not in result) and root.exists(sibling):
                provenance = json.loads(root.read_bytes(sibling)).get("provenance", {})
                result.setdefault("model", provenance.get("config") or provenance.get("model"))
                result.setdefault("dataset", provenance.get("dataset"))
        except json.JSONDecodeError as exc:
            raise LeaderboardInputError(f"{path}: not valid JSON ({exc})") from None
        results.append(result)
    return results, [str(p) for p in paths]
