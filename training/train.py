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

The only command line left in ``training/`` (the others are ``pipelines/commands/``): torchrun and Dagster Pipes
(``assets.models.pipes_train``) launch it as a module on every rank, so it must run without Dagster and without the
``motionpipe`` CLI. It is also the one place here that reads the environment (torchrun's ranks,
``$MOTIONPIPE_VGG19_WEIGHTS``); the loop it assembles (``training.loop``) takes everything as arguments.

Several nodes run the same ``torchrun --nnodes N --rdzv-backend c10d --rdzv-endpoint host:port --rdzv-id <run>``
command (``assets.models.launch`` builds it) on a run folder they all see. Global rank 0 alone writes; every rank
checks that it resumes from the same checkpoint as rank 0; ``--dist-timeout`` bounds every collective, and a worker
whose torchrun was killed ends itself (``training.loop.launcher_watch``), so the other nodes fail rather than hang.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path

from storage.paths import run_checkpoints_dir
from storage.settings import parse_seconds
from training.checkpoint import CheckpointError, latest_checkpoint
from training.config import ConfigError, config_hash, load_config
from training.loop.distributed import DistContext, gather_objects, init_distributed, shutdown_distributed
from training.loop.launcher_watch import watch_launcher
from training.loop.options import Schedule, TrainOptions
from training.loop.setup import build_avd_stage, build_data, git_commit, per_rank_batch
from training.loop.trainer import Trainer
from training.models.vgg import WEIGHTS_ENV as VGG_WEIGHTS_ENV

log = logging.getLogger("motionpipe.train")


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
    p.add_argument("--dist-timeout", type=_seconds, metavar="S",
                   help="seconds any collective may wait for the other ranks (default: torch's, 30 min on gloo)")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def _seconds(text: str) -> float:
    try:
        return parse_seconds(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds") from None


def agree_on_resume(checkpoint: Path | None, out: Path, ctx: DistContext) -> None:
    """Every rank resumes from the checkpoint rank 0 found (collective under DDP). Ranks that found another one
    (or none) see another run folder: on several nodes it must be one shared folder, not a copy per node."""
    found = gather_objects(None if checkpoint is None else checkpoint.name, ctx)
    if len(set(found)) > 1:
        raise SystemExit(f"the ranks see different checkpoints in {out}/checkpoints (newest per rank: {found}): "
                         f"every node must see the same run folder (a shared file system)")


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
    """One training run from command-line arguments; ``on_event`` follows it live on this rank (see
    ``TrainOptions.on_event``). Returns the ``TrainResult`` (the same on every rank)."""
    args = parse_args(argv)
    if "TORCHELASTIC_RUN_ID" in os.environ:  # a torchrun worker: end with the node's torchrun
        watch_launcher(os.getppid())
    timeout = timedelta(seconds=args.dist_timeout) if args.dist_timeout else None
    ctx = init_distributed(args.device, os.environ, timeout=timeout)
    result = None
    logging.basicConfig(level=logging.INFO if ctx.is_main else logging.WARNING,
                        format=f"%(asctime)s [rank {ctx.rank}] %(message)s")
    try:
        cfg = load_config(args.config)
        schedule = Schedule.from_config(cfg, args.stage)
        existing = latest_checkpoint(run_checkpoints_dir(args.out))
        agree_on_resume(existing, args.out, ctx)
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
            allow_random_vgg=args.allow_random_vgg, vgg_weights=args.vgg_weights or os.environ.get(VGG_WEIGHTS_ENV),
            on_event=on_event)
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
    return result


if __name__ == "__main__":
    sys.exit(main())
