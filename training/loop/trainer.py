"""One training loop for Monkey-Net, FOMM, MRAA and TPSMM (and their AVD stage).

(A little over 400 lines: one class, because the step loop and exact resume share the same counters.)

The loop is linear and model-agnostic: a model wrapper (``training.models.build_model``) gives
``forward(source, driving) -> (weighted losses, generated)``, ``optimizer_groups()`` and ``networks()``; optional
hooks are ``set_epoch(epoch)`` (TPSMM's dropout / bg schedule), ``clip_gradients()`` (TPSMM's official inf-norm
clipping) and ``discriminator_losses(driving, generated)`` (Monkey-Net, FOMM-adv).

One step, as the official loops do it:
  generator step: zero grads, forward under autocast, backward of the summed losses, clip, step every
  non-discriminator optimiser; then, when the model trains a discriminator: zero its grads (the generator's
  feature-matching loss reached them), discriminator losses on the detached prediction, backward, step.
One Adam per optimiser group (betas, weight decay from the config), one MultiStepLR per optimiser stepped
at every epoch end (milestones are in epochs; an epoch is one pass over the data, which already holds the
config's ``num_repeats``).

Distributed (``training.loop.distributed``): under ``torchrun`` the wrapper is put in DistributedDataParallel,
NCCL on GPUs and gloo on CPUs; BatchNorm becomes synchronised (the official FOMM / MRAA / Monkey-Net used
sync BN under DataParallel), so N processes with batch B/N each compute the update of one process with batch B.
Rank 0 logs and writes checkpoints; every rank seeds its RNGs with ``seed + rank`` (the model is initialised
from ``seed`` on every rank, and DDP broadcasts rank 0's weights anyway).

Exact resume: a checkpoint holds step, epoch and the batch index inside the epoch, every rank's RNG state,
optimisers and schedulers. On resume the data is re-iterated from ``set_epoch(epoch)``, the batches already
trained on are skipped (by the loader itself when its ``set_epoch`` takes ``skip_batches``, else by reading
them), and the RNG states are restored at the point they were saved: before iterating when the checkpoint
fell on an epoch end, after skipping otherwise. The data iterable therefore must derive its order and
augmentation from (seed, epoch, index), not from the global RNG at the moment it is iterated
(``training.loop.data`` does; a plain DataLoader needs its own ``generator``).
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import re
import signal
import warnings
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from storage.paths import run_checkpoints_dir
from training.checkpoint import (FORMAT, FORMAT_VERSION, CheckpointError, capture_rng_state, epoch_checkpoint_name,
                                 latest_checkpoint, load_checkpoint, load_networks, prune_checkpoints,
                                 remove_stale_temporaries, restore_rng_state, save_checkpoint, step_checkpoint_name)
from training.config import Config, config_to_dict, require_same_convention
from training.loop.distributed import (DistContext, StepModule, any_rank, barrier, gather_objects, rank_seed,
                                       seed_everything, synchronise_batchnorm, wrap_ddp)
from training.loop.options import Schedule, TrainOptions, TrainResult
from training.loop.run_log import RunLog

log = logging.getLogger("motionpipe.train")

_END = object()


# -----------------------------------------------------------------------------
# helpers


def _accepts(fn, name: str) -> bool:
    """Whether callable ``fn`` takes a parameter ``name``."""
    if fn is None:
        return False
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _config_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _config_diff(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if a == b else [prefix or "<root>"]


# -----------------------------------------------------------------------------
# trainer


class Trainer:
    """Builds optimisers/schedulers (and DDP, compile) around a model wrapper and runs the loop.

    ``Trainer(cfg, options).fit(data)`` where ``data`` is any iterable of batches ``{'source', 'driving'}``
    (B x 3 x H x W, float in [0, 1] or uint8, this rank's share of the global batch); optional ``len(data)``
    (batches per epoch; without it an epoch ends when the iterable is exhausted) and ``data.set_epoch(epoch)``,
    or ``data.set_epoch(epoch, skip_batches=n)`` to resume mid-epoch without re-reading n batches.
    ``meta`` is the caller's lineage (dataset version, ...) recorded in every checkpoint; it must be
    JSON-serialisable.
    """

    def __init__(self, cfg: Config, options: TrainOptions, *, dist_ctx: DistContext | None = None,
                 meta: dict | None = None, stage: str = "main", model: nn.Module | None = None,
                 vgg: nn.Module | None = None):
        self.cfg, self.options, self.stage = cfg, options, stage
        self.dist = dist_ctx or DistContext(device=torch.device(options.device or "cpu"))
        self.device = self.dist.device
        self.schedule = Schedule.from_config(cfg, stage)
        try:
            json.dumps(meta or {})
        except TypeError as err:
            raise ValueError(f"meta must be JSON-serialisable (it goes into every checkpoint): {err}") from None
        self.meta = dict(meta or {})

        allow_random_vgg = options.allow_random_vgg or cfg.train.allow_random_vgg
        seed_everything(options.seed)  # identical initialisation on every rank
        self.vgg = vgg if vgg is not None or model is None else getattr(model, "vgg", None)
        if model is None:
            if self.vgg is None and self._needs_vgg():
                from training.models.vgg import load_vgg19
                self.vgg = load_vgg19(options.vgg_weights, allow_random=allow_random_vgg)
            from training.models import build_model
            model = build_model(cfg, vgg=self.vgg)
        self.vgg_pretrained = None if self.vgg is None else bool(getattr(self.vgg, "pretrained", False))
        if self.vgg_pretrained is False and not allow_random_vgg:
            raise ValueError("the perceptual loss would use a randomly initialised VGG-19 (no ImageNet weights "
                             "loaded); set train.allow_random_vgg in the config (or --allow-random-vgg) to train "
                             "with it anyway, which is recorded in every checkpoint")
        seed_everything(rank_seed(options.seed, self.dist.rank))

        model.to(self.device)
        if self.dist.distributed and options.sync_batchnorm:
            model = synchronise_batchnorm(model, self.device, self.dist.timeout)
        if options.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model  # unwrapped and uncompiled: what checkpoints save

        groups = model.optimizer_groups()
        missing = [g for g in groups if g not in self.schedule.lr]
        if missing:
            raise ValueError(f"config {cfg.name!r} has no learning rate for optimiser groups {missing} "
                             f"(the model has {sorted(groups)})")
        s = self.schedule
        fused = self.device.type == "cuda"  # one kernel per optimiser step instead of one per tensor
        self.optimizers = {name: torch.optim.Adam(params, lr=s.lr[name], betas=s.betas, weight_decay=s.weight_decay,
                                                  fused=fused)
                           for name, params in groups.items()}
        self.schedulers = {name: torch.optim.lr_scheduler.MultiStepLR(opt, list(s.milestones), gamma=s.gamma)
                           for name, opt in self.optimizers.items()}
        self.has_discriminator_step = "discriminator" in groups and hasattr(model, "discriminator_losses")
        self.generator_groups = [g for g in groups if not (g == "discriminator" and self.has_discriminator_step)]

        engine: nn.Module = StepModule(model)
        if self.dist.distributed:
            find_unused = options.find_unused_parameters
            if find_unused is None:  # the D step leaves G/KP out; TPSMM's bg predictor sits out before bg_start
                find_unused = self.has_discriminator_step or (stage == "main" and bool(cfg.train.bg_start))
            engine = wrap_ddp(engine, self.device, find_unused, options.sync_batchnorm)
        if options.compile:
            from torch import _dynamo
            # TPSMM's dropout probability changes per epoch during its warm-up and is a guarded constant
            _dynamo.config.cache_size_limit = max(_dynamo.config.cache_size_limit, 64)
            engine = torch.compile(engine)
        self.engine = engine
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed frame size: pick the fastest kernels once

        self.step = self.epoch = self.step_in_epoch = 0
        self.checkpoint_dir = run_checkpoints_dir(options.out_dir)
        self.last_checkpoint: Path | None = None
        self._last_saved_step: int | None = None
        self._pending_rng: dict | None = None
        self._resume_history: list[dict] = []
        self._stop_requested = False
        self._stop = False
        self._discriminator_keys: set[str] = set()  # excluded from loss/total (the generator objective)

    # --- setup helpers ---------------------------------------------------------------------------
    def _needs_vgg(self) -> bool:
        return self.stage == "main" and sum(self.cfg.train.loss_weights.perceptual) > 0

    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    def request_stop(self) -> None:
        """Finish the current step, checkpoint and return from ``fit`` (safe to call from a signal handler)."""
        self._stop_requested = True

    def install_signal_handlers(self) -> dict:
        """SIGTERM / SIGINT stop at the next step boundary with a checkpoint; a second SIGINT aborts.
        Returns the previous handlers (restore them with ``signal.signal`` when done)."""
        def handler(signum, frame):
            if self._stop_requested and signum == signal.SIGINT:
                raise KeyboardInterrupt
            log.warning("signal %s: stopping after this step and checkpointing", signum)
            self.request_stop()
        return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    # --- checkpoint state ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (collective under DDP: every rank must call it)."""
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "model": self.cfg.model, "stage": self.stage, "config": config_to_dict(self.cfg),
            "networks": {name: net.state_dict() for name, net in self.model.networks().items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "schedulers": {name: sch.state_dict() for name, sch in self.schedulers.items()},
            "scaler": None,  # bf16 needs no loss scaling
            "step": self.step, "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
            "world_size": self.dist.world_size, "seed": self.options.seed,
            "rng": gather_objects(capture_rng_state(), self.dist),
            "meta": self.meta, "vgg_pretrained": self.vgg_pretrained,
            "precision": self.options.precision, "resume_history": list(self._resume_history),
            "torch_version": str(torch.__version__), "created": datetime.now(timezone.utc).isoformat(),
        }

    def save(self, epoch_snapshot: bool = False) -> Path:
        """Write a checkpoint (global rank 0 alone; collective under DDP). Returns its path on every rank: the run
        folder is shared, and the file is complete once every rank is past the barrier."""
        state = self.state_dict()
        name = epoch_checkpoint_name(self.epoch, self.step) if epoch_snapshot else step_checkpoint_name(self.step)
        path = self.checkpoint_dir / name
        if self.is_main:
            save_checkpoint(state, path)
            if not epoch_snapshot:
                prune_checkpoints(self.checkpoint_dir, self.options.keep_checkpoints)
            log.info("checkpoint %s", path)
        if not epoch_snapshot:
            self._last_saved_step = self.step  # on every rank: they must agree on the exit save
        barrier(self.dist)
        self.last_checkpoint = path
        self._emit("checkpoint", {"step": self.step, "path": str(path)})
        return path

    def resume(self, path: str | os.PathLike) -> Path:
        """Continue exactly from a checkpoint file, or from the newest one in a run or checkpoint folder."""
        p = Path(path)
        if p.is_dir():
            folder = run_checkpoints_dir(p) if run_checkpoints_dir(p).is_dir() else p
            found = latest_checkpoint(folder)
            if found is None:
                raise CheckpointError(f"no checkpoint in {folder}")
            p = found
        state = load_checkpoint(p)
        if state["model"] != self.cfg.model or state.get("stage", "main") != self.stage:
            raise CheckpointError(f"{p}: checkpoint of {state['model']!r} stage {state.get('stage')!r} cannot "
                                  f"resume {self.cfg.model!r} stage {self.stage!r}")
        require_same_convention(state["config"], self.cfg, str(p))
        diff = _config_diff(state["config"], config_to_dict(self.cfg))
        if diff:
            log.warning("%s: config differs from the checkpoint's at %s; resuming with the new config", p, diff)
        load_networks(self.model, state)
        for name, opt in self.optimizers.items():
            if name not in state["optimizers"]:
                raise CheckpointError(f"{p}: no state for optimiser {name!r} (has {sorted(state['optimizers'])})")
            opt.load_state_dict(state["optimizers"][name])
            self.schedulers[name].load_state_dict(state["schedulers"][name])
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.step_in_epoch = int(state.get("step_in_epoch", 0))
        self._last_saved_step = self.step
        rng = state.get("rng") or []
        if len(rng) == self.dist.world_size:
            self._pending_rng = rng[self.dist.rank]
        else:
            log.warning("%s: saved with %d ranks, running with %d: RNG streams are reseeded, so this resume is "
                        "not bit-exact", p, len(rng), self.dist.world_size)
            seed_everything(rank_seed(self.options.seed, self.dist.rank, self.step))
        self._resume_history = list(state.get("resume_history", [])) + [{"path": str(p), "step": self.step}]
        self.last_checkpoint = p  # the run's newest weights until the next save (a finished run saves no more)
        if self.is_main:
            log.info("resumed from %s at step %d (epoch %d, batch %d)", p, self.step, self.epoch, self.step_in_epoch)
        return p

    def init_from(self, path: str | os.PathLike) -> list[str]:
        """Load only network weights (fine-tuning, e.g. FOMM-adv from a FOMM run); returns networks not found."""
        state = load_checkpoint(path)
        require_same_convention(state["config"], self.cfg, str(path))
        absent = load_networks(self.model, state, strict=False)
        if absent and self.is_main:
            log.warning("%s has no weights for %s: they keep their initialisation", path, absent)
        return absent

    # --- the loop --------------------------------------------------------------------------------
    def fit(self, data: Iterable[dict[str, torch.Tensor]]) -> TrainResult:
        s, o = self.schedule, self.options
        if self.is_main:
            remove_stale_temporaries(self.checkpoint_dir)
        skips_itself = _accepts(getattr(data, "set_epoch", None), "skip_batches")
        if hasattr(data, "set_epoch"):
            data.set_epoch(self.epoch)  # full length (a loader that skips shortens its len while skipping)
        try:
            steps_per_epoch = len(data)
        except TypeError:  # an iterable without a length: epochs end when it is exhausted
            steps_per_epoch = None
        total = steps_per_epoch * s.num_epochs if steps_per_epoch else None
        if o.max_steps is not None:
            total = min(total, o.max_steps) if total else o.max_steps
        run_log = RunLog(self.cfg.name, o, self.dist, self.step, total, preview=getattr(self.model, "preview", None))
        self.model.train()
        try:
            while self.epoch < s.num_epochs and not self._finished():
                self._begin_epoch(data, self.step_in_epoch if skips_itself else 0)
                if self.step_in_epoch == 0:  # resumed at an epoch start: iterating comes after the saved state
                    self._restore_pending_rng()
                batches = iter(data)
                exhausted = not skips_itself and not self._skip(batches, self.step_in_epoch)
                self._restore_pending_rng()  # mid-epoch: the state saved after the last trained batch
                closed = False
                while not (exhausted or closed or self._finished()):
                    batch = next(batches, _END)
                    if batch is _END:
                        exhausted = True
                        break
                    losses, generated, source, driving = self._train_step(batch)
                    self.step += 1
                    self.step_in_epoch += 1
                    run_log.step(self.step, self.epoch, losses, generated, source, driving, self.optimizers,
                                 self._discriminator_keys)
                    if self.step_in_epoch == steps_per_epoch:  # known length: close the epoch right away
                        self._end_epoch()
                        closed = True
                    self._periodic()
                if exhausted:  # unknown length, or resumed from a checkpoint taken at the last batch
                    if self.step_in_epoch == 0:
                        raise ValueError(f"the data yielded no batch in epoch {self.epoch} (fewer samples than "
                                         f"one batch? len(data) = {steps_per_epoch})")
                    self._end_epoch()
            if self._last_saved_step != self.step:
                self.save()
            if self.is_main and o.max_steps is not None and self.step < o.max_steps and not self._stop:
                log.warning("stopped at step %d, before max_steps %d: the config's schedule ends there (num_epochs "
                            "%d of %s steps); raise train.num_epochs to train longer", self.step, o.max_steps,
                            s.num_epochs, steps_per_epoch if steps_per_epoch else "an unknown number of")
        finally:
            run_log.close()
        return TrainResult(self.step, self.epoch, self.last_checkpoint, run_log.last, stopped_early=self._stop)

    def _restore_pending_rng(self) -> None:
        if self._pending_rng is not None:
            restore_rng_state(self._pending_rng)
            self._pending_rng = None

    def _finished(self) -> bool:
        o = self.options
        return (o.max_steps is not None and self.step >= o.max_steps) or self._stop

    @staticmethod
    def _skip(batches, n: int) -> bool:
        """Consume the n batches already trained on in this epoch; False if the epoch ran out first."""
        sentinel = object()
        for _ in range(n):
            if next(batches, sentinel) is sentinel:
                return False
        return True

    def _begin_epoch(self, data, skip_batches: int = 0) -> None:
        if skip_batches:  # the loader starts mid-epoch without decoding the batches already trained on
            data.set_epoch(self.epoch, skip_batches=skip_batches)
        elif hasattr(data, "set_epoch"):
            data.set_epoch(self.epoch)
        if hasattr(self.model, "set_epoch"):
            self.model.set_epoch(self.epoch)

    def _end_epoch(self) -> None:
        with warnings.catch_warnings():  # right after a resume at an epoch end no optimiser has stepped yet
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()` before"))
            for sch in self.schedulers.values():
                sch.step()
        self.epoch += 1
        self.step_in_epoch = 0
        if self.epoch % self.schedule.checkpoint_freq == 0:
            self.save(epoch_snapshot=True)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.options.precision == "bf16")

    def _inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        fmt = torch.channels_last if self.options.channels_last else torch.contiguous_format
        out = []
        for key in ("source", "driving"):
            if key not in batch:
                raise KeyError(f"batch lacks {key!r} (has {sorted(batch)})")
            x = batch[key].to(self.device, non_blocking=True)
            x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()  # uint8 loaders: 4x less traffic
            out.append(x.contiguous(memory_format=fmt))
        return out[0], out[1]

    def _train_step(self, batch: dict):
        source, driving = self._inputs(batch)
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        with self._autocast():
            losses, generated = self.engine("generator", source, driving)
        if not losses:
            raise RuntimeError(f"{self.cfg.model}: the model returned no losses (all loss weights zero?)")
        sum(losses.values()).backward()
        if hasattr(self.model, "clip_gradients"):
            self.model.clip_gradients()
        elif self.stage == "main" and self.cfg.train.clip_grad_norm:
            params = [p for g in self.generator_groups for p in self.optimizers[g].param_groups[0]["params"]]
            nn.utils.clip_grad_norm_(params, self.cfg.train.clip_grad_norm, norm_type=math.inf)
        for name in self.generator_groups:
            self.optimizers[name].step()
        losses = {k: v.detach() for k, v in losses.items()}
        if self.has_discriminator_step:
            disc = self.optimizers["discriminator"]
            disc.zero_grad(set_to_none=True)  # drop what the generator's feature-matching loss put there
            with self._autocast():
                d_losses = self.engine("discriminator", driving, generated)
            if d_losses:
                sum(d_losses.values()).backward()
                disc.step()
                self._discriminator_keys.update(d_losses)
                losses.update({k: v.detach() for k, v in d_losses.items()})
        return losses, generated, source, driving

    def _periodic(self) -> None:
        """Step checkpoint every N steps; agree on a requested stop (every step alone, every few under DDP)."""
        o = self.options
        if self.step % o.checkpoint_every == 0:
            self.save()
        if self.step % min(o.log_every, 10) == 0 or not self.dist.distributed:
            self._stop = any_rank(self._stop_requested, self.dist)

    def _emit(self, kind: str, payload: dict) -> None:
        if self.options.on_event is not None:
            self.options.on_event(kind, payload)
