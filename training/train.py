"""Command line entry point of the trainer; also runs under torchrun.

    python -m training.train --config fomm-taichi-256 --data-root data --out runs/fomm
    torchrun --nproc_per_node 8 -m training.train --config fomm-taichi-256 --data-root data --out runs/fomm
    python -m training.train --config mraa-taichi-256 --data-root data --out runs/mraa-avd \\
        --stage avd --init runs/mraa/checkpoints/step-000270000.pt
    python -m training.train --config fomm-sample-64 --synthetic 16 --out /tmp/smoke --allow-random-vgg

``--batch-size`` is the global batch (the config's by default), split evenly over the ranks. An ``--out``
folder that already holds checkpoints is never overwritten: pass ``--resume auto`` (continue from its newest
checkpoint, e.g. after pre-emption) or a checkpoint path. ``--synthetic N`` trains on N deterministic
moving-blob videos instead of a dataset (smoke tests, speed checks on machines without data).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

import numpy as np
import torch

from training.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, load_networks
from training.config import Config, ConfigError, config_hash, load_config, require_same_convention
from training.loop.trainer import DistContext, Schedule, Trainer, TrainOptions, init_distributed, shutdown_distributed

log = logging.getLogger("motionpipe.train")


# -----------------------------------------------------------------------------
# synthetic data


class SyntheticPairs:
    """Moving Gaussian blobs: an index-driven stand-in for the shard loader (no files, fully deterministic).

    Video ``v`` has ``num_blobs`` coloured blobs moving on smooth periodic paths. An epoch holds
    ``num_videos * num_repeats`` items in an order drawn from (seed, epoch); item ``i`` of the epoch is the
    frame pair of its video at two sorted times drawn from (seed, epoch, i). Each global batch of
    ``batch_size * world_size`` items is split by rank, so N ranks see exactly the batch one process would.
    """

    def __init__(self, num_videos: int = 8, batch_size: int = 2, size: int = 64, seed: int = 0,
                 num_repeats: int = 1, rank: int = 0, world_size: int = 1, num_blobs: int = 3):
        if num_videos * num_repeats < batch_size * world_size:
            raise ValueError(f"{num_videos} videos x {num_repeats} repeats cannot fill one global batch of "
                             f"{batch_size} x {world_size}")
        self.num_videos, self.batch_size, self.size, self.seed = num_videos, batch_size, size, seed
        self.num_repeats, self.rank, self.world_size, self.num_blobs = num_repeats, rank, world_size, num_blobs
        self.epoch = 0
        grid = np.linspace(-1, 1, size, dtype=np.float32)
        self._yy, self._xx = np.meshgrid(grid, grid, indexing="ij")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_videos * self.num_repeats // (self.batch_size * self.world_size)

    def _frame(self, video: int, t: float) -> np.ndarray:
        rng = np.random.default_rng((self.seed, 7919, video))
        colours = rng.uniform(0.2, 1.0, (self.num_blobs, 3)).astype(np.float32)
        centre = rng.uniform(-0.5, 0.5, (self.num_blobs, 2))
        amp, freq, phase = rng.uniform(0.1, 0.4, (self.num_blobs, 2)), rng.uniform(0.5, 2, (self.num_blobs, 2)), \
            rng.uniform(0, 2 * np.pi, (self.num_blobs, 2))
        pos = centre + amp * np.sin(freq * t + phase)  # (N, 2) (x, y)
        sigma = rng.uniform(0.1, 0.25, self.num_blobs)
        img = np.full((3, self.size, self.size), 0.1, np.float32)
        for (x, y), s, c in zip(pos, sigma, colours):
            blob = np.exp(-((self._xx - x) ** 2 + (self._yy - y) ** 2) / (2 * s * s)).astype(np.float32)
            img = np.maximum(img, c[:, None, None] * blob[None])
        return img

    def __iter__(self):
        n_items = self.num_videos * self.num_repeats
        order = np.random.default_rng((self.seed, self.epoch)).permutation(n_items)
        g = self.batch_size * self.world_size
        for b in range(len(self)):
            idx = range(b * g + self.rank * self.batch_size, b * g + (self.rank + 1) * self.batch_size)
            src, drv = [], []
            for i in idx:
                t0, t1 = np.sort(np.random.default_rng((self.seed, self.epoch, i)).uniform(0, 10, 2))
                video = int(order[i]) % self.num_videos
                src.append(self._frame(video, t0))
                drv.append(self._frame(video, t1))
            yield {"source": torch.from_numpy(np.stack(src)), "driving": torch.from_numpy(np.stack(drv))}


# -----------------------------------------------------------------------------
# building blocks of a run


def per_rank_batch(global_batch: int, world_size: int) -> int:
    if global_batch % world_size:
        raise ValueError(f"global batch {global_batch} does not split over {world_size} ranks; "
                         f"pass --batch-size with a multiple of {world_size}")
    return global_batch // world_size


def build_avd_stage(cfg: Config, main_checkpoint: str | Path):
    """The AVD wrapper around the frozen motion estimator of a trained main-stage checkpoint."""
    from training.models import build_avd, build_model
    state = load_checkpoint(main_checkpoint)
    if state["model"] != cfg.model or state.get("stage", "main") != "main":
        raise ValueError(f"{main_checkpoint}: a {state['model']!r} {state.get('stage')!r} checkpoint cannot "
                         f"start the {cfg.model!r} AVD stage")
    require_same_convention(state["config"], cfg, str(main_checkpoint))
    weights = cfg.train.loss_weights.model_copy(update={"perceptual": ()})  # the AVD stage needs no VGG
    main = build_model(cfg.model_copy(update={"train": cfg.train.model_copy(update={"loss_weights": weights})}))
    load_networks(main, state)
    return build_avd(cfg, main)


def git_commit() -> str | None:
    """The code's git commit (with '-dirty' for uncommitted changes), or None outside a git checkout."""
    import subprocess
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def dataset_lineage(cfg: Config, data_root: str) -> dict:
    """What the run trains on: data root, dataset, the shard set it reads, and the dataset's version (shards'
    content and DVC hashes, the manifest's sha256, catalog row counts)."""
    from storage.dataset_version import dataset_version_record
    from storage.paths import shards_dir
    from storage.root import DataRoot
    from storage.shards import read_shard_manifest
    root = DataRoot(data_root)
    manifest = read_shard_manifest(root, shards_dir(root, cfg.dataset.name))
    return {"data_root": root.url, "dataset": cfg.dataset.name, "split": "train",
            "shards_content_hash": manifest.content_hash, "n_shards": len(manifest.shards),
            "version": dataset_version_record(root, cfg.dataset.name)}


