"""What a run is told besides its config: how to run it (``TrainOptions``), the optimisation schedule of its
stage (``Schedule``, from the config) and what it reports back (``TrainResult``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from training.config import Config

PRECISIONS = ("fp32", "bf16")
STAGES = ("main", "avd")


@dataclass(frozen=True)
class TrainOptions:
    """How to run (not what to train: that is the config)."""
    out_dir: Path
    precision: Literal["fp32", "bf16"] = "fp32"
    channels_last: bool = False
    compile: bool = False
    max_steps: int | None = None  # stop (and checkpoint) after this many steps in total
    checkpoint_every: int = 1000  # steps; plus one at exit and the config's per-epoch snapshots
    keep_checkpoints: int = 3  # newest step checkpoints kept
    log_every: int = 50  # steps between scalar logs
    image_every: int = 500  # steps between image grids (0: never)
    seed: int = 0
    progress: bool = True
    sync_batchnorm: bool = True  # under DDP
    find_unused_parameters: bool | None = None  # DDP; None: only where some parameters sit out a step
    allow_random_vgg: bool = False
    vgg_weights: str | None = None
    device: str | None = None  # default: cuda:LOCAL_RANK when CUDA is available, else cpu
    # Called with ("scalars", {"step": ..., tag: value}) at every log window and ("checkpoint", {"step": ...,
    # "path": ...}) after every save (once every rank is past it): how a launcher (e.g. Dagster Pipes) follows a
    # run live. Any one rank may get it (the values are the ranks' means): under a multi-node torchrun the
    # launcher's node need not hold global rank 0.
    on_event: Callable[[str, dict], None] | None = field(default=None, compare=False)

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("checkpoint_every", "keep_checkpoints", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 0:
            raise ValueError(f"max_steps must be >= 0, got {self.max_steps}")
        object.__setattr__(self, "out_dir", Path(self.out_dir))


@dataclass(frozen=True)
class Schedule:
    """Optimisation schedule of one stage, read from ``train`` (main) or ``train_avd`` (avd)."""
    num_epochs: int
    milestones: tuple[int, ...]
    lr: dict[str, float]
    betas: tuple[float, float]
    weight_decay: float
    checkpoint_freq: int  # epochs between kept epoch snapshots
    batch_size: int  # global batch (split over ranks)
    num_repeats: int
    gamma: float = 0.1

    @classmethod
    def from_config(cls, cfg: Config, stage: str = "main") -> "Schedule":
        if stage == "main":
            t = cfg.train
            return cls(t.num_epochs, tuple(t.epoch_milestones), dict(t.lr), tuple(t.betas), t.weight_decay,
                       t.checkpoint_freq, t.batch_size, t.num_repeats)
        if stage == "avd":
            t = cfg.train_avd
            if t is None:
                raise ValueError(f"config {cfg.name!r} has no train_avd section; it has no AVD stage")
            return cls(t.num_epochs, tuple(t.epoch_milestones), {"avd": t.lr}, tuple(t.betas), 0.0,
                       t.checkpoint_freq, t.batch_size, t.num_repeats)
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")


@dataclass
class TrainResult:
    step: int
    epoch: int
    last_checkpoint: Path | None
    losses: dict[str, float] = field(default_factory=dict)  # last logged window means
    stopped_early: bool = False  # a stop was requested (signal) before the schedule ended
