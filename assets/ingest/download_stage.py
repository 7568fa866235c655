"""The download stage: one manifest video → `videos/<id>/source.<ext>` + `download.json` (what yt-dlp did)."""
from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

from assets.dataset_config import DatasetConfig
from assets.ingest.download import DownloadConfig, DownloadRecord, config_for_video, download_video
from assets.ingest.errors import ErrorClass, is_permanent
from assets.ingest.manifest_stage import read_manifest_video
from storage import paths
from storage.ids import validate_video_id
from storage.leftovers import remove_orphans
from storage.root import DataRoot


def load_download_record(root: DataRoot, dataset: str, video_id: str) -> DownloadRecord | None:
    path = paths.download_record_path(root, dataset, video_id)
    if not root.exists(path):
        return None
    return DownloadRecord.from_json(root.read_bytes(path))


def is_permanent_failure(record: DownloadRecord) -> bool:
    """Private, removed, members-only...: retrying soon will not help (rate limits, network errors and a full
    disk will be retried by the next run)."""
    if record.ok:
        return False
    try:
        return is_permanent(ErrorClass(record.status))
    except ValueError:
        return False


def source_path(root: DataRoot, dataset: str, video_id: str, record: DownloadRecord) -> str:
    if not record.ok or not record.path:
        raise FileNotFoundError(f"{dataset}/{video_id}: no downloaded file ({record.status})")
    return record.path


def download_config(cfg: DatasetConfig, downloader=None) -> DownloadConfig:
    d = cfg.download
    return DownloadConfig(
        min_height=d.min_height, retries=d.retries, backoff_base=d.backoff_base, backoff_max=d.backoff_max,
        rate_limit_bytes=getattr(downloader, "rate_limit_bytes", None) or d.rate_limit_bytes,
        max_bytes=getattr(downloader, "max_bytes", None) or d.max_bytes,
        max_seconds=getattr(downloader, "max_seconds", None) or d.max_seconds,
        sleep_between_s=d.sleep_between_s, socket_timeout=d.socket_timeout,
        cookies_file=getattr(downloader, "cookies_file", None), proxy=getattr(downloader, "proxy", None),
        enable_file_urls=bool(getattr(downloader, "enable_file_urls", not cfg.youtube_ids)),
        # YouTube's JavaScript challenges need a runtime for the yt-dlp-ejs scripts; node is the common one.
        js_runtimes=("node",) if shutil.which("node") else None,
    )


def fetch_video(cfg: DatasetConfig, root: DataRoot, video_id: str, downloader=None) -> DownloadRecord:
    """Download (or reuse) one video and record the outcome. Never raises for a video-level failure."""
    video = read_manifest_video(root, cfg.name, video_id)
    config = config_for_video(download_config(cfg, downloader), video.get("ref_height"), video.get("ref_fps"))
    url = video["url"]
    mirror = getattr(downloader, "mirror", None)
    if mirror:
        # The id was validated when the manifest was read; it is only ever a file name here.
        url = f"{mirror.rstrip('/')}/{validate_video_id(video_id, youtube=cfg.youtube_ids)}.mp4"
        config = dataclasses.replace(config, enable_file_urls=True)
    previous = load_download_record(root, cfg.name, video_id)
    remove_orphans(root, [paths.video_dir(root, cfg.name, video_id)])  # of a run killed mid-download or mid-write
    dest_stem = f"{paths.video_dir(root, cfg.name, video_id)}/source"
    if root.is_local:
        record = download_video(video_id, url, dest_stem, config, previous, youtube_ids=cfg.youtube_ids)
    elif previous is not None and previous.ok and previous.path and root.exists(previous.path) \
            and root.sha256(previous.path) == previous.sha256:
        record = dataclasses.replace(previous, reused=True)
    else:
        with tempfile.TemporaryDirectory(prefix="motionpipe-dl-") as tmp:
            record = download_video(video_id, url, Path(tmp) / "source", config, None,
                                    youtube_ids=cfg.youtube_ids)
            if record.ok:
                final = f"{dest_stem}.{record.ext}"
                root.put_file(record.path, final)
                record.path = final
    record.source_url = video["url"] or record.url
    root.write_bytes(paths.download_record_path(root, cfg.name, video_id), record.to_json().encode())
    return record
