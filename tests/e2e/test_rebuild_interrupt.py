"""Ctrl-C and SIGTERM stop a `motionpipe rebuild` cleanly: the video in progress is dropped (not recorded as failed),
no later video starts, the run records where it stopped, exits 130 / 143, and a rerun resumes; after SIGKILL
`motionpipe status` says the run was killed. A real subprocess gets a real signal while yt-dlp waits on a loopback
server that does not answer yet."""
from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from assets.ingest.http_server import serve_handler
from pipelines.cli import main as motionpipe
from storage.video import VideoWriter

pytestmark = pytest.mark.slow


class _Gate:
    """The loopback server's state: while `hang`, a request is held unanswered (and `reached` is set)."""

    def __init__(self) -> None:
        self.hang, self.reached, self.release = True, threading.Event(), threading.Event()


@pytest.fixture()
def gated(tmp_path):
    """A loopback server of one short video (nobody in it: its pass is quick), held back while `gate.hang`."""
    gate, folder = _Gate(), tmp_path / "served"
    folder.mkdir()
    with VideoWriter(str(folder / "blank.mp4"), 25, (320, 240)) as writer:
        for _ in range(40):
            writer.write(np.full((240, 320, 3), 90, np.uint8))

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args) -> None:
            pass

        def send_head(self):
            if gate.hang:
                gate.reached.set()
                gate.release.wait(60)
                return None
            return super().send_head()

    with serve_handler(Handler) as base:
        try:
            yield gate, base
        finally:
            gate.release.set()


@pytest.fixture()
def setup(tmp_path, sample_videos, gated, monkeypatch):
    """Three videos: one that goes through, one whose download hangs, one (a dead link) after it."""
    gate, base = gated
    manifest = tmp_path / "videos.csv"
    manifest.write_text(f"video_id,url\nfirst,{Path(sample_videos['sample-walkoff']).as_uri()}\n"
                        f"hangs,{base}/blank.mp4\nlast,{(tmp_path / 'gone.mp4').as_uri()}\n")
    env = {"DAGSTER_HOME": str(tmp_path / "dh"), "MOTIONPIPE_CACHE": str(tmp_path / "cache")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return gate, manifest, tmp_path / "data", {**os.environ, **env}


def _interrupt(setup, signum: int) -> tuple[int, str, float]:
    """Start the rebuild, send `signum` while the second video's download waits; (exit code, output, seconds the
    process took to end after the signal)."""
    gate, manifest, root, env = setup
    log = root.parent / f"rebuild-{signum}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "rebuild", "sample", "--manifest",
                                 str(manifest), "--data-root", str(root)], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            assert gate.reached.wait(240), log.read_text()
            t0 = time.monotonic()
            # Ctrl-C reaches the terminal's whole process group; `kill` (SIGTERM, SIGKILL) the process alone.
            os.killpg(proc.pid, signum) if signum == signal.SIGINT else os.kill(proc.pid, signum)
            rc = proc.wait(timeout=60)
            return rc, log.read_text(), time.monotonic() - t0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _status(root: Path, capsys) -> str:
    assert motionpipe(["status", "sample", "--data-root", str(root)]) == 0
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_run_cleanly_and_a_rerun_resumes(setup, signum, capsys):
    gate, manifest, root, _ = setup
    rc, out, seconds = _interrupt(setup, signum)
    name = signal.Signals(signum).name
    assert rc == 128 + signum, out
    assert seconds < 20, out
    assert f"interrupted by {name} at video 2/3 (hangs): stopping" in out
    assert "FAILED" not in out and "3/3" not in out and "catalog, shards" not in out
    assert "summary: 1 ok, 0 failed, 0 skipped, 2 not attempted of 3 videos;" in out
    assert f"exit {rc}: stopped (interrupted at video 2/3 (hangs))" in out
    videos = root / "datasets/sample/videos"
    assert not (videos / "hangs/download.json").exists()  # not a failure of the video
    assert not (videos / "last").exists()  # never started
    assert not [p for p in videos.rglob("*") if ".download-" in p.name or ".tmp-" in p.name]
    record = json.loads((root / "datasets/sample/last_rebuild.json").read_text())
    assert (record["state"], record["stopped_at"], record["reason"]) == ("interrupted", "video 2/3 (hangs)", name)

    status = _status(root, capsys)
    assert f"the last rebuild was interrupted by {name} at video 2/3 (hangs)" in status
    assert "after 1 of 3 videos handled; rerun it to resume" in status
    assert "rebuilt, not yet published: 1 videos" in status and "2 videos │ not_attempted" in status

    if signum == signal.SIGTERM:
        return
    first_pass = (videos / "first/video_pass.json").read_bytes()
    gate.hang = False
    assert motionpipe(["rebuild", "sample", "--manifest", str(manifest), "--data-root", str(root)]) == 0
    rerun = capsys.readouterr().out
    assert "summary: 2 ok, 1 failed, 0 skipped, 0 not attempted of 3 videos" in rerun
    assert (videos / "first/video_pass.json").read_bytes() == first_pass  # resumed: the done video is reused
    assert json.loads((root / "datasets/sample/last_rebuild.json").read_text())["state"] == "finished"
    assert "the last rebuild" not in _status(root, capsys)


def test_status_after_sigkill_says_the_run_was_killed(setup, capsys):
    _, _, root, _ = setup
    rc, out, _ = _interrupt(setup, signal.SIGKILL)
    assert rc == -signal.SIGKILL
    status = _status(root, capsys)
    assert "was killed after 1 of 3 videos handled; rerun it to resume" in status
    assert "first │ not_published" in status and "2 videos │ not_attempted" in status
