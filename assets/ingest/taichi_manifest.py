"""TaiChiHD: the published `taichi-metadata.csv`, replayed exactly.

Columns `video_id,start,end,bbox,fps,width,height,partition`: start/end are frame indices at the reference `fps`
(end exclusive), bbox is `left-top-right-bottom` in pixels of the `width`×`height` reference frame. The file is
fetched from its public home (or given as a path), checked against the md5 the reference repositories ship, and
parsed row by row so that one bad row never hides the other 3,333.
"""
from __future__ import annotations

import os
import tempfile
import urllib.request
from pathlib import Path

from assets.ingest.manifests import (
    CLIP_COLUMNS,
    PARTITIONS,
    Manifest,
    ManifestClip,
    RowProblem,
    RowSource,
    decode_text,
    digests,
    parse_bbox,
    parse_clip_rows,
    parse_fps,
    parse_partition,
    parse_size,
    parse_uint,
    parse_video_id,
    read_rows,
    videos_from_clips,
)

TAICHI_CSV_URL = "https://raw.githubusercontent.com/AliaksandrSiarohin/video-preprocessing/master/taichi-metadata.csv"
TAICHI_MD5 = "9ac319ee6f6a7561082b1b75e6e5e86c"
CACHE_NAME = "taichi-metadata.csv"
FETCH_TIMEOUT_S = 60.0


class ManifestChecksumError(ValueError):
    """The manifest bytes are not the published file."""


def parse_taichi_row(src: RowSource) -> ManifestClip:
    c = src.cells
    video_id = parse_video_id(c["video_id"])
    start, end = parse_uint(c["start"], "start"), parse_uint(c["end"], "end")
    if end <= start:
        raise RowProblem(f"end ({end}) must be greater than start ({start})")
    return ManifestClip(
        video_id=video_id, start=start, end=end, bbox=parse_bbox(c["bbox"]), ref_fps=parse_fps(c["fps"]),
        ref_width=parse_size(c["width"], "width"), ref_height=parse_size(c["height"], "height"),
        split=parse_partition(c["partition"], PARTITIONS), row=src.row,
    )


def parse_taichi_csv(text: str, source: str = "<text>", sha256: str = "", md5: str | None = None) -> Manifest:
    """Valid rows become clips; each malformed row becomes a RowError naming its row and line."""
    rows, errors = read_rows(text, CLIP_COLUMNS, exact=True)
    clips, row_errors = parse_clip_rows(rows, parse_taichi_row)
    errors = sorted(errors + row_errors, key=lambda e: e.row)
    if not sha256:
        sha256, md5 = digests(text.encode())
    return Manifest("taichi", videos_from_clips(clips, source), clips, errors, source, sha256, md5)


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def fetch_bytes(url: str, timeout: float = FETCH_TIMEOUT_S) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "motionpipe"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()
    except OSError as e:  # URLError, HTTPError, timeouts
        raise ConnectionError(f"could not fetch manifest {url}: {e}; without a route to it, fetch the file "
                              f"elsewhere and pass it with --manifest path/to/taichi-metadata.csv") from e


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_md5(data: bytes, expected: str | None, source: str) -> tuple[str, str]:
    sha256, md5 = digests(data)
    if expected is not None and md5 != expected.lower():
        raise ManifestChecksumError(
            f"{source}: md5 {md5} does not match the published taichi-metadata.csv md5 {expected} "
            "(pass expected_md5=None to use a modified file on purpose)")
    return sha256, md5


def load_taichi_csv(source: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                    expected_md5: str | None = TAICHI_MD5, timeout: float = FETCH_TIMEOUT_S) -> Manifest:
    """Read the csv from a local path, or fetch it from a URL (default: the public source).

    A fetched file is verified before it is cached (atomically) under `cache_dir`; a cached copy that still
    matches is used without touching the network. `expected_md5=None` accepts any bytes (a user's own file);
    the actual md5 and sha256 are recorded on the manifest either way.
    """
    source = str(source) if source is not None else TAICHI_CSV_URL
    if _is_url(source):
        cache = Path(cache_dir) / CACHE_NAME if cache_dir is not None else None
        data = None
        if cache is not None and cache.exists():
            cached = cache.read_bytes()
            if expected_md5 is None or digests(cached)[1] == expected_md5.lower():
                data = cached
        if data is None:
            data = fetch_bytes(source, timeout)
            _check_md5(data, expected_md5, source)
            if cache is not None:
                _write_atomic(cache, data)
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"taichi manifest not found: {path}")
        data = path.read_bytes()
    sha256, md5 = _check_md5(data, expected_md5, source)
    return parse_taichi_csv(decode_text(data, source), source, sha256, md5)
