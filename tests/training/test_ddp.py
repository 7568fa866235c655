"""DistributedDataParallel on CPU (gloo): two processes with half the batch each make the same update as one
process with the whole batch.

The two ranks run the real entry point (``python -m training.train``) with the environment torchrun gives its
workers (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT); the reference runs in this process.
- MRAA: BatchNorm everywhere (synchronised across ranks), the VGG perceptual loss, one optimiser over three
  networks. Its equivariance losses are switched off for this test only: they draw a random TPS per sample
  from each rank's own RNG stream (per-rank seeds, by design), so the two runs would not see the same
  transforms; every other part of the step is deterministic.
- Monkey-Net: the discriminator step, a second pass through DDP that leaves the generator and keypoint
  detector unused (find_unused_parameters), after a generator step whose feature matching reaches the
  discriminator.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from pipelines.local_celery import free_port
from training.checkpoint import load_checkpoint
from training.config import config_to_dict, load_config, validate_config
from training.loop.synthetic import SyntheticPairs
from training.loop.trainer import Trainer, TrainOptions

REPO = Path(__file__).resolve().parents[2]
SEED = 5
OVERRIDES = {"mraa": {"equivariance_shift": 0, "equivariance_affine": 0}, "monkeynet": {}}


def launch_ranks(args: list[str], world_size: int, env: dict) -> None:
    """Start ``world_size`` ranks of ``python -m training.train`` as torchrun would, and wait for all."""
    port = free_port()
    procs = []
    for rank in range(world_size):
        rank_env = dict(env, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                        LOCAL_WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, "-m", "training.train", *args], cwd=REPO, env=rank_env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=300)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    failed = [(rank, out[-3000:]) for rank, (proc, out) in enumerate(zip(procs, outputs)) if proc.returncode]
    assert not failed, failed


@pytest.mark.parametrize("model", ["mraa", "monkeynet"])
def test_two_gloo_ranks_match_one_process_on_the_global_batch(model, tmp_path, monkeypatch):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _compare_ddp_with_single_process(model, tmp_path, monkeypatch)
    finally:
        torch.set_num_threads(threads)


def _compare_ddp_with_single_process(model, tmp_path, monkeypatch):
    no_vgg = str(tmp_path / "no-such-vgg19.pth")
    monkeypatch.setenv("MOTIONPIPE_VGG19_WEIGHTS", no_vgg)
    raw = config_to_dict(load_config(f"{model}-sample-64"))
    raw["train"]["loss_weights"].update(OVERRIDES[model])
    cfg_path = tmp_path / f"{model}-ddp.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    cfg = validate_config(raw)

    launch_ranks(["--config", str(cfg_path), "--synthetic", "2", "--batch-size", "2", "--out", str(tmp_path / "ddp"),
                  "--max-steps", "1", "--seed", str(SEED), "--allow-random-vgg", "--device", "cpu", "--no-progress",
                  "--image-every", "0", "--log-every", "1"],
                 world_size=2, env=dict(os.environ, OMP_NUM_THREADS="1", MOTIONPIPE_VGG19_WEIGHTS=no_vgg))
    ddp = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "step-000000001.pt")
    assert ddp["world_size"] == 2 and len(ddp["rng"]) == 2
    assert ddp["meta"]["global_batch"] == 2 and ddp["meta"]["world_size"] == 2
    assert not torch.equal(ddp["rng"][0]["torch"], ddp["rng"][1]["torch"])  # per-rank seeds

    single = Trainer(cfg, TrainOptions(out_dir=tmp_path / "single", max_steps=1, seed=SEED, progress=False,
                                       allow_random_vgg=True, vgg_weights=no_vgg, image_every=0))
    initial = {n: {k: v.clone() for k, v in net.state_dict().items()} for n, net in single.model.networks().items()}
    single.fit(SyntheticPairs(num_videos=2, batch_size=2, size=64, seed=SEED, num_repeats=cfg.train.num_repeats))

    # Tolerance. The ranks add up the batch in another order than one process does (two half-batch convolutions
    # and an all-reduce; BatchNorm statistics combined from per-rank moments), so gradients agree to float32
    # rounding, not bit for bit. Adam's first step moves a weight by lr * g / (|g| + eps) ~ lr * sign(g): blind
    # to a rounding-level change of g, except where g is itself at the rounding level, i.e. analytically zero
    # (a conv bias right before a training-mode BatchNorm, the bias of logits under a spatial softmax); there
    # the sign is noise and the two runs may differ by up to 2 * lr. Measured: 0.2% of the weights differ by more
    # than 1e-6, nearly all in such biases; with unsynchronised BatchNorm (a broken DDP) 21% do, and running
    # statistics are off by 250%. So: at most 1% of all weights (0.1% of any tensor of >= 1000) may differ by
    # more than 1e-6, none by more than 2 * lr; BatchNorm running statistics must agree to 1e-4 relative.
    lr = max(cfg.train.lr.values())
    total = off = 0
    for name, net in single.model.networks().items():
        params = dict(net.named_parameters())
        for key, ref in net.state_dict().items():
            got = ddp["networks"][name][key]
            where = f"{name}.{key}"
            assert got.shape == ref.shape and got.dtype == ref.dtype, where
            if not ref.is_floating_point():
                assert torch.equal(got, ref), where  # num_batches_tracked
            elif key not in params:  # BatchNorm running statistics, constant kernels
                if key.endswith(("running_mean", "running_var")):
                    assert not torch.equal(ref, initial[name][key]), f"{where} was never updated"
                torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5, msg=where)
            else:
                diff = (got - ref).abs()
                assert diff.max().item() <= 2 * lr + 1e-6, f"{where}: differs by {diff.max().item()}"
                n_off = int((diff > 1e-6).sum())
                assert ref.numel() < 1000 or n_off <= 1e-3 * ref.numel(), f"{where}: {n_off}/{ref.numel()} differ"
                total, off = total + ref.numel(), off + n_off
    assert total == sum(p.numel() for p in single.model.parameters() if p.requires_grad)
    assert off <= 0.01 * total, f"{off}/{total} weights differ by more than 1e-6"
