"""The catalog: two Parquet tables (videos, chunks) with explicit schemas, readable without motionpipe.

The schemas use only core Arrow types (string, ints, float64, UTC timestamp, fixed-size int list), so
`pyarrow.parquet.read_table` or DuckDB read them as they are. Rows cross the code boundary as frozen dataclasses
that validate themselves, so a bad status, split or chunk id fails where it is made, not in a training run.
"""
from __future__ import annotations

import dataclasses
import io
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar, Iterable, Sequence, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from storage.ids import ChunkKey
from storage.root import DataRoot

VIDEO_STATUSES = (
    "ok", "unavailable", "private", "members_only", "age_gated", "rate_limited", "bot_check", "geo_blocked",
    "copyright", "live", "not_found", "network", "corrupt", "no_person", "no_chunks", "other",
    "not_attempted", "not_processed",
)
SPLITS = ("train", "test")
FRAME_FORMATS = ("jpeg", "png")
OUT_OF_FRAME = ("clip", "pad", "reject")


def _f(name: str, type_: pa.DataType, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable)


VIDEOS_SCHEMA = pa.schema([
    _f("video_id", pa.string(), False),
    _f("dataset", pa.string(), False),
    _f("url", pa.string()),
    _f("status", pa.string(), False),
    _f("error", pa.string()),
    _f("format_id", pa.string()),
    _f("ext", pa.string()),
    _f("width", pa.int32()),
    _f("height", pa.int32()),
    _f("fps", pa.float64()),
    _f("n_frames", pa.int64()),
    _f("duration", pa.float64()),
    _f("sha256", pa.string()),
    _f("bytes", pa.int64()),
    _f("attempts", pa.int32(), False),
    _f("downloaded_at", pa.timestamp("us", tz="UTC")),
    _f("ref_width", pa.int32()),
    _f("ref_height", pa.int32()),
    _f("ref_fps", pa.float64()),
    _f("n_chunks", pa.int32(), False),
])

CHUNKS_SCHEMA = pa.schema([
    _f("chunk_id", pa.string(), False),
    _f("video_id", pa.string(), False),
    _f("dataset", pa.string(), False),
    _f("split", pa.string(), False),
    _f("start", pa.int64(), False),
    _f("end", pa.int64(), False),
    _f("src_start", pa.int64(), False),
    _f("src_end", pa.int64(), False),
    _f("box", pa.list_(pa.int32(), 4), False),
    _f("fps", pa.float64(), False),
    _f("n_frames", pa.int32(), False),
    _f("width", pa.int32(), False),
    _f("height", pa.int32(), False),
    _f("frame_format", pa.string(), False),
    _f("jpeg_quality", pa.int32()),
    _f("out_of_frame", pa.string(), False),
    _f("sha256", pa.string(), False),
    _f("shard", pa.string()),
    _f("bytes", pa.int64(), False),
    _f("provenance", pa.string(), False),
])


class CatalogError(ValueError):
    """A catalog file that cannot be read as the table it should be."""


def _one_of(value: object, allowed: Sequence[str], what: str, who: str) -> None:
    if value not in allowed:
        raise ValueError(f"{who}: {what} {value!r} is not one of {list(allowed)}")


