"""Hidden temporaries left by writers that died (``kill -9``, a crash, a full disk mid-rename), and their removal.

Every temporary carries its writer's tag, ``<pid>@<host>``, in its name (``.clips.tar.tmp-<pid>@<host>-<token>``,
``.source.download-<pid>@<host>-<token>``), so a later run removes exactly the orphans: on this host those whose
process is gone, elsewhere (a shared data root) those untouched for ``STALE_AFTER_S``. A live writer of a concurrent
run keeps its files. Untagged temporaries (older versions) follow the age rule.
"""
from __future__ import annotations

import os
import re
import socket
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # storage.root names its temporaries with owner_tag(): no import cycle at run time
    from storage.root import DataRoot

STALE_AFTER_S = 6 * 3600.0
MARKERS = (".tmp-", ".download-")
_TAG = re.compile(r"(?:\.tmp-|\.download-)(\d+)@([A-Za-z0-9]+)-")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:24] or "host"


def owner_tag() -> str:
    """``<pid>@<host>`` of this process, for temporary names."""
    return f"{os.getpid()}@{_host()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def writer_alive(tag: str) -> bool | None:
    """Whether the writer ``<pid>@<host>`` still runs: None when it ran on another host (no way to tell)."""
    pid, _, host = tag.partition("@")
    if host != _host() or not pid.isdigit():
        return None
    return _alive(int(pid))


def is_temporary(name: str) -> bool:
    return name.startswith(".") and any(m in name for m in MARKERS)


def is_orphan(name: str, idle_s: float) -> bool:
    """Whether the temporary ``name``, last modified ``idle_s`` seconds ago, has no live writer."""
    tag = _TAG.search(name)
    if tag is not None and tag.group(2) == _host():
        return not _alive(int(tag.group(1)))
    return idle_s > STALE_AFTER_S


def _idle_s(root: DataRoot, path: str, now: float) -> float:
    """Seconds since anything under ``path`` changed (a live download keeps touching its folder's files)."""
    try:
        entries = [path] + (root.fs.find(path) if root.fs.isdir(path) else [])
        stamps = [root.fs.modified(p).timestamp() for p in entries]
    except (OSError, NotImplementedError):
        return float("inf") if not root.exists(path) else 0.0
    return now - max(stamps)


def remove_orphans(root: DataRoot, folders: list[str]) -> list[str]:
    """Delete the orphaned temporaries directly inside ``folders``; returns what was removed."""
    now, removed = time.time(), []
    for folder in folders:
        if not root.fs.isdir(folder):
            continue
        for path in root.fs.ls(folder, detail=False):
            name = path.rstrip("/").rpartition("/")[2]
            if is_temporary(name) and is_orphan(name, _idle_s(root, path, now)):
                root.fs.rm(path, recursive=True)
                removed.append(path)
    return removed


def _subfolders(root: DataRoot, folder: str) -> list[str]:
    if not root.fs.isdir(folder):
        return []
    return [p.rstrip("/") for p in root.fs.ls(folder, detail=False)
            if root.fs.isdir(p) and not is_temporary(p.rstrip("/").rpartition("/")[2])]


def dataset_folders(root: DataRoot, dataset: str) -> list[str]:
    """Where a dataset's writers put temporaries: its folder, each subfolder, and each video's folder."""
    from storage import paths

    base = paths.dataset_dir(root, dataset)
    if not root.fs.isdir(base):
        return []
    return [base, *_subfolders(root, base), *_subfolders(root, f"{base}/videos")]
