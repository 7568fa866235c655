"""A rebuild's per-video lines say how long the videos still to come will take, at the run's own pace."""
from __future__ import annotations

import re

from pipelines.circuit_breaker import CircuitBreaker
from pipelines.rebuild_outcome import RebuildResult, VideoOutcome
from pipelines.rebuild_tracker import RebuildTracker
from storage.root import DataRoot


def _tracker(tmp_path, total: int) -> RebuildTracker:
    return RebuildTracker(RebuildResult("sample", videos_total=total), DataRoot(str(tmp_path / "data")),
                          CircuitBreaker(3), lambda line: None)


def test_the_eta_is_the_pace_so_far_times_the_videos_left(tmp_path):
    tracker = _tracker(tmp_path, total=5)
    assert tracker.eta(0) == ""  # no pace yet
    tracker.started -= 60.0  # as if the first two videos took a minute
    tracker.add(VideoOutcome("a", "ok", "1 chunks", 30.0, 1))
    tracker.add(VideoOutcome("b", "ok", "1 chunks", 30.0, 1))
    eta = tracker.eta(2)  # 30 s a video, 3 left: about 1:30
    assert re.fullmatch(r", ETA 1:3\d", eta), eta
    assert tracker.eta(5) == ""  # nothing left after the last


def test_the_rebuild_line_carries_it(tmp_path, sample_videos, dagster_home):
    from pipelines.rebuild import rebuild

    manifest = tmp_path / "videos.csv"
    ids = ("sample-astro-a", "sample-astro-b")
    manifest.write_text("video_id,url\n" + "".join(f"{v},file://{sample_videos[v]}\n" for v in ids))
    lines: list[str] = []
    rebuild("sample", data_root=str(tmp_path / "data"), source=str(manifest), progress=lines.append)
    first, second = (next(line for line in lines if line.startswith(f"[sample] {n}/2 ")) for n in (1, 2))
    assert re.search(r": ok, \d+ chunks \(\d+\.\d s, ETA \d+:\d\d\)$", first), first
    assert re.search(r": ok, \d+ chunks \(\d+\.\d s\)$", second), second  # the last: nothing left to wait for
