"""`motionpipe rebuild`: the dataset graph run on the embedded default — one Dagster run per video, so one dead
video never blocks the others, then the dataset-level assets. Everything lands in the Dagster instance under
DAGSTER_HOME (SQLite, no server), exactly as if launched from the UI."""
from __future__ import annotations

import time
from typing import Callable

import dagster as dg

from assets.dataset_config import load_dataset_config
from assets.ingest.download_stage import is_permanent_failure, load_download_record
from assets.ingest.manifest_stage import read_manifest_errors, read_manifest_video_ids
from assets.ingest.rejections import rejection_lines
from assets.keys import (CLIPS, MANIFEST, catalog_and_shards_name, dataset_job_name, dataset_key, manifest_job_name,
                         video_job_name, video_pass_name)
from assets.rules import rules_argument
from pipelines.broker import celery_config, check_workers_listen
from pipelines.circuit_breaker import CircuitBreaker
from pipelines.definitions import make_definitions
from pipelines.instance import open_instance
from pipelines.interrupt import InterruptWatch
from pipelines.rebuild_outcome import RebuildResult, Stop, VideoOutcome
from pipelines.rebuild_tracker import RebuildTracker
from pipelines.workers import check_workers, rebuild_videos, start_fork_server
from storage.leftovers import dataset_folders, remove_orphans
from storage.root import DataRoot
from storage.settings import resolve_settings

# The full event log is in the Dagster instance (and the UI); the terminal gets one line per video.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _failure_detail(result: dg.ExecuteInProcessResult) -> str:
    """The error the step's code raised: the user's problem, not Dagster's wrapper around it, and not the low-level
    cause under it either (``OSError(ENOSPC, "... while writing <file>") from <the bare OSError>`` names the file)."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            while error.cause is not None and (error.cls_name or "").startswith("Dagster"):
                error = error.cause
            message = error.message.strip()
            # Exception messages arrive as "<module.Class>: text"; keep the text.
            head, _, text = message.partition(": ")
            if text and head.endswith(error.cls_name or "\0"):
                message = text
            return message if error.cls_name == "Failure" else f"{error.cls_name}: {message}"  # whole
    return "run failed"


def _error_classes(result: dg.ExecuteInProcessResult) -> list[str]:
    """The classes of the errors the run's steps failed with (an interrupted step's: Dagster's interruption)."""
    return [e.step_failure_data.error.cls_name for e in result.all_events
            if e.is_step_failure and e.step_failure_data and e.step_failure_data.error]


def rebuild(dataset: str, **options) -> RebuildResult:
    """The rebuild of `_rebuild` (same keyword options), with SIGINT and SIGTERM watched for the whole run: they
    stop it where it is (the step in progress keeps nothing half-written) instead of failing one video."""
    with InterruptWatch() as watch:
        return _rebuild(dataset, watch=watch, **options)


