"""`rebuild --workers N`: the per-video runs N at a time, scheduled by Dagster's multiprocess executor.

A serial rebuild launches one run per video partition, one after the other. With N > 1 workers one more run,
`<dataset>_video_fanout`, has one step per video, and the multiprocess executor (``max_concurrent=N``) runs N of those
steps at once, each in its own process, where the step launches its video's partition run exactly as the serial loop
does. Every video keeps its own run and records (a dead video never blocks the others), so the dataset is the serial
rebuild's; only the order in which videos finish differs.

The step processes fork from a server that imported the pipeline once (torch, dagster and mediapipe take seconds to
import, as long as a sample video takes to rebuild). They inherit that server's environment, not the rebuild's, so
everything a video run depends on (its resources, the rules in effect) is handed to the step explicitly.

With the celery executor (`rebuild --executor celery`) the same steps go to a broker instead, and whichever celery
workers listen on it (pipelines/celery_app.py) run them, one video each at a time, on any machine that shares the
data root and the Dagster instance; how a lost worker's video is retried is in pipelines/broker.py.
"""
import contextlib
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import threading
import time
import uuid
from typing import Callable, Iterator, Mapping

import dagster as dg

from assets.dataset_config import rules_env_var
from assets.factory import dataset_definitions
from assets.keys import video_job_name
from assets.resources import DataRootResource, DetectorResource, DownloaderResource
from pipelines.broker import CeleryConfig
from pipelines.interrupt import _INTERRUPTED_ERRORS, InterruptWatch
from pipelines.rebuild_outcome import VideoOutcome
from pipelines.rebuild_tracker import RebuildTracker

# The resources a video run uses, rebuilt in the step process from their field values.
VIDEO_RESOURCES = {"data_root": DataRootResource, "downloader": DownloaderResource, "detector": DetectorResource}
FANOUT_TAG = "motionpipe/fanout"
POLL_SECONDS = 0.5
# Imported once by the server the step processes fork from: the pipeline, what a video pass imports on first use,
# and yt-dlp's compiled URL patterns (pipelines/workers_warmup.py).
PRELOAD = (__name__, "pipelines.rebuild", "assets.clips.cuts", "mediapipe", "yt_dlp.extractor.extractors",
           "yt_dlp.extractor.generic", "pipelines.workers_warmup")


def start_fork_server() -> None:
    """Starts the server the step processes fork from, so that its imports (seconds) overlap the rebuild's first
    steps; the executor finds it running. No effect if this process started it already."""
    multiprocessing.get_context("forkserver").set_forkserver_preload(
        ["dagster._core.executor.multiprocess", *PRELOAD])  # the executor's own list, which it would set
    multiprocessing.forkserver.ensure_running()


