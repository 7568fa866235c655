"""The dataset version a checkpoint or an evaluation records: which shards, from which manifest, with what catalog.

Three independent fingerprints, so that any one of them can be checked later with the tool that made it:
  - `shards_content_hash`: motionpipe's own hash over the shard manifest's (name, sha256) list (cheap: reads
    `manifest.json` only);
  - `shards_dvc_md5`: the hash `dvc add` writes for the shards folder (`<md5>.dir`), so `dvc pull`/`dvc get` of that
    hash brings back exactly these shards; computed with the installed DVC's own hashing (dvc-data), no repository
    needed;
  - `manifest_sha256` / `manifest_source`: where the video list came from, as the manifest stage recorded it in the
    manifest Parquet's schema metadata.
plus the catalog's row counts, which make a silently shrunken dataset (videos lost to takedowns) visible at a glance.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from storage import paths
from storage.catalog import SPLITS
from storage.root import DataRoot
from storage.shards import ShardError, content_hash, read_shard_manifest

log = logging.getLogger(__name__)


def dvc_md5(path: str | os.PathLike, *, state_dir: str | os.PathLike | None = None,
            jobs: int | None = None) -> str:
    """The md5 DVC gives a local file (`<md5>`) or folder (`<md5>.dir`): what `dvc add` writes into the .dvc file.

    Uses dvc-data's own `build` (a dry run into an in-memory object db, DVC's LocalFileSystem) and DVC's own ignore
    rules (`.git`, `.hg`, `.dvc` and nested DVC repos are left out, as `dvc add` does), so it is DVC's hash by
    construction, not a re-implementation. `.dvcignore` files of an enclosing repository are not seen; a
    `.dvcignore` inside the folder is an error, as it is for `dvc add`. Hidden files are hashed like any other
    (leftovers of an interrupted shard pack change the hash, as they would change what `dvc add` tracks).

    Cost: every byte of every file is read once (md5, files over 2 MiB on `jobs` threads; DVC's default is
    min(16, cores + 4)); for TaiChi's tens of GB of shards that is minutes of disk reading. With `state_dir`, DVC's
    state cache (an sqlite store in that folder, keyed by inode, mtime and size) remembers file hashes, so hashing
    the same folder again costs one stat per file; give the same `state_dir` each time (e.g. under the motionpipe
    cache) and compute the version once per run, not per checkpoint.
    """
    from dvc.ignore import DvcIgnoreFilter
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_data.hashfile.state import State, StateNoop
    from dvc_objects.fs.local import LocalFileSystem
    from dvc_objects.fs.memory import MemoryFileSystem

    text = os.fspath(path)
    if "://" in text:
        raise ValueError(f"dvc_md5 hashes local paths only, got {text!r}")
    local = os.path.abspath(text)
    if not os.path.exists(local):
        raise FileNotFoundError(f"dvc_md5: no such file or folder: {local}")
    fs = LocalFileSystem()
    is_dir = os.path.isdir(local)
    state = State(root_dir=local, tmp_dir=os.fspath(state_dir)) if state_dir is not None else StateNoop()
    try:
        # The object db only receives the folder's tree object (a small JSON, in memory); file bytes are not copied.
        odb = HashFileDB(MemoryFileSystem(), "/motionpipe-dvc-md5", state=state)
        _, _, obj = build(odb, local, fs, "md5", dry_run=True, checksum_jobs=jobs,
                          ignore=DvcIgnoreFilter(fs, local) if is_dir else None)
    finally:
        state.close()
    value = obj.hash_info.value
    if not value or value.endswith(".dir") != is_dir:
        raise RuntimeError(f"dvc_md5: DVC gave an unexpected hash {value!r} for {local}")
    return value


@dataclass(frozen=True)
class DatasetVersion:
    """The data a model saw or was scored on, as recorded in checkpoints and evaluations (`to_dict()`)."""

    dataset: str
    shards_content_hash: str
    n_shards: int
    shards_dvc_md5: str | None  # None when the data root is not a local folder (or hashing was not asked for)
    manifest_sha256: str | None  # None when the manifest or its metadata is absent
    manifest_source: str | None
    videos: int  # catalog rows: every candidate video, whatever its status
    videos_ok: int  # ... of which downloaded and processed (status 'ok')
    chunks: int
    chunks_per_split: dict[str, int] = field(hash=False)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DatasetVersion":
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(names - set(data))
        if missing:
            raise ValueError(f"dataset version record lacks {missing}")
        return cls(**{k: data[k] for k in names})


def _manifest_meta(root: DataRoot, dataset: str) -> dict[str, str]:
    path = paths.manifest_path(root, dataset, "videos")
    if not root.exists(path):
        return {}
    with root.fs.open(path, "rb") as f:
        meta = pq.read_schema(f).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items() if k in (b"source", b"sha256")}


def _column(root: DataRoot, dataset: str, table: str, column: str) -> list:
    path = paths.catalog_path(root, dataset, table)
    if not root.exists(path):
        raise FileNotFoundError(f"{dataset}: no catalog table at {path} (dataset not built)")
    with root.fs.open(path, "rb") as f:
        try:
            return pq.read_table(f, columns=[column]).column(column).to_pylist()
        except (KeyError, ValueError) as exc:  # pyarrow: a missing column is a KeyError/ArrowInvalid
            raise ValueError(f"{path}: cannot read column {column!r}: {exc}") from exc


def dataset_version(root: DataRoot, dataset: str, *, dvc: bool = True,
                    state_dir: str | os.PathLike | None = None) -> DatasetVersion:
    """Read the dataset's version from the data root: shard manifest, manifest metadata and catalog counts.

    Cheap except for the DVC md5 of the shards folder (see `dvc_md5` for its cost and `state_dir`); `dvc=False`
    skips it. Fails with FileNotFoundError naming the file when the shards or catalog are absent.
    """
    shards = paths.shards_dir(root, dataset)
    manifest = read_shard_manifest(root, shards)  # FileNotFoundError naming <shards>/manifest.json
    if manifest.content_hash != content_hash(manifest.shards):
        raise ShardError(f"{shards}/manifest.json: content_hash does not match its shard list")
    statuses = _column(root, dataset, "videos", "status")
    splits = _column(root, dataset, "chunks", "split")
    per_split = {s: 0 for s in SPLITS}
    for s in splits:
        per_split[s] = per_split.get(s, 0) + 1
    meta = _manifest_meta(root, dataset)
    return DatasetVersion(
        dataset=dataset,
        shards_content_hash=manifest.content_hash,
        n_shards=len(manifest.shards),
        shards_dvc_md5=dvc_md5(shards, state_dir=state_dir) if dvc and root.is_local else None,
        manifest_sha256=meta.get("sha256"),
        manifest_source=meta.get("source"),
        videos=len(statuses),
        videos_ok=sum(1 for s in statuses if s == "ok"),
        chunks=len(splits),
        chunks_per_split=dict(sorted(per_split.items())),
    )


def dataset_version_record(root: DataRoot, dataset: str) -> dict:
    """What checkpoints and evaluations record: ``dataset_version(...).to_dict()`` with DVC's state cache under a
    local root's ``cache/dvc-state``; shards without a catalog (made by hand) give ``{"dataset", "incomplete"}``
    naming what is missing instead of failing the run."""
    state = Path(root.base) / "cache" / "dvc-state" if root.is_local else None
    try:
        return dataset_version(root, dataset, state_dir=state).to_dict()
    except FileNotFoundError as exc:
        log.warning("dataset version of %s incomplete: %s", dataset, exc)
        return {"dataset": dataset, "incomplete": str(exc)}
