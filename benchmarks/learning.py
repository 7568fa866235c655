"""Proof that each model learns (issue 9): trained from scratch on CPU on videos of known motion, it must beat the
no-motion baseline on held-out videos in L1, and its keypoints must follow the moving object.

    .venv/bin/python benchmarks/learning.py                         # the four models, their sample-64 configs
    .venv/bin/python benchmarks/learning.py --models fomm --steps 300 --threads 2

Per model: steps, batch, training wall time, L1 of the model and of the no-motion baseline (the source frame as
every prediction) on the held-out test videos and their ratio (below 1 beats it), and the Pearson correlation and
gain of the keypoints' mean displacement against the object's true displacement; the same for the freshly
initialised model. See ``training.loop.learning_check`` for the
protocol and ``training.loop.known_motion`` for the videos. Needs torch, numpy, yaml and pydantic only (no Dagster,
no video stack), so a bare GPU machine with this checkout runs it too (``--device cuda``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from training.config import load_config  # noqa: E402
from training.models import MODELS  # noqa: E402
from training.models.vgg import WEIGHTS_ENV as VGG_WEIGHTS_ENV  # noqa: E402
from training.loop.learning_check import (MIN_CORRELATION, MIN_GAIN, LearningResult, LearningSettings,  # noqa: E402
                                          learning_check)

# Steps per model (each at its sample config's batch size), about 13 minutes in all on 2 idle CPU cores; TPSMM,
# whose keypoints a ResNet-18 regresses, needs the most. Measured numbers: benchmarks/README.md.
DEFAULT_STEPS = {"monkeynet": 400, "fomm": 400, "mraa": 300, "tpsmm": 1000}


HEADER = (f"{'model':10s} {'steps':>5s} {'batch':>5s} {'train s':>7s} {'L1':>7s} {'L1 still':>8s} {'ratio':>6s} "
          f"{'r':>6s} {'gain':>6s} | at init: {'ratio':>6s} {'r':>6s} {'gain':>6s}")


def row(r: LearningResult) -> str:
    a, b = r.after, r.before
    verdict = "learned" if r.learned else ("NOT LEARNED: " + ", ".join(
        w for w, bad in (("L1 above no motion", not r.beats_no_motion), ("keypoints stay", not r.follows_object))
        if bad))
    return (f"{r.model:10s} {r.steps:5d} {r.batch_size:5d} {r.train_seconds:7.0f} {a.l1:7.4f} {a.l1_no_motion:8.4f} "
            f"{a.ratio:6.3f} {a.correlation:6.3f} {a.gain:6.3f} |          {b.ratio:6.3f} {b.correlation:6.3f} "
            f"{b.gain:6.3f}  {verdict}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--steps", type=int, help="training steps for every model (default: per model, DEFAULT_STEPS)")
    p.add_argument("--batch-size", type=int, help="default: each config's")
    p.add_argument("--config-suffix", default="sample-64", help="configs <model>-<suffix> (default: sample-64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} CPU threads, seed {args.seed}")
    print(HEADER)
    results = []
    start = time.perf_counter()
    for model in args.models:
        cfg = load_config(f"{model}-{args.config_suffix}")
        settings = LearningSettings(steps=args.steps or DEFAULT_STEPS[model], batch_size=args.batch_size,
                                    seed=args.seed, device=args.device,
                                    vgg_weights=os.environ.get(VGG_WEIGHTS_ENV))
        results.append(learning_check(cfg, settings))
        print(row(results[-1]), flush=True)
    passed = [r for r in results if r.learned]
    print(f"{len(passed)}/{len(results)} models beat the no-motion baseline with keypoints that follow the object "
          f"(r > {MIN_CORRELATION}, gain > {MIN_GAIN}); {time.perf_counter() - start:.0f} s in all")
    return 0 if len(passed) == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
