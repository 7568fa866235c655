"""No network: the rebuild stops after a few videos fail the same way, with one message naming the cause and the
options, instead of retrying every video for an hour; `motionpipe status` then tells what happened to each video
from their records (not "not processed yet"), each error whole, and points to nothing that does not exist.
Real CLI, Dagster instance and yt-dlp; the host is unresolvable for real (.invalid never resolves)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipelines.cli import main as motionpipe

pytestmark = pytest.mark.slow
N = 55  # more than the 50 rows the report lists


def _flat(text: str) -> str:
    return re.sub(r"[\s│┃]+", "", text)


def test_no_network_stops_early_and_status_tells_what_happened(tmp_path, dagster_home, monkeypatch, capsys):
    monkeypatch.setenv("MOTIONPIPE_BREAKER_AFTER", "2")
    ids = [f"v{i:02d}" for i in range(N)]
    manifest = tmp_path / "videos.csv"
    manifest.write_text("video_id,url\n" + "".join(f"{v},http://nonexistent.invalid/{v}.mp4\n" for v in ids)
                        + "../up,file:///x.mp4\nftp-row,ftp://example.org/x.mp4\n")
    root = tmp_path / "data"
    rc = motionpipe(["rebuild", "sample", "--manifest", str(manifest), "--data-root", str(root)])
    out = capsys.readouterr().out
    assert rc == 3, out
    stop = ("STOPPED EARLY: 2 videos in a row (v00, v01) failed the same way, which is not about the videos: the "
            "host name nonexistent.invalid does not resolve (no DNS, or no network on this machine)")
    assert out.count(stop) == 1 and out.count("STOPPED EARLY") == 1
    options = out[out.index(stop):].splitlines()[1]
    assert "--mirror" in options and "MOTIONPIPE_PROXY" in options and "MOTIONPIPE_COOKIES" in options
    assert f"summary: 0 ok, 2 failed, 0 skipped, {N - 2} not attempted of {N} videos; 0 chunks; exit 3" in out
    # The manifest's rejected rows, by reason, in the terminal.
    assert "[sample] 2 manifest rows rejected" in out and "1 row: invalid video id: …" in out
    assert "e.g. row 57 (line 58): ftp-row,ftp://example.org/x.mp4" in out

    videos = root / "datasets/sample/videos"
    assert not any((videos / v / "download.json").exists() for v in ids[2:])  # never tried
    error = json.loads((videos / "v00/download.json").read_text())["error"]
    assert "Failed to resolve 'nonexistent.invalid'" in error and error.endswith('known)"))')  # kept whole
    assert not (root / "datasets/sample/catalog").exists()  # a stopped run publishes nothing

    assert motionpipe(["status", "sample", "--data-root", str(root)]) == 0
    status = capsys.readouterr().out
    assert "not processed yet" not in status and "coverage.json" not in status  # there is none
    assert _flat("the last rebuild stopped early at v01 after 2 of 55 videos handled: 2 videos in a row") \
        in _flat(status)
    assert _flat(f"v00 │ network │ │ {error}") in _flat(status)  # the error whole, wrapped
    assert _flat(f"{N - 2} videos │ not_attempted") in _flat(status)
    assert f"by reason: not_attempted: {N - 2}, network: 2" in status

    assert motionpipe(["status", "sample", "--data-root", str(root), "--all"]) == 0
    listed = capsys.readouterr().out
    assert all(re.search(rf"│ {v}\s+│ not_attempted", listed) for v in ids[2:])
    assert not Path(root / "datasets/sample/coverage/coverage.json").exists()