def _as_utc(value: datetime | str | None, who: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{who}: downloaded_at {value!r} is not an ISO timestamp") from None
    if not isinstance(value, datetime):
        raise ValueError(f"{who}: downloaded_at must be a datetime or ISO string, got {type(value).__name__}")
    # Naive times are taken as UTC, the only zone the catalog stores.
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


@dataclass(frozen=True, kw_only=True)
class VideoRow:
    """One candidate video: what downloading it gave (status 'ok' or an error class), plus the manifest's reference."""

    SCHEMA: ClassVar[pa.Schema] = VIDEOS_SCHEMA

    video_id: str
    dataset: str
    url: str | None = None
    status: str
    error: str | None = None
    format_id: str | None = None
    ext: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    n_frames: int | None = None
    duration: float | None = None
    sha256: str | None = None
    bytes: int | None = None
    attempts: int = 0
    downloaded_at: datetime | None = None
    ref_width: int | None = None
    ref_height: int | None = None
    ref_fps: float | None = None
    n_chunks: int = 0

    def __post_init__(self) -> None:
        who = f"video {self.video_id!r}"
        _one_of(self.status, VIDEO_STATUSES, "status", who)
        object.__setattr__(self, "downloaded_at", _as_utc(self.downloaded_at, who))


@dataclass(frozen=True, kw_only=True)
class ChunkRow:
    """One chunk: a frame span of one video, its crop box and how its sample was encoded and where it is stored.

    start/end are in the manifest's frame numbering (end exclusive); src_start/src_end are the same span in the
    downloaded file's frames (they differ when the file's fps is not the reference fps). box is l, t, r, b in
    downloaded-video pixels.
    """

    SCHEMA: ClassVar[pa.Schema] = CHUNKS_SCHEMA

    chunk_id: str
    video_id: str
    dataset: str
    split: str
    start: int
    end: int
    src_start: int
    src_end: int
    box: tuple[int, int, int, int]
    fps: float
    n_frames: int
    width: int
    height: int
    frame_format: str
    jpeg_quality: int | None = None
    out_of_frame: str
    sha256: str
    shard: str | None = None
    bytes: int
    provenance: str

    def __post_init__(self) -> None:
        who = f"chunk {self.chunk_id!r}"
        expected = str(ChunkKey(self.video_id, self.start, self.end))
        if self.chunk_id != expected:
            raise ValueError(f"{who}: id does not match video_id/start/end (expected {expected!r})")
        _one_of(self.split, SPLITS, "split", who)
        _one_of(self.frame_format, FRAME_FORMATS, "frame_format", who)
        _one_of(self.out_of_frame, OUT_OF_FRAME, "out_of_frame", who)
        box = tuple(int(v) for v in self.box)
        if len(box) != 4 or not (box[0] < box[2] and box[1] < box[3]):
            raise ValueError(f"{who}: box must be (l, t, r, b) with l < r and t < b, got {self.box!r}")
        object.__setattr__(self, "box", box)
        if not 0 <= self.src_start < self.src_end:
            raise ValueError(f"{who}: need 0 <= src_start < src_end, got [{self.src_start}, {self.src_end})")
        if self.n_frames <= 0:
            raise ValueError(f"{who}: n_frames must be positive, got {self.n_frames}")
        if self.frame_format == "jpeg" and not (self.jpeg_quality and 1 <= self.jpeg_quality <= 100):
            raise ValueError(f"{who}: jpeg frames need jpeg_quality in [1, 100], got {self.jpeg_quality!r}")
        if self.frame_format == "png" and self.jpeg_quality is not None:
            raise ValueError(f"{who}: png frames must have jpeg_quality None, got {self.jpeg_quality!r}")
        try:
            if not isinstance(json.loads(self.provenance), dict):
                raise ValueError
        except ValueError:
            raise ValueError(f"{who}: provenance must be a JSON object string") from None


Row = TypeVar("Row", VideoRow, ChunkRow)


def _to_records(rows: Iterable[Any], schema: pa.Schema, path: str) -> list[dict]:
    names = set(schema.names)
    records = []
    for i, row in enumerate(rows):
        record = dataclasses.asdict(row) if dataclasses.is_dataclass(row) else dict(row)
        if set(record) != names:
            extra, missing = sorted(set(record) - names), sorted(names - set(record))
            raise CatalogError(f"{path}: row {i} does not fit the schema (extra {extra}, missing {missing})")
        records.append(record)
    return records


def write_rows(root: DataRoot, path: str, rows: Iterable[Any], schema: pa.Schema) -> int:
    """Write rows (dataclasses or dicts) as one zstd Parquet file, atomically. Returns the row count."""
    records = _to_records(rows, schema, path)
    try:
        table = pa.Table.from_pylist(records, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise CatalogError(f"{path}: rows do not match the schema: {exc}") from exc
    for field, column in zip(schema, table.columns):
        if not field.nullable and column.null_count:
            first = next(i for i, v in enumerate(column.to_pylist()) if v is None)
            raise CatalogError(f"{path}: column {field.name!r} may not be null (row {first})")
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    root.write_bytes(path, buf.getvalue())
    return table.num_rows


def _describe_mismatch(got: pa.Schema, expected: pa.Schema) -> str:
    parts = []
    missing = [n for n in expected.names if n not in got.names]
    extra = [n for n in got.names if n not in expected.names]
    if missing:
        parts.append(f"missing columns {missing}")
    if extra:
        parts.append(f"unexpected columns {extra}")
    for field in expected:
        if field.name in got.names:
            other = got.field(field.name)
            if not other.type.equals(field.type) or other.nullable != field.nullable:
                parts.append(
                    f"{field.name}: {other.type}{'' if other.nullable else ' not null'} "
                    f"(expected {field.type}{'' if field.nullable else ' not null'})"
                )
    if not parts and got.names != expected.names:
        parts.append(f"column order {got.names} (expected {expected.names})")
    return "; ".join(parts)


def read_table(root: DataRoot, path: str, schema: pa.Schema | None = None) -> pa.Table:
    """Read a Parquet file; when `schema` is given, fail with a message naming the file if it does not match."""
    if not root.exists(path):
        raise FileNotFoundError(f"catalog file not found: {path}")
    try:
        with root.fs.open(path, "rb") as f:
            table = pq.read_table(f)
    except (pa.ArrowException, OSError) as exc:
        raise CatalogError(f"{path}: not a readable Parquet file: {exc}") from exc
    if schema is not None and not table.schema.equals(schema, check_metadata=False):
        raise CatalogError(f"{path}: schema mismatch: {_describe_mismatch(table.schema, schema)}")
    return table


def read_rows(root: DataRoot, path: str, row_type: type[Row]) -> list[Row]:
    """Read a catalog table back as row dataclasses (validated again on the way in)."""
    table = read_table(root, path, row_type.SCHEMA)
    rows = []
    for i, record in enumerate(table.to_pylist()):
        try:
            rows.append(row_type(**record))
        except (TypeError, ValueError) as exc:
            raise CatalogError(f"{path}: row {i}: {exc}") from exc
    return rows


def read_records(root: DataRoot, path: str) -> list[dict]:
    """A Parquet file's rows as plain dicts, or [] when the file does not exist yet (nothing built)."""
    return read_table(root, path).to_pylist() if root.exists(path) else []
