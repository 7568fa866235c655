"""Official checkpoint layouts -> our modules: key names and shapes from the official code, exact round trips
through checkpoint files in the official layouts, clear errors for checkpoints of another model or
architecture, and the ``motionpipe models`` parameter table."""

import argparse

import pytest
import torch
import yaml

from pipelines.commands.models import models_command
from training.config import CONFIG_DIR, load_config, validate_config
from training.models import build_avd_network
from training.models.convert import (CheckpointMismatchError, build_inference_model, convert_official, detect_layout,
                                     load_official, load_official_checkpoint, read_checkpoint, to_official)
from training.models.perturb import perturb_weights
from training.reporting.model_summary import count_config

SAMPLES = ["fomm-sample-64", "mraa-sample-64", "tpsmm-sample-64", "monkeynet-sample-64"]


def _networks(model, avd=None) -> dict:
    nets = dict(model.networks())
    if avd is not None:
        nets["avd"] = avd
    return nets


def _model(name: str, seed: int):
    cfg = load_config(name)
    torch.manual_seed(seed)
    model, avd = build_inference_model(cfg), build_avd_network(cfg)
    if avd is not None:
        avd.eval()
    return cfg, model, avd


# Official key -> shape, derived by hand from the official module code (first-order-model modules/*.py,
# articulated-animation 9b5de78 modules/*.py, TPSMM modules/*.py, monkey-net 0c8aa4e modules/*.py) for the
# official 256-px configs. If our renames were wrong these keys would not appear.
OFFICIAL_KEYS = {
    "fomm-taichi-256": {
        ("kp_detector", "predictor.encoder.down_blocks.0.conv.weight"): (64, 3, 3, 3),
        ("kp_detector", "kp.weight"): (10, 35, 7, 7),  # Hourglass out_filters 32 + 3, pad 0
        ("kp_detector", "jacobian.weight"): (40, 35, 7, 7),
        ("kp_detector", "down.weight"): (3, 1, 13, 13),  # anti-alias x0.25: sigma 1.5, kernel 2*round(6)+1
        ("generator", "dense_motion_network.hourglass.encoder.down_blocks.0.conv.weight"): (128, 44, 3, 3),
        ("generator", "dense_motion_network.mask.weight"): (11, 108, 7, 7),
        ("generator", "dense_motion_network.occlusion.weight"): (1, 108, 7, 7),
        ("generator", "bottleneck.r0.conv1.weight"): (256, 256, 3, 3),
        ("generator", "bottleneck.r5.norm2.running_var"): (256,),
        ("generator", "up_blocks.0.conv.weight"): (128, 256, 3, 3),
        ("generator", "final.weight"): (3, 64, 7, 7),
    },
    "mraa-taichi-256": {
        ("region_predictor", "regions.weight"): (10, 35, 7, 7),
        ("region_predictor", "down.weight"): (3, 1, 13, 13),
        ("bg_predictor", "encoder.down_blocks.0.conv.weight"): (64, 6, 3, 3),
        ("bg_predictor", "fc.weight"): (6, 1024),
        ("generator", "pixelwise_flow_predictor.hourglass.encoder.down_blocks.0.conv.weight"): (128, 44, 3, 3),
        ("generator", "pixelwise_flow_predictor.mask.weight"): (11, 108, 7, 7),
        ("generator", "bottleneck.r0.conv1.weight"): (256, 256, 3, 3),
        ("avd_network", "id_encoder.0.weight"): (256, 60),
        ("avd_network", "id_encoder.9.weight"): (64, 1024),
        ("avd_network", "decoder.0.weight"): (1024, 128),
        ("avd_network", "decoder.9.weight"): (60, 256),
    },
    "tpsmm-taichi-256": {
        ("kp_detector", "fg_encoder.conv1.weight"): (64, 3, 7, 7),
        ("kp_detector", "fg_encoder.layer2.0.downsample.0.weight"): (128, 64, 1, 1),
        ("kp_detector", "fg_encoder.fc.weight"): (100, 512),
        ("bg_predictor", "bg_encoder.conv1.weight"): (64, 6, 7, 7),
        ("bg_predictor", "bg_encoder.fc.weight"): (6, 512),
        ("dense_motion_network", "hourglass.encoder.down_blocks.0.conv.weight"): (128, 84, 3, 3),
        ("dense_motion_network", "maps.weight"): (11, 148, 7, 7),
        ("dense_motion_network", "up.0.conv.weight"): (74, 148, 3, 3),
        ("dense_motion_network", "up.1.conv.weight"): (37, 74, 3, 3),
        ("dense_motion_network", "occlusion.0.weight"): (1, 256, 7, 7),
        ("dense_motion_network", "occlusion.1.weight"): (1, 148, 7, 7),
        ("dense_motion_network", "occlusion.3.weight"): (1, 37, 7, 7),
        ("dense_motion_network", "down.weight"): (3, 1, 13, 13),
        ("inpainting_network", "up_blocks.0.conv.weight"): (256, 512, 3, 3),
        ("inpainting_network", "resblock.5.conv2.weight"): (256, 256, 3, 3),
        ("inpainting_network", "final.weight"): (3, 64, 7, 7),
        ("avd_network", "id_encoder.0.weight"): (256, 100),
        ("avd_network", "decoder.9.weight"): (100, 256),
    },
    "monkeynet-vox-256": {
        ("kp_detector", "predictor.encoder.down_blocks.0.conv.weight"): (64, 3, 1, 3, 3),
        ("kp_detector", "predictor.decoder.conv.weight"): (10, 35, 1, 3, 3),
        ("generator", "appearance_encoder.down_blocks.0.conv.weight"): (64, 3, 1, 3, 3),
        ("generator", "dense_motion_module.group_blocks.0.conv.weight"): (44, 4, 1, 1, 1),
        ("generator", "dense_motion_module.hourglass.encoder.down_blocks.0.conv.weight"): (64, 44, 1, 3, 3),
        ("generator", "dense_motion_module.hourglass.decoder.conv.weight"): (13, 76, 1, 3, 3),
        ("generator", "refinement_module.r0.conv1.weight"): (45, 45, 1, 3, 3),
        ("generator", "refinement_module.conv-last.weight"): (3, 45, 1, 1, 1),
        ("discriminator", "down_blocks.0.conv.weight"): (64, 13, 1, 4, 4),
        ("discriminator", "conv.weight"): (1, 256, 1, 1, 1),
    },
}


