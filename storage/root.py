"""The one data root, written through fsspec so it may be a local folder or an object store.

Every write is atomic: bytes go to a hidden temporary name beside the target and are renamed into place, so a
reader (or a resumed run) never sees a half-written file.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator

import fsspec

from storage.leftovers import owner_tag
from storage.settings import resolve_settings

_CHUNK = 1 << 20
# Object stores whose fsspec makedirs creates a missing bucket: a typo in the data root would make a new bucket in
# the account. They have no folders to make, so DataRoot makes none there and a missing bucket is an error.
_BUCKET_MAKERS = frozenset({"s3", "s3a"})


def sha256_file(path: str | os.PathLike, fs: fsspec.AbstractFileSystem | None = None) -> str:
    fs = fs or fsspec.filesystem("file")
    digest = hashlib.sha256()
    with fs.open(str(path), "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class DataRoot:
    """A base URL plus the fsspec filesystem behind it. Paths inside are POSIX strings relative to the root."""

    url: str
    base: str = field(init=False)
    _fs: fsspec.AbstractFileSystem = field(init=False, repr=False, compare=False)
    _pid: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._fs, base = fsspec.core.url_to_fs(self.url)
        self._pid = os.getpid()
        if self.is_local:
            base = str(Path(base).resolve())
        self.base = base.rstrip("/")

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        """The filesystem, opened anew in a forked child (a DataLoader worker): an async one such as s3fs runs its
        own event loop thread, which a fork does not copy, and refuses to work there ("not fork-safe")."""
        if self._pid != os.getpid():
            self._fs = fsspec.core.url_to_fs(self.url)[0]  # fsspec drops its instance cache after a fork
            self._pid = os.getpid()
        return self._fs

    @classmethod
    def from_env(cls, url: str | None = None) -> "DataRoot":
        """`url`, else the resolved settings' (MOTIONPIPE_DATA_ROOT, ./data): for the command lines that are not
        handed a Settings yet."""
        return cls(resolve_settings(data_root=url or None).data_root)

    @property
    def protocols(self) -> frozenset[str]:
        protocol = self.fs.protocol
        return frozenset(protocol if isinstance(protocol, (tuple, list)) else (protocol,))

    @property
    def is_local(self) -> bool:
        return "file" in self.protocols

    def _missing_bucket(self, path: str, exc: BaseException) -> OSError | None:
        """Why a write failed, when it is the object store's bucket that is missing (s3fs says only 'The specified
        bucket does not exist'); None for any other failure."""
        bucket = self.base.split("/")[0]
        if not (isinstance(exc, FileNotFoundError) and self.protocols & _BUCKET_MAKERS) or self.fs.exists(bucket):
            return None
        return FileNotFoundError(errno.ENOENT, f"cannot write {path}: the bucket {bucket!r} of the data root "
                                               f"{self.url} does not exist (create it; motionpipe creates no buckets)")

    def path(self, *parts: str) -> str:
        for part in parts:
            if not part or part in (".", "..") or part.startswith("/") or "\x00" in part:
                raise ValueError(f"unsafe path component: {part!r}")
        return "/".join([self.base, *parts])

    def exists(self, path: str) -> bool:
        return self.fs.exists(path)

    def makedirs(self, path: str) -> None:
        if not self.protocols & _BUCKET_MAKERS:
            self.fs.makedirs(path, exist_ok=True)

    def _temp_name(self, path: str) -> str:
        """Hidden, unique, and tagged with its writer so that a later run can tell an orphan (storage.leftovers)."""
        head, _, name = path.rpartition("/")
        return f"{head}/.{name}.tmp-{owner_tag()}-{uuid.uuid4().hex[:12]}"

    @contextlib.contextmanager
    def open_atomic(self, path: str, mode: str = "wb") -> Iterator[IO]:
        """Write to a temporary sibling; rename into place only if the block finishes without error."""
        if "w" not in mode:
            raise ValueError("open_atomic is for writing")
        self.makedirs(path.rpartition("/")[0])
        tmp = self._temp_name(path)
        try:
            with self.fs.open(tmp, mode) as f:
                yield f
            self.fs.mv(tmp, path)
        except OSError as exc:
            with contextlib.suppress(Exception):
                self.fs.rm(tmp)
            if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
                raise OSError(exc.errno, f"{exc.strerror} while writing {path} (nothing was replaced)") from exc
            if missing := self._missing_bucket(path, exc):
                raise missing from exc
            raise
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm(tmp)
            raise

    def write_bytes(self, path: str, data: bytes) -> str:
        with self.open_atomic(path, "wb") as f:
            f.write(data)
        return sha256_bytes(data)

    def read_bytes(self, path: str) -> bytes:
        with self.fs.open(path, "rb") as f:
            return f.read()

    def read_range(self, path: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of `path` in one ranged request. By keyword: s3fs's `cat_file` takes a version id as
        its second positional argument, so a positional range silently reads the wrong bytes there."""
        return self.fs.cat_file(path, start=int(start), end=int(end))

    def put_file(self, local_path: str | os.PathLike, path: str) -> str:
        """Publish a finished local file at `path` atomically; returns its sha256."""
        digest = sha256_file(local_path)
        self.makedirs(path.rpartition("/")[0])
        tmp = self._temp_name(path)
        try:
            if self.is_local:
                shutil.copyfile(local_path, tmp)
            else:
                self.fs.put_file(str(local_path), tmp)
            self.fs.mv(tmp, path)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                self.fs.rm(tmp)
            if missing := self._missing_bucket(path, exc):
                raise missing from exc
            raise
        return digest

    @contextlib.contextmanager
    def local_path(self, path: str) -> Iterator[str]:
        """A local filesystem path for tools that need one (ffmpeg): the file itself when local, else a copy."""
        if self.is_local:
            yield path
            return
        with tempfile.TemporaryDirectory(prefix="motionpipe-") as tmp:
            local = os.path.join(tmp, path.rpartition("/")[2])
            self.fs.get_file(path, local)
            yield local

    def sha256(self, path: str) -> str:
        return sha256_file(path, self.fs)

    def size(self, path: str) -> int:
        return int(self.fs.size(path))

    def rm(self, path: str, recursive: bool = False) -> None:
        if self.fs.exists(path):
            self.fs.rm(path, recursive=recursive)

    def ls(self, path: str) -> list[str]:
        if not self.fs.exists(path):
            return []
        return sorted(self.fs.ls(path, detail=False))
