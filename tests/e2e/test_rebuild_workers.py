"""`rebuild --workers N`: the videos N at a time through Dagster's multiprocess executor give the serial dataset."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from pipelines.cli import main as motionpipe
from pipelines.rebuild import rebuild
from pipelines.workers import FANOUT_TAG

VIDEOS = ("sample-cuts", "sample-astro-b", "sample-walkoff")  # three kinds: cuts, smooth, walk-off


def _manifest(tmp_path: Path, sample_videos: dict[str, str]) -> Path:
    path = tmp_path / "videos.csv"
    path.write_text("video_id,url\n" + "".join(f"{v},{Path(sample_videos[v]).as_uri()}\n" for v in VIDEOS))
    return path


def _dataset(root: Path) -> tuple[list[tuple[str, str]], str]:
    chunks = pq.read_table(root / "datasets/sample/catalog/chunks.parquet").to_pylist()
    manifest = json.loads((root / "datasets/sample/shards/manifest.json").read_text())
    return sorted((c["chunk_id"], c["sha256"]) for c in chunks), manifest["content_hash"]


@pytest.mark.slow
def test_two_workers_give_the_serial_dataset(tmp_path, sample_videos, dagster_home):
    manifest = _manifest(tmp_path, sample_videos)
    serial = rebuild("sample", data_root=str(tmp_path / "serial"), source=str(manifest), progress=lambda s: None)
    lines: list[str] = []
    parallel = rebuild("sample", data_root=str(tmp_path / "parallel"), source=str(manifest), workers=2,
                       progress=lines.append)

    assert parallel.stop is None and parallel.dataset_run_ok
    assert sorted((o.video_id, o.status, o.chunks) for o in parallel.outcomes) == \
        sorted((o.video_id, o.status, o.chunks) for o in serial.outcomes)
    chunks, content_hash = _dataset(tmp_path / "parallel")
    assert len(chunks) >= len(VIDEOS)
    assert (chunks, content_hash) == _dataset(tmp_path / "serial")  # same chunk ids, bytes and shards
    assert sorted(line.split()[2].rstrip(":") for line in lines if " ok, " in line) == sorted(VIDEOS)  # one each
    assert any(line.startswith("[sample] 3/3 ") for line in lines)

    # Dagster ran them: one fan-out run, one partition run per video tagged with it, two of them at once.
    instance = dg.DagsterInstance.get()
    (fanout,) = instance.get_run_records(dg.RunsFilter(job_name="sample_video_fanout"))
    assert fanout.dagster_run.status == dg.DagsterRunStatus.SUCCESS
    runs = instance.get_run_records(dg.RunsFilter(job_name="sample_video_job",
                                                  tags={FANOUT_TAG: fanout.dagster_run.run_id}))
    assert sorted(r.dagster_run.tags["dagster/partition"] for r in runs) == sorted(VIDEOS)
    spans = sorted((r.start_time, r.end_time) for r in runs)
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))  # overlapping in time


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "two"])
def test_workers_must_be_a_whole_number_of_at_least_one(value, capsys):
    with pytest.raises(SystemExit) as exc:
        motionpipe(["rebuild", "sample", "--workers", value])
    assert exc.value.code == 2
    assert f"argument --workers: expected a whole number >= 1 (videos rebuilt at a time), got '{value}'" in \
        capsys.readouterr().err


def test_rebuild_refuses_zero_workers_before_any_work(tmp_path, dagster_home):
    with pytest.raises(ValueError, match=r"--workers: expected a whole number >= 1, got 0"):
        rebuild("sample", data_root=str(tmp_path / "data"), workers=0, progress=lambda s: None)
    assert not (tmp_path / "data").exists()


@pytest.mark.slow
def test_sigterm_stops_the_parallel_videos_and_a_rerun_resumes(tmp_path, sample_videos, monkeypatch, capsys):
    """SIGTERM reaches only the rebuild's watch, not Dagster's executor: the rebuild stops the fan-out itself."""
    manifest = _manifest(tmp_path, sample_videos)
    root = tmp_path / "data"
    env = {"DAGSTER_HOME": str(tmp_path / "dh"), "MOTIONPIPE_CACHE": str(tmp_path / "cache")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    log = tmp_path / "rebuild.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "rebuild", "sample", "--manifest",
                                 str(manifest), "--data-root", str(root), "--workers", "2"],
                                env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 240
            while "STEP_WORKER_STARTED" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)  # the first two videos' step processes are up
            os.kill(proc.pid, signal.SIGTERM)
            rc = proc.wait(timeout=90)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    text = log.read_text()
    assert rc == 128 + signal.SIGTERM, text
    assert "interrupted by SIGTERM at videos " in text or "interrupted by SIGTERM at the videos" in text, text
    assert "FAILED" not in text and "catalog, shards" not in text, text
    record = json.loads((root / "datasets/sample/last_rebuild.json").read_text())
    assert (record["state"], record["reason"]) == ("interrupted", "SIGTERM")
    videos = root / "datasets/sample/videos"
    assert not [p for p in videos.glob("*/download.json") if json.loads(p.read_text())["status"] != "ok"]
    assert motionpipe(["rebuild", "sample", "--manifest", str(manifest), "--data-root", str(root),
                       "--workers", "2"]) == 0
    assert f"summary: {len(VIDEOS)} ok, 0 failed, 0 skipped, 0 not attempted" in capsys.readouterr().out


@pytest.mark.slow
def test_the_circuit_breaker_stops_the_parallel_videos(tmp_path, dagster_home):
    """Videos that all fail the same machine-wide way (a refused connection) stop a parallel run as a serial one."""
    manifest = tmp_path / "refused.csv"
    manifest.write_text("video_id,url\n" + "".join(f"v{n},http://127.0.0.1:9/v{n}.mp4\n" for n in range(8)))
    lines: list[str] = []
    result = rebuild("sample", data_root=str(tmp_path / "data"), source=str(manifest), workers=2,
                     breaker_after=3, progress=lines.append)
    assert result.stop is not None and result.stop.kind == "breaker", lines
    assert result.count("failed") == 3 and result.count("ok") == 0
    assert any(line.startswith("[sample] STOPPED EARLY: 3 videos in a row") for line in lines)
    assert "catalog, shards" not in " ".join(lines)
