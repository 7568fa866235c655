"""Log lines that are not a terminal's bar (Dagster's, through Pipes) say where the run is and how long it has left."""
from __future__ import annotations

import math

from assets.models.pipes_train import _scalar_line
from tests.training.test_trainer import options, tiny_config
from training.loop.synthetic import SyntheticPairs
from training.loop.trainer import Trainer


def test_each_logged_window_carries_the_total_and_an_eta_from_the_runs_own_pace(tmp_path):
    events: list[dict] = []
    cfg = tiny_config("fomm", loss_weights={"perceptual": []}, num_epochs=2, epoch_milestones=[1])
    trainer = Trainer(cfg, options(tmp_path / "run", on_event=lambda kind, p: events.append(p) if kind == "scalars"
                                   else None))
    trainer.fit(SyntheticPairs(num_videos=2, batch_size=1, seed=4))  # 2 batches per epoch, 2 epochs: 4 steps
    assert [e["step"] for e in events] == [1, 2, 3, 4]
    assert {e["total"] for e in events} == {4}
    etas = [e["eta_s"] for e in events]
    assert all(math.isfinite(t) and t > 0 for t in etas[:-1]) and etas[-1] == 0.0  # nothing left at the last


def test_the_pipes_log_line_reads_step_of_total_percent_and_eta():
    line = _scalar_line({"step": 100, "total": 400, "eta_s": 125.4, "loss/total": 1.5, "perf/pairs_per_s": 7.0,
                         "lr/generator": 2e-4})
    assert line == "step 100/400 (25%, ETA 2:05): loss/total=1.5, perf/pairs_per_s=7"
    assert _scalar_line({"step": 3, "loss/total": 2.0}) == "step 3: loss/total=2"  # total unknown: as before
    assert _scalar_line({"step": 0, "total": 10, "eta_s": float("nan"), "loss/total": 2.0}) == \
        "step 0/10 (0%): loss/total=2"
