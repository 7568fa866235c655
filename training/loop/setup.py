"""The pieces a training run is assembled from besides the trainer: the per-rank batch, the AVD stage around a
trained main model, the data (shards or synthetic) and the lineage recorded in every checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

from training.checkpoint import load_checkpoint, load_networks
from training.config import Config, require_same_convention
from training.loop.distributed import DistContext
from training.loop.options import Schedule
from training.loop.synthetic import SyntheticPairs


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
    """What the run trains on: dataset, the shard set it reads, and the dataset's version (shards' content and DVC
    hashes, the manifest's sha256, catalog row counts). No data root: the checkpoint is read against the root it lies
    in (or ``--data-root``), so a moved or second clone reads its own data (storage/recorded_paths.py)."""
    from storage.dataset_version import dataset_version_record
    from storage.paths import shards_dir
    from storage.root import DataRoot
    from storage.shards import read_shard_manifest
    root = DataRoot(data_root)
    manifest = read_shard_manifest(root, shards_dir(root, cfg.dataset.name))
    return {"dataset": cfg.dataset.name, "split": "train",
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
