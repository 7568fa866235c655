"""Downloads are bounded in bytes and seconds: an endless source (``file:///dev/zero``, an HTTP response that never
ends) or one announced larger than the limit stops at the limit with a ``limit_exceeded`` record naming the URL and
the limit, leaves no partial file, and is not retried; the limits come from the dataset config, the environment or
``motionpipe rebuild --max-download-bytes/--max-download-seconds``."""
from __future__ import annotations

import contextlib
import http.server
import json
import time
from pathlib import Path

import pytest

from assets.dataset_config import load_dataset_config
from assets.ingest.download import DownloadConfig, download_video
from assets.ingest.download_stage import download_config, is_permanent_failure
from assets.ingest.errors import ErrorClass
from assets.ingest.http_server import serve_handler
from pipelines.cli import main as motionpipe
from pipelines.resources import downloader_resource
from storage.settings import resolve_settings

MiB = 1 << 20


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_dev_zero_stops_at_the_byte_limit_and_leaves_nothing(tmp_path):
    dest = tmp_path / "videos" / "zero"
    t0 = time.monotonic()
    record = download_video("zero", "file:///dev/zero", dest / "source",
                            DownloadConfig(enable_file_urls=True, max_bytes=MiB, retries=2), youtube_ids=False,
                            sleep=lambda s: pytest.fail("a limit is not worth a retry"))
    assert time.monotonic() - t0 < 10
    assert record.status == ErrorClass.limit_exceeded.value and record.attempts == 1
    assert "file:///dev/zero" in record.error and f"over the limit of {MiB} bytes" in record.error
    assert "--max-download-bytes" in record.error
    assert _leftovers(dest) == []  # no source.*, no .source.download-* folder, no .part file
    assert is_permanent_failure(record)  # skipped by the next run unless --retry-failed


@contextlib.contextmanager
def endless_server(content_length: int | None = None):
    """Loopback HTTP: 200 video/mp4 and zeros until the client hangs up; counts the bytes sent."""
    sent = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            if content_length is not None:
                self.send_header("Content-Length", str(content_length))
            self.end_headers()
            block = bytes(64 << 10)
            try:
                while True:
                    self.wfile.write(block)
                    sent[0] += len(block)
                    time.sleep(0.005)  # ~12 MB/s: endless, without burning the shared CPU
            except (BrokenPipeError, ConnectionResetError):
                pass

    with serve_handler(Handler) as base:
        yield f"{base}/endless.mp4", sent


def test_endless_http_response_stops_at_the_time_limit(tmp_path):
    with endless_server() as (url, sent):
        t0 = time.monotonic()
        record = download_video("endless", url, tmp_path / "v" / "source",
                                DownloadConfig(max_seconds=1.0, retries=0), youtube_ids=False)
        elapsed = time.monotonic() - t0
    assert record.status == "limit_exceeded" and "over the limit of 1 s" in record.error and url in record.error
    assert 1.0 <= elapsed < 10 and sent[0] > 0
    assert _leftovers(tmp_path / "v") == []


def test_announced_size_over_the_limit_stops_at_the_first_block(tmp_path):
    with endless_server(content_length=50 << 30) as (url, sent):
        record = download_video("huge", url, tmp_path / "v" / "source", DownloadConfig(max_bytes=MiB, retries=0),
                                youtube_ids=False)
    assert record.status == "limit_exceeded" and f"announced as {50 << 30} bytes" in record.error
    assert _leftovers(tmp_path / "v") == []


def test_limits_come_from_the_dataset_config_then_the_environment():
    cfg = load_dataset_config("taichi")
    assert cfg.download.max_bytes == 4 << 30 and cfg.download.max_seconds == 3600  # bounded by default
    base = download_config(cfg)
    assert (base.max_bytes, base.max_seconds) == (4 << 30, 3600)
    env = downloader_resource(resolve_settings({"MOTIONPIPE_MAX_DOWNLOAD_BYTES": "500M",
                                                "MOTIONPIPE_MAX_DOWNLOAD_SECONDS": "90"}))
    assert (download_config(cfg, env).max_bytes, download_config(cfg, env).max_seconds) == (500 * MiB, 90)
    with pytest.raises(ValueError, match="MOTIONPIPE_MAX_DOWNLOAD_BYTES: 'lots'"):
        resolve_settings({"MOTIONPIPE_MAX_DOWNLOAD_BYTES": "lots"})


def test_rebuild_records_the_limit_per_video(tmp_path, dagster_home, capsys):
    manifest = tmp_path / "videos.csv"
    manifest.write_text("video_id,url\nzero,file:///dev/zero\n")
    root = tmp_path / "data"
    motionpipe(["rebuild", "sample", "--manifest", str(manifest), "--data-root", str(root),
                "--max-download-bytes", "1M"])
    out = capsys.readouterr().out
    assert "zero: FAILED" in out and "limit_exceeded" in out
    video = root / "datasets/sample/videos/zero"
    record = json.loads((video / "download.json").read_text())
    assert record["status"] == "limit_exceeded" and f"over the limit of {MiB} bytes" in record["error"]
    assert _leftovers(video) == ["download.json"]
    with pytest.raises(SystemExit):
        motionpipe(["rebuild", "sample", "--max-download-bytes", "0"])
    assert "must be at least one byte" in capsys.readouterr().err