def build_data(args, cfg: Config, schedule: Schedule, ctx: DistContext, batch: int):
    if args.synthetic:
        data = SyntheticPairs(args.synthetic, batch, cfg.dataset.frame_shape[0], args.seed,
                              schedule.num_repeats, ctx.rank, ctx.world_size)
        return data, {"dataset": "synthetic", "num_videos": args.synthetic}
    from storage.root import DataRoot
    from training.loop.data import build_loader  # lazily: only real runs need the shard reader
    workers = args.workers if args.workers is not None else (
        cfg.train.dataloader_workers if args.stage == "main" else cfg.train_avd.dataloader_workers)
    # uint8 batches: a quarter of the bytes through worker queues and the host-to-device copy (the trainer
    # converts on the device); the AVD stage repeats the data its own number of times
    data = build_loader(cfg, DataRoot(args.data_root), "train", batch_size=batch, num_workers=workers,
                        rank=ctx.rank, world_size=ctx.world_size, seed=args.seed,
                        num_repeats=schedule.num_repeats, as_float=False)
    return data, (dataset_lineage(cfg, args.data_root) if ctx.is_main else {})


# -----------------------------------------------------------------------------
# command line


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="YAML file or a name in training/configs")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data-root", help="motionpipe data root holding datasets/<config dataset>/shards")
    src.add_argument("--synthetic", type=int, metavar="N", help="train on N synthetic moving-blob videos")
    p.add_argument("--out", required=True, type=Path, help="run folder (checkpoints/, tensorboard/)")
    p.add_argument("--stage", choices=("main", "avd"), default="main")
    p.add_argument("--init", help="load network weights from this checkpoint (AVD: the main-stage checkpoint)")
    p.add_argument("--resume", help="'auto' (newest checkpoint in --out, if any) or a checkpoint file")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the training step")
    p.add_argument("--batch-size", type=int, help="global batch size (default: the config's)")
    p.add_argument("--workers", type=int, help="data loader workers per rank (default: the config's)")
    p.add_argument("--max-steps", type=int, help="stop (with a checkpoint) after this many steps in total")
    p.add_argument("--checkpoint-every", type=int, default=1000, help="steps between checkpoints")
    p.add_argument("--keep", type=int, default=3, help="newest step checkpoints to keep")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--image-every", type=int, default=500, help="steps between image grids (0: never)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vgg-weights", help="torchvision vgg19 weights file (default: $MOTIONPIPE_VGG19_WEIGHTS, "
                                         "the torch hub cache, then a download)")
    p.add_argument("--allow-random-vgg", action="store_true",
                   help="train with a random VGG-19 if no weights are found (recorded in every checkpoint)")
    p.add_argument("--find-unused-parameters", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--no-sync-bn", action="store_true", help="per-rank BatchNorm statistics under DDP")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda:LOCAL_RANK if available)")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Exit 2 with the file and the reason for a checkpoint that cannot be used (missing, corrupt, of another
    model, or refused because unpickling it could run code), not a traceback."""
    try:
        run(argv)
    except (CheckpointError, ConfigError) as err:  # ConfigError: also weights of another warping convention
        print(f"training.train: error: {err}", file=sys.stderr)
        return 2
    return 0


def run(argv=None, on_event=None):
    """One training run from command-line arguments; ``on_event`` follows it live on rank 0 (see
    ``TrainOptions.on_event``). Returns the ``TrainResult`` on rank 0, None on the other ranks."""
    args = parse_args(argv)
    ctx = init_distributed(args.device)
    result = None
    logging.basicConfig(level=logging.INFO if ctx.is_main else logging.WARNING,
                        format=f"%(asctime)s [rank {ctx.rank}] %(message)s")
    try:
        cfg = load_config(args.config)
        schedule = Schedule.from_config(cfg, args.stage)
        existing = latest_checkpoint(args.out / "checkpoints")
        resume = args.resume
        if resume == "auto":
            resume = existing
        elif resume is None and existing is not None:
            raise SystemExit(f"{args.out} already holds checkpoints (newest {existing}); pass --resume auto to "
                             f"continue it or choose another --out")
        batch = per_rank_batch(args.batch_size or schedule.batch_size, ctx.world_size)
        data, lineage = build_data(args, cfg, schedule, ctx, batch)
        model = None
        if args.stage == "avd":
            if not args.init:
                raise SystemExit("--stage avd needs --init <main-stage checkpoint>")
            model = build_avd_stage(cfg, args.init)
        find_unused = {"auto": None, "on": True, "off": False}[args.find_unused_parameters]
        options = TrainOptions(
            out_dir=args.out, precision=args.precision, channels_last=args.channels_last, compile=args.compile,
            max_steps=args.max_steps, checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep,
            log_every=args.log_every, image_every=args.image_every, seed=args.seed,
            progress=not args.no_progress, sync_batchnorm=not args.no_sync_bn, find_unused_parameters=find_unused,
            allow_random_vgg=args.allow_random_vgg, vgg_weights=args.vgg_weights,
            on_event=on_event if ctx.is_main else None)
        meta = {"lineage": lineage, "global_batch": batch * ctx.world_size, "world_size": ctx.world_size,
                "argv": sys.argv[1:] if argv is None else list(argv), "init": args.init,
                "config_hash": config_hash(cfg), "git_commit": git_commit()}
        try:
            from motionpipe_version import __version__
            meta["motionpipe_version"] = __version__
        except ImportError:
            pass
        trainer = Trainer(cfg, options, dist_ctx=ctx, meta=meta, stage=args.stage, model=model)
        if args.init and args.stage == "main":
            trainer.init_from(args.init)
        if resume:
            trainer.resume(resume)
        previous = trainer.install_signal_handlers()
        try:
            result = trainer.fit(data)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if ctx.is_main:
            log.info("done: step %d, epoch %d, checkpoint %s%s", result.step, result.epoch, result.last_checkpoint,
                     " (stopped early)" if result.stopped_early else "")
    finally:
        shutdown_distributed()
    return result if ctx.is_main else None


if __name__ == "__main__":
    sys.exit(main())
