"""Download one source video with yt-dlp's Python API and say exactly what happened.

The reference downloader asked for `best` (a single progressive file: at most 360p on YouTube since 2024) and sent
yt-dlp's output to /dev/null, so every failure read "broken link". Here the format is chosen against the reference
frame height, every outcome is a `DownloadRecord` carrying yt-dlp's own message and its class, transient failures
(rate limits, bot checks, network) are retried with seeded exponential backoff, and the file appears at its
destination only complete (downloaded into a private folder beside it, then renamed). Every download is bounded in
bytes and seconds (`max_bytes`, `max_seconds`): an endless or oversized source (`file:///dev/zero`, a response that
never ends) stops at the limit with a `limit_exceeded` record and leaves nothing behind, instead of filling the disk.
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import yt_dlp

from assets.ingest.errors import ErrorClass, classify_error, is_transient
from storage.ids import validate_video_id, youtube_url
from storage.leftovers import owner_tag
from storage.root import sha256_file
from storage.video import CorruptVideoError, ffmpeg_exe, probe

FPS_TOLERANCE = 1.0  # YouTube reports 29.97 fps streams as 30, 59.94 as 60
_SCHEMES = ("http://", "https://")
MAX_WARNINGS = 10


@dataclass
class DownloadConfig:
    """min_height: the reference frame height the boxes were drawn on (None: take the best available).
    retries: extra attempts after a transient failure (also yt-dlp's own http/fragment retries)."""

    min_height: int | None = None
    ref_fps: float | None = None
    retries: int = 3
    backoff_base: float = 2.0
    backoff_max: float = 60.0
    rate_limit_bytes: int | None = None
    max_bytes: int | None = None  # one download's size bound (None: unbounded)
    max_seconds: float | None = None  # one attempt's wall-time bound while bytes arrive (None: unbounded)
    sleep_between_s: float = 0.0
    cookies_file: str | None = None
    proxy: str | None = None
    enable_file_urls: bool = False
    socket_timeout: float = 30.0
    seed: int = 0
    # YouTube's JavaScript challenges are solved by an external runtime ('deno' by default; 'node', 'bun',
    # 'quickjs') running the yt-dlp-ejs scripts (the pip package, or remote_components=("ejs:github",)).
    js_runtimes: tuple[str, ...] | None = None
    remote_components: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.min_height is not None and self.min_height <= 0:
            raise ValueError(f"min_height must be > 0, got {self.min_height}")
        if self.ref_fps is not None and self.ref_fps <= 0:
            raise ValueError(f"ref_fps must be > 0, got {self.ref_fps}")
        if self.max_bytes is not None and self.max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {self.max_bytes}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError(f"max_seconds must be > 0, got {self.max_seconds}")


@dataclass
class DownloadRecord:
    """What one download did. status is 'ok' or an ErrorClass value; `error` is yt-dlp's message verbatim."""

    video_id: str
    url: str  # what was fetched (a mirror's file when one is set)
    status: str
    error_class: str | None = None
    error: str | None = None
    attempts: int = 0
    format_id: str | None = None
    ext: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    vcodec: str | None = None
    title: str | None = None
    duration_s: float | None = None
    filesize: int | None = None
    sha256: str | None = None
    path: str | None = None
    below_reference: bool = False
    elapsed_s: float = 0.0
    downloaded_at: str = ""
    format_selector: str | None = None
    reused: bool = False
    source_url: str | None = None  # the manifest's URL (the YouTube watch page), whichever copy was fetched
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "DownloadRecord":
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def format_selector(min_height: int | None, ref_fps: float | None) -> str:
    """A yt-dlp format spec: the smallest video at least `min_height` tall, at the reference fps if offered,
    then at a higher fps, then at any fps; then a format of unknown height (a direct file link); then the best
    video there is (below the reference: the record flags it). Video only: nothing here needs audio."""
    fps_filters = []
    if ref_fps:
        lo, hi = max(ref_fps - FPS_TOLERANCE, 0.0), ref_fps + FPS_TOLERANCE
        fps_filters = [f"[fps>={lo:g}][fps<={hi:g}]", f"[fps>={lo:g}]"]
    if min_height:
        tall = f"[height>={int(min_height)}]"
        chain = [f"wv*{tall}{f}" for f in fps_filters] + [f"wv*{tall}", f"wv*[height>=?{int(min_height)}]", "bv*"]
    else:
        chain = [f"bv*{f}" for f in fps_filters] + ["bv*"]
    return "/".join(chain)


def config_for_video(base: DownloadConfig, ref_height: int | None, ref_fps: float | None) -> DownloadConfig:
    """Per-video config: the manifest's reference height/fps win over the dataset-wide defaults."""
    return dataclasses.replace(base, min_height=ref_height or base.min_height, ref_fps=ref_fps or base.ref_fps)


def backoff_delays(config: DownloadConfig, video_id: str) -> list[float]:
    """The pause before each retry: base**k seconds (k = 1, 2, ...) with ±25% jitter, capped at backoff_max.
    The jitter is seeded by (seed, video id), so a rerun waits exactly as long and parallel workers spread out."""
    rng = random.Random(f"{config.seed}:{video_id}")
    return [min(config.backoff_max, config.backoff_base ** k * rng.uniform(0.75, 1.25))
            for k in range(1, config.retries + 1)]


class _CaptureLogger:
    """yt-dlp logger that prints nothing and keeps the warnings: they often explain a failure (e.g. a JavaScript
    challenge that could not be solved, leaving no video formats)."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def debug(self, msg: str) -> None:
        pass

    info = error = debug

    def warning(self, msg: str) -> None:
        self.warnings.append(msg)


class _AttemptFailed(Exception):
    def __init__(self, error_class: ErrorClass, message: str):
        super().__init__(message)
        self.error_class, self.message = error_class, message


LIMIT_HINT = ("raise download.max_bytes / max_seconds in the dataset config, or pass --max-download-bytes / "
              "--max-download-seconds (MOTIONPIPE_MAX_DOWNLOAD_BYTES / _SECONDS), then rerun with --retry-failed")


class DownloadLimitExceeded(Exception):
    """Raised from yt-dlp's progress hook: it propagates out of the download and stops it mid-stream."""


class _LimitGuard:
    """yt-dlp progress hook bounding one attempt: called for every block written, so neither a source without
    end nor one larger than announced gets further than the limit (plus one block)."""

    def __init__(self, config: DownloadConfig) -> None:
        self.max_bytes, self.max_seconds = config.max_bytes, config.max_seconds
        self.started = time.monotonic()

    def restart(self) -> None:
        self.started = time.monotonic()

    def __call__(self, progress: dict) -> None:
        if progress.get("status") != "downloading":
            return
        done, total = progress.get("downloaded_bytes") or 0, progress.get("total_bytes") or 0
        if self.max_bytes is not None and max(done, total) > self.max_bytes:
            size = f"announced as {total} bytes" if total > done else f"stopped after {done} bytes"
            raise DownloadLimitExceeded(f"download {size}: over the limit of {self.max_bytes} bytes; {LIMIT_HINT}")
        elapsed = time.monotonic() - self.started
        if self.max_seconds is not None and elapsed > self.max_seconds:
            raise DownloadLimitExceeded(f"download stopped after {elapsed:.1f} s ({done} bytes): over the limit of "
                                        f"{self.max_seconds:g} s; {LIMIT_HINT}")


def _limit_exceeded(err: BaseException) -> DownloadLimitExceeded | None:
    """Our limit error, whether yt-dlp let it through or wrapped it in a DownloadError."""
    for candidate in (err, err.__cause__, err.__context__, (getattr(err, "exc_info", None) or (None, None))[1]):
        if isinstance(candidate, DownloadLimitExceeded):
            return candidate
    return None


def _ydl_options(config: DownloadConfig, selector: str, workdir: Path, logger: _CaptureLogger,
                 guard: _LimitGuard | None = None) -> dict:
    opts = {
        "format": selector,
        "outtmpl": {"default": str(workdir / "video.%(ext)s")},
        "noplaylist": True,
        "quiet": True,
        "noprogress": True,
        "logger": logger,
        "ffmpeg_location": ffmpeg_exe(),
        "socket_timeout": config.socket_timeout,
        "retries": config.retries,
        "fragment_retries": config.retries,
        "enable_file_urls": config.enable_file_urls,
        "overwrites": True,
        "color": {"stdout": "no_color", "stderr": "no_color"},
        "progress_hooks": [guard] if guard is not None else [],
    }
    optional = {"ratelimit": config.rate_limit_bytes, "sleep_interval": config.sleep_between_s or None,
                "cookiefile": config.cookies_file, "proxy": config.proxy}
    opts.update({k: v for k, v in optional.items() if v is not None})
    if config.js_runtimes is not None:
        opts["js_runtimes"] = {name: {} for name in config.js_runtimes}
    if config.remote_components:
        opts["remote_components"] = set(config.remote_components)
    return opts


def _attempt(ydl, url: str, guard: _LimitGuard | None = None) -> tuple[dict, Path]:
    """One yt-dlp run: extract, refuse live/upcoming streams (they never end), download the selected format."""
    if guard is not None:
        guard.restart()
    try:
        info = ydl.extract_info(url, download=False, process=False)
        if info.get("_type", "video") != "video":
            raise _AttemptFailed(ErrorClass.other, f"{url} is a {info.get('_type')}, not a single video")
        live = info.get("live_status")
        if info.get("is_live") or live in ("is_live", "is_upcoming"):
            raise _AttemptFailed(ErrorClass.live, f"not downloading a live or upcoming stream (live_status={live})")
        info = ydl.process_ie_result(info, download=True)
    except DownloadLimitExceeded as e:
        raise _AttemptFailed(ErrorClass.limit_exceeded, f"{url}: {e}") from e
    except yt_dlp.utils.YoutubeDLError as e:
        limit = _limit_exceeded(e)
        if limit is not None:
            raise _AttemptFailed(ErrorClass.limit_exceeded, f"{url}: {limit}") from e
        raise _AttemptFailed(classify_error(str(e)), str(e)) from e
    downloads = info.get("requested_downloads") or []
    path = downloads[0].get("filepath") if downloads else None
    if not path or not Path(path).is_file():
        raise _AttemptFailed(ErrorClass.corrupt, f"yt-dlp reported success but wrote no file for {url}")
    return info, Path(path)


def _reusable(previous: DownloadRecord | None, video_id: str) -> bool:
    if previous is None or not previous.ok or previous.video_id != video_id or not previous.path:
        return False
    return Path(previous.path).is_file() and sha256_file(previous.path) == previous.sha256


def _check_url(url: str, config: DownloadConfig) -> str:
    if not isinstance(url, str) or not url.startswith(_SCHEMES + (("file://",) if config.enable_file_urls else ())):
        raise ValueError(f"refusing URL {url!r}: only http(s) URLs (and file:// with enable_file_urls)")
    return url


def download_video(video_id: str, url: str | None, dest_path: str | os.PathLike, config: DownloadConfig,
                   previous: DownloadRecord | None = None, *, youtube_ids: bool = True,
                   sleep: Callable[[float], None] = time.sleep) -> DownloadRecord:
    """Fetch `url` (default: the YouTube watch URL of the validated id) to `dest_path` with the downloaded
    container's extension (`.../source` -> `.../source.mp4`). Invalid ids and URLs raise ValueError before any
    I/O; every video-level failure is returned as a record, never raised. `previous`: a record whose file still
    has its sha256 is returned as is (reused=True) without touching the network."""
    video_id = validate_video_id(video_id, youtube=youtube_ids)
    url = youtube_url(video_id) if url is None else _check_url(url, config)
    if _reusable(previous, video_id):
        return dataclasses.replace(previous, reused=True)

    started = time.monotonic()
    selector = format_selector(config.min_height, config.ref_fps)
    record = DownloadRecord(video_id, url, status="", format_selector=selector,
                            downloaded_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    dest = Path(dest_path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f".{dest.name}.download-{owner_tag()}-", dir=dest.parent))
    delays = backoff_delays(config, video_id)
    logger = _CaptureLogger()
    guard = _LimitGuard(config)
    try:
        with yt_dlp.YoutubeDL(_ydl_options(config, selector, workdir, logger, guard)) as ydl:
            while True:
                record.attempts += 1
                try:
                    info, file = _attempt(ydl, url, guard)
                    _finish(record, info, file, dest, config)
                    break
                except _AttemptFailed as failure:
                    record.status = record.error_class = failure.error_class.value
                    record.error = failure.message
                    if failure.error_class is ErrorClass.environment:  # name the file it could not write
                        record.error += f" (writing the download of {dest}.* in {workdir}; nothing was kept)"
                    if not is_transient(failure.error_class) or record.attempts > len(delays):
                        break
                    _empty(workdir)
                    sleep(delays[record.attempts - 1])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        record.warnings = list(dict.fromkeys(logger.warnings))[-MAX_WARNINGS:]
        record.elapsed_s = round(time.monotonic() - started, 3)
    return record


def _finish(record: DownloadRecord, info: dict, file: Path, dest: Path, config: DownloadConfig) -> None:
    """Probe the file (a download that does not decode is `corrupt`), then rename it into place."""
    size = file.stat().st_size
    if config.max_bytes is not None and size > config.max_bytes:  # a downloader that reports no progress
        raise _AttemptFailed(ErrorClass.limit_exceeded, f"{record.url}: downloaded {size} bytes: over the limit "
                                                        f"of {config.max_bytes} bytes; {LIMIT_HINT}")
    try:
        probed = probe(file)
    except CorruptVideoError as e:
        raise _AttemptFailed(ErrorClass.corrupt, str(e)) from e
    ext = (info.get("ext") or file.suffix.lstrip(".") or "mp4").lower()
    final = dest.with_suffix(f".{ext}")
    record.sha256 = sha256_file(file)
    record.filesize = file.stat().st_size
    os.replace(file, final)
    record.status, record.error_class, record.error = "ok", None, None
    record.path = str(final)
    record.format_id, record.ext = info.get("format_id"), ext
    record.width = info.get("width") or probed.width
    record.height = info.get("height") or probed.height
    record.fps = float(info.get("fps") or probed.fps)
    record.title = info.get("title") or None
    duration = info.get("duration") or probed.duration
    record.duration_s = round(float(duration), 3) if duration else None
    vcodec = info.get("vcodec")
    record.vcodec = vcodec if vcodec and vcodec != "none" else probed.codec
    record.below_reference = bool(config.min_height and record.height and record.height < config.min_height)


def _empty(folder: Path) -> None:
    for child in folder.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink(missing_ok=True)