def check_workers(workers: int) -> int:
    """Workers are whole processes: at least one."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers: expected a whole number >= 1, got {workers!r}")
    return workers


@contextlib.contextmanager
def _env(name: str, value: str | None) -> Iterator[None]:
    """`name` set to `value` (unset for None) inside the block."""
    previous = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def _step_names(video_ids: list[str]) -> dict[str, str]:
    """Step name -> video id. Zero-padded, so the executor, which starts ready steps in name order, follows the
    manifest."""
    width = len(str(len(video_ids)))
    return {f"video_{n:0{width}d}": video_id for n, video_id in enumerate(video_ids)}


def video_fanout_job(dataset: str, video_ids: list[str], resources: Mapping[str, Mapping],
                     rules: str | None, executor: str = "multiprocess") -> dg.JobDefinition:
    """One step per video, each running the video's partition run with `resources` and `rules` (the value of
    MOTIONPIPE_RULES_<DATASET> in the rebuild, None when unset), under Dagster's multiprocess executor or
    dagster-celery's (`executor`). Rebuilt in every step process from these arguments
    (`dg.build_reconstructable_job`)."""

    def video_run(name: str, video_id: str) -> dg.OpDefinition:
        @dg.op(name=name, description=f"The partition run of {video_id}.", tags={"video_id": video_id})
        def _video_run(context: dg.OpExecutionContext) -> dg.Output[dict]:
            from pipelines.rebuild import QUIET, _chunk_count, _error_classes, _failure_detail  # preloaded

            # The dataset's graph alone: the whole project's (models included) takes longer to resolve than some
            # videos take to rebuild.
            job = dg.Definitions.merge(dataset_definitions(dataset), dg.Definitions(resources={
                key: VIDEO_RESOURCES[key](**fields) for key, fields in resources.items()})).resolve_job_def(
                video_job_name(dataset))
            t0 = time.perf_counter()
            with _env(rules_env_var(dataset), rules):
                result = job.execute_in_process(
                    partition_key=video_id, instance=context.instance, raise_on_error=False, run_config=QUIET,
                    tags={FANOUT_TAG: context.run_id})
            outcome = {"video_id": video_id, "status": "ok" if result.success else "failed",
                       "detail": "" if result.success else _failure_detail(result),
                       "chunks": _chunk_count(result, dataset) if result.success else 0,
                       "seconds": round(time.perf_counter() - t0, 3),
                       "errors": ",".join(_error_classes(result)), "run_id": result.run_id}
            return dg.Output(outcome, metadata=outcome)

        return _video_run

    ops = [video_run(name, video_id) for name, video_id in _step_names(video_ids).items()]

    if executor == "celery":
        from dagster_celery import celery_executor as executor_def
    else:
        executor_def = dg.multiprocess_executor

    @dg.job(name=f"{dataset}_video_fanout", executor_def=executor_def,
            description="The video partition runs of a `rebuild --workers N` (N at a time) or "
                        "`rebuild --executor celery` (one per celery worker at a time).")
    def fanout():
        for op in ops:
            op()

    return fanout


def _finished(instance: dg.DagsterInstance, token: str, cursor: str | None,
              names: Mapping[str, str]) -> tuple[list[dict], str | None]:
    """The outcomes of the videos that finished since `cursor` in the fan-out run tagged `token`: a step's output,
    or its failure (a step process that died, say) as the video's."""
    run_ids = instance.get_run_ids(dg.RunsFilter(tags={FANOUT_TAG: token}), limit=1)
    if not run_ids:
        return [], cursor
    records = instance.get_records_for_run(run_ids[0], cursor=cursor, of_type={
        dg.DagsterEventType.STEP_OUTPUT, dg.DagsterEventType.STEP_FAILURE})
    found = []
    for record in records.records:
        event = record.event_log_entry.dagster_event
        if event.is_step_failure:
            error = event.step_failure_data.error
            cls = error.cls_name if error else ""
            detail = ("its process died (killed, or out of memory?); a rerun retries it"
                      if cls == "ChildProcessCrashException" else f"{cls}: {error.message.strip()}" if error
                      else "its step failed")
            found.append({"video_id": names[event.step_key], "status": "failed", "chunks": 0, "seconds": 0.0,
                          "detail": detail, "errors": cls})
        else:
            found.append({key: value.value for key, value in event.step_output_data.metadata.items()})
    return found, records.cursor


def _run_fanout(dataset: str, video_ids: list[str], workers: int, instance: dg.DagsterInstance,
                resources: Mapping[str, dg.ConfigurableResource], on_finished: Callable[[dict], None],
                should_stop: Callable[[], bool], celery: CeleryConfig | None = None) -> str:
    """Runs the fan-out. A reporting thread hands `on_finished` each video's outcome as it finishes and, once
    `should_stop()`, stops the run as Dagster terminates one: a SIGINT to the run's process, which the executor
    forwards to the step processes (their videos are interrupted) before it returns, starting no other step. With
    `celery`, the steps go to its broker's workers; a stop revokes the videos not yet started."""
    from pipelines.rebuild import QUIET

    token, names = uuid.uuid4().hex, _step_names(video_ids)
    job = dg.build_reconstructable_job(
        __name__, video_fanout_job.__name__, reconstructable_kwargs={
            "dataset": dataset, "video_ids": list(video_ids), "rules": os.environ.get(rules_env_var(dataset)),
            "resources": {name: resources[name].model_dump() for name in VIDEO_RESOURCES},
            "executor": "celery" if celery else "multiprocess"})
    execution = celery.executor_config() if celery else {
        "max_concurrent": workers, "start_method": {"forkserver": {"preload_modules": list(PRELOAD)}}}
    run_config = {**QUIET, "execution": {"config": execution}}
    done, failed = threading.Event(), []

    def report() -> None:
        cursor = None
        try:
            while True:
                last = done.is_set()  # read before the poll, so nothing recorded before the run ended is missed
                found, cursor = _finished(instance, token, cursor, names)
                for outcome in found:
                    on_finished(outcome)
                if last:
                    return
                if should_stop():  # again at every poll, should one land before Dagster's handler is in place
                    signal.raise_signal(signal.SIGINT)
                done.wait(POLL_SECONDS)
        except BaseException as exc:  # stop the run rather than go on unreported; raised again below
            failed.append(exc)
            signal.raise_signal(signal.SIGINT)

    reporter = threading.Thread(target=report, name=f"{dataset}-fanout-report", daemon=True)
    reporter.start()
    try:
        result = dg.execute_job(job, instance, run_config=run_config, tags={FANOUT_TAG: token}, raise_on_error=False)
    finally:
        done.set()
        reporter.join()
    if failed:
        raise failed[0]
    return _run_error(result)


