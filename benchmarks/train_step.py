"""Training-step speed per model at 256x256: pairs/s, peak memory, and achieved TFLOP/s vs the device's peak.

For each model's TaiChi-256 config at the config's batch size (or --batch-size), one training step is what the
trainer does per batch: forward with every loss of the config, backward, gradient clipping where the official
code clips, a step of every generator-side optimiser, and the discriminator step for models that train one
(FOMM's taichi-256 config trains none; Monkey-Net does). Inputs are random frames already on the device (the data
loader has its own benchmark), VGG-19 is randomly initialised (its weights do not change the cost). Each
precision (fp32, bf16 autocast) is timed over --steps steps after --warmup untimed steps.

FLOPs: the first warm-up step counted with torch.utils.flop_counter.FlopCounterMode (forward + backward of
convolutions and matrix products: the work tensor cores do). Achieved TFLOP/s = FLOPs per step / step time, as a
fraction of the device's dense peak: bf16 rows against the bf16 peak, fp32 rows against the TF32 peak (PyTorch
runs fp32 convolutions on TF32 tensor cores by default). Peaks are known for H100 SXM and H200; other devices print n/a.
Peak memory: CUDA's max_memory_allocated during the timed steps; on CPU the process's peak RSS so far.

    python benchmarks/train_step.py [--models fomm mraa tpsmm monkeynet] [--batch-size N] [--steps 10]
                                    [--warmup 3] [--precisions fp32 bf16] [--device cuda] [--channels-last]
    python benchmarks/train_step.py --batch-size 1 --steps 2 --warmup 1     # CPU smoke run
"""
from __future__ import annotations

import argparse
import contextlib
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.config import load_config  # noqa: E402
from training.models import build_model  # noqa: E402
from training.models.vgg import Vgg19  # noqa: E402

CONFIGS = {"fomm": "fomm-taichi-256", "mraa": "mraa-taichi-256", "tpsmm": "tpsmm-taichi-256",
           "monkeynet": "monkeynet-taichi-256"}
# dense tensor-core peaks in TFLOP/s (NVIDIA datasheets): bf16, and TF32 for fp32 rows
PEAKS = {"H100 SXM": {"bf16": 989.4, "fp32": 494.7}, "H200": {"bf16": 989.4, "fp32": 494.7}}


def device_peak_key(device: torch.device) -> str | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    if "H200" in name:
        return "H200"
    if "H100" in name and "PCIe" not in name and "NVL" not in name:
        return "H100 SXM"
    return None


@dataclass
class Result:
    model: str
    config: str
    batch: int
    precision: str
    pairs_per_s: float
    step_ms: float
    peak_mem_gib: float
    gflop_per_step: float
    tflops: float
    peak_fraction: float | None


