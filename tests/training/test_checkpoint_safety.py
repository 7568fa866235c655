"""A checkpoint never runs code: every reader loads with ``weights_only=True`` and refuses a file that pickles
arbitrary Python objects with a message naming the file and why, with no way round (no command unpickles a
checkpoint in full). Official checkpoints (tensors, dicts, ints, optimiser states, legacy serialisation) load
without it.

The malicious file is a real checkpoint with one extra entry whose ``__reduce__`` creates a file when unpickled:
the file's absence after each command proves no code ran.
"""
from __future__ import annotations

import collections
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pipelines.cli import main as motionpipe
from storage.video import VideoWriter
from training import train
from training.checkpoint import FORMAT, FORMAT_VERSION, UnsafeCheckpointError, load_checkpoint, save_checkpoint
from training.config import config_to_dict, load_config
from training.models.convert import build_inference_model, load_official, read_checkpoint, to_official

CONFIG = "fomm-sample-64"


class CreatesFile:
    """Unpickling this runs ``open(path, "w")``: a stand-in for any code an attacker would run."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Our-format and official-format checkpoints, each with a payload entry, plus a driving video and image."""
    tmp = tmp_path_factory.mktemp("evil")
    cfg = load_config(CONFIG)
    torch.manual_seed(0)
    model = build_inference_model(cfg)
    ours = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": cfg.model, "config": config_to_dict(cfg),
            "stage": "main", "step": 1, "epoch": 0, "optimizers": {}, "schedulers": {},
            "networks": {k: v.state_dict() for k, v in model.networks().items()}}
    torch.save({**ours, "meta": {"note": CreatesFile(tmp / "PWNED-ours")}}, tmp / "ours-evil.pt")
    official = to_official(cfg, dict(model.networks()), {"epoch": 3})
    torch.save({**official, "extra": CreatesFile(tmp / "PWNED-official")}, tmp / "official-evil.pth.tar")
    frame = np.full((64, 64, 3), 128, np.uint8)
    with VideoWriter(tmp / "driving.mp4", fps=10, size=(64, 64)) as w:
        for i in range(3):
            w.write(np.roll(frame + np.uint8(i * 20), i, axis=1))
    cv2.imwrite(str(tmp / "source.png"), frame)
    return tmp


def _animate(tmp: Path, checkpoint: str, *extra: str) -> list[str]:
    return ["animate", "--checkpoint", str(tmp / checkpoint), "--source", str(tmp / "source.png"),
            "--driving", str(tmp / "driving.mp4"), "--out", str(tmp / "out.mp4"), "--mode", "standard", *extra]


def _refused(capsys, rc: int, name: str) -> None:
    err = capsys.readouterr().err
    assert rc != 0
    assert name in err and "refused" in err and "io.open" in err, err  # the file, why, and the object
    assert "Traceback" not in err


def test_every_command_refuses_a_checkpoint_that_would_run_code(world, capsys, monkeypatch):
    tmp = world
    monkeypatch.setenv("MOTIONPIPE_VGG19_WEIGHTS", str(tmp / "no-such-vgg19.pth"))
    commands = {
        "animate": _animate(tmp, "ours-evil.pt"),
        "animate (official)": _animate(tmp, "official-evil.pth.tar", "--config", CONFIG),
        "evaluate": ["evaluate", "fomm", "--dataset", "sample", "--checkpoint", str(tmp / "ours-evil.pt"),
                     "--data-root", str(tmp / "data")],
        "lineage": ["lineage", str(tmp / "ours-evil.pt")],
    }
    for what, argv in commands.items():
        rc = motionpipe(argv)
        name = "official-evil.pth.tar" if "official" in what else "ours-evil.pt"
        _refused(capsys, rc, name)
    # training.train --resume (what `motionpipe train` and the Dagster asset run)
    rc = train.main(["--config", CONFIG, "--synthetic", "2", "--out", str(tmp / "run"), "--allow-random-vgg",
                     "--resume", str(tmp / "ours-evil.pt"), "--max-steps", "1", "--no-progress"])
    _refused(capsys, rc, "ours-evil.pt")
    # conversion of an official checkpoint, and our own reader
    with pytest.raises(UnsafeCheckpointError, match=r"official-evil\.pth\.tar.*refused.*re-save its state dicts alone"):
        load_official(tmp / "official-evil.pth.tar", load_config(CONFIG))
    with pytest.raises(UnsafeCheckpointError, match=r"ours-evil\.pt.*refused"):
        load_checkpoint(tmp / "ours-evil.pt")
    assert not (tmp / "PWNED-ours").exists() and not (tmp / "PWNED-official").exists()


def test_there_is_no_flag_that_unpickles_a_checkpoint_in_full(world, capsys):
    tmp = world
    for command in (_animate(tmp, "official-evil.pth.tar", "--config", CONFIG, "--trust-checkpoint"),
                    ["segment", "--checkpoint", str(tmp / "official-evil.pth.tar"), "--config", CONFIG,
                     "--image", str(tmp / "source.png"), "--out", str(tmp / "segments"), "--trust-checkpoint"]):
        with pytest.raises(SystemExit) as exc:
            motionpipe(command)
        assert exc.value.code == 2
        assert "unrecognized arguments: --trust-checkpoint" in capsys.readouterr().err
    assert not (tmp / "PWNED-official").exists() and not (tmp / "out.mp4").exists()


def _official_with_optimiser_state(tmp: Path) -> dict:
    """As the official ``Logger.save_cpk`` writes: OrderedDict state dicts, Adam states after a step, an epoch."""
    cfg = load_config(CONFIG)
    model = build_inference_model(cfg)
    official = to_official(cfg, dict(model.networks()), {"epoch": 41})
    for name in ("generator", "kp_detector"):
        params = [torch.nn.Parameter(torch.rand(3, 2)) for _ in range(2)]
        opt = torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))
        sum(p.sum() for p in params).backward()
        opt.step()
        official[f"optimizer_{name}"] = opt.state_dict()
        official[name] = collections.OrderedDict(official[name])
    return official


@pytest.mark.parametrize("zipfile", [True, False], ids=["zip", "legacy"])
def test_official_checkpoints_load_with_weights_only(tmp_path, zipfile):
    official = _official_with_optimiser_state(tmp_path)
    path = tmp_path / "official.pth.tar"
    torch.save(official, path, _use_new_zipfile_serialization=zipfile)
    torch.load(path, weights_only=True)  # no arbitrary object anywhere in the official layout
    ckpt = read_checkpoint(path)
    assert ckpt["epoch"] == 41 and ckpt["optimizer_generator"]["param_groups"][0]["betas"] == (0.5, 0.999)
    assert load_official(path, load_config(CONFIG)).report.ok


def test_corrupt_file_is_named_without_unsafe_advice(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="junk.pth is not a readable PyTorch checkpoint") as err:
        read_checkpoint(tmp_path / "junk.pth")
    assert "weights_only` set to `False`" not in str(err.value)
    assert not isinstance(err.value, UnsafeCheckpointError)
    save_checkpoint({"x": 1}, tmp_path / "ok.pt")  # a plain-data file is not "unsafe", just not ours
    with pytest.raises(Exception, match="not a motionpipe training checkpoint"):
        load_checkpoint(tmp_path / "ok.pt")
