"""`motionpipe rebuild` exits non-zero when it rebuilt nothing and says why: a summary line with the counts either
way, and the detection rate of a video that gave no chunk. Real CLI, Dagster instance, yt-dlp and detector."""
from __future__ import annotations

import re

import numpy as np
import pytest

from pipelines.cli import main as motionpipe
from storage.video import VideoWriter

pytestmark = pytest.mark.slow


def _flat(text: str) -> str:
    """Terminal text without line breaks and table borders (rich wraps long cells)."""
    return re.sub(r"[\s│┃]+", "", text)


def test_every_video_failing_exits_1_with_the_counts(tmp_path, dagster_home, capsys):
    manifest = tmp_path / "dead.csv"
    manifest.write_text("video_id,url\n" + "".join(f"gone{i},{(tmp_path / f'gone{i}.mp4').as_uri()}\n"
                                                   for i in range(2)))
    rc = motionpipe(["rebuild", "sample", "--manifest", str(manifest), "--data-root", str(tmp_path / "data")])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert ("[sample] summary: 0 ok, 2 failed, 0 skipped, 0 not attempted of 2 videos; 0 chunks; exit 1: nothing "
            "rebuilt: no video went through") in out
    assert "STOPPED EARLY" not in out  # a missing file is the video's own failure: no circuit breaker


def test_a_video_without_chunks_exits_1_and_shows_its_detection_rate(tmp_path, dagster_home, capsys):
    blank = tmp_path / "blank.mp4"
    with VideoWriter(str(blank), 25, (320, 240)) as writer:
        for _ in range(40):
            writer.write(np.full((240, 320, 3), 90, np.uint8))
    manifest = tmp_path / "blank.csv"
    manifest.write_text(f"video_id,url\nblank,{blank.as_uri()}\n")
    rc = motionpipe(["rebuild", "sample", "--manifest", str(manifest), "--data-root", str(tmp_path / "data")])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "summary: 1 ok, 0 failed, 0 skipped, 0 not attempted of 1 videos; 0 chunks; exit 1: nothing rebuilt: " \
           "no chunk came out of any video" in out
    # Why: the detector saw nobody, said in the error and in the detection-rate column.
    assert re.search(r"blank\s*│\s*no_person\s*│\s*0\.0%\s*│", out), out
    assert _flat("no valid person found (size / visibility rules); detection: person in 0/") in _flat(out)
