"""WebDataset samples: per-video clip tars, and the split shards packed from them.
(Over 400 lines: the clip tar writer, the shard packer and their readers share one byte-exact sample layout.)

Sample layout (what plain `webdataset` sees): the key is the chunk id `<video_id>#<start:06d>#<end:06d>` (no dots,
so webdataset's split at the first '.' gives exactly the key), and the entries are

    <key>.000000.jpg, <key>.000001.jpg, ...   frames in order (`.png` when lossless), RGB
    <key>.json                                metadata: the chunk's fields plus frame_format and n_frames

`wds.WebDataset(urls, shardshuffle=False).decode("rgb8")` yields {"__key__": chunk id, "000000.jpg": HxWx3 uint8,
..., "json": dict}. The json entry comes last because n_frames is only known once the frames have streamed in.

Tar headers are fixed (mtime 0, uid/gid 0, mode 0644, no user names, PAX format), so the same input gives the same
bytes. A sample's bytes are its members' contiguous tar records (headers, data, padding); its sha256 is taken over
exactly those bytes, and packing copies them unchanged, so the hash holds in the clip tar and in the shard alike.

Shard publish protocol (`pack_shards`), for `out_dir` = `<dataset>/shards`:
  1. remove leftover `.staging-*` folders from crashed runs (readers never look inside them);
  2. write every shard tar and its Parquet sidecar into a fresh `out_dir/.staging-<token>/`;
  3. compare with the current `manifest.json`: files whose name and sha256 are unchanged are left in place;
  4. if a changed file would replace a name the current manifest lists, delete `manifest.json` first, so readers see
     "no shards" rather than a mix of old and new;
  5. rename the changed files into `out_dir` (each rename atomic);
  6. write the new `manifest.json` atomically: the commit point;
  7. delete shard/sidecar files the new manifest does not list, and the staging folder.
Readers trust only the shards the manifest lists (`iter_chunks`, `verify_shards` do). A crash before 6 leaves either
the old dataset intact or no manifest; a crash after 6 leaves only unlisted leftovers, removed by the next pack.
Two packs into the same folder at once are not supported.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import tarfile
import uuid
from dataclasses import dataclass, field
from typing import IO, Any, Iterable, Iterator

import numpy as np
import pyarrow as pa

from storage.catalog import SPLITS, read_table, write_rows
from storage.frames import FORMAT_OF_EXTENSION, frame_entry_name
from storage.ids import ChunkKey, InvalidIdError
from storage.paths import shard_name, shard_sidecar_name
from storage.root import DataRoot

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "motionpipe-shards/1"
SHARD_FILE = re.compile(r"^(?P<split>[a-z]+)-(?P<index>\d{6})\.(?P<kind>tar|parquet)$")
FRAME_ENTRY = re.compile(r"^(?P<index>\d{6})\.(?P<ext>jpg|png)$")
BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
_COPY = 1 << 20

SIDECAR_SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False),
    pa.field("n_frames", pa.int32(), nullable=False),
    pa.field("bytes", pa.int64(), nullable=False),
    pa.field("sha256", pa.string(), nullable=False),
    pa.field("offset", pa.int64(), nullable=False),  # where the sample's first header starts in the shard
])


class ShardError(ValueError):
    """A clip tar, shard or shard manifest that is not what it should be; the message names the file."""


@dataclass(frozen=True)
class SampleInfo:
    key: str
    n_frames: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class RawSample:
    """One sample as stored: entries are (suffix after the key, bytes), e.g. ('000000.jpg', ...), ('json', ...)."""

    key: str
    entries: list[tuple[str, bytes]]

    def meta(self) -> dict:
        for name, data in self.entries:
            if name == "json":
                return json.loads(data)
        raise ShardError(f"sample {self.key}: no json entry")

    def frames(self) -> list[bytes]:
        """Frame bytes in frame order."""
        return [data for name, data in sorted(self.entries) if FRAME_ENTRY.match(name)]


def _check_key(key: str) -> str:
    if not isinstance(key, str) or str(ChunkKey.parse(key)) != key:
        raise InvalidIdError(f"sample key must be a canonical chunk id '<video_id>#<start:06d>#<end:06d>': {key!r}")
    return key


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def _trailer(offset: int) -> bytes:
    """End-of-archive (two zero blocks) padded to a whole record, as tarfile writes it."""
    end = offset + 2 * BLOCK
    return bytes(2 * BLOCK + (-end) % RECORD)


class _CountingWriter:
    """A write-only file that counts bytes and hashes the current sample as they pass to the real file."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.offset = 0
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._f.write(data)
        self.digest.update(data)
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset


class ClipTarWriter:
    """Writes one tar of samples (one video's chunks) and publishes it only when the block ends cleanly.

    Frames are written as tar members as they arrive, so a long chunk never sits in memory whole. If a sample
    fails half-way the writer refuses further samples and nothing is published.
    """

    def __init__(self, root: DataRoot, path: str) -> None:
        self.root = root
        self.path = path
        self.samples: list[SampleInfo] = []
        self._keys: set[str] = set()
        self._stack: contextlib.ExitStack | None = None
        self._out: _CountingWriter | None = None
        self._tar: tarfile.TarFile | None = None
        self._broken: str | None = None

    def __enter__(self) -> "ClipTarWriter":
        self._stack = contextlib.ExitStack()
        f = self._stack.enter_context(self.root.open_atomic(self.path, "wb"))
        self._out = _CountingWriter(f)
        self._tar = tarfile.open(fileobj=self._out, mode="w", format=tarfile.PAX_FORMAT)
        return self

    def _add(self, name: str, data: bytes) -> None:
        self._tar.addfile(_tarinfo(name, len(data)), io.BytesIO(data))

    def add_sample(self, key: str, frames: Iterable[bytes], ext: str, meta: dict[str, Any]) -> SampleInfo:
        """Append one sample: frames (encoded bytes, in order) then `<key>.json` = meta + frame_format, n_frames."""
        if self._tar is None:
            raise RuntimeError(f"{self.path}: use ClipTarWriter as a context manager")
        if self._broken:
            raise RuntimeError(f"{self.path}: an earlier sample failed ({self._broken}); the tar will not be published")
        _check_key(key)
        if key in self._keys:
            raise ShardError(f"{self.path}: duplicate sample key {key}")
        if ext not in FORMAT_OF_EXTENSION:
            raise ValueError(f"sample {key}: frame extension must be one of {sorted(FORMAT_OF_EXTENSION)}, got {ext!r}")
        fmt = FORMAT_OF_EXTENSION[ext]
        meta = dict(meta)
        if meta.get("frame_format", fmt) != fmt:
            raise ValueError(f"sample {key}: meta frame_format {meta['frame_format']!r} but frames are .{ext}")
        try:
            json.dumps(meta, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"sample {key}: meta is not plain JSON: {exc}") from exc

        start = self._out.offset
        self._out.digest = hashlib.sha256()
        try:
            n = 0
            for i, data in enumerate(frames):
                self._add(f"{key}.{frame_entry_name(i, fmt)}", bytes(data))
                n += 1
            if n == 0:
                raise ValueError(f"sample {key}: no frames")
            if meta.get("n_frames", n) != n:
                raise ValueError(f"sample {key}: meta n_frames {meta['n_frames']} but {n} frames were given")
            meta.update(frame_format=fmt, n_frames=n)
            self._add(f"{key}.json", json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=False).encode())
        except BaseException as exc:
            self._broken = f"{key}: {exc!r}"
            raise
        info = SampleInfo(key, n, self._out.offset - start, self._out.digest.hexdigest())
        self._keys.add(key)
        self.samples.append(info)
        return info

    def __exit__(self, exc_type, exc, tb) -> bool:
        stack, self._stack = self._stack, None
        if exc_type is None:
            try:
                if self._broken:
                    raise RuntimeError(f"{self.path}: not published, a sample failed ({self._broken})")
                self._tar.close()  # end-of-archive blocks; the file itself is closed by open_atomic
            except BaseException as err:
                stack.__exit__(type(err), err, err.__traceback__)  # removes the temporary file
                raise
        return bool(stack.__exit__(exc_type, exc, tb))


