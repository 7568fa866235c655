"""The validated manifest: what a dataset asks for, before anything is downloaded.

One `ManifestClip` per requested clip (replay datasets) and one `ManifestVideo` per source video; rows that could not
be used are kept as `RowError`s so a coverage report can say which input row failed and why. The same clip-csv
row grammar serves the published TaiChi file and the TED clip lists, so it lives here.
"""
from __future__ import annotations

import csv
import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

import pyarrow as pa

from storage.ids import ChunkKey, InvalidIdError, validate_youtube_id, youtube_url

CLIP_COLUMNS = ("video_id", "start", "end", "bbox", "fps", "width", "height", "partition")
PARTITIONS = ("train", "test")
_UINT = re.compile(r"^\d+$")
_BBOX = re.compile(r"^(\d+)-(\d+)-(\d+)-(\d+)$")


@dataclass(frozen=True)
class ManifestClip:
    """One requested clip. start/end are frame indices at `ref_fps`, end exclusive; bbox is (l, t, r, b) in
    pixels of the `ref_width`×`ref_height` reference frame. `row` is the 1-based data row it came from."""

    video_id: str
    start: int
    end: int
    bbox: tuple[int, int, int, int] | None
    ref_fps: float | None
    ref_width: int | None
    ref_height: int | None
    split: str | None
    row: int

    @property
    def key(self) -> ChunkKey:
        return ChunkKey(self.video_id, self.start, self.end)


@dataclass(frozen=True)
class ManifestVideo:
    video_id: str
    url: str
    split: str | None
    ref_height: int | None
    ref_fps: float | None
    source: str


@dataclass(frozen=True)
class RowError:
    """An input row that was not used. `row` is the 1-based data row (0 for file-level problems), `line` the
    1-based line in the file, `text` the row as written."""

    row: int
    text: str
    reason: str
    line: int | None = None


@dataclass
class Manifest:
    dataset: str
    videos: list[ManifestVideo]
    clips: list[ManifestClip]
    errors: list[RowError]
    source: str
    sha256: str
    md5: str | None = None

    def to_arrow(self) -> "ManifestTables":
        meta = {b"dataset": self.dataset.encode(), b"source": self.source.encode(),
                b"sha256": self.sha256.encode(), b"md5": (self.md5 or "").encode()}
        clips = pa.Table.from_pylist([_clip_row(c) for c in self.clips], schema=CLIP_SCHEMA.with_metadata(meta))
        videos = pa.Table.from_pylist([v.__dict__ for v in self.videos], schema=VIDEO_SCHEMA.with_metadata(meta))
        errors = pa.Table.from_pylist([e.__dict__ for e in self.errors], schema=ERROR_SCHEMA.with_metadata(meta))
        return ManifestTables(clips, videos, errors)

    @classmethod
    def from_arrow(cls, tables: "ManifestTables") -> "Manifest":
        meta = tables.clips.schema.metadata or {}
        text = {k.decode(): v.decode() for k, v in meta.items()}
        clips = [_clip_from_row(r) for r in tables.clips.to_pylist()]
        return cls(
            dataset=text.get("dataset", ""),
            videos=[ManifestVideo(**r) for r in tables.videos.to_pylist()],
            clips=clips,
            errors=[RowError(**r) for r in tables.errors.to_pylist()],
            source=text.get("source", ""),
            sha256=text.get("sha256", ""),
            md5=text.get("md5") or None,
        )


class ManifestTables(NamedTuple):
    clips: pa.Table
    videos: pa.Table
    errors: pa.Table


CLIP_SCHEMA = pa.schema([
    ("video_id", pa.string()), ("start", pa.int64()), ("end", pa.int64()),
    ("bbox_left", pa.int32()), ("bbox_top", pa.int32()), ("bbox_right", pa.int32()), ("bbox_bottom", pa.int32()),
    ("ref_fps", pa.float64()), ("ref_width", pa.int32()), ("ref_height", pa.int32()),
    ("split", pa.string()), ("row", pa.int32()),
])
VIDEO_SCHEMA = pa.schema([
    ("video_id", pa.string()), ("url", pa.string()), ("split", pa.string()),
    ("ref_height", pa.int32()), ("ref_fps", pa.float64()), ("source", pa.string()),
])
ERROR_SCHEMA = pa.schema([("row", pa.int32()), ("text", pa.string()), ("reason", pa.string()), ("line", pa.int32())])
_BBOX_FIELDS = ("bbox_left", "bbox_top", "bbox_right", "bbox_bottom")


def _clip_row(clip: ManifestClip) -> dict:
    row = {k: v for k, v in clip.__dict__.items() if k != "bbox"}
    row.update(zip(_BBOX_FIELDS, clip.bbox or (None,) * 4))
    return row


def _clip_from_row(row: dict) -> ManifestClip:
    box = tuple(row.pop(k) for k in _BBOX_FIELDS)
    return ManifestClip(**row, bbox=None if box[0] is None else box)


class ManifestEncodingError(ValueError):
    """A manifest that is not UTF-8 text; the message names the file, the line and the byte."""


