"""The manifest stage: read the dataset's source (published csv, TED search or lists, the offline sample), validate
it, and persist it as Parquet for the per-video stages to read."""
from __future__ import annotations

import dataclasses

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from assets.dataset_config import DatasetConfig
from assets.ingest.manifests import (Manifest, ManifestClip, ManifestTables, ManifestVideo, RowError, digests,
                                     read_text_file)
from assets.ingest.rejections import rejection_lines
from storage import paths
from storage.root import DataRoot
from storage.settings import default_cache_dir



class EmptyManifestError(ValueError):
    """The manifest yields no video (empty, header only, or every row rejected): an error, never an empty dataset
    that would replace the published one. Raised before anything is written, so the previous manifest stays."""


@dataclass(frozen=True)
class ManifestSummary:
    source: str
    sha256: str
    video_ids: list[str]
    n_clips: int
    errors: list[RowError]


def _taichi(cfg: DatasetConfig, source: str | None, cache: Path) -> Manifest:
    from assets.ingest.taichi_manifest import load_taichi_csv

    if source is None:
        manifest = load_taichi_csv(cfg.manifest_url, cache, expected_md5=cfg.manifest_md5)
    else:  # a user's own file or URL: accepted whatever its bytes; its md5/sha256 are recorded for lineage
        manifest = load_taichi_csv(source, cache, expected_md5=None)
    return dataclasses.replace(manifest, dataset=cfg.name)  # taichi or taichi512


def _ted(cfg: DatasetConfig, source: str | None) -> Manifest:
    from assets.ingest.ted_manifest import load_ted_manifest, rejected_as_errors, ted_candidates_from_search, \
        ted_manifest_from_ids

    if source is not None:
        return load_ted_manifest(source, cfg.split.test_fraction, cfg.split.seed, cfg.download.min_height)
    accepted, rejected = ted_candidates_from_search(cfg.search_query, cfg.max_candidates, cfg.license_filter)
    ids = [c.video_id for c in accepted]
    return ted_manifest_from_ids(ids, f"ytsearch:{cfg.search_query}", rejected_as_errors(rejected),
                                 cfg.split.test_fraction, cfg.split.seed, cfg.download.min_height)


def load_url_list(path: str) -> Manifest:
    """A user's own videos for a discovery dataset: `video_id,url` per line (`#` comments), file:// or http(s) URLs.
    Bad rows are reported by row number; the rest proceed."""
    from storage.ids import InvalidIdError, validate_video_id

    text = read_text_file(path)
    videos, errors, seen = [], [], set()
    row = 0
    for line_no, line in enumerate(text.splitlines(), start=1):
        parts = [p.strip() for p in line.split(",")]
        if not line.split("#", 1)[0].strip() or parts[0] == "video_id":
            continue  # blank, comment or header
        row += 1
        try:
            if len(parts) != 2:
                raise ValueError(f"expected 2 columns 'video_id,url', got {len(parts)}")
            vid = validate_video_id(parts[0], youtube=False)
            if not parts[1].startswith(("file://", "http://", "https://")):
                raise ValueError(f"url must be file://, http:// or https://, got {parts[1][:60]!r}")
            if vid in seen:
                raise ValueError(f"duplicate video id {vid}")
        except (ValueError, InvalidIdError) as exc:
            errors.append(RowError(row, line, str(exc), line_no))
            continue
        seen.add(vid)
        videos.append(ManifestVideo(vid, parts[1], None, None, None, str(path)))
    sha256, md5 = digests(text.encode())
    return Manifest("sample", videos, [], errors, str(path), sha256, md5)


def _sample(cfg: DatasetConfig, root: DataRoot, source: str | None, cache: Path) -> Manifest:
    """Offline: render the sample videos into a local 'upstream' folder and list them by file:// URL, so they are
    fetched by the same yt-dlp path as YouTube videos. `source`: a `video_id,url` list of one's own videos."""
    from assets.ingest.sample_source import write_sample_videos

    if source is not None:
        return load_url_list(source)
    folder = paths.upstream_dir(root, cfg.name) if root.is_local else str(cache / "sample-upstream")
    videos = write_sample_videos(folder)
    entries = [ManifestVideo(vid, Path(path).resolve().as_uri(), None, None, None, "sample") for vid, path in
               sorted(videos.items())]
    sha256, md5 = digests("\n".join(f"{v.video_id} {Path(videos[v.video_id]).stat().st_size}"
                                    for v in entries).encode())
    return Manifest(cfg.name, entries, [], [], "generated offline (scikit-image photographs)", sha256, md5)


