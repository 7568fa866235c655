"""What a run reports while it trains: the loss windows (averaged over the ranks, checked finite), written as
TensorBoard scalars and sent to the launcher's ``on_event`` on rank 0, image grids, and the progress bar.

Every rank calls ``step`` (the window means are a collective under DDP); only rank 0 writes. TensorBoard and tqdm are
optional: on a bare torch machine the run trains and logs no events."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import torch

from storage.paths import run_tensorboard_dir
from training.loop.distributed import DistContext, mean_over_ranks
from training.loop.options import TrainOptions

log = logging.getLogger("motionpipe.train")


class _NoProgress:
    """The progress bar's interface when tqdm is not installed."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


class RunLog:
    """The log of one ``Trainer.fit``, opened at its start (``step``: where the run resumes) and closed at its end."""

    def __init__(self, name: str, options: TrainOptions, dist: DistContext, step: int, total: int | None,
                 preview: Callable[[torch.Tensor, torch.Tensor, dict], torch.Tensor | None] | None = None):
        """``preview(source, driving, generated)``: the predicted frames of a stage whose training step renders
        none (the AVD stage), drawn only for the image grid."""
        self.name, self.options, self.dist, self.preview = name, options, dist, preview
        self.writer = self._open_writer(step) if dist.is_main else None
        self.bar = self._progress(total, step)
        self.total, self._first_step, self._start = total, step, time.perf_counter()
        self.last: dict[str, float] = {}  # the last logged window
        self._window: dict[str, torch.Tensor] = {}
        self._steps, self._pairs, self._t0 = 0, 0, time.perf_counter()

    def _open_writer(self, step: int):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # torch alone (a bare GPU machine, benchmarks/learning.py): train, log no events
            log.warning("%s: no TensorBoard event files for this run (%s)", self.name, exc)
            return None
        # drop what a crashed run logged past the checkpoint, but keep the checkpoint's own step: it was logged
        # once that step had finished, and this run starts at the next one
        purge = step + 1 if step > 0 else None
        return SummaryWriter(str(run_tensorboard_dir(self.options.out_dir)), purge_step=purge)

    def _progress(self, total: int | None, step: int):
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return _NoProgress()
        return tqdm(total=total, initial=step, unit="step", dynamic_ncols=True,
                    disable=not (self.dist.is_main and self.options.progress), desc=f"{self.name}")

    def step(self, step: int, epoch: int, losses: dict[str, torch.Tensor], generated: dict, source: torch.Tensor,
             driving: torch.Tensor, optimizers: dict, discriminator_keys: set[str]) -> None:
        """Add one step's losses to the window; every ``log_every`` steps log the window, every ``image_every`` a
        grid. ``discriminator_keys`` stay out of ``loss/total`` (the generator's objective)."""
        o = self.options
        for k, v in losses.items():
            self._window[k] = self._window.get(k, 0.0) + v.float()
        self._steps += 1
        self._pairs += source.shape[0] * self.dist.world_size
        self.bar.update(1)
        if step % o.log_every == 0:
            self.last = self._scalars(step, epoch, optimizers, discriminator_keys)
            self.bar.set_postfix(pairs_s=f"{self.last['perf/pairs_per_s']:.1f}", loss=f"{self.last['loss/total']:.4g}",
                                 epoch=epoch)
        if o.image_every and step % o.image_every == 0 and self.writer is not None:
            from training.reporting.visualize import make_grid
            if "prediction" not in generated and self.preview is not None:
                generated = {**generated, "prediction": self.preview(source, driving, generated)}
            self.writer.add_image("train/grid", make_grid(source, driving, generated), step, dataformats="HWC")

    def _scalars(self, step: int, epoch: int, optimizers: dict, discriminator_keys: set[str]) -> dict[str, float]:
        names = sorted(self._window)
        values = mean_over_ranks(torch.stack([self._window[k] for k in names]) / self._steps, self.dist)
        means = dict(zip(names, values.tolist()))
        bad = {k: v for k, v in means.items() if not math.isfinite(v)}
        if bad:
            raise FloatingPointError(f"{self.name}: non-finite losses {bad} in the steps up to {step}")
        now = time.perf_counter()
        out = {f"loss/{k}": v for k, v in means.items()}
        out["loss/total"] = sum(v for k, v in means.items() if k not in discriminator_keys)
        out["perf/pairs_per_s"] = self._pairs / max(now - self._t0, 1e-9)
        for name, opt in optimizers.items():
            out[f"lr/{name}"] = opt.param_groups[0]["lr"]
        out["progress/epoch"] = epoch
        if self.writer is not None:
            for tag, v in out.items():
                self.writer.add_scalar(tag, v, step)
            self.writer.flush()
        self._window, self._steps, self._pairs, self._t0 = {}, 0, 0, now
        if self.options.on_event is not None:  # on the rank given one (the means are every rank's)
            self.options.on_event("scalars", {"step": step, **self.progress(step, now), **out})
        return out

    def progress(self, step: int, now: float) -> dict[str, float]:
        """``total`` steps and the ``eta_s`` left at this run's pace so far (from the step it resumed at), for log
        lines that are not a terminal's bar (Dagster's, through Pipes); empty when the total is unknown."""
        if not self.total:
            return {}
        done = step - self._first_step
        eta = (now - self._start) / done * max(self.total - step, 0) if done > 0 else float("nan")
        return {"total": self.total, "eta_s": eta}

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
