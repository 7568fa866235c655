"""A full disk: a write that runs out of space fails with an error naming the file and leaves the previous version
intact; in the pipeline it is an `environment` failure (retried by the next run, nothing partial kept), and the
hidden temporaries of killed runs are removed by the next one."""
import multiprocessing as mp
import os
import resource
import signal
import time
from pathlib import Path

import dagster as dg
import pytest

from assets.dataset_config import load_dataset_config
from assets.ingest.download import DownloadRecord
from assets.ingest.download_stage import is_permanent_failure
from assets.ingest.errors import ErrorClass, classify_error
from assets.ingest.manifest_stage import build_manifest
from pipelines.rebuild import _failure_detail, rebuild
from storage import paths
from storage.root import DataRoot
from tests.test_download_limits import endless_server


def _write_big(root_dir: str, queue) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed, like ENOSPC
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))  # the "disk" holds 64 KiB per file
    root = DataRoot(root_dir)
    try:
        root.write_bytes(root.path("catalog", "chunks.parquet"), b"x" * (1 << 20))
        queue.put("no error")
    except OSError as exc:
        queue.put(str(exc))


def test_out_of_space_names_the_file_and_keeps_the_old_one(tmp_path):
    root = DataRoot(str(tmp_path))
    target = root.path("catalog", "chunks.parquet")
    root.write_bytes(target, b"previous good version")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_write_big, args=(str(tmp_path), queue))
    proc.start()
    proc.join(60)
    message = queue.get(timeout=5)
    assert "catalog/chunks.parquet" in message and "nothing was replaced" in message
    assert root.read_bytes(target) == b"previous good version"
    assert [p.name for p in (tmp_path / "catalog").iterdir()] == ["chunks.parquet"]  # no temp file left


# ---- a full disk in the pipeline: transient, named, nothing left; and the leftovers of killed runs -------------

VIDEO = "sample-cuts"
LIMIT = 1 << 16  # the "disk" holds 64 KiB per file: the 366 KB sample video does not fit


