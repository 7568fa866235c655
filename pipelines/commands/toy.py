"""`motionpipe toy`: MRAA's toy experiment (angle of rotated rectangles: naive vs regression vs PCA head)."""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from training.experiments.toy import ToyConfig, plot_toy, run_toy


def add_toy_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("toy", help="MRAA's toy experiment: angle of rotated rectangles, naive vs "
                                          "regression vs PCA head, against training-set size",
                              description="Train the naive, regression-based and PCA-based angle predictors of MRAA's "
                                          "toy experiment on growing training sets; write the test errors "
                                          "(toy_experiment.json) and their plot (toy_experiment.png).")
    p.add_argument("--full", action="store_true",
                   help="the paper's sweep (64x64, 32-1,024 samples); default: the reduced CPU run")
    p.add_argument("--out", default="data/experiments/toy", help="folder for toy_experiment.{json,png}")
    p.add_argument("--sizes", default=None, help="comma-separated training-set sizes (default: the preset's)")
    p.add_argument("--epochs", type=int, default=None, help="default: 100, as in the paper")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for torch (1: the fastest on a shared machine, where threads wait on each other)")
    p.set_defaults(func=toy_command)
    return p


def toy_command(args) -> int:
    cfg = ToyConfig.full() if args.full else ToyConfig.reduced()
    if args.sizes:
        cfg = replace(cfg, train_sizes=tuple(sorted(int(n) for n in args.sizes.split(","))))
    if args.epochs is not None:
        cfg = replace(cfg, epochs=args.epochs)
    cfg = replace(cfg, seed=args.seed)
    if min(cfg.train_sizes) < 1 or cfg.epochs < 1:
        raise ValueError("training-set sizes and --epochs must be positive")
    torch.set_num_threads(args.threads)
    print(f"toy experiment ({'full' if args.full else 'reduced'}): {cfg.net.image_size}px, sizes "
          f"{list(cfg.train_sizes)}, {cfg.epochs} epochs, device {args.device}", flush=True)
    t0 = time.perf_counter()
    result = run_toy(cfg, device=args.device, log=lambda line: print(line, flush=True))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "toy_experiment.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    plot_toy(result, out / "toy_experiment.png")
    print(f"wrote {out / 'toy_experiment.png'} and .json in {time.perf_counter() - t0:.0f} s; ordering "
          f"PCA < regression < naive at every size: {'yes' if result.ordering_holds() else 'NO'}")
    return 0