def decode_text(data: bytes, source: str) -> str:
    """A manifest's bytes as text: UTF-8, with the byte-order mark some editors (Excel) put first dropped, so that
    the header stays a header. Other encodings are refused with the file, line and column of the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line_start = data.rfind(b"\n", 0, e.start) + 1
        line, column = data.count(b"\n", 0, e.start) + 1, e.start - line_start + 1
        raise ManifestEncodingError(
            f"{source}: line {line}, column {column}: byte 0x{data[e.start]:02x} is not UTF-8 ({e.reason}); "
            f"save the file as UTF-8") from None


def read_text_file(path: str | Path) -> str:
    """``decode_text`` of a local file."""
    return decode_text(Path(path).read_bytes(), str(path))


def digests(data: bytes) -> tuple[str, str]:
    """(sha256, md5) of a manifest source: sha256 for lineage, md5 because that is what the reference files quote."""
    return hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()


# --------------------------------------------------------------------------- clip-csv rows


class RowProblem(ValueError):
    """A single row cannot be used; the message is the reason recorded in its RowError."""


def parse_uint(text: str, column: str) -> int:
    if not _UINT.match(text.strip()):
        raise RowProblem(f"{column} is not a non-negative integer: {text!r}")
    return int(text)


def parse_bbox(text: str) -> tuple[int, int, int, int]:
    m = _BBOX.match(text.strip())
    if not m:
        raise RowProblem(f"bbox is not 'left-top-right-bottom' integers: {text!r}")
    left, top, right, bottom = (int(g) for g in m.groups())
    if right <= left or bottom <= top:
        raise RowProblem(f"bbox has no area (need right > left and bottom > top): {text!r}")
    return left, top, right, bottom


def parse_fps(text: str) -> float:
    try:
        fps = float(text)
    except ValueError:
        raise RowProblem(f"fps is not a number: {text!r}") from None
    if not math.isfinite(fps) or fps <= 0:
        raise RowProblem(f"fps must be > 0: {text!r}")
    return fps


def parse_size(text: str, column: str) -> int:
    value = parse_uint(text, column)
    if value <= 0:
        raise RowProblem(f"{column} must be > 0: {text!r}")
    return value


def parse_partition(text: str, partitions: Iterable[str]) -> str:
    allowed = tuple(partitions)
    if text.strip() not in allowed:
        raise RowProblem(f"unknown partition {text!r} (expected one of {', '.join(allowed)})")
    return text.strip()


def parse_video_id(text: str) -> str:
    try:
        return validate_youtube_id(text.strip())
    except InvalidIdError as e:
        raise RowProblem(str(e)) from None


@dataclass
class RowSource:
    """One non-blank data row of a csv: its number among data rows, its line in the file, text and cells."""

    row: int
    line: int
    text: str
    cells: dict[str, str] = field(default_factory=dict)


def read_rows(text: str, required: Iterable[str], optional: Iterable[str] = (),
              exact: bool = False) -> tuple[list[RowSource], list[RowError]]:
    """Split a headed csv into rows keyed by column name. A missing required column is a file-level error
    (raised); a row with the wrong number of cells is a RowError. Lines are parsed one by one so each error
    can quote its row exactly (none of these files quote or wrap fields)."""
    lines = text.lstrip("\ufeff").splitlines()
    header_at = next((i for i, l in enumerate(lines) if l.strip()), None)
    if header_at is None:
        raise ValueError("empty manifest: no header row")
    header = [h.strip() for h in next(csv.reader([lines[header_at]]))]
    required, optional = tuple(required), tuple(optional)
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"manifest header {header} lacks column(s) {missing}")
    if exact and tuple(header) != required:
        raise ValueError(f"manifest header is {header}, expected exactly {list(required)}")
    rows, errors, n = [], [], 0
    for i in range(header_at + 1, len(lines)):
        raw = lines[i]
        if not raw.strip():
            continue
        n += 1
        cells = next(csv.reader([raw]))
        if len(cells) != len(header):
            errors.append(RowError(n, raw, f"expected {len(header)} columns, found {len(cells)}", i + 1))
            continue
        rows.append(RowSource(n, i + 1, raw, {h: c.strip() for h, c in zip(header, cells)}))
    return rows, errors


ClipRowParser = Callable[[RowSource], ManifestClip]


def parse_clip_rows(rows: list[RowSource], parse_row: ClipRowParser) -> tuple[list[ManifestClip], list[RowError]]:
    """Parse rows, then drop exact duplicates and every clip of a video listed in more than one partition
    (a video in both splits would leak test identities into training)."""
    clips: list[ManifestClip] = []
    errors: list[RowError] = []
    sources: dict[int, RowSource] = {}
    seen: dict[tuple, int] = {}
    for src in rows:
        try:
            clip = parse_row(src)
        except RowProblem as e:
            errors.append(RowError(src.row, src.text, str(e), src.line))
            continue
        ident = (clip.video_id, clip.start, clip.end, clip.bbox)
        if ident in seen:
            errors.append(RowError(src.row, src.text, f"duplicate of row {seen[ident]}", src.line))
            continue
        seen[ident] = src.row
        sources[src.row] = src
        clips.append(clip)
    splits: dict[str, set[str]] = {}
    for clip in clips:
        splits.setdefault(clip.video_id, set()).add(clip.split or "")
    mixed = {v for v, s in splits.items() if len(s) > 1}
    for clip in (c for c in clips if c.video_id in mixed):
        src = sources[clip.row]
        errors.append(RowError(src.row, src.text, f"video {clip.video_id} is listed in more than one partition "
                               f"({', '.join(sorted(splits[clip.video_id]))})", src.line))
    errors.sort(key=lambda e: e.row)
    return [c for c in clips if c.video_id not in mixed], errors


def videos_from_clips(clips: Iterable[ManifestClip], source: str) -> list[ManifestVideo]:
    """One video per id, in first-seen order; the reference height/fps are the largest any of its clips quote,
    so the download is tall enough for every box."""
    by_id: dict[str, list[ManifestClip]] = {}
    for clip in clips:
        by_id.setdefault(clip.video_id, []).append(clip)
    videos = []
    for video_id, group in by_id.items():
        heights = [c.ref_height for c in group if c.ref_height]
        fps = [c.ref_fps for c in group if c.ref_fps]
        videos.append(ManifestVideo(video_id, youtube_url(video_id), group[0].split,
                                    max(heights) if heights else None, max(fps) if fps else None, source))
    return videos
