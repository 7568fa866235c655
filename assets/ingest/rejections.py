"""The manifest's rejected rows, told in a few lines: how many per reason, and the first rows of each.

errors.parquet keeps every rejected row with its own reason; a terminal needs the pattern (1,320 rows: start=end=0,
the published TED file's trap) and an example or two to recognise the file's problem, not 1,320 lines.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from assets.ingest.manifests import RowError

# The row's own value in a reason ("fps is not a number: 'abc'", "duplicate of row 3") is blanked to group rows.
_VALUE = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"(?<=\brow )\d+|(?<=\bline )\d+|(?<=\bfound )\d+|(?<=\()\d+(?=\))")


@dataclass(frozen=True)
class ReasonGroup:
    reason: str  # the reason with the row's values blanked ('…', N)
    count: int
    examples: tuple[RowError, ...]  # the first rows rejected for it, reasons as written


def reason_kind(reason: str) -> str:
    return _NUMBER.sub("N", _VALUE.sub("…", reason, count=1))


def group_rejections(errors: list[RowError], examples: int = 2) -> list[ReasonGroup]:
    """Reasons by count (most first; ties in order of first appearance), each with its first ``examples`` rows."""
    groups: dict[str, list[RowError]] = {}
    for error in errors:
        groups.setdefault(reason_kind(error.reason), []).append(error)
    ranked = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    return [ReasonGroup(kind, len(rows), tuple(rows[:examples])) for kind, rows in ranked]


def _where(error: RowError) -> str:
    return f"row {error.row}" + (f" (line {error.line})" if error.line else "")


def rejection_lines(errors: list[RowError], reasons: int = 5, examples: int = 2) -> list[str]:
    """Indented lines: one per reason (count and reason whole), then its first rows as written in the file."""
    groups = group_rejections(errors, examples)
    lines = []
    for group in groups[:reasons]:
        lines.append(f"  {group.count} row{'s' if group.count != 1 else ''}: {group.reason}")
        lines += [f"    e.g. {_where(e)}: {e.text}" + (f" ({e.reason})" if reason_kind(e.reason) != e.reason else "")
                  for e in group.examples]
    if len(groups) > reasons:
        rest = sum(g.count for g in groups[reasons:])
        lines.append(f"  {rest} more rows for {len(groups) - reasons} other reasons (see manifest/errors.parquet)")
    return lines
