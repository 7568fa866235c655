"""Wall time of `motionpipe rebuild sample --workers 1` against `--workers 2`, in the same run; with `--executor
celery`, of `rebuild --executor celery` on one celery worker against two.

    .venv/bin/python benchmarks/rebuild_workers.py [--copies 4] [--frames N] [--size WxH] [--repeat 2] [--workers 1 2]
        [--executor multiprocess|celery]

The offline sample source's five videos (rendered from scikit-image photographs) are listed `--copies` times under
distinct ids in a `video_id,url` manifest, so every copy is downloaded through yt-dlp, detected, chunked and cropped
like a video of its own. `--frames N` and `--size WxH` render them longer or larger than their own 100-150 frames of
320x240: more work per video, so what every video costs whatever its length (its Dagster run and process, the
detector's start) counts for less. Each setting rebuilds from nothing (a fresh data root and Dagster instance) as a
user runs it, a child process of the command line; the settings alternate, `--repeat` rounds. Prints each run's wall
time, the median per setting and its throughput (videos/s), the ratio to the first setting, how many of the
machine's cores were idle just before each run (Linux /proc/stat: on a shared machine a second worker only helps if
a core is free for it), the load average before and after, and whether every run published the same dataset (the
shards' content hash).

With `--executor celery` a Redis server and the setting's number of celery workers are started on loopback
(pipelines/local_celery.py) before each timed run and stopped after it: the time is the rebuild's alone, from
submitting the first video to publishing the shards, as on a cluster whose workers are already up.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assets.ingest.sample_source import default_sample_specs, write_sample_videos  # noqa: E402
from pipelines.local_celery import LocalCelery  # noqa: E402


def make_manifest(folder: Path, copies: int, frames: int, size: tuple[int, int] | None) -> tuple[Path, int]:
    specs = default_sample_specs()
    if frames or size:
        w, h = size or (specs[0].width, specs[0].height)
        specs = [replace(s, video_id=f"{s.video_id}-{frames or s.n_frames}f-{w}x{h}", n_frames=frames or s.n_frames,
                         width=w, height=h) for s in specs]
    videos = write_sample_videos(folder / "upstream", specs)  # rendered once, kept for the next call
    rows = [f"copy{k}-{vid},{Path(path).as_uri()}" for k in range(copies) for vid, path in sorted(videos.items())]
    manifest = folder / f"copies{copies}-{specs[0].video_id}.csv"
    manifest.write_text("video_id,url\n" + "\n".join(rows) + "\n")
    return manifest, len(rows)


def idle_cores(seconds: float = 3.0) -> float | None:
    """Cores idle over the next `seconds` (Linux), None where /proc/stat is missing."""
    def sample() -> list[int]:
        with open("/proc/stat") as f:
            return [int(v) for v in f.readline().split()[1:]]
    try:
        before = sample()
        time.sleep(seconds)
        delta = [b - a for a, b in zip(before, sample())]
    except OSError:
        return None
    return (delta[3] + delta[4]) / sum(delta) * (os.cpu_count() or 1)  # idle + iowait


def rebuild_once(scratch: Path, manifest: Path, workers: int, run: int,
                 broker: str | None = None) -> tuple[float, str, str]:
    """(wall seconds, the shards' content hash, the summary line) of one rebuild from nothing; with `broker`, on the
    celery workers listening there."""
    base = scratch / f"run{run}-w{workers}"
    env = {**os.environ, "DAGSTER_HOME": str(base / "dagster_home"), "MOTIONPIPE_CACHE": str(base / "cache")}
    cmd = [sys.executable, "-m", "pipelines.cli", "rebuild", "sample", "--manifest", str(manifest),
           "--data-root", str(base / "data")]
    cmd += ["--executor", "celery", "--broker", broker] if broker else ["--workers", str(workers)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"rebuild --workers {workers} exited {done.returncode}:\n{done.stdout[-3000:]}")
    summary = next(line for line in done.stdout.splitlines() if "summary:" in line)
    content_hash = json.loads((base / "data/datasets/sample/shards/manifest.json").read_text())["content_hash"]
    return seconds, content_hash, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=4, help="times the five sample videos are listed (default 4)")
    parser.add_argument("--frames", type=int, default=0, help="render the videos this long (default: their own)")
    parser.add_argument("--size", default=None, metavar="WxH", help="render the videos this large (default 320x240)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds of every setting (default 2)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="settings (default 1 2)")
    parser.add_argument("--scratch", type=Path, default=None, help="work folder (default: a new temporary one)")
    parser.add_argument("--executor", choices=("multiprocess", "celery"), default="multiprocess",
                        help="celery: each setting is that many celery workers on a loopback Redis broker")
    args = parser.parse_args()
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="motionpipe-workers-bench-"))
    size = tuple(int(v) for v in args.size.lower().split("x")) if args.size else None
    manifest, n_videos = make_manifest(scratch, args.copies, args.frames, size)
    load_before = os.getloadavg()
    print(f"{n_videos} videos ({args.copies} copies of the 5 sample videos, "
          f"{args.frames or 'their own 100-150'} frames of {args.size or '320x240'} each), {os.cpu_count()} CPUs, "
          f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"executor {args.executor}", flush=True)
    services = LocalCelery(scratch / "celery") if args.executor == "celery" else None
    if services:
        services.start_redis()

    times: dict[int, list[float]] = {w: [] for w in args.workers}
    hashes = set()
    for run in range(args.repeat):
        for workers in args.workers:
            if services:
                services.start_workers(workers)
            idle = idle_cores()
            try:
                seconds, content_hash, summary = rebuild_once(scratch, manifest, workers, run,
                                                              services.broker if services else None)
            finally:
                if services:
                    services.stop_workers()
            times[workers].append(seconds)
            hashes.add(content_hash)
            setting = f"{workers} celery worker{'s' * (workers > 1)}" if services else f"--workers {workers}"
            print(f"round {run + 1}, {setting}: {seconds:.1f} s, "
                  f"{'?' if idle is None else f'{idle:.1f}'} cores idle before  ({summary.split('summary: ')[1]})",
                  flush=True)

    if services:
        services.stop()
    load_after = os.getloadavg()
    base = statistics.median(times[args.workers[0]])
    print(f"\n| {'celery workers' if services else '--workers'} | wall, median (s) | runs (s) | "
          f"videos/s | speed-up vs {args.workers[0]} |")
    print("|---|---|---|---|---|")
    for workers in args.workers:
        median = statistics.median(times[workers])
        print(f"| {workers} | {median:.1f} | {' / '.join(f'{t:.1f}' for t in times[workers])} | "
              f"{n_videos / median:.3f} | {base / median:.2f}x |")
    print(f"\nload average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1-minute); "
          f"same dataset in every run: {'yes' if len(hashes) == 1 else f'NO ({len(hashes)} content hashes)'}")
    return 0 if len(hashes) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
