"""The training process as Dagster launches it: ``training.train`` with its progress sent back over Dagster Pipes.

    python -m assets.models.pipes_train --config fomm-sample-64 --data-root data --out runs/x ...
    torchrun --nproc-per-node 2 -m assets.models.pipes_train ...

Same arguments as ``python -m training.train``. The first worker (local rank 0) of the torchrun a Pipes client
launched opens the Pipes channel: the run's loss windows and every checkpoint path reach the Dagster event log while
it runs, and the last checkpoint is reported as the asset's materialization. Local, not global, rank 0: on several
nodes the rendezvous decides which node holds global rank 0, and the Dagster step's node need not be it (the other
nodes run the same command without a Pipes client). Started any other way (by hand, by `dvc repro`, on the other
ranks) it is plain ``training.train``. ``training/`` itself knows nothing of Dagster.
"""
from __future__ import annotations

import logging
import math
import os
import sys

from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR, PipesContext, open_dagster_pipes

from training import train


class PipesLogHandler(logging.Handler):
    """Python log records of the run → Dagster's event log."""

    def __init__(self, pipes: PipesContext):
        super().__init__(logging.INFO)
        self.pipes = pipes

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = "warning" if record.levelno >= logging.WARNING else "info"
            getattr(self.pipes.log, level)(self.format(record))
        except Exception:  # a log line must never stop training
            self.handleError(record)


def _scalar_line(payload: dict) -> str:
    """``step 100/400 (25%, ETA 1:02): loss/...``: where the run is and how long it has left, then the losses."""
    shown = {k: v for k, v in payload.items() if k.startswith("loss/") or k == "perf/pairs_per_s"}
    where = f"step {payload['step']}"
    if payload.get("total"):
        where += f"/{payload['total']} ({100 * payload['step'] / payload['total']:.0f}%"
        eta = payload.get("eta_s", float("nan"))
        where += f", ETA {int(eta) // 60}:{int(eta) % 60:02d})" if math.isfinite(eta) else ")"
    return f"{where}: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(shown.items()))


def run_with_pipes(argv: list[str]) -> int:
    with open_dagster_pipes() as pipes:
        handler = PipesLogHandler(pipes)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logging.getLogger("motionpipe").addHandler(handler)
        curve: list[dict] = []

        def on_event(kind: str, payload: dict) -> None:  # checkpoints reach Dagster as the trainer's log lines
            if kind == "scalars":
                pipes.log.info(_scalar_line(payload))
                curve.append({"step": payload["step"], **{k: v for k, v in payload.items() if k.startswith("loss/")}})

        try:
            result = train.run(argv, on_event=on_event)
        except BaseException as exc:  # the reason, in the Dagster event log, not only on this process's stderr
            pipes.log.error(f"training failed: {type(exc).__name__}: {exc}")
            raise
        checkpoint = result.last_checkpoint  # the resumed one when nothing was left to train
        if checkpoint is None:
            raise RuntimeError("the run ended without any checkpoint")
        losses = {k: v for k, v in result.losses.items() if k.startswith("loss/")}
        pipes.report_custom_message({"curve": curve[-200:]})
        pipes.report_asset_materialization(metadata={
            "checkpoint": {"raw_value": str(checkpoint), "type": "path"},
            "step": result.step, "epoch": result.epoch, "stopped_early": result.stopped_early,
            "losses": {"raw_value": {k: (v if math.isfinite(v) else None) for k, v in losses.items()},
                       "type": "json"},
            "non_finite_losses": sum(not math.isfinite(v) for v in losses.values()),
        })
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if os.environ.get("LOCAL_RANK", "0") == "0" and DAGSTER_PIPES_CONTEXT_ENV_VAR in os.environ:
        return run_with_pipes(argv)
    return train.main(argv)


if __name__ == "__main__":
    sys.exit(main())
