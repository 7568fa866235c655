"""A dataset's published shards as the official repositories' folders, so their own `run.py` can train on them.

FOMM, MRAA and TPSMM (`frames_dataset.py`) read `<root>/train/` and `<root>/test/` (if `train` exists, `test` must
too), one entry per chunk, named as video-preprocessing's `load_videos.py` names it:

    <root>/<split>/<video_id>#<start:06d>#<end:06d>.mp4                 --format mp4 (Monkey-Net reads these too)
    <root>/<split>/<video_id>#<start:06d>#<end:06d>.mp4/0000000.png     --format png: a folder of frames

The PNG folder keeps the `.mp4` name, as `load_videos.py` writes it: with id sampling the readers glob
`<video_id>*.mp4` and group chunks by `name.split('#')[0]`.

Why it is built this way:
- frames come from the shards the published manifest lists, each checked against its sha256 first, read by
  `storage.shards` and decoded as training decodes them; a PNG folder holds exactly those pixels (PNG frames are
  copied byte for byte);
- nothing half-written is ever inside `train/` or `test/`: the readers list those folders and would take a temporary
  file for a chunk, so every file or folder is made under `<root>/.motionpipe-export/` (same filesystem) and renamed
  into place;
- a stamp per chunk (the sample's sha256 and the format) lets a rerun skip what is done and redo what changed;
  chunk entries the shards no longer hold in that split are removed (entries with other names are left alone);
- one export per folder at a time (a lock), into an empty folder or an earlier export of the same dataset and format.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from storage import paths
from storage.catalog import SPLITS
from storage.frames import decode_frame, encode_frame
from storage.ids import CHUNK_KEY
from storage.root import DataRoot
from storage.shards import RawSample, iter_tar_samples, read_shard_manifest, shard_samples, verify_shards
from storage.video import VideoWriter

LAYOUTS = ("fomm",)  # FOMM, MRAA and TPSMM share it
FORMATS = ("mp4", "png")
STATE_DIR = ".motionpipe-export"
EXPORT_RECORD = "export.json"
PNG_NAME = "{:07d}.png"  # load_videos.py: str(j).zfill(7) + '.png'
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_ENTRY = re.compile(CHUNK_KEY.pattern.rstrip("$") + r"\.mp4$")


class ExportError(ValueError):
    """The export cannot start or go on; the message names the folder, the shard or the sample."""


@dataclass
class ExportSummary:
    dest: str
    fmt: str
    written: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)

    @property
    def n_chunks(self) -> int:
        return sum(self.written.values()) + sum(self.skipped.values())


@dataclass(frozen=True)
class _Target:
    split: str
    key: str
    sha256: str
    shard: str


def entry_name(key: str) -> str:
    """The file (mp4) or folder (png) name of a chunk: `<key>.mp4`, as the official readers expect."""
    if not CHUNK_KEY.match(key):
        raise ExportError(f"sample key {key!r} is not a chunk id '<video_id>#<start>#<end>'")
    return f"{key}.mp4"


def _write_json(path: Path, doc: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:12]}")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _locked(state: Path) -> Iterator[None]:
    with open(state / "lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ExportError(f"{state.parent}: another export into this folder is running") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _claim(dest: Path, dataset: str, layout: str, fmt: str) -> Path:
    """The state folder of `dest`, which must be new, empty, or an earlier export of the same dataset and format."""
    if dest.exists() and not dest.is_dir():
        raise ExportError(f"{dest}: exists and is not a folder")
    state = dest / STATE_DIR
    record = _read_json(state / EXPORT_RECORD)
    if record is None and dest.exists() and any(p.name != STATE_DIR for p in dest.iterdir()):
        raise ExportError(f"{dest}: not empty and not a motionpipe export (no {STATE_DIR}/{EXPORT_RECORD}); "
                          f"export into a new or empty folder")
    want = {"dataset": dataset, "layout": layout, "format": fmt}
    if record is not None and {k: record.get(k) for k in want} != want:
        raise ExportError(f"{dest}: holds the {record.get('format')} export of {record.get('dataset')!r}; export "
                          f"{fmt} of {dataset!r} into another folder")
    state.mkdir(parents=True, exist_ok=True)
    return state


def _targets(root: DataRoot, shards_dir: str) -> list[_Target]:
    split_of = {s.name: s.split for s in read_shard_manifest(root, shards_dir).shards}
    return [_Target(split_of[row["shard"]], row["key"], row["sha256"], row["shard"])
            for row in shard_samples(root, shards_dir)]


def _png_frames(sample: RawSample) -> Iterator[bytes]:
    for data in sample.frames():
        yield data if data.startswith(_PNG_MAGIC) else encode_frame(decode_frame(data), "png")


def _write_png_folder(sample: RawSample, staging: Path) -> int:
    staging.mkdir()
    n = 0
    for n, data in enumerate(_png_frames(sample), start=1):
        (staging / PNG_NAME.format(n - 1)).write_bytes(data)
    return n


def _write_mp4(sample: RawSample, staging: Path, crf: int, where: str) -> int:
    fps = sample.meta().get("fps")
    if not fps:
        raise ExportError(f"{where}: no fps in the sample's metadata, cannot write an mp4")
    frames = (decode_frame(b) for b in sample.frames())
    first = next(frames)
    with VideoWriter(staging, float(fps), (first.shape[1], first.shape[0]), crf=crf) as writer:
        writer.write(first)
        for frame in frames:
            writer.write(frame)
    return writer.frames_written


def _put(staging: Path, target: Path, trash: Path) -> None:
    """Rename `staging` to `target`; an older `target` is moved aside first (a folder cannot be replaced in one
    rename), so `target` is always either the old entry, absent for an instant, or the new one — never partial."""
    if target.exists():
        os.rename(target, trash / uuid.uuid4().hex)
    os.rename(staging, target)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _count(counts: dict[str, int], split: str) -> None:
    counts[split] = counts.get(split, 0) + 1


@dataclass
class _Folder:
    """One export folder: its train/ and test/, the per-chunk stamps and the staging area under STATE_DIR."""

    dest: Path
    state: Path
    fmt: str
    crf: int

    @property
    def work(self) -> Path:
        return self.state / "tmp"

    def stamp(self, split: str, key: str) -> Path:
        return self.state / "stamps" / split / f"{key}.json"

    def prepare(self, record: dict) -> None:
        _write_json(self.state / EXPORT_RECORD, record)
        _remove(self.work)  # what an interrupted export left; it was never visible in train/ or test/
        (self.work / "trash").mkdir(parents=True)
        for split in SPLITS:
            (self.dest / split).mkdir(exist_ok=True)
            (self.state / "stamps" / split).mkdir(parents=True, exist_ok=True)

    def is_done(self, t: _Target) -> bool:
        return _read_json(self.stamp(t.split, t.key)) == {"sha256": t.sha256, "format": self.fmt} and \
            (self.dest / t.split / entry_name(t.key)).exists()

    def write(self, sample: RawSample, t: _Target, where: str) -> None:
        name = entry_name(t.key)
        staging = self.work / name
        if self.fmt == "png":
            _write_png_folder(sample, staging)
        else:
            _write_mp4(sample, staging, self.crf, where)
        _put(staging, self.dest / t.split / name, self.work / "trash")
        _write_json(self.stamp(t.split, t.key), {"sha256": t.sha256, "format": self.fmt})

    def prune(self, targets: list[_Target], removed: dict[str, int]) -> None:
        """Remove chunk entries (and stamps) the shards no longer hold in that split; other names stay."""
        wanted = {(t.split, entry_name(t.key)) for t in targets}
        for split in SPLITS:
            for entry in sorted((self.dest / split).iterdir()):
                if _ENTRY.match(entry.name) and (split, entry.name) not in wanted:
                    _remove(entry)
                    _count(removed, split)
            for stamp in (self.state / "stamps" / split).iterdir():
                if (split, f"{stamp.stem}.mp4") not in wanted:
                    stamp.unlink()
        _remove(self.work)


def export_official_layout(root: DataRoot, dataset: str, dest: str | os.PathLike, fmt: str = "png",
                           layout: str = "fomm", crf: int = 18,
                           progress: Callable[[str], None] = print) -> ExportSummary:
    """Write (or bring up to date) `dest/train` and `dest/test` from `dataset`'s published shards."""
    if layout not in LAYOUTS:
        raise ExportError(f"layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r}: choose one of {', '.join(FORMATS)}")
    shards_dir = paths.shards_dir(root, dataset)
    problems = verify_shards(root, shards_dir)
    if problems:
        raise ExportError(f"{dataset}: the published shards cannot be exported (rebuild the dataset first?):\n  "
                          + "\n  ".join(problems[:10]))
    targets = _targets(root, shards_dir)
    dest = Path(dest).resolve()
    folder = _Folder(dest, _claim(dest, dataset, layout, fmt), fmt, crf)
    summary = ExportSummary(str(dest), fmt)
    with _locked(folder.state):
        folder.prepare({"dataset": dataset, "layout": layout, "format": fmt})
        todo: dict[str, dict[str, _Target]] = {}  # shard -> the chunks of it to write
        for t in targets:
            if folder.is_done(t):
                _count(summary.skipped, t.split)
            else:
                todo.setdefault(t.shard, {})[t.key] = t
        for shard, chunks in sorted(todo.items()):
            for sample in iter_tar_samples(root, f"{shards_dir}/{shard}"):
                if sample.key in chunks:
                    folder.write(sample, chunks[sample.key], f"{shards_dir}/{shard}: sample {sample.key}")
                    _count(summary.written, chunks[sample.key].split)
        folder.prune(targets, summary.removed)
    for split in SPLITS:
        progress(f"[{dataset}] export {split}: {summary.written.get(split, 0)} written, "
                 f"{summary.skipped.get(split, 0)} up to date, {summary.removed.get(split, 0)} removed")
    return summary
