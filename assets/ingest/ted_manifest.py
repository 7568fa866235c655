"""TED-talks: a candidate list rebuilt from scratch, because the published metadata cannot rebuild the dataset.

MRAA's `data/ted-metadata.csv` has start=end=0 in every row (zero frames selected) and boxes relative to
unpublished intermediate videos, so it is rejected row by row here. Candidates come instead from a YouTube search
filtered by licence (MRAA used Creative-Commons talks), from a user's id list, or from a corrected clip list in
the taichi csv format. Splits are video-disjoint and decided per id, so adding ids never moves an existing one.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from assets.ingest.manifests import (
    CLIP_COLUMNS,
    Manifest,
    ManifestClip,
    ManifestVideo,
    RowError,
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
    read_text_file,
    videos_from_clips,
)
from assets.shards.splits import video_disjoint_split
from storage.ids import InvalidIdError, validate_youtube_id, youtube_url

DEFAULT_QUERY = "TED talks"
DEFAULT_LICENSE_FILTER = "Creative Commons"
TED_PARTITIONS = ("train", "test")
_ID_SPAN = re.compile(r"^(?P<id>[^#]+)#(?P<start>\d+)#(?P<end>\d+)$")

InfoFetcher = Callable[[str], dict]


class SearchError(ConnectionError):
    """The YouTube search could not run (no network, blocked, extractor failure)."""


@dataclass(frozen=True)
class Candidate:
    video_id: str
    url: str
    title: str | None = None
    license: str | None = None
    duration: float | None = None
    channel: str | None = None


@dataclass(frozen=True)
class Rejected:
    video_id: str
    reason: str


# --------------------------------------------------------------------------- (a) search + licence


def license_matches(license_text: str | None, license_filter: str | re.Pattern | None) -> bool:
    """A str filter is a case-insensitive substring; a compiled pattern is searched; None accepts everything."""
    if license_filter is None:
        return True
    if not license_text:
        return False
    if isinstance(license_filter, re.Pattern):
        return license_filter.search(license_text) is not None
    return license_filter.lower() in license_text.lower()


def search_video_ids(query: str = DEFAULT_QUERY, max_results: int = 50, ydl_opts: dict | None = None) -> list[str]:
    """Flat `ytsearchN:` results (ids only, one request per page). Needs YouTube: raises SearchError offline."""
    import yt_dlp

    if max_results <= 0:
        raise ValueError(f"max_results must be > 0, got {max_results}")
    opts = {"quiet": True, "no_warnings": True, "extract_flat": True, "skip_download": True,
            "logger": _SilentLogger(), **(ydl_opts or {})}
    try:
        with yt_dlp.YoutubeDL(opts) as ydl:
            result = ydl.extract_info(f"ytsearch{max_results}:{query}", download=False)
    except yt_dlp.utils.DownloadError as e:
        raise SearchError(f"YouTube search {query!r} failed (it needs network access to youtube.com; "
                          f"an offline machine cannot run it): {e}") from e
    ids = []
    for entry in (result or {}).get("entries") or []:
        try:
            ids.append(validate_youtube_id(entry.get("id")))
        except InvalidIdError:
            continue
    return list(dict.fromkeys(ids))


def youtube_info_fetcher(ydl_opts: dict | None = None) -> InfoFetcher:
    """Full metadata for one video (the `license` field is not in flat search results). One YoutubeDL serves
    every call: building one loads all extractors, which would dominate a few thousand look-ups."""
    import yt_dlp

    opts = {"quiet": True, "no_warnings": True, "skip_download": True, "logger": _SilentLogger(),
            **(ydl_opts or {})}
    ydl = yt_dlp.YoutubeDL(opts)

    def fetch(video_id: str) -> dict:
        return ydl.extract_info(youtube_url(video_id), download=False, process=False)

    return fetch


def check_licenses(video_ids: Iterable[str], license_filter: str | re.Pattern | None,
                   fetch_info: InfoFetcher) -> tuple[list[Candidate], list[Rejected]]:
    """Keep candidates whose reported licence passes the filter; every other id is kept with its reason."""
    accepted, rejected = [], []
    for video_id in video_ids:
        try:
            info = fetch_info(validate_youtube_id(video_id))
        except InvalidIdError as e:
            rejected.append(Rejected(str(video_id), str(e)))
            continue
        except Exception as e:  # one unavailable candidate must not stop the search
            rejected.append(Rejected(video_id, f"metadata fetch failed: {e}"))
            continue
        license_text = info.get("license")
        if not license_matches(license_text, license_filter):
            rejected.append(Rejected(video_id, f"license {license_text!r} does not match {_describe(license_filter)}"))
            continue
        accepted.append(Candidate(video_id, youtube_url(video_id), info.get("title"), license_text,
                                  info.get("duration"), info.get("channel") or info.get("uploader")))
    return accepted, rejected


def ted_candidates_from_search(query: str = DEFAULT_QUERY, max_results: int = 50,
                               license_filter: str | re.Pattern | None = DEFAULT_LICENSE_FILTER,
                               ydl_opts: dict | None = None,
                               fetch_info: InfoFetcher | None = None) -> tuple[list[Candidate], list[Rejected]]:
    ids = search_video_ids(query, max_results, ydl_opts)
    return check_licenses(ids, license_filter, fetch_info or youtube_info_fetcher(ydl_opts))


def _describe(license_filter: str | re.Pattern | None) -> str:
    return f"/{license_filter.pattern}/" if isinstance(license_filter, re.Pattern) else repr(license_filter)


class _SilentLogger:
    def debug(self, msg: str) -> None: ...
    def info(self, msg: str) -> None: ...
    def warning(self, msg: str) -> None: ...
    def error(self, msg: str) -> None: ...


# --------------------------------------------------------------------------- (b) a user's id list


def ted_candidates_from_ids(path: str | os.PathLike) -> tuple[list[str], list[RowError]]:
    """One YouTube id per line; `#` starts a comment, blank lines are ignored. Invalid or repeated ids are
    reported with their line number and skipped."""
    ids: list[str] = []
    errors: list[RowError] = []
    first_line: dict[str, int] = {}
    row = 0
    for line_no, raw in enumerate(read_text_file(path).splitlines(), start=1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        row += 1
        try:
            video_id = validate_youtube_id(text)
        except InvalidIdError as e:
            errors.append(RowError(row, raw, str(e), line_no))
            continue
        if video_id in first_line:
            errors.append(RowError(row, raw, f"duplicate of line {first_line[video_id]}", line_no))
            continue
        first_line[video_id] = line_no
        ids.append(video_id)
    return ids, errors


# --------------------------------------------------------------------------- (c) a corrected clip list


def parse_ted_row(src: RowSource) -> ManifestClip:
    """`video_id` is a YouTube id or `<id>#<start>#<end>`; start/end columns, when present and not both zero,
    win over the span in the id. start=end=0 is the published file's trap and is refused."""
    c = src.cells
    raw_id = c["video_id"]
    m = _ID_SPAN.match(raw_id)
    video_id = parse_video_id(m["id"] if m else raw_id)
    start_text, end_text = c.get("start", ""), c.get("end", "")
    if start_text or end_text:
        start, end = parse_uint(start_text, "start"), parse_uint(end_text, "end")
        if start == 0 and end == 0:
            raise RowProblem("start=end=0 selects no frames (the published ted-metadata.csv trap: its spans and "
                             "boxes refer to unpublished intermediate videos); use the corrected clip list")
    elif m:
        start, end = int(m["start"]), int(m["end"])
    else:
        raise RowProblem("no span: give start/end columns or a video_id of the form <id>#<start>#<end>")
    if end <= start:
        raise RowProblem(f"end ({end}) must be greater than start ({start})")
    return ManifestClip(
        video_id=video_id, start=start, end=end, bbox=parse_bbox(c["bbox"]), ref_fps=parse_fps(c["fps"]),
        ref_width=parse_size(c["width"], "width"), ref_height=parse_size(c["height"], "height"),
        split=parse_partition(c["partition"], TED_PARTITIONS), row=src.row,
    )