@pytest.mark.parametrize("name", sorted(OFFICIAL_KEYS))
def test_official_key_names_and_shapes_at_256(name):
    cfg = load_config(name)
    with torch.device("meta"):
        model, avd = build_inference_model(cfg), build_avd_network(cfg)
    nets = _networks(model, avd)
    official = to_official(cfg, nets)
    for (net, key), shape in OFFICIAL_KEYS[name].items():
        assert key in official[net], (net, key)
        assert tuple(official[net][key].shape) == shape, (net, key, tuple(official[net][key].shape))
    assert detect_layout(official) == cfg.model
    state_dicts, report = convert_official(official, cfg, nets)  # and back: every key and shape fits
    assert report.ok and set(state_dicts) == set(nets)
    for net, sd in state_dicts.items():
        assert set(sd) == set(nets[net].state_dict())


def test_fomm_discriminator_scale_names():
    # official MultiScaleDiscriminator: ModuleDict keyed str(scale).replace('.', '-') of the YAML scales [1, 0.5]
    def gan(p):
        p["discriminator"]["scales"] = [1, 0.5]
    cfg = _variant("fomm-sample-64", gan)
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"loss_weights": cfg.train.loss_weights
                                                                         .model_copy(update={"generator_gan": 1})})})
    torch.manual_seed(0)
    model = build_inference_model(cfg)
    official = to_official(cfg, _networks(model))
    assert {k.split(".")[1] for k in official["discriminator"]} == {"1", "0-5"}
    state_dicts, report = convert_official(official, cfg, _networks(model))
    assert report.ok and set(state_dicts["discriminator"]) == set(model.discriminator.state_dict())
    del official["discriminator"]  # an official checkpoint without D: D keeps its initialisation, reported
    _, report = convert_official(official, cfg, _networks(model))
    assert report.absent == ["discriminator"]


