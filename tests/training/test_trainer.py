"""The trainer on the tiny 64x64 sample configs, CPU, with synthetic moving-blob data and a random VGG-19.

The FOMM scenario (train 4 steps; train 2, stop, resume 2 more) runs once per module and feeds the exact-resume,
checkpoint-contents and TensorBoard tests.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from training.checkpoint import list_checkpoints, load_checkpoint
from training.config import config_to_dict, load_config, validate_config
from training.loop.synthetic import SyntheticPairs
from training.loop.trainer import Trainer, TrainOptions
from training.reporting.visualize import draw_keypoints, make_grid

def tiny_config(name: str, **train_overrides):
    """A sample config with ``train`` fields replaced (``loss_weights`` merged key by key)."""
    raw = config_to_dict(load_config(f"{name}-sample-64"))
    for key, value in train_overrides.items():
        if key == "loss_weights":
            raw["train"]["loss_weights"].update(value)
        else:
            raw["train"][key] = value
    return validate_config(raw, source=f"{name}-sample-64 (test overrides)")


@pytest.fixture(autouse=True)
def _no_vgg_weights(monkeypatch, tmp_path):
    # whatever this machine has cached, the command line (which reads the variable) gets the random-VGG path
    monkeypatch.setenv("MOTIONPIPE_VGG19_WEIGHTS", str(tmp_path / "no-such-vgg19.pth"))


def options(out, **kw) -> TrainOptions:
    base = dict(out_dir=out, progress=False, log_every=1, image_every=0, checkpoint_every=1000,
                allow_random_vgg=True, seed=3, vgg_weights=str(Path(out).parent / "no-such-vgg19.pth"))
    base.update(kw)
    return TrainOptions(**base)


def state_of(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v.clone() for n, net in trainer.model.networks().items() for k, v in net.state_dict().items()}


# -----------------------------------------------------------------------------
# FOMM: exact resume, checkpoint contents, TensorBoard


@pytest.fixture(scope="module")
def fomm_runs(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module-scoped: set here, the autouse fixture is per test
    mp = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("fomm-runs")
    mp.setenv("MOTIONPIPE_VGG19_WEIGHTS", str(tmp / "no-such-vgg19.pth"))
    # 3 batches per epoch; milestone after epoch 1: the 4-step run crosses an epoch end and an LR drop,
    # the interrupted run stops mid-epoch (step 2 of 3)
    cfg = tiny_config("fomm", epoch_milestones=[1])
    meta = {"dataset": "synthetic-blobs", "version": "test-1"}

    def data():
        return SyntheticPairs(num_videos=3, batch_size=1, seed=11)

    full = Trainer(cfg, options(tmp / "full", max_steps=4, image_every=2), meta=meta)
    full_result = full.fit(data())

    first = Trainer(cfg, options(tmp / "split", max_steps=2), meta=meta)
    first.fit(data())
    second = Trainer(cfg, options(tmp / "split", max_steps=4), meta=meta)
    resumed_from = second.resume(tmp / "split")
    second_result = second.fit(data())
    yield dict(cfg=cfg, full=full, full_result=full_result, first=first, second=second,
               second_result=second_result, resumed_from=resumed_from, tmp=tmp)
    mp.undo()
    torch.set_num_threads(threads)


def test_exact_resume_gives_identical_weights(fomm_runs):
    full, second = fomm_runs["full"], fomm_runs["second"]
    assert fomm_runs["resumed_from"].name == "step-000000002.pt"
    assert (full.step, full.epoch, full.step_in_epoch) == (second.step, second.epoch, second.step_in_epoch) == (4, 1, 1)
    a, b = state_of(full), state_of(second)
    assert a.keys() == b.keys()
    mismatched = [k for k in a if not torch.equal(a[k], b[k])]
    assert not mismatched, f"weights differ after resume: {mismatched[:5]}"
    # the run actually trained, and the LR milestone after epoch 1 was applied identically
    before = state_of(fomm_runs["first"])
    assert any(not torch.equal(before[k], a[k]) for k in a)
    for name in full.optimizers:
        assert full.optimizers[name].param_groups[0]["lr"] == second.optimizers[name].param_groups[0]["lr"] \
            == pytest.approx(2e-5)
        sa, sb = full.optimizers[name].state_dict()["state"], second.optimizers[name].state_dict()["state"]
        assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)


def test_checkpoint_is_self_describing(fomm_runs):
    ckpt = load_checkpoint(fomm_runs["second_result"].last_checkpoint)
    assert ckpt["model"] == "fomm" and ckpt["stage"] == "main"
    assert ckpt["config"] == config_to_dict(fomm_runs["cfg"])
    assert validate_config(ckpt["config"]).name == "fomm-sample-64"
    assert set(ckpt["networks"]) == {"kp_detector", "generator"}  # no discriminator: generator_gan is 0
    assert set(ckpt["optimizers"]) == set(ckpt["schedulers"]) == {"generator", "kp_detector"}
    assert ckpt["vgg_pretrained"] is False  # random VGG, allowed explicitly, recorded
    assert ckpt["meta"] == {"dataset": "synthetic-blobs", "version": "test-1"}
    assert (ckpt["step"], ckpt["epoch"], ckpt["step_in_epoch"], ckpt["world_size"]) == (4, 1, 1, 1)
    assert len(ckpt["rng"]) == 1 and {"python", "numpy", "torch"} <= set(ckpt["rng"][0])
    assert [h["step"] for h in ckpt["resume_history"]] == [2]
    # a fresh model loads the saved (unwrapped) state dicts by key
    full = fomm_runs["full"]
    for name, net in full.model.networks().items():
        net.load_state_dict(ckpt["networks"][name], strict=True)


def test_a_resumed_run_keeps_every_logged_step(fomm_runs):
    """The split run (2 steps, then resumed for 2 more) logs steps 1-4 once each, as the run in one go."""
    from training.reporting.curves import load_scalars
    split = load_scalars(fomm_runs["tmp"] / "split" / "tensorboard")
    full = load_scalars(fomm_runs["tmp"] / "full" / "tensorboard")
    assert [step for step, _ in split["loss/total"]] == [1, 2, 3, 4]
    assert [v for _, v in split["loss/total"]] == pytest.approx([v for _, v in full["loss/total"]], rel=1e-5)


def test_tensorboard_has_losses_and_grids(fomm_runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(fomm_runs["tmp"] / "full" / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    expected = {"loss/perceptual", "loss/equivariance_value", "loss/equivariance_jacobian", "loss/total",
                "perf/pairs_per_s", "lr/generator", "lr/kp_detector"}
    assert expected <= scalars, scalars
    assert [e.step for e in acc.Scalars("loss/total")] == [1, 2, 3, 4]
    assert all(math.isfinite(e.value) for e in acc.Scalars("loss/perceptual"))
    lr = [e.value for e in acc.Scalars("lr/generator")]
    assert lr[:3] == pytest.approx([2e-4] * 3) and lr[3] == pytest.approx(2e-5)  # milestone after epoch 1
    images = acc.Images("train/grid")
    assert [e.step for e in images] == [2, 4]
    assert images[0].width == 5 * 64 and images[0].height > 64  # 5 columns, one row per sample + header
    # the full run kept only its exit checkpoint (no per-N checkpoint was due)
    assert [p.name for p in list_checkpoints(fomm_runs["tmp"] / "full" / "checkpoints")] == ["step-000000004.pt"]


class LoaderLike:
    """SyntheticPairs behind the interface of a torch DataLoader over an IterableDataset: ``iter()`` draws a
    base seed from the global torch RNG (as DataLoader does) and there is no ``len()``."""

    def __init__(self, inner: SyntheticPairs):
        self.inner = inner

    def set_epoch(self, epoch: int) -> None:
        self.inner.set_epoch(epoch)

    def __iter__(self):
        torch.empty((), dtype=torch.int64).random_()
        return iter(self.inner)


class SizedLoaderLike(LoaderLike):
    def __len__(self):
        return len(self.inner)


@pytest.mark.parametrize("with_len", [True, False], ids=["known-length", "unknown-length"])
def test_exact_resume_at_an_epoch_end(tmp_path, with_len):
    """Stop exactly at the end of epoch 0 (2 batches), resume, train 1 more: equal to 3 steps in one go, also
    when iterating draws from the global RNG and when the epoch length is only known by exhaustion."""
    cfg = tiny_config("fomm", loss_weights={"perceptual": []}, epoch_milestones=[1])

    def data():
        return (SizedLoaderLike if with_len else LoaderLike)(SyntheticPairs(num_videos=2, batch_size=1, seed=4))

    assert hasattr(data(), "__len__") is with_len
    full = Trainer(cfg, options(tmp_path / "full", max_steps=3))
    full.fit(data())
    Trainer(cfg, options(tmp_path / "split", max_steps=2)).fit(data())
    second = Trainer(cfg, options(tmp_path / "split", max_steps=3))
    second.resume(tmp_path / "split")
    assert (second.epoch, second.step_in_epoch) == ((1, 0) if with_len else (0, 2))
    second.fit(data())
    assert (full.step, full.epoch) == (second.step, second.epoch)
    a, b = state_of(full), state_of(second)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert second.optimizers["generator"].param_groups[0]["lr"] == pytest.approx(2e-5)


def test_empty_epoch_is_an_error(tmp_path):
    trainer = Trainer(tiny_config("fomm", loss_weights={"perceptual": []}), options(tmp_path))
    with pytest.raises(ValueError, match="no batch in epoch 0"):
        trainer.fit([])


# -----------------------------------------------------------------------------
# other models, precision, stop


def test_monkeynet_trains_two_steps_with_discriminator_and_stops_on_request(tmp_path):
    cfg = tiny_config("monkeynet")  # checkpoint_freq 1: an epoch snapshot at every epoch end (never pruned)
    trainer = Trainer(cfg, options(tmp_path, max_steps=2, checkpoint_every=1, keep_checkpoints=1))
    before = state_of(trainer)
    result = trainer.fit(SyntheticPairs(num_videos=4, batch_size=2, seed=1))
    assert result.step == 2 and set(trainer.optimizers) == {"generator", "discriminator", "kp_detector"}
    assert {"loss/disc_gan", "loss/gen_gan", "loss/reconstruction", "loss/feature_matching"} <= set(result.losses)
    assert all(math.isfinite(v) for v in result.losses.values())
    generator_terms = ("loss/gen_gan", "loss/reconstruction", "loss/feature_matching")
    assert result.losses["loss/total"] == pytest.approx(sum(result.losses[k] for k in generator_terms))
    after = state_of(trainer)
    for net in ("kp_detector", "generator", "discriminator"):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(net + ".")), net
    assert load_checkpoint(result.last_checkpoint)["vgg_pretrained"] is None  # Monkey-Net uses no VGG

    # a stop request (what SIGTERM does) ends the run after the current step, with a checkpoint
    resumed = Trainer(cfg, options(tmp_path, max_steps=10, keep_checkpoints=1))
    resumed.resume(tmp_path)
    resumed.request_stop()
    stopped = resumed.fit(SyntheticPairs(num_videos=4, batch_size=2, seed=1))
    assert stopped.stopped_early and stopped.step == 3
    assert stopped.last_checkpoint.name == "step-000000003.pt"
    # keep_checkpoints=1 pruned the step checkpoints 1 and 2; the epoch snapshot after step 2 stays
    names = [p.name for p in list_checkpoints(tmp_path / "checkpoints")]
    assert names == ["epoch-0001-step-000000002.pt", "step-000000003.pt"]


def test_tpsmm_trains_two_steps_with_epoch_schedule(tmp_path):
    # dropout P 0 at epoch 0, 0.5 at epoch 1; milestone [2]; inf-norm clipping 10. Its two ResNet-18s make a
    # checkpoint ~270 MB, so only the exit checkpoint is written here (pruning is tested on Monkey-Net)
    cfg = tiny_config("tpsmm", checkpoint_freq=10)
    trainer = Trainer(cfg, options(tmp_path, max_steps=2))
    result = trainer.fit(SyntheticPairs(num_videos=2, batch_size=2, seed=5))  # one batch per epoch
    assert result.step == 2 and result.epoch == 2
    # set_epoch was called at each epoch start: the second step ran at epoch 1 with dropout P = 0.5
    assert trainer.model.epoch == 1 and trainer.model.dropout_p() == pytest.approx(0.5)
    assert set(trainer.optimizers) == {"generator", "bg_predictor"}
    for opt in trainer.optimizers.values():
        assert opt.param_groups[0]["weight_decay"] == pytest.approx(1e-4)
        assert opt.param_groups[0]["lr"] == pytest.approx(2e-5)  # milestone at epoch 2 reached
    assert {"loss/warp_loss", "loss/bg", "loss/equivariance_value", "loss/perceptual"} <= set(result.losses)
    # official clipping: the kp detector's gradients were clipped to inf-norm 10 before the step
    assert max(p.grad.abs().max().item() for p in trainer.model.kp_detector.parameters()) <= 10 + 1e-6
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step-000000002.pt"]


def test_bf16_autocast_step_on_cpu(tmp_path):
    # no perceptual loss: VGG-19 in bf16 takes ~20 s per step on a CPU without bf16 units
    cfg = tiny_config("fomm", loss_weights={"perceptual": []})
    trainer = Trainer(cfg, options(tmp_path, max_steps=1, precision="bf16", channels_last=True))
    before = state_of(trainer)
    result = trainer.fit(SyntheticPairs(num_videos=2, batch_size=1, seed=2))
    assert result.step == 1
    assert all(math.isfinite(v) for v in result.losses.values())
    after = state_of(trainer)
    assert all(v.dtype == before[k].dtype for k, v in after.items())  # master weights stay fp32
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert load_checkpoint(result.last_checkpoint)["precision"] == "bf16"


# -----------------------------------------------------------------------------
# guards


def test_random_vgg_needs_explicit_permission(tmp_path):
    cfg = tiny_config("fomm", allow_random_vgg=False)
    with pytest.raises(FileNotFoundError, match="VGG-19"):
        Trainer(cfg, options(tmp_path, allow_random_vgg=False))
    from training.models.vgg import Vgg19
    with pytest.raises(ValueError, match="allow_random_vgg"):
        Trainer(cfg, options(tmp_path, allow_random_vgg=False), vgg=Vgg19())
    # The config may ask for it (the offline sample configs do); the checkpoint then records it.
    allowed = Trainer(tiny_config("fomm"), options(tmp_path / "ok", allow_random_vgg=False), vgg=Vgg19())
    assert allowed.vgg_pretrained is False and allowed.state_dict()["vgg_pretrained"] is False


def test_resume_refuses_another_models_checkpoint(tmp_path):
    mn = Trainer(tiny_config("monkeynet"), options(tmp_path / "mn", max_steps=0))
    mn.fit(SyntheticPairs(num_videos=2, batch_size=2))
    fomm = Trainer(tiny_config("fomm", loss_weights={"perceptual": []}), options(tmp_path / "fomm"))
    from training.checkpoint import CheckpointError
    with pytest.raises(CheckpointError, match="'monkeynet'.*cannot resume 'fomm'"):
        fomm.resume(tmp_path / "mn")


# -----------------------------------------------------------------------------
# visualisation


def test_make_grid_draws_keypoints_where_they_are():
    src = torch.zeros(3, 3, 32, 48)
    generated = {
        "kp_source": {"value": torch.tensor([[[1.0, -1.0]]]).expand(3, 1, 2)},  # top-right corner
        "kp_driving": {"value": torch.tensor([[[-1.0, 1.0]]]).expand(3, 1, 2)},  # bottom-left corner
        "deformed": torch.full((3, 3, 32, 48), 0.5),
        "occlusion_map": [torch.zeros(3, 1, 8, 12), torch.ones(3, 1, 16, 24)],  # TPSMM: the finest is shown
        "prediction": torch.ones(3, 3, 32, 48),
    }
    grid = make_grid(src, src, generated, max_rows=2, header=False)
    assert grid.shape == (2 * 32, 5 * 48, 3) and grid.dtype == np.uint8
    assert grid[0, 47].max() > 0 and grid[0, 0].max() == 0  # source kp at the top-right of column 0
    assert grid[31, 48].max() > 0 and grid[0, 48 + 47].max() == 0  # driving kp at the bottom-left of column 1
    assert (grid[:, 96:144] == 128).all() and (grid[:, 144:192] == 255).all() and (grid[:, 192:] == 255).all()
    no_occ = make_grid(src, src, {"prediction": generated["prediction"]}, header=True)
    assert no_occ.shape[1] == 3 * 48 and no_occ.shape[0] > 3 * 32  # missing columns are left out
    one = draw_keypoints(np.zeros((9, 9, 3), np.uint8), np.array([[0.0, 0.0]]), radius=1)
    assert one[4, 4].max() > 0 and one[0, 0].max() == 0


# -----------------------------------------------------------------------------
# the command line on a real shard dataset


def test_cli_trains_and_resumes_exactly_on_shards(tmp_path):
    """``python -m training.train`` on shards built with the storage API (3 videos -> 3 batches per epoch):
    2 steps, then ``--resume auto`` to 3, equals 3 straight steps; the loader skips the trained batches itself."""
    from storage.root import DataRoot
    from tests.training.test_data import build_dataset
    from training.train import main

    data_root = tmp_path / "data"
    build_dataset(DataRoot(str(data_root)))
    raw = config_to_dict(load_config("monkeynet-sample-64"))
    raw["train"]["num_repeats"] = 1  # one pass over the 3 videos per epoch (the demo's config repeats them)
    config = tmp_path / "monkeynet-sample-64.yaml"
    config.write_text(yaml.safe_dump(raw))
    common = ["--config", str(config), "--data-root", str(data_root), "--batch-size", "1",
              "--workers", "0", "--device", "cpu", "--no-progress", "--image-every", "0", "--seed", "2"]
    assert main(common + ["--out", str(tmp_path / "full"), "--max-steps", "3"]) == 0
    assert main(common + ["--out", str(tmp_path / "split"), "--max-steps", "2"]) == 0
    with pytest.raises(SystemExit, match="already holds checkpoints"):
        main(common + ["--out", str(tmp_path / "split"), "--max-steps", "3"])
    assert main(common + ["--out", str(tmp_path / "split"), "--max-steps", "3", "--resume", "auto"]) == 0

    full = load_checkpoint(tmp_path / "full" / "checkpoints" / "step-000000003.pt")
    split = load_checkpoint(tmp_path / "split" / "checkpoints" / "step-000000003.pt")
    assert (split["epoch"], split["step_in_epoch"]) == (1, 0)
    for name, net in full["networks"].items():
        assert all(torch.equal(v, split["networks"][name][k]) for k, v in net.items()), name
    lineage = split["meta"]["lineage"]
    assert lineage["dataset"] == "sample" and len(lineage["shards_content_hash"]) == 64
    assert split["meta"]["global_batch"] == 1 and split["resume_history"][0]["step"] == 2


def test_the_command_line_reads_the_vgg_weights_variable_the_trainer_does_not(tmp_path, monkeypatch):
    """``$MOTIONPIPE_VGG19_WEIGHTS`` is read by ``python -m training.train``; ``Trainer`` takes the path it is given."""
    from training.models.vgg import Vgg19
    from training.train import main

    weights = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": torch.randn_like(v) for k, v in Vgg19().features.state_dict().items()}, weights)
    monkeypatch.setenv("MOTIONPIPE_VGG19_WEIGHTS", str(weights))
    assert main(["--config", "fomm-sample-64", "--synthetic", "2", "--batch-size", "2", "--out", str(tmp_path / "run"),
                 "--max-steps", "1", "--no-progress", "--image-every", "0", "--device", "cpu"]) == 0
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "step-000000001.pt")["vgg_pretrained"] is True
    trainer = Trainer(load_config("fomm-sample-64"), options(tmp_path / "direct"))  # no path given: not the variable's
    assert trainer.vgg_pretrained is False