class StepRunner:
    """The trainer's per-batch work for one model: forward, backward, clipping, optimiser steps, D step."""

    def __init__(self, cfg, device: torch.device, precision: str, channels_last: bool):
        self.cfg, self.device, self.precision = cfg, device, precision
        self.model = build_model(cfg, vgg=Vgg19()).to(device).train()
        if hasattr(self.model, "set_epoch"):
            self.model.set_epoch(0)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        t = cfg.train
        self.optimizers = {name: torch.optim.Adam(params, lr=t.lr[name], betas=t.betas, weight_decay=t.weight_decay)
                           for name, params in self.model.optimizer_groups().items()}
        self.generator_groups = [g for g in self.optimizers if g != "discriminator"]

    def autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def inputs(self, batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = self.cfg.frame_size
        g = torch.Generator().manual_seed(seed)
        pair = torch.rand(2, batch, 3, h, w, generator=g)
        return tuple(x.to(self.device).contiguous(memory_format=self.memory_format) for x in pair)

    def step(self, source: torch.Tensor, driving: torch.Tensor) -> None:
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        with self.autocast():
            losses, generated = self.model(source, driving)
        sum(losses.values()).backward()
        if hasattr(self.model, "clip_gradients"):
            self.model.clip_gradients()
        for name in self.generator_groups:
            self.optimizers[name].step()
        if "discriminator" in self.optimizers and hasattr(self.model, "discriminator_losses"):
            disc = self.optimizers["discriminator"]
            disc.zero_grad(set_to_none=True)  # drop what the generator's feature matching put there
            with self.autocast():
                d_losses = self.model.discriminator_losses(driving, generated)
            if d_losses:
                sum(d_losses.values()).backward()
                disc.step()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(runner: StepRunner, source, driving) -> float:
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        runner.step(source, driving)
    synchronize(runner.device)
    return float(counter.get_total_flops())


def measure(model: str, config: str, batch: int | None, precision: str, device: torch.device, steps: int,
            warmup: int, channels_last: bool) -> Result:
    cfg = load_config(config)
    batch = batch or cfg.train.batch_size
    torch.manual_seed(0)
    runner = StepRunner(cfg, device, precision, channels_last)
    source, driving = runner.inputs(batch)
    flops = count_flops(runner, source, driving)  # also the first warm-up step
    for _ in range(warmup - 1):
        runner.step(source, driving)
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(steps):
        runner.step(source, driving)
    synchronize(device)
    elapsed = time.perf_counter() - start
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2 ** 30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB -> GiB (Linux)
    step_s = elapsed / steps
    tflops = flops / step_s / 1e12
    key = device_peak_key(device)
    fraction = tflops / PEAKS[key][precision] if key else None
    del runner
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return Result(model, config, batch, precision, batch / step_s, 1000 * step_s, peak, flops / 1e9, tflops,
                  fraction)


def format_table(results: list[Result], device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    mem = "peak mem (GiB)" if device.type == "cuda" else "peak RSS (GiB)"
    lines = [f"device: {name}; torch {torch.__version__}",
             f"| model | config | batch | precision | pairs/s | step (ms) | {mem} | GFLOP/step | TFLOP/s | of peak |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        frac = "n/a" if r.peak_fraction is None else f"{100 * r.peak_fraction:.1f}%"
        lines.append(f"| {r.model} | {r.config} | {r.batch} | {r.precision} | {r.pairs_per_s:.2f} | {r.step_ms:.0f} | "
                     f"{r.peak_mem_gib:.2f} | {r.gflop_per_step:.0f} | {r.tflops:.3f} | {frac} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", choices=sorted(CONFIGS), default=list(CONFIGS))
    p.add_argument("--config", action="append", default=None,
                   help="benchmark these configs instead of the models' taichi-256 ones (repeatable)")
    p.add_argument("--batch-size", type=int, default=None, help="default: each config's batch size")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (>= 1; the first counts FLOPs)")
    p.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), default=None,
                   help="default: fp32 and bf16 on a GPU; fp32 only on a CPU (CPUs without bf16 instructions "
                        "emulate it: one 256-px FOMM step took > 5 min on the 2-core development machine)")
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument("--channels-last", action="store_true")
    args = p.parse_args(argv)
    if args.warmup < 1 or args.steps < 1:
        p.error("--warmup and --steps must be >= 1")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    precisions = args.precisions or (["fp32", "bf16"] if device.type == "cuda" else ["fp32"])
    jobs = [(load_config(c).model, c) for c in args.config] if args.config else \
        [(m, CONFIGS[m]) for m in args.models]
    results = []
    for model, config in jobs:
        for precision in precisions:
            r = measure(model, config, args.batch_size, precision, device, args.steps, args.warmup,
                        args.channels_last)
            print(f"{model:<10} {config:<22} batch {r.batch:<3} {precision}: {r.pairs_per_s:8.2f} pairs/s, "
                  f"{r.step_ms:8.0f} ms/step, {r.tflops:.3f} TFLOP/s", flush=True)
            results.append(r)
    print()
    print(format_table(results, device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
