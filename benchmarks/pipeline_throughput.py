"""Throughput of the dataset chain on one >=720p, 30 s video, against decode-only in the same run.

Prints frames/s for:
  decode      ffmpeg → numpy, full resolution, nothing else (the baseline)
  replay      decode → crop → anti-aliased resize → JPEG → clip tar → shard   (TaiChiHD path: boxes given)
  discover    the same + shot-cut detection on every frame + person detection every k-th frame (TED path)
and the ratios replay/decode (target >= 0.6) and discover/replay (detection overhead; target <= 1.30x time),
plus peak RSS of this process and of the ffmpeg children. Usage:

    python benchmarks/pipeline_throughput.py [--video PATH] [--stride K] [--seconds 30]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assets.boxes import Box  # noqa: E402
from assets.clips.video_pass import ReplayClip, discover_pass, downscale_for, replay_pass  # noqa: E402
from assets.dataset_config import load_dataset_config  # noqa: E402
from assets.detect.base import main_person  # noqa: E402
from assets.detect.registry import make_detector  # noqa: E402
from assets.clips.cuts import CutDetector  # noqa: E402
from assets.clips.streaming_chunker import PersonSample  # noqa: E402
from assets.ingest.sample_source import SampleVideoSpec, render_sample_video  # noqa: E402
from storage.frames import frame_extension  # noqa: E402
from storage.root import DataRoot  # noqa: E402
from storage.shards import ClipTarWriter, pack_shards  # noqa: E402
from storage.video import iter_frames, probe  # noqa: E402


def make_input(seconds: int, cache: Path) -> Path:
    """A 1280x720 30 fps video of a real photograph of a person moving smoothly (rendered once, then cached)."""
    path = cache / f"bench-720p-{seconds}s.mp4"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        spec = SampleVideoSpec("bench-720p", "smooth", seconds * 30, 30.0, 1280, 720, seed=7)
        print(f"rendering {path} ...", flush=True)
        render_sample_video(spec, str(path))
    return path


def run_decode(path: Path, threads: int | None) -> int:
    n = 0
    with contextlib.closing(iter_frames(str(path), threads=threads)) as frames:
        for _ in frames:
            n += 1
    return n


def run_chain(path: Path, mode: str, stride: int, workdir: Path, threads: int | None) -> tuple[int, dict]:
    info = probe(str(path))
    root = DataRoot(str(workdir))
    cfg = load_dataset_config("taichi" if mode == "replay" else "ted")
    if mode == "discover":
        cfg = cfg.model_copy(update={
            "detect": cfg.detect.model_copy(update={"stride": stride}),
            "chunks": cfg.chunks.model_copy(update={"min_box_size": 200}),  # the sprite is ~500 px tall
            # Same output as the replay chain (square 256 px crops), so the difference is detection alone.
            "crop": load_dataset_config("taichi").crop.model_copy(update={"style": "square", "out_of_frame": "pad"}),
        })
    tar = root.path("videos", mode, "clips.tar")
    samples = []
    with ClipTarWriter(root, tar) as writer, contextlib.closing(iter_frames(str(path), threads=threads)) as frames:
        def sink(key, data, meta):
            writer.add_sample(key, data, frame_extension(cfg.crop.frame_format), meta)
            samples.append(("train", tar, key))

        if mode == "replay":
            # Back-to-back chunks of 300 frames, each with a fixed 600x600 box (the whole video is cropped).
            n = int(round(info.duration * info.fps)) if info.duration else 900
            clips = [ReplayClip(f"benchvideo1#{s:06d}#{min(s + 300, n):06d}", range(s, min(s + 300, n)),
                                Box(340, 60, 940, 660), s, min(s + 300, n), "train") for s in range(0, n, 300)]
            result = replay_pass(frames, clips, cfg, sink, lambda c: {})
        else:
            detector = make_detector("mediapipe")
            scale, shrink = downscale_for(info.width, info.height, cfg.detect.max_side)
            cuts = CutDetector(fps=info.fps, threshold=cfg.detect.cut_threshold,
                               min_scene_len=cfg.detect.min_scene_len)

            def detect(frame):
                best = main_person(detector.detect(shrink(frame)))
                if best is None:
                    return []
                return [PersonSample(-1, best.box.scaled(1 / scale, 1 / scale), best.upper_body_visible,
                                     best.full_body_visible)]

            result = discover_pass(frames, "benchvideo1", cfg, detect, lambda i, f: bool(cuts.push(i, f)), sink,
                                   info.width, info.height)
            detector.close()
    t0 = time.perf_counter()
    pack_shards(root, root.path("shards", mode), samples, max_samples_per_shard=64)
    result.timings["shard"] = time.perf_counter() - t0
    stats = {"chunks": len(result.accepted), "chunk_frames": sum(a["end"] - a["start"] for a in result.accepted),
             **{k: round(v, 2) for k, v in result.timings.items()}}
    return result.n_frames, stats


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=None, help="input video (default: render a 720p one)")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--stride", type=int, default=load_dataset_config("ted").detect.stride,
                        help="person detection every k-th frame (default: the ted config's)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "motionpipe-bench")
    args = parser.parse_args()
    video = args.video or make_input(args.seconds, args.cache)
    info = probe(str(video))
    print(f"input: {video} {info.width}x{info.height} @ {info.fps:.2f} fps, {info.duration:.1f} s, "
          f"{os.cpu_count()} CPUs")
    run_decode(video, None)  # warm the page cache and the ffmpeg binary
    for threads in (None, 1):
        label = "ffmpeg threads: auto" if threads is None else f"ffmpeg threads: {threads}"
        n, t_dec = timed(run_decode, video, threads)
        with tempfile.TemporaryDirectory() as tmp:
            (n_rep, rep_stats), t_rep = timed(run_chain, video, "replay", args.stride, Path(tmp), threads)
            (n_dis, dis_stats), t_dis = timed(run_chain, video, "discover", args.stride, Path(tmp), threads)
        fps_dec, fps_rep, fps_dis = n / t_dec, n_rep / t_rep, n_dis / t_dis
        print(f"-- {label}")
        print(f"decode-only          {fps_dec:8.1f} frames/s  ({n} frames, {t_dec:.1f} s)")
        print(f"chain, no detection  {fps_rep:8.1f} frames/s  ratio to decode {fps_rep / fps_dec:.2f} "
              f"(target >= 0.60)   {rep_stats}")
        print(f"chain, detection k={args.stride:<3d}{fps_dis:8.1f} frames/s  ratio to decode {fps_dis / fps_dec:.2f}; "
              f"detection adds {100 * (t_dis / t_rep - 1):.0f}% time (target <= 30%)   {dis_stats}")
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS: python {self_mb:.0f} MB, largest ffmpeg child {child_mb:.0f} MB")


if __name__ == "__main__":
    main()
