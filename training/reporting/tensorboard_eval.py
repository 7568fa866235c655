"""A model's evaluation in its training run's TensorBoard: the scores as scalars at the checkpoint's step, and the
run's hyperparameters with its final scores in the HParams dashboard, so curves, scores and settings sit together.
They go to the run folder's ``tensorboard/evaluation/`` (a TensorBoard run of its own), which keeps the training
curves that ``curves.csv`` is made from losses only.

The scorer (training/evaluation/scoring.py) calls ``log_evaluation`` after it scored a checkpoint; the run folder is
the checkpoint's own (``<run>/checkpoints/step-N.pt``) or, for a published copy, the run under ``runs/`` that holds
the same file. TensorBoard is optional, as in training: without it nothing is written."""
from __future__ import annotations

import glob
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from storage import paths
from storage.root import DataRoot, sha256_file

log = logging.getLogger("motionpipe.evaluate")

# the metrics TensorBoard gets (labels such as "AKD[mediapipe-pose33]" keep their extractor)
REPORTED = ("L1", "AKD", "MKR", "AED")
EVAL_TAG = "eval"


def run_of(checkpoint: Path, root: DataRoot | None, model: str, trained_on: str, step: int) -> Path | None:
    """The training run folder that wrote ``checkpoint`` (None: none found, e.g. an official checkpoint)."""
    from training.checkpoint import step_checkpoint_name

    if checkpoint.parent.name == paths.RUN_CHECKPOINTS:
        return checkpoint.parent.parent
    if root is None or not root.is_local:
        return None
    runs = paths.training_run_dir(root, trained_on, model, "main", "*")  # a glob over the run keys
    sha256 = sha256_file(checkpoint)
    for candidate in sorted(glob.glob(f"{runs}/{paths.RUN_CHECKPOINTS}/{step_checkpoint_name(step)}")):
        if sha256_file(candidate) == sha256:
            return Path(candidate).parent.parent
    return None


def reported_metrics(metrics: Mapping[str, float | None]) -> dict[str, float]:
    return {f"{EVAL_TAG}/{label}": float(value) for label, value in metrics.items()
            if value is not None and label.split("[")[0] in REPORTED}


def hyperparameters(state: Mapping[str, Any], dataset: str) -> dict[str, int | float | str | bool]:
    """The run's essentials: model, config, dataset and the config's train section (lists as text)."""
    config = state.get("config") or {}
    train = config.get("train") or {}
    out: dict[str, int | float | str | bool] = {
        "model": str(state.get("model")), "config": str(config.get("name")), "dataset": dataset,
        "trained_on": str((config.get("dataset") or {}).get("name")),
        "world_size": int(state.get("world_size") or 1), "precision": str(state.get("precision")),
    }
    for key in ("num_epochs", "num_repeats", "batch_size", "weight_decay", "betas", "epoch_milestones", "scales",
                "clip_grad_norm", "allow_random_vgg"):
        if train.get(key) is not None:
            out[f"train/{key}"] = _value(train[key])
    for group, lr in (train.get("lr") or {}).items():
        out[f"train/lr/{group}"] = float(lr)
    for name, weight in (train.get("loss_weights") or {}).items():
        if weight is not None:
            out[f"train/loss_weights/{name}"] = _value(weight)
    return out


def _value(v: Any) -> int | float | str | bool:
    return v if isinstance(v, (int, float, str, bool)) else str(list(v) if isinstance(v, tuple) else v)


def log_evaluation(checkpoint: Path, metrics: Mapping[str, float | None], dataset: str,
                   root: DataRoot | None = None) -> Path | None:
    """Write ``metrics`` of ``checkpoint`` into its run's TensorBoard folder; returns that folder (None: no run)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams
    except ImportError as exc:
        log.warning("no TensorBoard evaluation events for %s (%s)", checkpoint, exc)
        return None
    from training.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint)
    step = int(state.get("step") or 0)
    trained_on = str(((state.get("config") or {}).get("dataset") or {}).get("name") or dataset)
    run = run_of(checkpoint, root, str(state.get("model")), trained_on, step)
    if run is None:
        log.info("%s belongs to no training run folder: its scores go to no TensorBoard", checkpoint)
        return None
    scalars = reported_metrics(metrics)
    folder = paths.run_evaluation_tensorboard_dir(run)
    writer = SummaryWriter(str(folder))
    try:
        for tag, value in scalars.items():
            writer.add_scalar(tag, value, step)
        experiment, session_start, session_end = hparams(hyperparameters(state, dataset), scalars)
        for summary in (experiment, session_start, session_end):
            writer.file_writer.add_summary(summary, step)
    finally:
        writer.close()
    return folder