def _under_full_disk(stage: str, root_dir: str, queue) -> None:
    """Run one real stage function with a file-size limit (EFBIG stands in for ENOSPC, as above)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))
    cfg, root = load_dataset_config("sample"), DataRoot(root_dir)
    try:
        if stage == "download":
            from assets.ingest.download_stage import fetch_video
            queue.put(fetch_video(cfg, root, VIDEO).to_json())
        else:
            from assets.shards.build import build_dataset
            build_dataset(cfg, root)
            queue.put("no error")
    except OSError as exc:
        queue.put(f"OSError: {exc}")


def _in_child(stage: str, root_dir: str) -> str:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_under_full_disk, args=(stage, root_dir, queue))
    proc.start()
    proc.join(120)
    return queue.get(timeout=5)


@pytest.fixture(scope="module")
def world(sample_videos, tmp_path_factory):
    """A download that hit the full disk, then the next run (plain `rebuild`, no --retry-failed) on a free disk."""
    tmp = tmp_path_factory.mktemp("full-disk")
    mp_ = pytest.MonkeyPatch()
    mp_.setenv("DAGSTER_HOME", str(tmp / "dagster_home"))
    mp_.setenv("MOTIONPIPE_CACHE", str(tmp / "cache"))
    manifest = tmp / "videos.csv"
    manifest.write_text(f"video_id,url\n{VIDEO},{Path(sample_videos[VIDEO]).resolve().as_uri()}\n")
    root = DataRoot(str(tmp / "data"))
    build_manifest(load_dataset_config("sample"), root, source=str(manifest))
    record = DownloadRecord.from_json(_in_child("download", root.base))
    left = sorted(p.name for p in Path(paths.video_dir(root, "sample", VIDEO)).iterdir())
    lines: list[str] = []
    result = rebuild("sample", data_root=root.base, source=str(manifest), progress=lines.append)
    yield root, record, left, result, manifest
    mp_.undo()


def test_full_disk_download_is_transient_named_and_leaves_nothing(world):
    root, record, left, result, _ = world
    assert record.status == ErrorClass.environment.value  # not "other": the disk, not the video
    assert "File too large" in record.error and f"videos/{VIDEO}/source" in record.error
    assert not is_permanent_failure(record)
    assert left == ["download.json"]  # no partial video, no .source.download-* folder
    # the next run retries it without --retry-failed, and it succeeds once there is room
    assert [(o.video_id, o.status) for o in result.outcomes] == [(VIDEO, "ok")] and result.dataset_run_ok


@pytest.mark.parametrize("message", [
    "ERROR: unable to write data: [Errno 28] No space left on device",
    "ERROR: unable to write data: [Errno 122] Disk quota exceeded",
    "ERROR: unable to open for writing: [Errno 30] Read-only file system: 'x.mp4.part'",
])
def test_environment_errors_are_not_video_failures(message):
    record = DownloadRecord("v", "u", status=classify_error(message).value, error=message)
    assert record.status == "environment" and not is_permanent_failure(record)


def test_full_disk_in_the_dataset_step_names_the_file_and_keeps_the_published_shards(world):
    root = world[0]
    shards = Path(paths.shards_dir(root, "sample"))
    before = {p.name: p.read_bytes() for p in shards.iterdir()}
    message = _in_child("dataset", root.base)
    assert "File too large while writing" in message and "shards/" in message and ".tar" in message
    assert {p.name: p.read_bytes() for p in shards.iterdir()} == before  # no .staging-* left, nothing replaced


@dg.op
def _write_fails() -> None:
    try:
        raise OSError(28, "No space left on device")
    except OSError as bare:
        raise OSError(28, "No space left on device while writing data/x/clips.tar (nothing was replaced)") from bare


@dg.job
def _full_disk_job():
    _write_fails()


def test_the_terminal_shows_the_error_that_names_the_file(dagster_home):
    result = _full_disk_job.execute_in_process(raise_on_error=False)
    assert "while writing data/x/clips.tar" in _failure_detail(result)  # not the bare cause under it


def _killed_writers(root_dir: str, url: str, queue) -> None:
    """A download and a clip tar, both mid-write when the process is killed (SIGKILL: no cleanup runs)."""
    import threading

    from assets.ingest.download import DownloadConfig, download_video
    root = DataRoot(root_dir)
    threading.Thread(target=download_video, daemon=True,
                     args=(VIDEO, url, paths.video_dir(root, "sample", VIDEO) + "/source",
                           DownloadConfig(retries=0)), kwargs={"youtube_ids": False}).start()
    with root.open_atomic(paths.clips_path(root, "sample", VIDEO)) as f:
        f.write(b"half a tar")
        f.flush()
        queue.put("writing")
        time.sleep(120)


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_leftovers_of_killed_runs_are_removed_by_the_next_run(world):
    root, *_, manifest = world
    folder = Path(paths.video_dir(root, "sample", VIDEO))
    with endless_server() as (url, _):
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        proc = ctx.Process(target=_killed_writers, args=(root.base, url, queue))
        proc.start()
        assert queue.get(timeout=60) == "writing"
        deadline = time.time() + 30
        while not list(folder.glob(".source.download-*/*.part")) and time.time() < deadline:
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
    assert [n.split("-")[0] for n in _hidden(folder)] == [".clips.tar.tmp", ".source.download"]
    with root.open_atomic(f"{folder}/notes.txt") as live:  # a concurrent run's file, still being written
        live.write(b"still writing")
        live_tmp = [n for n in _hidden(folder) if n.startswith(".notes.txt.tmp-")]
        lines: list[str] = []
        assert rebuild("sample", data_root=root.base, source=str(manifest), progress=lines.append).dataset_run_ok
        assert _hidden(folder) == live_tmp  # the orphans are gone, the live writer's file is kept
    assert _hidden(folder) == [] and (folder / "notes.txt").read_bytes() == b"still writing"
    assert "removed 2 leftover temporaries of interrupted runs" in "\n".join(lines)
