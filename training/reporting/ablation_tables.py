"""The papers' ablation tables rebuilt from our scores (MRAA Tables 1 and 3, TPSMM Tables 3 and 4): per dataset and
paper table, one row per variant of that table scored (and the main model that is the table's K = 10 or full-method
row), each of our numbers beside the one the paper prints in that row.

It reads the leaderboard's rows, so it puts a paper's number only beside ours from the same extractor, as the
leaderboard does. Output: ``ablations.md`` and ``ablations.json`` (dataset -> table -> model -> label -> {ours,
published}).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from storage.root import DataRoot
from training.experiments.variants import load_variants
from training.reporting.leaderboard import Leaderboard, fmt_value, label_order, method_of
from training.reporting.published import METRICS, PAPER_EXTRACTOR, published

# The main models that are a table's K = 10 / full-method row (variants.yaml does not repeat them): the row's label,
# and the table whose identical numbers the published data holds for it.
MAIN_ROWS = {
    "MRAA Table 1": {"fomm": ("FOMM, 10 regions", "MRAA Table 2"), "mraa": ("Ours, 10 regions", "MRAA Table 2")},
    "MRAA Table 3": {"mraa": ("Full method", "MRAA Table 2")},
    "TPSMM Table 4": {"tpsmm": ("+ L_warp (full method)", "TPSMM Table 1")},
}
PAPER_LABELS = tuple(m if PAPER_EXTRACTOR[m] is None else f"{m}[{PAPER_EXTRACTOR[m]}]" for m in METRICS)


@dataclass(frozen=True)
class TableRow:
    method: str  # a variant's name or a main model's
    row: str  # the paper's row label
    source: str  # the table that prints its numbers


def paper_tables() -> dict[str, list[TableRow]]:
    """Each paper table's rows, in the order of variants.yaml, the main models' rows first."""
    tables: dict[str, list[TableRow]] = {}
    for table, mains in MAIN_ROWS.items():
        tables[table] = [TableRow(m, row, source) for m, (row, source) in mains.items()]
    for v in load_variants().values():
        tables.setdefault(v.paper, []).append(TableRow(v.name, v.row, v.paper))
    return tables


def _paper_value(dataset: str, row: TableRow, label: str) -> float | None:
    metric = label.split("[")[0]
    if label not in PAPER_LABELS:  # another extractor than the paper's: never beside the paper's number
        return None
    found = [p for p in published(dataset, row.method, metric) if p.source == row.source]
    return found[0].value if found else None


def ablation_tables(board: Leaderboard) -> dict[str, dict[str, dict[str, dict[str, dict[str, float]]]]]:
    """dataset -> table -> model -> label -> {ours, published}, for the tables with at least one variant scored."""
    out: dict = {}
    for dataset in board.datasets():
        models = sorted({r.model for r in board.rows if r.dataset == dataset})
        for table, rows in paper_tables().items():
            by_method = {r.method: r for r in rows}
            mine = [m for m in models if method_of(m) in by_method]
            if not any(by_method[method_of(m)].source == table for m in mine):
                continue  # only a main model: that is the leaderboard's row, not an ablation
            order = [r.method for r in rows]
            for model in sorted(mine, key=lambda m: order.index(method_of(m))):
                row = by_method[method_of(model)]
                ours = {r.label: r.ours for r in board.rows if (r.dataset, r.model) == (dataset, model)}
                entry = {}
                for label in sorted(set(ours) | set(PAPER_LABELS), key=label_order):
                    cell = {k: v for k, v in (("ours", ours.get(label)),
                                              ("published", _paper_value(dataset, row, label))) if v is not None}
                    if cell:
                        entry[label] = cell
                out.setdefault(dataset, {}).setdefault(table, {})[model] = entry
    return out


def to_markdown(tables: dict) -> str:
    lines = ["# Ablations and region counts", "",
             "Each cell: ours / the paper's number in the same row (— where one is missing). Lower is better; units "
             "and extractors as on the leaderboard. The K = 10 and full-method rows are the main models.", ""]
    if not tables:
        lines.append("No experiment scored yet: list some in params.yaml `experiments`.")
    for dataset, by_table in tables.items():
        for table, by_model in by_table.items():
            labels = sorted({lbl for entry in by_model.values() for lbl in entry}, key=label_order)
            rows = {r.method: r for r in paper_tables()[table]}
            lines += [f"## {table} on {dataset}", "", "| row (paper) | ours | " + " | ".join(labels) + " |",
                      "|" + " --- |" * (len(labels) + 2)]
            for model, entry in by_model.items():
                cells = [f"{fmt_value(entry.get(lbl, {}).get('ours'))} / "
                         f"{entry[lbl]['published']:g}" if "published" in entry.get(lbl, {}) else
                         f"{fmt_value(entry.get(lbl, {}).get('ours'))} / —" for lbl in labels]
                lines.append(f"| {rows[method_of(model)].row} | {model} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_ablation_tables(board: Leaderboard, out_dir: str) -> dict[str, str]:
    """ablations.md and ablations.json under ``out_dir`` (a folder or fsspec URL), atomically."""
    tables = ablation_tables(board)
    root = DataRoot(out_dir)
    files = {"markdown": root.path("ablations.md"), "json": root.path("ablations.json")}
    root.write_bytes(files["markdown"], to_markdown(tables).encode())
    root.write_bytes(files["json"], (json.dumps(tables, indent=2, sort_keys=True) + "\n").encode())
    return files