@pytest.mark.parametrize("name", SAMPLES)
def test_official_checkpoint_file_round_trip_gives_identical_outputs(name, tmp_path):
    cfg, model, avd = _model(name, seed=0)
    nets = _networks(model, avd)
    perturb_weights(nets.values(), seed=1)
    official = to_official(cfg, nets, {"epoch": 7})
    # as the official trainers save: DataParallel prefixes, optimiser states, and (torch < 0.4.1) no BN counters
    first = next(iter(official))
    official[first] = {f"module.{k}": v for k, v in official[first].items()}
    official[f"optimizer_{first}"] = {"state": {}, "param_groups": [{"lr": 2e-4, "params": [0]}]}
    stripped = [k for k in official["generator" if "generator" in official else "kp_detector"]
                if k.endswith("num_batches_tracked")]
    target = "generator" if "generator" in official else "kp_detector"
    for k in stripped:
        del official[target][k]
    if cfg.model == "monkeynet":  # early monkey-net checkpoints call the detector 'kp_extractor'
        official["kp_extractor"] = official.pop("kp_detector")
    path = tmp_path / "official.pth.tar"
    torch.save(official, path)

    _, other, _ = _model(name, seed=5)  # a different initialisation, overwritten by the checkpoint
    loaded = load_official(path, cfg, model=other)
    assert loaded.model is other
    report = loaded.report
    assert report.ok and "epoch" in report.ignored and f"optimizer_{first}" in report.ignored
    assert len(report.networks[target].filled) == len(stripped)
    for net, module in _networks(loaded.model, loaded.avd).items():
        ref = nets[net].state_dict()
        for key, value in module.state_dict().items():
            if key.endswith("num_batches_tracked"):
                continue
            assert torch.equal(value, ref[key]), (net, key)

    torch.manual_seed(3)
    source, driving = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = model.reconstruct(source, driving)
        got = loaded.model.reconstruct(source, driving)
    assert torch.equal(got, expected)
    assert expected.std() > 1e-3  # the outputs carry the perturbed weights, not a constant
    if avd is not None:
        assert loaded.avd is not None
        x_id, x_pose = torch.rand(4, avd.input_size), torch.rand(4, avd.input_size)
        with torch.no_grad():
            assert torch.equal(loaded.avd.reconstruct(x_id, x_pose), avd.reconstruct(x_id, x_pose))


def test_load_official_checkpoint_builds_an_inference_model(tmp_path):
    cfg, model, _ = _model("fomm-sample-64", seed=0)
    perturb_weights(_networks(model).values(), seed=2)
    torch.save(to_official(cfg, _networks(model), {"epoch": 1}), tmp_path / "c.pth")
    loaded = load_official_checkpoint(tmp_path / "c.pth", cfg)
    assert not loaded.training and loaded.vgg is None
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.reconstruct(x, x), model.reconstruct(x, x))


def test_checkpoint_of_another_model_is_named(tmp_path):
    cfg, model, _ = _model("fomm-sample-64", seed=0)
    torch.save(to_official(cfg, _networks(model)), tmp_path / "fomm.pth.tar")
    with pytest.raises(CheckpointMismatchError) as err:
        load_official(tmp_path / "fomm.pth.tar", load_config("mraa-sample-64"))
    msg = str(err.value)
    assert "first-order-model" in msg and "fomm.pth.tar" in msg and "mraa" in msg


def _variant(name: str, edit) -> object:
    raw = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())
    edit(raw["model_params"])
    return validate_config(raw)


@pytest.mark.parametrize("edit, key, shapes", [
    # 5 instead of 10 keypoints
    (lambda p: p["common"].update(num_kp=5), "kp_detector.kp.weight", ("(5, 11, 7, 7)", "(10, 11, 7, 7)")),
    # keypoints detected at x0.25 instead of x0.5 (a setting tied to the training resolution)
    (lambda p: p["kp_detector"].update(scale_factor=0.25), "kp_detector.down.weight",
     ("(3, 1, 13, 13)", "(3, 1, 5, 5)")),
])
def test_checkpoint_of_another_architecture_names_every_mismatch(tmp_path, edit, key, shapes):
    other = _variant("fomm-sample-64", edit)
    torch.manual_seed(0)
    model = build_inference_model(other)
    torch.save(to_official(other, _networks(model)), tmp_path / "other.pth.tar")
    with pytest.raises(CheckpointMismatchError) as err:
        load_official(tmp_path / "other.pth.tar", load_config("fomm-sample-64"))
    msg = str(err.value)
    assert key in msg and all(s in msg for s in shapes), msg
    assert "fomm-sample-64" in msg and not err.value.report.ok