# ---- reading ---------------------------------------------------------------------------------------------------


@dataclass
class _Span:
    """A sample's members and its byte range [start, end) in a tar."""

    key: str
    members: list[tarfile.TarInfo]
    start: int
    end: int

    @property
    def n_frames(self) -> int:
        return sum(1 for m in self.members if FRAME_ENTRY.match(m.name.partition(".")[2]))


def _member_end(info: tarfile.TarInfo) -> int:
    return info.offset_data + info.size + (-info.size) % BLOCK


def _scan(f: IO[bytes], path: str) -> Iterator[tuple[_Span, tarfile.TarFile]]:
    """Group a tar's members into samples (consecutive members sharing the part before the first '.').

    Checks the end-of-archive marker too: tarfile alone reads a tar cut at a member boundary as a shorter, valid one.
    """
    seen: set[str] = set()
    span: _Span | None = None
    try:
        tar = tarfile.open(fileobj=f, mode="r:")
        for info in tar:
            if not info.isreg() or "/" in info.name or "." not in info.name:
                raise ShardError(f"{path}: unexpected tar member {info.name!r}")
            key = info.name.partition(".")[0]
            if span is not None and key == span.key:
                span.members.append(info)
                span.end = _member_end(info)
                continue
            if key in seen:
                raise ShardError(f"{path}: members of sample {key} are not contiguous")
            if span is not None:
                yield span, tar
            seen.add(key)
            span = _Span(key, [info], info.offset, _member_end(info))
        if span is not None:
            yield span, tar
        f.seek(tar.offset)
        tail = f.read(2 * BLOCK)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ShardError(f"{path}: truncated or corrupt tar: {exc}") from exc
    if len(tail) < 2 * BLOCK or any(tail):
        raise ShardError(f"{path}: truncated or corrupt tar: no end-of-archive marker at byte {tar.offset}")


def iter_tar_samples(root: DataRoot, path: str) -> Iterator[RawSample]:
    """Samples of a clip tar or shard, in stored order, each with all its entries read."""
    if not root.exists(path):
        raise FileNotFoundError(f"tar not found: {path}")
    with root.fs.open(path, "rb") as f:
        for span, tar in _scan(f, path):
            entries = []
            for info in span.members:
                try:
                    entries.append((info.name.partition(".")[2], tar.extractfile(info).read()))
                except (tarfile.TarError, OSError) as exc:
                    raise ShardError(f"{path}: cannot read member {info.name}: {exc}") from exc
            yield RawSample(span.key, entries)


def _index_tar(root: DataRoot, path: str) -> dict[str, _Span]:
    if not root.exists(path):
        raise FileNotFoundError(f"clip tar not found: {path}")
    with root.fs.open(path, "rb") as f:
        return {span.key: span for span, _ in _scan(f, path)}


# ---- shards ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardInfo:
    name: str
    split: str
    n_samples: int
    bytes: int
    sha256: str
    sidecar: str
    sidecar_sha256: str


