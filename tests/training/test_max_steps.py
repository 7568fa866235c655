"""``--max-steps`` beyond the config's schedule: training stops at the last epoch's end and says so."""
from __future__ import annotations

import logging

from tests.training.test_trainer import options, tiny_config
from training.loop.synthetic import SyntheticPairs
from training.loop.trainer import Trainer


def test_max_steps_past_the_last_epoch_says_why_it_stopped_early(tmp_path, monkeypatch, caplog):
    cfg = tiny_config("fomm", loss_weights={"perceptual": []}, num_epochs=1, epoch_milestones=[1])
    trainer = Trainer(cfg, options(tmp_path / "run", max_steps=20))
    with caplog.at_level(logging.WARNING, logger="motionpipe.train"):
        result = trainer.fit(SyntheticPairs(num_videos=2, batch_size=1, seed=4))  # 2 batches per epoch
    assert (result.step, result.epoch) == (2, 1)
    assert "stopped at step 2, before max_steps 20: the config's schedule ends there (num_epochs 1 of 2 steps)" \
        in caplog.text
