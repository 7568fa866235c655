"""Training runs of the model assets, without Dagster: where a run lives, the command that launches it (one
process or torchrun, built by ``assets.models.launch``), and publishing its last checkpoint where evaluation and DVC
find it.

A run folder is keyed by what makes a run different (stage, config hash, the dataset's shard content hash, the
AVD stage's starting checkpoint, the global batch size and the number of processes), so re-materializing the same
thing resumes the interrupted run from its newest checkpoint (``--resume auto``) while a changed dataset or config starts a fresh run. The step
budget is not part of the key: raising ``max_steps`` continues a finished run.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from assets.models.launch import Launch
from storage import paths
from storage.root import DataRoot, sha256_file
from storage.shards import read_shard_manifest
from training.experiments.variants import base_model, run_config, write_run_config
from training.run_params import RunParams

STAGES = ("main", "avd")
VARIANT_CONFIG = "variant_config.yaml"  # a variant's config, written in its run folder for the training process


@dataclass(frozen=True)
class TrainingPlan:
    model: str
    dataset: str
    stage: str
    config: str
    config_hash: str
    shards_content_hash: str
    run_key: str
    run_dir: Path
    published: Path
    init: Path | None
    command: tuple[str, ...]

    def describe(self) -> str:
        return (f"{self.model} on {self.dataset} ({self.stage} stage, config {self.config}, run {self.run_dir.name})")


def plan_training(root: DataRoot, model: str, dataset: str, stage: str, params: RunParams,
                  launch: Launch = Launch(), config_dir: str | Path | None = None) -> TrainingPlan:
    """What to run for one model on one dataset; raises a clear error when an input is missing."""
    from training.config import config_hash

    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    base = paths.local_base(root)
    cfg = run_config(model, dataset, config_dir)  # a model's own config, or a variant's (training/experiments)
    name = cfg.name
    if stage == "avd" and cfg.train_avd is None:
        raise ValueError(f"{model} has no AVD stage (config {name} has no train_avd section)")
    shards = read_shard_manifest(root, paths.shards_dir(root, dataset))
    init = None
    if stage == "avd":
        init = Path(paths.published_checkpoint(root, dataset, model, "main"))
        if not init.is_file():
            raise FileNotFoundError(f"the AVD stage of {model} on {dataset} starts from the main checkpoint {init}, "
                                    f"which does not exist: train the main stage first")
    chash = config_hash(cfg)
    # the world size is in the key: it sets how the data is dealt to the ranks (and their RNG streams)
    key_parts = {"stage": stage, "config_hash": chash, "shards": shards.content_hash,
                 "init": sha256_file(init) if init else None, "batch_size": params.batch_size,
                 "world_size": launch.world_size}
    run_key = hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()[:12]
    run_dir = Path(paths.training_run_dir(root, dataset, model, stage, run_key))
    config_file = write_run_config(model, dataset, run_dir / VARIANT_CONFIG, config_dir)
    max_steps = params.max_steps if stage == "main" else params.avd_max_steps
    args = ["--config", str(config_file), "--data-root", str(base), "--out", str(run_dir), "--stage", stage, "--resume", "auto",
            "--precision", params.precision, "--checkpoint-every", str(params.checkpoint_every),
            "--log-every", str(params.log_every), "--image-every", str(params.image_every), "--no-progress"]
    if max_steps is not None:
        args += ["--max-steps", str(max_steps)]
    if params.batch_size is not None:
        args += ["--batch-size", str(params.batch_size)]  # the global batch, split over the processes
    if init is not None:
        args += ["--init", str(init)]
    args += launch.train_args()
    rendezvous_id = f"{model}-{dataset}-{stage}-{run_key}"  # the same on every node of the run, and on its reruns
    return TrainingPlan(model, dataset, stage, name, chash, shards.content_hash, run_key, run_dir,
                        Path(paths.published_checkpoint(root, dataset, model, stage)), init,
                        tuple(launch.prefix(rendezvous_id) + args))


@dataclass(frozen=True)
class Published:
    path: Path
    sha256: str
    step: int
    source: Path


def publish_checkpoint(checkpoint: Path, plan: TrainingPlan) -> Published:
    """Check that the run's checkpoint loads and is the planned model and stage, then copy it atomically to the
    published path. A bad checkpoint raises (naming it) before anything is replaced: the previous good published
    checkpoint stays as it was."""
    from training.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint)  # CheckpointError naming the file if missing, truncated or corrupt
    if state.get("model") != base_model(plan.model) or state.get("stage", "main") != plan.stage:
        raise ValueError(f"{checkpoint} holds a {state.get('model')!r} {state.get('stage', 'main')!r} checkpoint, "
                         f"not the {plan.model!r} {plan.stage!r} one planned for {plan.run_dir}")
    plan.published.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{plan.published.name}.", suffix=".tmp", dir=plan.published.parent)
    try:
        with os.fdopen(fd, "wb") as out, open(checkpoint, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 22)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, plan.published)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Published(plan.published, sha256_file(plan.published), int(state.get("step", 0)), checkpoint)


def write_run_curves(plan: TrainingPlan):
    """The main stage's training curves beside its published checkpoint (PNG, and CSV for `dvc plots`)."""
    from training.reporting.curves import NoEventsError, write_curves
    try:
        return write_curves(paths.run_tensorboard_dir(plan.run_dir), str(plan.published.parent),
                            title=f"{plan.model} on {plan.dataset} ({plan.config})")
    except NoEventsError:
        return None


def train_and_publish(plan: TrainingPlan) -> Published:
    """Run the plan as a plain child process (its output on this terminal), then publish: what `motionpipe train`
    and `dvc repro` do; the Dagster asset launches the same command through Pipes instead. The curves beside the
    published checkpoint are drawn by ``assets.models.defs.checkpoint_report``, which both of them build."""
    import subprocess

    from training.checkpoint import latest_checkpoint

    done = subprocess.run(list(plan.command), cwd=Path(__file__).resolve().parents[2])
    if done.returncode != 0:
        raise RuntimeError(f"training {plan.describe()} failed (exit {done.returncode}); its run folder "
                           f"{plan.run_dir} is kept: rerun to resume from its newest checkpoint")
    checkpoint = latest_checkpoint(paths.run_checkpoints_dir(plan.run_dir))
    if checkpoint is None:
        raise RuntimeError(f"training {plan.describe()} left no checkpoint in {plan.run_dir}")
    return publish_checkpoint(checkpoint, plan)
