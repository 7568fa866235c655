"""Training-pair throughput of `training.loop.data` over real shards: does the loader keep a GPU fed?

For 0 (main process), 1 and 2 DataLoader workers (or `--workers ...`) prints pairs/s, pairs/s per worker and the
ratio to 1 worker, in steady state: the first batches (worker start-up, first scan of each sample's tar headers)
are not timed. Each pair is what training gets: a random chunk of a video id, two frames located through the
shard sidecar and decoded, flips and the config's colour jitter, collated into a batch.

Without `--data-root` it builds a dataset of 256x256 JPEG chunks (quality 95, 4:4:4, like TaiChiHD-256) from the
offline sample renderer (a real photograph of a person on a real background) in a temporary folder. Usage:

    python benchmarks/data_loader.py [--data-root URL --dataset NAME] [--config fomm-taichi-256]
                                     [--workers 0 1 2] [--seconds 10] [--batch-size N]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from storage import paths  # noqa: E402
from storage.catalog import CHUNKS_SCHEMA, ChunkRow, write_rows  # noqa: E402
from storage.frames import encode_frame  # noqa: E402
from storage.root import DataRoot  # noqa: E402
from storage.shards import ClipTarWriter, pack_shards  # noqa: E402
from training.config import load_config  # noqa: E402
from training.loop.data import PairDataset, load_split_index, make_loader  # noqa: E402


def build_bench_dataset(root: DataRoot, name: str, videos: int, chunks: int, frames: int, size: int) -> None:
    """`videos` ids x `chunks` chunks x `frames` JPEG frames, all in the train split."""
    from assets.ingest.sample_source import SampleVideoSpec, render_frames

    spec = SampleVideoSpec("bench", "smooth", max(frames, 30), 25.0, size, size, seed=3)
    rendered = [f for _, f in zip(range(frames), render_frames(spec))]
    encoded = [encode_frame(f, "jpeg", 95) for f in rendered]
    mirrored = [encode_frame(f[:, ::-1].copy(), "jpeg", 95) for f in rendered]
    samples, metas = [], {}
    for v in range(videos):
        vid = f"bench{v:06d}"
        tar = paths.clips_path(root, name, vid)
        with ClipTarWriter(root, tar) as writer:
            for c in range(chunks):
                start = c * 10_000
                key = f"{vid}#{start:06d}#{start + frames:06d}"
                info = writer.add_sample(key, mirrored if (v + c) % 2 else encoded, "jpg", {"chunk_id": key})
                samples.append(("train", tar, key))
                metas[key] = (vid, start, info)
    index = pack_shards(root, paths.shards_dir(root, name), samples, max_samples_per_shard=64)
    rows = [
        ChunkRow(chunk_id=key, video_id=vid, dataset=name, split="train", start=start, end=start + frames,
                 src_start=start, src_end=start + frames, box=(0, 0, size, size), fps=25.0, n_frames=frames,
                 width=size, height=size, frame_format="jpeg", jpeg_quality=95, out_of_frame="pad",
                 sha256=info.sha256, shard=index.shard_of[key], bytes=info.bytes, provenance=json.dumps({}))
        for key, (vid, start, info) in metas.items()
    ]
    write_rows(root, paths.catalog_path(root, name, "chunks"), rows, CHUNKS_SCHEMA)


def measure(dataset: PairDataset, batch_size: int, workers: int, seconds: float, warmup_batches: int) -> float:
    """Steady-state pairs/s of one loader configuration."""
    loader = make_loader(dataset, batch_size, num_workers=workers, seed=0)
    pairs, epoch, t0 = 0, 0, None
    seen = 0
    while True:
        loader.set_epoch(epoch)
        for batch in loader:
            seen += 1
            if seen == warmup_batches:
                t0 = time.perf_counter()
            elif t0 is not None:
                pairs += batch["source"].shape[0]
                if time.perf_counter() - t0 >= seconds:
                    rate = pairs / (time.perf_counter() - t0)
                    del loader
                    return rate
        epoch += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", help="an existing data root (default: build a 256x256 JPEG dataset in a temp dir)")
    ap.add_argument("--dataset", default="bench")
    ap.add_argument("--split", default="train")
    ap.add_argument("--config", default="fomm-taichi-256", help="augmentation, frame shape, batch size, repeats")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--batch-size", type=int, help="default: the config's")
    ap.add_argument("--seconds", type=float, default=10.0, help="timed seconds per setting")
    ap.add_argument("--videos", type=int, default=32)
    ap.add_argument("--chunks", type=int, default=2)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--uint8", action="store_true", help="uint8 batches (convert on the device) instead of float32")
    args = ap.parse_args()

    cfg = load_config(args.config)
    size = cfg.dataset.frame_shape[0]
    batch = args.batch_size or cfg.train.batch_size
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="motionpipe-bench-") as tmp:
        if args.data_root:
            root = DataRoot(args.data_root)
        else:
            root = DataRoot(tmp)
            t = time.perf_counter()
            build_bench_dataset(root, args.dataset, args.videos, args.chunks, args.frames, size)
            print(f"built {args.videos} ids x {args.chunks} chunks x {args.frames} frames, {size}x{size} JPEG q95 "
                  f"in {time.perf_counter() - t:.1f} s", flush=True)
        index = load_split_index(root, args.dataset, args.split)
        dataset = PairDataset(index, num_repeats=cfg.train.num_repeats, id_sampling=cfg.dataset.id_sampling,
                              augmentation=None if args.no_augment else cfg.dataset.augmentation,
                              frame_shape=cfg.dataset.frame_shape, as_float=not args.uint8)
        mb = sum(c.nbytes for c in index.chunks) / len(index.chunks) / 2**20
        print(f"dataset: {len(index.video_ids)} ids, {len(index.chunks)} chunks ({mb:.1f} MiB per chunk), "
              f"config {cfg.name}, batch {batch}, augmentation {'off' if args.no_augment else 'on'}, "
              f"{'uint8' if args.uint8 else 'float32'} batches, "
              f"{os.cpu_count()} CPUs", flush=True)
        print(f"{'workers':>7} {'pairs/s':>9} {'per worker':>11} {'vs 1 worker':>12}")
        rates = {}
        for w in args.workers:
            rates[w] = measure(dataset, batch, w, args.seconds, warmup_batches=max(3, 2 * w))
            ratio = f"{rates[w] / rates[1]:.2f}x" if 1 in rates else "-"
            print(f"{w:>7} {rates[w]:>9.1f} {rates[w] / max(w, 1):>11.1f} {ratio:>12}", flush=True)


if __name__ == "__main__":
    main()