def parse_clip_list(path: str | os.PathLike) -> Manifest:
    """A TED clip list in the taichi csv columns (start/end columns optional when the id carries the span)."""
    data = Path(path).read_bytes()
    required = tuple(c for c in CLIP_COLUMNS if c not in ("start", "end"))
    rows, errors = read_rows(decode_text(data, str(path)), required, optional=("start", "end"))
    clips, row_errors = parse_clip_rows(rows, parse_ted_row)
    sha256, md5 = digests(data)
    source = str(path)
    return Manifest("ted", videos_from_clips(clips, source), clips,
                    sorted(errors + row_errors, key=lambda e: e.row), source, sha256, md5)


# --------------------------------------------------------------------------- (d) manifest (split: assets/shards/splits.py)


def ted_manifest_from_ids(video_ids: Iterable[str], source: str, errors: Iterable[RowError] = (),
                          test_fraction: float = 0.1, seed: int = 0, min_height: int | None = None) -> Manifest:
    """A discovery manifest: videos only (clips come from detection later), split decided here."""
    ids = [validate_youtube_id(v) for v in dict.fromkeys(video_ids)]
    splits = video_disjoint_split(ids, test_fraction, seed)
    videos = [ManifestVideo(v, youtube_url(v), splits[v], min_height, None, source) for v in ids]
    sha256, md5 = digests("\n".join(ids).encode())
    return Manifest("ted", videos, [], list(errors), source, sha256, md5)


def rejected_as_errors(rejected: Iterable[Rejected]) -> list[RowError]:
    return [RowError(i, r.video_id, r.reason) for i, r in enumerate(rejected, start=1)]


def load_ted_manifest(path: str | os.PathLike, test_fraction: float = 0.1, seed: int = 0,
                      min_height: int | None = None) -> Manifest:
    """A user's TED source: a clip list (a csv whose header names `video_id`; splits from its partition column)
    or an id list (splits from `video_disjoint_split`)."""
    text = read_text_file(path)
    first = next((line for line in text.splitlines() if line.split("#", 1)[0].strip()), "")
    if "," in first and "video_id" in first:
        return parse_clip_list(path)
    ids, errors = ted_candidates_from_ids(path)
    manifest = ted_manifest_from_ids(ids, str(path), errors, test_fraction, seed, min_height)
    manifest.sha256, manifest.md5 = digests(text.encode())
    return manifest
