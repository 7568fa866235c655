"""Paths that checkpoints and evaluations record, relative to the data root, and the root they are read against.

A record written as ``models/sample/fomm/main.pt`` means the same file in every clone or copy of the data root; the
absolute records of older versions (``/abs/clone-a/data/...``) are still read, but only against the root they name:
read from another root they would silently mix two clones, so they are refused with both roots named.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

from storage.root import DataRoot

# the folders directly under a data root that hold checkpoints: how an old absolute record names its root
_CHECKPOINT_FOLDERS = ("models", "runs")


class DataRootMismatch(ValueError):
    """A record names another data root than the one in use."""


def record_path(path: str | Path, root: DataRoot) -> str:
    """``path`` as a record keeps it: relative to the data root when inside it, else absolute (a file outside every
    root, such as an official checkpoint, is the same file wherever the root moves)."""
    resolved = Path(path).resolve()
    if root.is_local:
        try:
            return resolved.relative_to(root.base).as_posix()
        except ValueError:
            pass
    return str(resolved)


def root_holding(artifact: str | Path, dataset: str | None) -> str | None:
    """The nearest folder above ``artifact`` that is a data root with ``dataset`` in it (None: none is)."""
    if not dataset:
        return None
    for folder in Path(artifact).resolve().parents:
        if (folder / "datasets" / dataset).is_dir():
            return str(folder)
    return None


def recorded_root(recorded: str) -> str | None:
    """The data root an old absolute record lies in (the folder above its ``models/`` or ``runs/``), if any."""
    parts = PurePosixPath(recorded).parts
    for i in range(len(parts) - 1, 0, -1):
        if parts[i] in _CHECKPOINT_FOLDERS:
            return str(PurePosixPath(*parts[:i]))
    return None


def mismatch(what: str, recorded: str, in_use: str) -> DataRootMismatch:
    return DataRootMismatch(
        f"{what} was recorded under data root {recorded}, but the data root in use is {in_use}: refusing to read "
        f"another root's files. Pass --data-root {recorded} to read that root, or --data-root {in_use} if this is "
        f"the same data moved or copied here")


def resolve_path(recorded: str, root: DataRoot, what: str, overridden: bool) -> Path:
    """A recorded path as a file under ``root``. A relative record is joined to it; an old absolute one inside
    another data root is refused, unless the root was given explicitly (``overridden``): then it is moved there."""
    if not PurePosixPath(recorded).is_absolute():
        return Path(root.base) / recorded
    if root.is_local and Path(recorded).resolve().is_relative_to(Path(root.base)):
        return Path(recorded)
    other = recorded_root(recorded)
    if other is None:  # a file outside every data root: the same file wherever the root is
        return Path(recorded)
    if overridden:
        return Path(root.base) / PurePosixPath(recorded).relative_to(other)
    raise mismatch(what, other, root.base)
