"""Which download failures are the machine's, not the video's, and when the circuit breaker stops a run.

The messages come from real yt-dlp downloads: an unresolvable host (.invalid never resolves), a closed loopback
port, a refused proxy, a loopback 429 and 404; YouTube's bot check is quoted as yt-dlp prints it (it needs YouTube).
"""
from __future__ import annotations

import socket

import pytest

from assets.ingest.download import DownloadConfig, download_video
from assets.ingest.http_server import serve_directory
from assets.ingest.outage import outage_of
from pipelines.circuit_breaker import CircuitBreaker
from storage.settings import resolve_settings

BOT_CHECK = ("ERROR: [youtube] tpUr8xVxj-w: Sign in to confirm you're not a bot. Use --cookies-from-browser or "
             "--cookies for the authentication.")
PRIVATE = "ERROR: [youtube] u6rJiF-gPx8: Private video. Sign in if you've been granted access to this video"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _error(tmp_path, url: str, proxy: str | None = None) -> str:
    config = DownloadConfig(retries=0, socket_timeout=5, enable_file_urls=True, proxy=proxy)
    record = download_video("v", url, tmp_path / "source", config, youtube_ids=False)
    assert not record.ok
    return record.error


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    with serve_directory(folder, {"/busy.mp4": 429}) as base:
        yield base


def test_machine_wide_failures_are_recognised_from_real_downloads(tmp_path, served):
    port = _closed_port()
    dns = outage_of(_error(tmp_path, "http://nonexistent.invalid/a.mp4"))
    refused = outage_of(_error(tmp_path, f"http://127.0.0.1:{port}/a.mp4"))
    proxy = outage_of(_error(tmp_path, "http://nonexistent.invalid/a.mp4", proxy=f"http://127.0.0.1:{port}"))
    throttled = outage_of(_error(tmp_path, f"{served}/busy.mp4"))
    assert (dns.cause, dns.host) == ("dns", "nonexistent.invalid")
    assert (refused.cause, refused.host) == ("refused", "127.0.0.1")
    assert (proxy.cause, proxy.host) == ("proxy", "127.0.0.1") and "MOTIONPIPE_PROXY" in proxy.explain()
    assert throttled.cause == "rate_limited"
    assert outage_of(BOT_CHECK).cause == "bot_check"


def test_the_videos_own_failures_are_not(tmp_path, served):
    assert outage_of(_error(tmp_path, f"{served}/gone.mp4")) is None  # 404
    assert outage_of(_error(tmp_path, (tmp_path / "missing.mp4").as_uri())) is None
    assert outage_of(PRIVATE) is None and outage_of(None) is None


def test_the_breaker_trips_on_a_streak_of_one_cause_only(tmp_path):
    dns = _error(tmp_path, "http://nonexistent.invalid/a.mp4")
    refused = _error(tmp_path, f"http://127.0.0.1:{_closed_port()}/a.mp4")
    breaker = CircuitBreaker(after=3)
    assert breaker.record_failure("a", dns) is None and breaker.record_failure("b", dns) is None
    breaker.record_ok()  # a video that went through: the network works
    assert breaker.record_failure("c", dns) is None and breaker.record_failure("d", refused) is None
    assert breaker.record_failure("e", PRIVATE) is None  # the video's own: resets too
    assert breaker.record_failure("f", dns) is None and breaker.record_failure("g", dns) is None
    trip = breaker.record_failure("h", dns)
    assert trip is not None and trip.video_ids == ("f", "g", "h")
    message = trip.message()
    assert message.startswith("3 videos in a row (f, g, h) failed the same way") and dns in message
    assert all(option in message for option in ("--mirror", "MOTIONPIPE_PROXY", "MOTIONPIPE_COOKIES"))

    off = CircuitBreaker(after=0)
    assert all(off.record_failure(str(i), dns) is None for i in range(10))


def test_breaker_setting_from_the_environment():
    assert resolve_settings({}).breaker_after == 3
    assert resolve_settings({"MOTIONPIPE_BREAKER_AFTER": "0"}).breaker_after == 0
    assert resolve_settings({"MOTIONPIPE_BREAKER_AFTER": "5"}, breaker_after=2).breaker_after == 2
    with pytest.raises(ValueError, match="MOTIONPIPE_BREAKER_AFTER: 'x' is not a whole number"):
        resolve_settings({"MOTIONPIPE_BREAKER_AFTER": "x"})
    with pytest.raises(ValueError, match=">= 0"):
        resolve_settings({"MOTIONPIPE_BREAKER_AFTER": "-1"})