def _run_error(result: dg.JobExecutionResult) -> str:
    """What failed the run itself (a celery task lost or failed outside its step), '' when it succeeded."""
    if result.success:
        return ""
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.RUN_FAILURE:
            error = event.event_specific_data.error if event.event_specific_data else None
            if error is None:
                return event.message or "the run failed"
            text = " ".join(error.message.split("\n\nStack Trace:")[0].split())  # the first worker's error
            return f"{error.cls_name}: {text[:300]}{'...' if len(text) > 300 else ''}"
    return "the run failed"


def rebuild_videos(dataset: str, video_ids: list[str], *, workers: int, instance: dg.DagsterInstance,
                   resources: Mapping[str, dg.ConfigurableResource], tracker: RebuildTracker,
                   watch: InterruptWatch, celery: CeleryConfig | None = None) -> None:
    """The videos' partition runs, `workers` at a time (or on `celery`'s workers), each outcome counted by
    `tracker` as it finishes, as the serial loop counts it; a video the run returned nothing for (its celery task
    lost, say) is counted failed. Ctrl-C, SIGTERM (`watch`) or the circuit breaker stop the run: the videos in
    progress are dropped (a rerun resumes them) and none starts after. Call it inside `watch`, which keeps a SIGINT
    that arrives as the run ends from raising."""
    total, interrupted, reported = tracker.result.videos_total, [], set()
    undecided: list[dict] = []  # failed with no failed step: a signal between two steps, or a failure of its own

    def on_finished(o: dict) -> None:
        if o["video_id"] in reported:  # a celery step handed out twice (it outran the visibility timeout)
            return
        reported.add(o["video_id"])
        # Stopped by the signal, not the video's failure: a step interrupted, or any failure once a stop is under
        # way (a run the signal stopped between two steps fails with no failed step). A rerun retries them.
        stopped = set(_INTERRUPTED_ERRORS) & set(o["errors"].split(","))
        if stopped or (o["status"] != "ok" and watch.stop.requested):
            interrupted.append(o["video_id"])
            return
        if o["status"] != "ok" and not o["errors"]:
            # The signal reaches the step processes as it reaches this one, whose handler may not have run yet
            # (this is the reporting thread): decide once the run is over and the watch has seen everything.
            undecided.append(o)
            return
        count(o)

    def count(o: dict) -> None:
        if tracker.result.stop is not None:  # the breaker tripped: as in the serial loop, nothing counts after
            return
        ok = o["status"] == "ok"
        outcome = VideoOutcome(o["video_id"], o["status"], f"{o['chunks']} chunks" if ok else o["detail"],
                               o["seconds"], o["chunks"])
        n = len(tracker.result.outcomes) + 1
        tracker.progress(f"[{dataset}] {n}/{total} {outcome.video_id}: " +
                         (f"ok, {outcome.chunks} chunks ({outcome.seconds:.1f} s{tracker.eta(n)})" if ok
                          else f"FAILED: {outcome.detail}"))
        tracker.add(outcome)

    # SIGINT reaches the executor itself; SIGTERM only the watch's handler.
    run_error = _run_fanout(dataset, video_ids, workers, instance, resources, on_finished,
                            should_stop=lambda: tracker.result.stop is not None or watch.stop.requested,
                            celery=celery)
    stopped_run = [name for name in _INTERRUPTED_ERRORS if run_error.startswith(f"{name}:")]
    stop = watch.saw_interrupted_run([_INTERRUPTED_ERRORS[0]] if interrupted else stopped_run)
    for o in undecided:
        if stop.requested:
            interrupted.append(o["video_id"])
        else:
            count(o)
    if tracker.result.stop is None and stop.requested:
        tracker.interrupted(stop, f"videos {', '.join(interrupted)}" if interrupted else "the videos")
    elif tracker.result.stop is None:  # neither stopped nor interrupted: a video without an outcome failed
        for video_id in (v for v in video_ids if v not in reported):
            detail = f"the run returned no outcome for it ({run_error or 'its worker lost?'}); a rerun retries it"
            tracker.progress(f"[{dataset}] {video_id}: FAILED: {detail}")
            tracker.add(VideoOutcome(video_id, "failed", detail))