@rules_argument  # `rules`: another dataset's rules or a rules file, for every asset of the run
def _rebuild(
    dataset: str,
    *,
    watch: InterruptWatch,
    data_root: str | None = None,
    source: str | None = None,
    limit: int | None = None,
    retry_failed: bool = False,
    detector: str | None = None,
    mirror: str | None = None,
    max_download_bytes: int | None = None,
    max_download_seconds: float | None = None,
    allow_shrink: bool = False,
    rules: str | None = None,
    breaker_after: int | None = None,
    workers: int = 1,
    executor: str | None = None,
    broker: str | None = None,
    progress: Callable[[str], None] = print,
) -> RebuildResult:
    """`breaker_after`: stop after this many videos in a row fail for the same machine-wide reason (no DNS, no
    route, refused, bot check...; default the settings', $MOTIONPIPE_BREAKER_AFTER or 3, 0: never). `workers` > 1: that many
    videos at a time, through Dagster's multiprocess executor (pipelines/workers.py). `executor` "celery" (default
    $MOTIONPIPE_EXECUTOR): the videos go to the celery workers listening on `broker` (default
    $MOTIONPIPE_CELERY_BROKER), one at a time per worker, whatever `workers` says."""
    check_workers(workers)
    cfg = load_dataset_config(dataset)
    instance = open_instance()
    # The options on top of the MOTIONPIPE_* settings (cookies, proxy, ...), not instead of them.
    settings = resolve_settings(data_root=data_root or None, detector=detector or None, mirror=mirror,
                                max_download_bytes=max_download_bytes, max_download_seconds=max_download_seconds,
                                breaker_after=breaker_after, executor=executor, celery_broker=broker)
    celery = celery_config(settings) if settings.executor == "celery" else None
    if celery:  # before anything is written: an unreachable broker or no worker is an error naming the broker
        names = check_workers_listen(celery)
        progress(f"[{dataset}] celery: {len(names)} workers on {celery.safe_broker} ({', '.join(names)})")
    defs = make_definitions(settings)
    root = DataRoot(settings.data_root)
    out = RebuildResult(dataset)
    orphans = remove_orphans(root, dataset_folders(root, dataset))  # temporaries of killed runs
    if orphans:
        progress(f"[{dataset}] removed {len(orphans)} leftover temporaries of interrupted runs")

    if workers > 1 and not celery:
        start_fork_server()  # the step processes' imports overlap the manifest step
    progress(f"[{dataset}] manifest ...")
    manifest_op = dataset_key(dataset, MANIFEST).to_python_identifier()
    run_config = {"ops": {manifest_op: {"config": {"source": source, "limit": limit}}}, **QUIET}
    manifest = defs.resolve_job_def(manifest_job_name(dataset)).execute_in_process(
        run_config=run_config, instance=instance, raise_on_error=False)
    if not manifest.success:
        signal = watch.saw_interrupted_run(_error_classes(manifest))
        if signal.requested:  # the manifest is written atomically: the previous one stays
            out.stop = Stop("interrupted", "the manifest step", f"{signal.name} during the manifest step",
                            signal.exit_code)
            progress(f"[{dataset}] interrupted by {signal.name} during the manifest step: nothing was changed")
            return out
        raise RuntimeError(f"{dataset}: manifest failed: {_failure_detail(manifest)}")
    video_ids = read_manifest_video_ids(root, dataset)
    out.videos_total = len(video_ids)
    progress(f"[{dataset}] {len(video_ids)} videos in the manifest")
    rejected = read_manifest_errors(root, dataset)
    if rejected:
        progress(f"[{dataset}] {len(rejected)} manifest rows rejected (each with its reason in "
                 f"manifest/errors.parquet):")
        for line in rejection_lines(rejected):
            progress(f"[{dataset}] {line}")

    tracker = RebuildTracker(out, root, CircuitBreaker(settings.breaker_after), progress)
    job, queued = defs.resolve_job_def(video_job_name(dataset)), []
    for n, video_id in enumerate(video_ids, 1):
        at = f"video {n}/{len(video_ids)} ({video_id})"
        if watch.poll().requested:  # between two videos
            tracker.interrupted(watch.stop, at)
            break
        t0 = time.perf_counter()
        record = load_download_record(root, dataset, video_id)
        if record is not None and is_permanent_failure(record) and not retry_failed:
            progress(f"[{dataset}] {n}/{len(video_ids)} {video_id}: skipped, {record.status} in an earlier run")
            tracker.add(VideoOutcome(video_id, "skipped", f"{record.status} (earlier run): {record.error}"))
            continue
        if workers > 1 or celery:  # run below, `workers` at a time or on the celery workers
            queued.append(video_id)
            continue
        result = job.execute_in_process(partition_key=video_id, instance=instance, raise_on_error=False,
                                        run_config=QUIET)
        seconds = time.perf_counter() - t0
        if watch.saw_interrupted_run(_error_classes(result)).requested:  # during the video: not its failure
            tracker.interrupted(watch.stop, at)
            break
        if result.success:
            chunks = _chunk_count(result, dataset)
            outcome = VideoOutcome(video_id, "ok", f"{chunks} chunks", seconds, chunks)
            progress(f"[{dataset}] {n}/{len(video_ids)} {video_id}: ok, {chunks} chunks ({seconds:.1f} s"
                     f"{tracker.eta(n)})")
        else:
            outcome = VideoOutcome(video_id, "failed", _failure_detail(result), seconds)
            progress(f"[{dataset}] {n}/{len(video_ids)} {video_id}: FAILED: {outcome.detail}")
        if tracker.add(outcome) is not None:  # the circuit breaker: every video failing the same way
            break
    if queued and out.stop is None:
        rebuild_videos(dataset, queued, workers=workers, instance=instance, resources=defs.resources,
                       tracker=tracker, watch=watch, celery=celery)

    if out.stop is None:
        _publish(dataset, defs, instance, allow_shrink, watch, tracker, progress)
    tracker.finish()
    return out


def _publish(dataset: str, defs: dg.Definitions, instance: dg.DagsterInstance, allow_shrink: bool,
             watch: InterruptWatch, tracker: RebuildTracker, progress: Callable[[str], None]) -> None:
    """The dataset-level assets: catalog, shards and their checks, coverage."""
    out = tracker.result
    progress(f"[{dataset}] catalog, shards, checks, coverage ...")
    publish = {"ops": {catalog_and_shards_name(dataset): {"config": {"allow_shrink": allow_shrink}}}}
    final = defs.resolve_job_def(dataset_job_name(dataset)).execute_in_process(
        instance=instance, raise_on_error=False, run_config={**QUIET, **publish})
    if watch.saw_interrupted_run(_error_classes(final)).requested:
        tracker.interrupted(watch.stop, "the catalog/shards step")
        return
    out.dataset_run_ok = final.success
    if not final.success:
        progress(f"[{dataset}] dataset assets FAILED: {_failure_detail(final)}")
    for check in final.get_asset_check_evaluations():
        mark = "passed" if check.passed else "FAILED"
        progress(f"[{dataset}] check {check.check_name}: {mark}")
        if not check.passed:
            out.checks_failed.append(check.check_name)


def _chunk_count(result: dg.ExecuteInProcessResult, dataset: str) -> int:
    for mat in result.asset_materializations_for_node(video_pass_name(dataset)):
        if mat.asset_key == dataset_key(dataset, CLIPS):
            return int(mat.metadata["chunks"].value)
    return 0