@dataclass(frozen=True)
class ShardManifest:
    """What `manifest.json` says: the only shards a reader may trust, and the dataset's content hash."""

    shards: list[ShardInfo]
    content_hash: str
    max_samples_per_shard: int
    max_shard_bytes: int

    @property
    def n_samples(self) -> int:
        return sum(s.n_samples for s in self.shards)

    def for_split(self, split: str) -> list[ShardInfo]:
        return [s for s in self.shards if s.split == split]

    def to_json(self) -> bytes:
        splits = {
            split: {"n_shards": len(shards), "n_samples": sum(s.n_samples for s in shards),
                    "bytes": sum(s.bytes for s in shards)}
            for split in SPLITS if (shards := self.for_split(split))
        }
        doc = {
            "format": MANIFEST_FORMAT,
            "content_hash": self.content_hash,
            "n_samples": self.n_samples,
            "splits": splits,
            "max_samples_per_shard": self.max_samples_per_shard,
            "max_shard_bytes": self.max_shard_bytes,
            "shards": [s.__dict__ for s in self.shards],
        }
        return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, path: str) -> "ShardManifest":
        try:
            doc = json.loads(data)
            if doc.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"format {doc.get('format')!r}, expected {MANIFEST_FORMAT!r}")
            return cls(
                shards=[ShardInfo(**s) for s in doc["shards"]],
                content_hash=doc["content_hash"],
                max_samples_per_shard=doc["max_samples_per_shard"],
                max_shard_bytes=doc["max_shard_bytes"],
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ShardError(f"{path}: not a valid shard manifest: {exc}") from exc


def content_hash(shards: Iterable[ShardInfo]) -> str:
    """The dataset's data version: sha256 over `name sha256` lines of all shards, sorted by name.

    Names are included so that moving a sample set from train to test changes the version.
    """
    lines = sorted(f"{s.name} {s.sha256}\n" for s in shards)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


@dataclass(frozen=True)
class ShardIndex:
    manifest: ShardManifest
    shard_of: dict[str, str] = field(default_factory=dict)  # chunk id -> shard name

    @property
    def content_hash(self) -> str:
        return self.manifest.content_hash


def _plan(items: list[tuple[str, str, _Span]], max_samples: int, max_bytes: int) -> list[tuple[str, list]]:
    """Cut the sorted samples into shards per split: a new shard when either limit would be passed."""
    shards: list[tuple[str, list]] = []
    index = {split: 0 for split in SPLITS}
    current: list = []
    size = 0
    for item in items:
        split, _, span = item
        n = span.end - span.start
        if current and (current[0][0] != split or len(current) >= max_samples or size + n > max_bytes):
            shards.append((current[0][0], current))
            current, size = [], 0
        current.append(item)
        size += n
    if current:
        shards.append((current[0][0], current))
    named = []
    for split, members in shards:
        named.append((shard_name(split, index[split]), members))
        index[split] += 1
    return named


def _copy_range(src: IO[bytes], start: int, end: int, sinks: list) -> None:
    src.seek(start)
    left = end - start
    while left:
        block = src.read(min(_COPY, left))
        if not block:
            raise ShardError(f"unexpected end of data at byte {end - left}")
        for sink in sinks:
            sink(block)
        left -= len(block)


def _write_shard(root: DataRoot, tar_path: str, members: list[tuple[str, str, _Span]]) -> tuple[str, int, list[dict]]:
    """Copy each sample's byte range into one shard tar; returns (sha256, bytes, sidecar rows)."""
    shard_digest = hashlib.sha256()
    rows: list[dict] = []
    offset = 0
    with root.open_atomic(tar_path, "wb") as out:
        def sink(block: bytes) -> None:
            out.write(block)
            shard_digest.update(block)

        src, src_path = None, None
        try:
            for _, clip_path, span in members:
                if clip_path != src_path:
                    if src is not None:
                        src.close()
                    src, src_path = root.fs.open(clip_path, "rb"), clip_path
                sample_digest = hashlib.sha256()
                try:
                    _copy_range(src, span.start, span.end, [sink, sample_digest.update])
                except ShardError as exc:
                    raise ShardError(f"{clip_path}: sample {span.key}: {exc}") from exc
                n = span.end - span.start
                rows.append(dict(key=span.key, n_frames=span.n_frames, bytes=n,
                                 sha256=sample_digest.hexdigest(), offset=offset))
                offset += n
        finally:
            if src is not None:
                src.close()
        sink(_trailer(offset))
    return shard_digest.hexdigest(), root.size(tar_path), rows


def _clean_staging(root: DataRoot, out_dir: str) -> None:
    for p in root.ls(out_dir):
        if p.rpartition("/")[2].startswith(".staging-"):
            root.rm(p, recursive=True)


def _old_manifest(root: DataRoot, out_dir: str) -> ShardManifest | None:
    try:
        return read_shard_manifest(root, out_dir)
    except (FileNotFoundError, ShardError):
        return None


def pack_shards(
    root: DataRoot,
    out_dir: str,
    samples: Iterable[tuple[str, str, str]],
    max_samples_per_shard: int = 1000,
    max_shard_bytes: int = 1 << 30,
) -> ShardIndex:
    """Pack (split, clip_tar_path, key) samples into `out_dir/<split>-NNNNNN.tar` + `.parquet` + `manifest.json`.

    Samples are sorted by (split, key) and their bytes copied unchanged; the result depends only on the input set.
    See the module docstring for the publish protocol.
    """
    if max_samples_per_shard < 1 or max_shard_bytes < 1:
        raise ValueError("max_samples_per_shard and max_shard_bytes must be positive")
    wanted = sorted((split, key, path) for split, path, key in samples)
    seen: dict[str, str] = {}
    for split, key, path in wanted:
        if split not in SPLITS:
            raise ValueError(f"sample {key}: split {split!r} is not one of {list(SPLITS)}")
        _check_key(key)
        if key in seen:
            raise ShardError(f"sample {key} given twice ({seen[key]} and {path})")
        seen[key] = path

    indexes: dict[str, dict[str, _Span]] = {}
    items = []
    for split, key, path in wanted:
        if path not in indexes:
            indexes[path] = _index_tar(root, path)
        span = indexes[path].get(key)
        if span is None:
            raise ShardError(f"{path}: no sample {key}")
        items.append((split, path, span))

    root.makedirs(out_dir)
    _clean_staging(root, out_dir)
    staging = f"{out_dir}/.staging-{uuid.uuid4().hex[:12]}"
    root.makedirs(staging)

    shards: list[ShardInfo] = []
    shard_of: dict[str, str] = {}
    try:
        for name, members in _plan(items, max_samples_per_shard, max_shard_bytes):
            split, sidecar = members[0][0], shard_sidecar_name(name)
            sha, size, rows = _write_shard(root, f"{staging}/{name}", members)
            write_rows(root, f"{staging}/{sidecar}", rows, SIDECAR_SCHEMA)
            shards.append(ShardInfo(
                name=name, split=split, n_samples=len(rows), bytes=size, sha256=sha,
                sidecar=sidecar, sidecar_sha256=root.sha256(f"{staging}/{sidecar}"),
            ))
            shard_of.update({row["key"]: name for row in rows})
    except BaseException:  # a full disk, a bad clip tar: the published shards stay, and no staging is left
        with contextlib.suppress(Exception):
            root.rm(staging, recursive=True)
        raise
    manifest = ShardManifest(shards, content_hash(shards), max_samples_per_shard, max_shard_bytes)

    _publish(root, out_dir, staging, manifest)
    return ShardIndex(manifest, shard_of)


def _publish(root: DataRoot, out_dir: str, staging: str, manifest: ShardManifest) -> None:
    old = _old_manifest(root, out_dir)
    old_files = {}
    if old is not None:
        for s in old.shards:
            old_files[s.name] = s.sha256
            old_files[s.sidecar] = s.sidecar_sha256
    new_files = {}
    for s in manifest.shards:
        new_files[s.name] = s.sha256
        new_files[s.sidecar] = s.sidecar_sha256
    changed = [
        name for name, sha in new_files.items()
        if old_files.get(name) != sha or not root.exists(f"{out_dir}/{name}")
    ]
    manifest_path = f"{out_dir}/{MANIFEST_NAME}"
    if any(name in old_files for name in changed):
        root.rm(manifest_path)
    for name in changed:
        root.fs.mv(f"{staging}/{name}", f"{out_dir}/{name}")
    doc = manifest.to_json()
    if changed or not root.exists(manifest_path) or root.read_bytes(manifest_path) != doc:
        root.write_bytes(manifest_path, doc)
    for p in root.ls(out_dir):
        name = p.rpartition("/")[2]
        if SHARD_FILE.match(name) and name not in new_files:
            root.rm(p)
    root.rm(staging, recursive=True)


def read_shard_manifest(root: DataRoot, out_dir: str) -> ShardManifest:
    path = f"{out_dir}/{MANIFEST_NAME}"
    if not root.exists(path):
        raise FileNotFoundError(f"no shard manifest at {path} (shards not packed, or a pack was interrupted)")
    return ShardManifest.from_json(root.read_bytes(path), path)


def verify_shards(root: DataRoot, out_dir: str) -> list[str]:
    """Problems with the published shards: missing files, sha256/size mismatches, sidecar counts. Empty if sound."""
    try:
        manifest = read_shard_manifest(root, out_dir)
    except (FileNotFoundError, ShardError) as exc:
        return [str(exc)]
    problems = []
    if manifest.content_hash != content_hash(manifest.shards):
        problems.append(f"{out_dir}/{MANIFEST_NAME}: content_hash does not match its shard list")
    listed = set()
    for s in manifest.shards:
        listed.update((s.name, s.sidecar))
        tar_path, side_path = f"{out_dir}/{s.name}", f"{out_dir}/{s.sidecar}"
        if not root.exists(tar_path):
            problems.append(f"{tar_path}: missing shard")
        elif root.size(tar_path) != s.bytes:
            problems.append(f"{tar_path}: {root.size(tar_path)} bytes, manifest says {s.bytes}")
        elif root.sha256(tar_path) != s.sha256:
            problems.append(f"{tar_path}: sha256 mismatch (manifest {s.sha256[:12]}…)")
        if not root.exists(side_path):
            problems.append(f"{side_path}: missing sidecar")
            continue
        if root.sha256(side_path) != s.sidecar_sha256:
            problems.append(f"{side_path}: sha256 mismatch (manifest {s.sidecar_sha256[:12]}…)")
        try:
            rows = read_table(root, side_path, SIDECAR_SCHEMA).num_rows
        except Exception as exc:  # a broken sidecar is a finding, not a crash of the check
            problems.append(f"{side_path}: unreadable sidecar: {exc}")
            continue
        if rows != s.n_samples:
            problems.append(f"{side_path}: {rows} rows, manifest says {s.n_samples} samples")
    for p in root.ls(out_dir):
        name = p.rpartition("/")[2]
        if SHARD_FILE.match(name) and name not in listed:
            problems.append(f"{p}: not listed in the manifest (left over from an interrupted pack)")
    return problems


def iter_chunks(root: DataRoot, out_dir: str, split: str) -> Iterator[tuple[str, dict, list[np.ndarray]]]:
    """(chunk id, meta, RGB frames) for every sample of a split's listed shards, read with plain webdataset."""
    import webdataset as wds  # heavy import, only needed by readers

    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {list(SPLITS)}")
    urls = [f"{out_dir}/{s.name}" for s in read_shard_manifest(root, out_dir).for_split(split)]
    if not urls:
        return

    def open_shards(src: Iterable[dict]) -> Iterator[dict]:
        for item in src:  # through the root's filesystem, so an object-store root works like a local one
            with root.fs.open(item["url"], "rb") as stream:
                yield {"url": item["url"], "stream": stream}

    pipeline = wds.DataPipeline(
        wds.SimpleShardList(urls),
        wds.split_by_worker,
        open_shards,
        wds.tariterators.tar_file_expander,
        wds.tariterators.group_by_keys,
        wds.decode("rgb8"),
    )
    for sample in pipeline:
        names = sorted(k for k in sample if FRAME_ENTRY.match(k))
        yield sample["__key__"], sample["json"], [sample[k] for k in names]


def shard_samples(root: DataRoot, out_dir: str) -> list[dict]:
    """Every sample the published shards hold, from their sidecars: key, shard, n_frames, bytes, sha256."""
    if not root.exists(f"{out_dir}/manifest.json"):
        return []
    rows = []
    for shard in read_shard_manifest(root, out_dir).shards:
        for row in read_table(root, f"{out_dir}/{shard.sidecar}").to_pylist():
            rows.append({**row, "shard": shard.name})
    return rows
