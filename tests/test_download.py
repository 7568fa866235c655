import contextlib
import functools
import hashlib
import http.server
import os
import subprocess
from pathlib import Path

import pytest
import yt_dlp

from assets.ingest.download import (
    DownloadConfig,
    DownloadRecord,
    backoff_delays,
    config_for_video,
    download_video,
    format_selector,
)
from assets.ingest.errors import ErrorClass, classify_error, is_transient
from assets.ingest.http_server import serve_directory, serve_handler
from storage.ids import InvalidIdError
from storage.video import ffmpeg_exe

VID = "u6rJiF-gPx8"


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """A served folder with a tiny real mp4 (160x120, 25 fps, 1 s) and a file that is not a video."""
    folder = tmp_path_factory.mktemp("media")
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi",
                    "-i", "testsrc=size=160x120:rate=25:duration=1", "-pix_fmt", "yuv420p", "-c:v", "libx264",
                    str(folder / "clip.mp4")], check=True)
    (folder / "junk.mp4").write_bytes(b"\x00not a video\x00" * 300)
    return folder


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class Sleeps(list):
    """Injected sleep: records the pauses instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@contextlib.contextmanager
def scripted_server(body: bytes, statuses: list[int]):
    """Loopback server for one file whose first responses follow `statuses` (then 200); counts requests."""
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            requests.append(self.path)
            status = statuses.pop(0) if statuses else 200
            self.send_response(status)
            self.send_header("Content-Type", "video/mp4" if status == 200 else "text/plain")
            self.send_header("Content-Length", str(len(body)) if status == 200 else "0")
            self.end_headers()
            if status == 200:
                self.wfile.write(body)

    with serve_handler(Handler) as base:
        yield f"{base}/v.mp4", requests


# -- format selection, checked by yt-dlp's own selector ------------------------------------------------------------

def _fmt(format_id, height, fps, acodec="none", vcodec="avc1.4d401f"):
    return {"format_id": format_id, "url": f"https://example.invalid/{format_id}", "ext": "mp4", "protocol": "https",
            "height": height, "width": height * 16 // 9, "fps": fps, "vcodec": vcodec, "acodec": acodec,
            "tbr": height * fps / 10}


YOUTUBE_LIKE = [
    _fmt("18", 360, 30, acodec="mp4a.40.2"),  # the progressive file that `best` gets since 2024
    _fmt("136", 720, 30), _fmt("298", 720, 60), _fmt("137", 1080, 30), _fmt("299", 1080, 60),
]


@functools.lru_cache(maxsize=1)
def _ydl() -> yt_dlp.YoutubeDL:
    return yt_dlp.YoutubeDL({"quiet": True})


def select(spec: str, formats: list[dict]) -> str:
    ydl = _ydl()
    formats = [dict(f) for f in formats]
    ydl.sort_formats({"formats": formats})
    chosen = list(ydl.build_format_selector(spec)({
        "formats": formats, "has_merged_format": True, "incomplete_formats": False}))
    return chosen[0]["format_id"]


@pytest.mark.parametrize("height,fps,expected", [
    (720, 29.97, "136"),    # smallest format as tall as the reference, at its fps
    (720, 59.94, "298"),    # 60 fps reference: the 60 fps stream, not the smaller 30 fps one
    (480, 25.0, "136"),     # no 25 fps: the smallest taller format at a higher fps
    (1080, 30.0, "137"),
    (1080, 50.0, "299"),
    (360, None, "18"),      # no fps known: the smallest tall enough
    (None, None, "299"),    # no reference: the best video
    (None, 30.0, "137"),    # no reference height: best at the reference fps
])
def test_selector_prefers_reference_height_then_fps(height, fps, expected):
    assert select(format_selector(height, fps), YOUTUBE_LIKE) == expected


def test_selector_falls_back_to_best_available_below_reference():
    capped = [f for f in YOUTUBE_LIKE if f["height"] <= 720]
    assert select(format_selector(1080, 30.0), capped) == "298"  # the tallest there is (flagged at download)


def test_selector_takes_unknown_height_direct_links():
    direct = [{"format_id": "mp4", "url": "http://127.0.0.1/x.mp4", "ext": "mp4", "protocol": "http"}]
    spec = format_selector(720, 30.0)
    assert "[height>=?720]" in spec and select(spec, direct) == "mp4"


def test_selector_is_never_plain_best():
    spec = format_selector(720, 29.97)
    assert spec.split("/")[0] == "wv*[height>=720][fps>=28.97][fps<=30.97]"
    assert "best" not in spec.split("/")


def test_config_for_video_uses_manifest_reference():
    base = DownloadConfig(min_height=720, retries=5)
    assert config_for_video(base, 1080, 29.97) == DownloadConfig(min_height=1080, ref_fps=29.97, retries=5)
    assert config_for_video(base, None, None) == base


# -- downloads through the real yt-dlp -----------------------------------------------------------------------------

def test_success_over_http_records_the_file(media, tmp_path):
    dest = tmp_path / "videos" / VID / "source"
    sleeps = Sleeps()
    with serve_directory(media) as base:
        record = download_video(VID, f"{base}/clip.mp4", dest, DownloadConfig(min_height=120, ref_fps=25),
                                sleep=sleeps)
    assert record.status == "ok" and record.error_class is None and record.error is None
    assert (record.attempts, sleeps) == (1, [])
    assert record.path == str(dest.with_suffix(".mp4"))
    assert (record.width, record.height, record.fps, record.vcodec, record.ext) == (160, 120, 25.0, "h264", "mp4")
    assert record.filesize == (media / "clip.mp4").stat().st_size
    assert record.sha256 == sha(media / "clip.mp4") == sha(dest.with_suffix(".mp4"))
    assert record.format_id == "mp4" and not record.below_reference
    assert os.listdir(dest.parent) == ["source.mp4"]  # no temp folder or .part left beside it
    assert record.downloaded_at and record.elapsed_s > 0


def test_file_url_needs_enable_file_urls(media, tmp_path):
    url = (media / "clip.mp4").as_uri()
    with pytest.raises(ValueError, match="file://"):
        download_video(VID, url, tmp_path / "a" / "source", DownloadConfig())
    record = download_video(VID, url, tmp_path / "b" / "source", DownloadConfig(enable_file_urls=True))
    assert record.ok and record.sha256 == sha(media / "clip.mp4")


def test_lower_than_reference_is_flagged(media, tmp_path):
    record = download_video(VID, (media / "clip.mp4").as_uri(), tmp_path / "source",
                            DownloadConfig(min_height=720, enable_file_urls=True))
    assert record.ok and record.height == 120 and record.below_reference


def test_http_404_is_not_found_and_not_retried(media, tmp_path):
    sleeps = Sleeps()
    with serve_directory(media, {"/gone.mp4": 404}) as base:
        record = download_video(VID, f"{base}/gone.mp4", tmp_path / "v" / "source", DownloadConfig(), sleep=sleeps)
    assert record.status == record.error_class == ErrorClass.not_found.value
    assert "HTTP Error 404" in record.error and record.error.startswith("ERROR: ")
    assert (record.attempts, sleeps, record.path, record.sha256) == (1, [], None, None)
    assert os.listdir(tmp_path / "v") == []  # nothing left behind


def test_http_429_is_retried_with_backoff_then_fails_with_the_real_message(media, tmp_path):
    config = DownloadConfig(retries=3, backoff_base=2.0, backoff_max=5.0, seed=11)
    sleeps = Sleeps()
    with serve_directory(media, {"/busy.mp4": 429}) as base:
        record = download_video(VID, f"{base}/busy.mp4", tmp_path / "v" / "source", config, sleep=sleeps)
    assert record.status == "rate_limited" and record.attempts == 4
    assert "HTTP Error 429: Too Many Requests" in record.error
    assert sleeps == backoff_delays(config, VID) and len(sleeps) == 3
    assert sleeps[0] < sleeps[1] and sleeps[2] == 5.0  # exponential, capped
    assert os.listdir(tmp_path / "v") == []


def test_429_once_then_success_on_the_second_attempt(media, tmp_path):
    body = (media / "clip.mp4").read_bytes()
    sleeps = Sleeps()
    with scripted_server(body, [429]) as (url, requests):
        record = download_video(VID, url, tmp_path / "source", DownloadConfig(retries=3), sleep=sleeps)
    assert record.ok and record.attempts == 2 and len(sleeps) == 1
    assert record.sha256 == hashlib.sha256(body).hexdigest()
    assert len(requests) >= 2


def test_a_file_that_does_not_decode_is_corrupt(media, tmp_path):
    sleeps = Sleeps()
    with serve_directory(media) as base:
        record = download_video(VID, f"{base}/junk.mp4", tmp_path / "v" / "source", DownloadConfig(), sleep=sleeps)
    assert record.status == "corrupt" and record.attempts == 1 and sleeps == []
    assert "corrupt or unreadable video" in record.error
    assert os.listdir(tmp_path / "v") == []


def test_connection_refused_is_network_and_retried(tmp_path):
    with scripted_server(b"", []) as (url, _):
        pass  # the port is closed once the server is gone
    sleeps = Sleeps()
    record = download_video(VID, url, tmp_path / "source", DownloadConfig(retries=2, socket_timeout=5), sleep=sleeps)
    assert record.status == "network" and record.attempts == 3 and len(sleeps) == 2
    assert "Connection refused" in record.error


@pytest.mark.parametrize("bad", ["abc; rm -rf /", "../../etc/pass", "u6rJiF-gPx", "u6rJiF-gPx8x", "", None,
                                 "u6rJiF gPx8", "u6rJiF-gP/x"])
def test_invalid_ids_are_rejected_before_any_io(bad, media, tmp_path):
    with scripted_server(b"", []) as (url, requests):
        with pytest.raises(InvalidIdError):
            download_video(bad, url, tmp_path / "out" / "source", DownloadConfig())
    assert requests == [] and not (tmp_path / "out").exists()


def test_default_url_is_built_from_the_validated_id(tmp_path):
    config = DownloadConfig(proxy=f"http://127.0.0.1:{_closed_port()}", retries=0)
    record = download_video(VID, None, tmp_path / "source", config)
    assert record.url == f"https://www.youtube.com/watch?v={VID}"
    assert record.status == "network" and "Unable to connect to proxy" in record.error


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_existing_good_file_is_not_downloaded_again(media, tmp_path):
    body = (media / "clip.mp4").read_bytes()
    dest = tmp_path / "source"
    with scripted_server(body, []) as (url, requests):
        first = download_video(VID, url, dest, DownloadConfig())
        n = len(requests)
        again = download_video(VID, url, dest, DownloadConfig(), previous=first)
        assert len(requests) == n  # no request at all
        assert again.reused and again.sha256 == first.sha256 and again.path == first.path
        Path(first.path).write_bytes(body[:-10])  # damaged on disk: fetched again
        fresh = download_video(VID, url, dest, DownloadConfig(), previous=first)
        assert len(requests) > n and not fresh.reused and fresh.sha256 == first.sha256


def test_local_ids_for_non_youtube_datasets(media, tmp_path):
    record = download_video("sample_01", (media / "clip.mp4").as_uri(), tmp_path / "source",
                            DownloadConfig(enable_file_urls=True), youtube_ids=False)
    assert record.ok and record.video_id == "sample_01"
    with pytest.raises(InvalidIdError):
        download_video("sample_01", None, tmp_path / "source", DownloadConfig())


def test_every_option_is_accepted_by_yt_dlp(media, tmp_path):
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n")
    config = DownloadConfig(rate_limit_bytes=50_000_000, cookies_file=str(cookies), js_runtimes=("node",),
                            remote_components=("ejs:github",), socket_timeout=5, enable_file_urls=True)
    record = download_video(VID, (media / "clip.mp4").as_uri(), tmp_path / "v" / "source", config)
    assert record.ok, record.error


def test_record_json_round_trip():
    record = DownloadRecord(VID, "https://www.youtube.com/watch?v=" + VID, "private", "private",
                            "ERROR: [youtube] u6rJiF-gPx8: Private video. Sign in if you've been granted access",
                            attempts=1, elapsed_s=0.4, downloaded_at="2026-01-01T00:00:00+00:00")
    assert DownloadRecord.from_json(record.to_json()) == record
    assert DownloadRecord.from_json(record.to_json().replace('"attempts"', '"future_field": 1, "attempts"')) == record


def test_backoff_is_seeded_per_video_and_bounded():
    config = DownloadConfig(retries=6, backoff_base=2.0, backoff_max=30.0, seed=0)
    delays = backoff_delays(config, VID)
    assert delays == backoff_delays(config, VID) and len(delays) == 6
    assert all(min(30.0, 0.75 * 2 ** k) <= d <= min(30.0, 1.25 * 2 ** k) for k, d in enumerate(delays, start=1))
    assert delays != backoff_delays(config, "aDyyTMUBoLE")
    assert backoff_delays(DownloadConfig(retries=0), VID) == []
    with pytest.raises(ValueError):
        DownloadConfig(retries=-1)


# -- error classes from real yt-dlp messages -----------------------------------------------------------------------

MESSAGES = {
    "ERROR: [youtube] _QdPW8JrYzQ: Private video. Sign in if you've been granted access to this video. Use "
    "--cookies-from-browser or --cookies for the authentication.": ErrorClass.private,
    "ERROR: [youtube] xDKth-qS8Jk: Video unavailable. This video is no longer available because the YouTube "
    "account associated with this video has been terminated.": ErrorClass.unavailable,
    "ERROR: [youtube] u6rJiF-gPx8: Video unavailable. This video has been removed by the uploader":
        ErrorClass.unavailable,
    "ERROR: [youtube] u6rJiF-gPx8: Video unavailable": ErrorClass.unavailable,
    "ERROR: [youtube] u6rJiF-gPx8: This video has been removed for violating YouTube's policy on hate speech.":
        ErrorClass.unavailable,
    "ERROR: [youtube] h7aSM88pUv8: Join this channel to get access to members-only content like this video, and "
    "other exclusive perks.": ErrorClass.members_only,
    "ERROR: [youtube] epoGMzLgyFQ: Join this channel from your computer or Android app to get access to "
    "members-only content like this video.": ErrorClass.members_only,
    "ERROR: [youtube] t0_4P09qL8k: This video is available to this channel's members on level: Tier 1 (or any "
    "higher level). Join this channel to get access to members-only content and other exclusive perks.":
        ErrorClass.members_only,
    "ERROR: [youtube] u6rJiF-gPx8: Sign in to confirm your age. This video may be inappropriate for some users. "
    "Use --cookies-from-browser or --cookies for the authentication.": ErrorClass.age_gated,
    "ERROR: [youtube] tpUr8xVxj-w: Sign in to confirm you\u2019re not a bot. Use --cookies-from-browser or "
    "--cookies for the authentication.": ErrorClass.bot_check,
    "ERROR: [youtube] tpUr8xVxj-w: Sign in to confirm you're not a bot.": ErrorClass.bot_check,
    "ERROR: [youtube] ltcd1B8WyTM: Video unavailable. The uploader has not made this video available in your "
    "country": ErrorClass.geo_blocked,
    "ERROR: [youtube] ltcd1B8WyTM: The uploader has not made this video available in your country. This video "
    "is available in Germany.": ErrorClass.geo_blocked,
    "ERROR: [youtube] u6rJiF-gPx8: Video unavailable. This video is no longer available due to a copyright claim "
    "by Some Label": ErrorClass.copyright,
    "ERROR: [youtube] u6rJiF-gPx8: Video unavailable. This video contains content from SME, who has blocked it "
    "in your country on copyright grounds.": ErrorClass.copyright,
    "ERROR: [youtube] u6rJiF-gPx8: This live event will begin in 3 hours.": ErrorClass.live,
    "ERROR: [youtube] u6rJiF-gPx8: Premieres in 10 hours": ErrorClass.live,
    "ERROR: [youtube] u6rJiF-gPx8: This live stream recording is not available.": ErrorClass.live,
    "ERROR: unable to download video data: HTTP Error 429: Too Many Requests": ErrorClass.rate_limited,
    "ERROR: [youtube] u6rJiF-gPx8: This content isn't available, try again later. The current session has been "
    "rate-limited by YouTube for up to an hour.": ErrorClass.rate_limited,
    "ERROR: [generic] gone: Unable to download webpage: HTTP Error 404: Not Found (caused by <HTTPError 404: "
    "Not Found>)": ErrorClass.not_found,
    "ERROR: [generic] x: Unable to download webpage: [Errno 2] No such file or directory: '/tmp/x.mp4' (caused by "
    "TransportError(\"[Errno 2] No such file or directory: '/tmp/x.mp4'\"))": ErrorClass.not_found,
    "ERROR: [generic] x: Unable to download webpage: HTTPConnection(host='127.0.0.1', port=8799): Failed to "
    "establish a new connection: [Errno 111] Connection refused": ErrorClass.network,
    "ERROR: [youtube] u6rJiF-gPx8: Unable to download API page: <urlopen error [Errno -2] Name or service not "
    "known>": ErrorClass.network,
    "ERROR: unable to download video data: The read operation timed out": ErrorClass.network,
    "ERROR: unable to download video data: HTTP Error 503: Service Unavailable": ErrorClass.network,
    "ERROR: Did not get any data blocks": ErrorClass.corrupt,
    "ERROR: [youtube] u6rJiF-gPx8: Requested format is not available. Use --list-formats for a list of available "
    "formats": ErrorClass.other,
    "ERROR: [youtube] u6rJiF-gPx8: Failed to extract any player response": ErrorClass.other,
    "": ErrorClass.other,
}


@pytest.mark.parametrize("message", list(MESSAGES))
def test_classify_real_messages(message):
    assert classify_error(message) is MESSAGES[message]


def test_only_rate_limits_bot_checks_and_network_are_transient():
    assert {c for c in ErrorClass if is_transient(c)} == {
        ErrorClass.rate_limited, ErrorClass.bot_check, ErrorClass.network}
    assert is_transient("network") and not is_transient("private")