def load_manifest(cfg: DatasetConfig, root: DataRoot, source: str | None = None,
                  cache_dir: str | os.PathLike | None = None) -> Manifest:
    """`cache_dir`: where fetched manifests (and a remote root's sample videos) are kept (None: the default,
    ~/.cache/motionpipe; the pipeline passes the settings' MOTIONPIPE_CACHE)."""
    cache = Path(cache_dir or default_cache_dir())
    if cfg.name in ("taichi", "taichi512"):  # TaiChiHD-512 replays the same csv, keeping fewer clips
        return _taichi(cfg, source, cache)
    if cfg.name == "ted":
        return _ted(cfg, source)
    return _sample(cfg, root, source, cache)


def limit_manifest(manifest: Manifest, limit: int | None) -> Manifest:
    """The first `limit` videos in manifest order, with only their clips."""
    if limit is None:
        return manifest
    if limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    keep = manifest.videos[:limit]
    ids = {v.video_id for v in keep}
    return Manifest(manifest.dataset, keep, [c for c in manifest.clips if c.video_id in ids], manifest.errors,
                    manifest.source, manifest.sha256, manifest.md5)


class ManifestReadError(ValueError):
    """A manifest file that cannot be read as the dataset's format; the message starts with the file."""


def read_source(cfg: DatasetConfig, root: DataRoot, source: str | None,
                cache_dir: str | os.PathLike | None = None) -> Manifest:
    """``load_manifest``, with every reading error naming the file it is about."""
    try:
        return load_manifest(cfg, root, source, cache_dir)
    except ValueError as exc:
        if source is None or source in str(exc):
            raise
        raise ManifestReadError(f"{source}: {exc}") from exc


def require_videos(manifest: Manifest) -> Manifest:
    """``manifest`` if it names at least one video, else :class:`EmptyManifestError` naming the file and why."""
    if manifest.videos:
        return manifest
    rejected = [e for e in manifest.errors if e.row > 0 or e.text]
    if not rejected:
        raise EmptyManifestError(f"{manifest.source}: the manifest has no data rows (an empty file or a header "
                                 f"only); nothing was changed")
    raise EmptyManifestError(f"{manifest.source}: none of its {len(rejected)} rows could be used, so nothing was "
                             f"changed; the rows by reason:\n" + "\n".join(rejection_lines(rejected)))


def build_manifest(cfg: DatasetConfig, root: DataRoot, source: str | None = None,
                   limit: int | None = None, cache_dir: str | os.PathLike | None = None) -> ManifestSummary:
    manifest = limit_manifest(require_videos(read_source(cfg, root, source, cache_dir)), limit)
    tables = manifest.to_arrow()
    for name, table in (("clips", tables.clips), ("videos", tables.videos), ("errors", tables.errors)):
        with root.open_atomic(paths.manifest_path(root, cfg.name, name)) as f:
            pq.write_table(table, f)
    return ManifestSummary(manifest.source, manifest.sha256, [v.video_id for v in manifest.videos],
                           len(manifest.clips), manifest.errors)


def _read(root: DataRoot, dataset: str, table: str):
    path = paths.manifest_path(root, dataset, table)
    if not root.exists(path):
        raise FileNotFoundError(f"{dataset}: no manifest at {path}; materialize {dataset}/manifest first")
    with root.fs.open(path, "rb") as f:
        return pq.read_table(f)


def read_manifest(root: DataRoot, dataset: str) -> Manifest:
    return Manifest.from_arrow(ManifestTables(*(_read(root, dataset, t) for t in ("clips", "videos", "errors"))))


def read_manifest_videos(root: DataRoot, dataset: str) -> list[dict]:
    return _read(root, dataset, "videos").to_pylist()


def read_manifest_video_ids(root: DataRoot, dataset: str) -> list[str]:
    return [v["video_id"] for v in read_manifest_videos(root, dataset)]


def read_manifest_errors(root: DataRoot, dataset: str) -> list[RowError]:
    """The rows the manifest rejected, each with its row, line, text and reason."""
    return [RowError(**r) for r in _read(root, dataset, "errors").to_pylist()]


def read_manifest_video(root: DataRoot, dataset: str, video_id: str) -> dict:
    for v in read_manifest_videos(root, dataset):
        if v["video_id"] == video_id:
            return v
    raise KeyError(f"{dataset}: video {video_id!r} is not in the manifest")


def read_manifest_clips(root: DataRoot, dataset: str, video_id: str | None = None) -> list[ManifestClip]:
    clips = read_manifest(root, dataset).clips
    return [c for c in clips if video_id is None or c.video_id == video_id]
