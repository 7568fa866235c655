"""Checkpoint files: atomic writes, clear errors on damaged files, pruning, RNG round trips."""
from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from training.checkpoint import (FORMAT, FORMAT_VERSION, CheckpointError, capture_rng_state, checkpoint_step,
                                 epoch_checkpoint_name, latest_checkpoint, list_checkpoints, load_checkpoint,
                                 prune_checkpoints, remove_stale_temporaries, restore_rng_state, save_checkpoint,
                                 step_checkpoint_name)

REPO = Path(__file__).resolve().parents[2]


def fake_state(step: int, size: int = 1000) -> dict:
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "model": "fomm", "config": {"name": "t"},
            "networks": {"generator": {"w": torch.arange(size, dtype=torch.float32) + step}},
            "step": step, "epoch": 0, "rng": [capture_rng_state()]}


def test_round_trip_and_naming(tmp_path):
    path = save_checkpoint(fake_state(7), tmp_path / step_checkpoint_name(7))
    assert path.name == "step-000000007.pt" and checkpoint_step(path) == 7
    assert checkpoint_step(epoch_checkpoint_name(3, 1200)) == 1200 and checkpoint_step("notes.txt") is None
    state = load_checkpoint(path)
    assert state["step"] == 7 and torch.equal(state["networks"]["generator"]["w"], torch.arange(1000.0) + 7)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


def test_truncated_checkpoint_is_a_clear_error_naming_the_file(tmp_path):
    good = save_checkpoint(fake_state(1), tmp_path / step_checkpoint_name(1))
    bad = save_checkpoint(fake_state(2), tmp_path / step_checkpoint_name(2))
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(bad)
    message = str(err.value)
    assert str(bad) in message and "truncated or corrupted" in message
    assert str(good) in message  # points at the intact previous checkpoint
    assert load_checkpoint(good)["step"] == 1


def test_missing_and_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found: .*step-000000009.pt"):
        load_checkpoint(tmp_path / step_checkpoint_name(9))
    foreign = tmp_path / "step-000000003.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a motionpipe training checkpoint"):
        load_checkpoint(foreign)
    newer = fake_state(4) | {"format_version": FORMAT_VERSION + 1}
    with pytest.raises(CheckpointError, match="newer than this code"):
        load_checkpoint(save_checkpoint(newer, tmp_path / step_checkpoint_name(4)))


def test_failed_save_keeps_the_previous_checkpoint(tmp_path):
    target = tmp_path / step_checkpoint_name(5)
    save_checkpoint(fake_state(5), target)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full (simulated by an object that refuses to pickle)")

    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(fake_state(6) | {"meta": Unpicklable()}, target)  # overwrite attempt fails midway
    assert load_checkpoint(target)["step"] == 5  # the old content is intact under the same name
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # temp file cleaned up


def test_process_killed_mid_save_leaves_previous_checkpoint_loadable(tmp_path):
    previous = save_checkpoint(fake_state(10), tmp_path / step_checkpoint_name(10))
    script = textwrap.dedent(f"""
        import os, torch
        from training.checkpoint import FORMAT, save_checkpoint

        class DieWhilePickling:  # the process dies after the temp file exists, before it is complete
            def __reduce__(self):
                os._exit(9)

        state = {{"format": FORMAT, "model": "fomm", "config": {{}}, "networks": {{"g": torch.zeros(10000)}},
                 "step": 11, "epoch": 0, "zz": DieWhilePickling()}}
        save_checkpoint(state, {str(tmp_path / step_checkpoint_name(11))!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert len(leftovers) == 1  # the half-written temp file, under a hidden name
    assert not (tmp_path / step_checkpoint_name(11)).exists()
    assert latest_checkpoint(tmp_path) == previous and load_checkpoint(previous)["step"] == 10
    assert remove_stale_temporaries(tmp_path) == leftovers
    assert [p.name for p in tmp_path.iterdir()] == [previous.name]


def test_prune_keeps_newest_step_checkpoints_and_all_epoch_snapshots(tmp_path):
    for step in (1, 2, 3, 4):
        save_checkpoint(fake_state(step, size=4), tmp_path / step_checkpoint_name(step))
    save_checkpoint(fake_state(2, size=4), tmp_path / epoch_checkpoint_name(1, 2))
    (tmp_path / ".step-000000009.pt.tmp-1-abc").write_bytes(b"partial")
    removed = prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in removed] == ["step-000000001.pt", "step-000000002.pt"]
    assert [p.name for p in list_checkpoints(tmp_path)] == ["epoch-0001-step-000000002.pt", "step-000000003.pt",
                                                            "step-000000004.pt"]
    assert latest_checkpoint(tmp_path).name == "step-000000004.pt"
    with pytest.raises(ValueError):
        prune_checkpoints(tmp_path, keep=0)


def test_rng_state_round_trip_through_a_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.standard_normal()  # leaves a cached gaussian in numpy's state
    path = save_checkpoint(fake_state(1) | {"rng": [capture_rng_state()]}, tmp_path / step_checkpoint_name(1))
    expected = (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3))
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    restore_rng_state(load_checkpoint(path)["rng"][0])
    got = (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_checkpoint_loads_without_unpickling_code(tmp_path):
    """The file holds plain data: torch.load(weights_only=True) accepts it (no arbitrary code on load)."""
    path = save_checkpoint(fake_state(1), tmp_path / step_checkpoint_name(1))
    assert torch.load(path, weights_only=True)["model"] == "fomm"