def test_unreadable_and_unknown_checkpoints(tmp_path):
    cfg = load_config("fomm-sample-64")
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_official_checkpoint(tmp_path / "nope.pth", cfg)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="junk.pth"):
        read_checkpoint(tmp_path / "junk.pth")
    torch.save({"weights": {}, "step": 3}, tmp_path / "unknown.pth")
    with pytest.raises(ValueError, match=r"top-level keys \['step', 'weights'\]"):
        load_official_checkpoint(tmp_path / "unknown.pth", cfg)
    torch.save({"format": "motionpipe.train-checkpoint", "model": "fomm", "config": {}, "networks": {}},
               tmp_path / "ours.pth")
    with pytest.raises(ValueError, match="motionpipe training checkpoint"):
        load_official_checkpoint(tmp_path / "ours.pth", cfg)
    # a required network missing from an otherwise official checkpoint
    _, model, _ = _model("fomm-sample-64", seed=0)
    official = to_official(cfg, _networks(model))
    del official["kp_detector"]
    torch.save(official, tmp_path / "no_kp.pth")
    with pytest.raises(CheckpointMismatchError, match="no 'kp_detector' entry"):
        load_official_checkpoint(tmp_path / "no_kp.pth", cfg)


def test_models_table_matches_official_counts(capsys):
    assert models_command(argparse.Namespace(config=["fomm-taichi-256", "tpsmm-ted-384", "mraa-sample-64"])) == 0
    out = capsys.readouterr().out
    assert "59,790,759" in out and "85,095,490" in out and "n/a" in out
    rows = {(r.config, r.network): r for r in count_config(load_config("monkeynet-taichi-256"))}
    total = rows[("monkeynet-taichi-256", "total (no D/AVD)")]
    assert total.params == 94_762_419 and abs(total.diff_percent) < 1
    assert abs(rows[("monkeynet-taichi-256", "discriminator")].diff_percent) < 1


@pytest.mark.parametrize("name", SAMPLES)
def test_converted_official_checkpoint_gives_identical_frames_in_every_mode(name, tmp_path):
    """Through an official-layout file and back, every animation mode gives the same frames, bit for bit."""
    import numpy as np

    from training.evaluation.animate import Animator
    cfg, model, avd = _model(name, seed=0)
    nets = _networks(model, avd)
    perturb_weights(nets.values(), seed=1)
    path = tmp_path / "official.pth.tar"
    torch.save(to_official(cfg, nets, {"epoch": 3}), path)
    loaded = load_official(path, cfg)
    ours, theirs = Animator(cfg, model, avd), Animator(cfg, loaded.model, loaded.avd)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(5)]
    expected = torch.cat(list(ours.reconstruct(frames, batch_size=3)))
    assert torch.equal(torch.cat(list(theirs.reconstruct(frames, batch_size=3))), expected)
    assert expected.std() > 1e-3
    modes = ["standard", "relative"] + (["avd"] if avd is not None else [])
    for mode in modes:
        a = torch.cat(list(ours.animate(frames[0], frames[1:], mode, batch_size=2)))
        b = torch.cat(list(theirs.animate(frames[0], frames[1:], mode, batch_size=2)))
        assert torch.equal(a, b), mode


@pytest.mark.parametrize("name", SAMPLES)
def test_official_checkpoint_under_the_other_warping_convention_is_refused(name, tmp_path):
    from training.config import ConfigError
    cfg, model, avd = _model(name, seed=0)
    path = tmp_path / "official.pth.tar"
    torch.save(to_official(cfg, _networks(model, avd)), path)
    flipped = cfg.model_copy(update={"model_params": cfg.model_params.model_copy(
        update={"align_corners": not cfg.model_params.align_corners})})
    with pytest.raises(ConfigError, match=r"model_params\.align_corners"):
        load_official(path, flipped)
