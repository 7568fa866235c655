"""MRAA's toy experiment: the rotated-rectangles data, the PCA head's angle on a perfect heatmap, a tiny
training sweep in which the PCA head must beat both other heads, and ``motionpipe toy`` writing its table
and plot."""

import argparse
import json
import math

import numpy as np
import pytest
import torch

from pipelines.commands.toy import add_toy_parser
from training.experiments.angle_nets import NETWORKS, NetSize, build_angle_net, pca_angle, wrap_line_angle
from training.experiments.rectangles import make_rectangles
from training.experiments.toy import ToyConfig, run_toy

TINY_NET = NetSize(image_size=32, block_expansion=8, max_features=64, num_blocks=3)


def test_rectangles_are_deterministic_labelled_and_nested():
    data = make_rectangles(64, 32, seed=3)
    assert data.images.shape == (64, 3, 32, 32) and data.angles.shape == (64,)
    assert 0 <= data.angles.min() and data.angles.max() <= 90
    assert data.images.min() >= 0 and data.images.max() <= 1
    assert torch.equal(make_rectangles(64, 32, seed=3).images, data.images)
    assert not torch.equal(make_rectangles(64, 32, seed=4).images, data.images)
    assert torch.equal(data.subset(16).images, data.images[:16])
    # every rectangle lies inside the frame: its border pixels are black
    border = torch.cat([data.images[..., 0, :], data.images[..., -1, :], data.images[..., :, 0],
                        data.images[..., :, -1]], dim=-1)
    assert border.max() == 0
    with pytest.raises(ValueError):
        data.subset(65)


def test_the_pca_head_reads_the_label_from_the_rectangle_itself():
    # the ideal heatmap (the rectangle's own anti-aliased mask) gives back the label: the labels follow the
    # models' (x, y) convention, and arctan(U10 / U00) with the wrap covers the whole 0-90 degree range
    data = make_rectangles(256, 32, seed=0)
    mask = data.images.amax(dim=1, keepdim=True)
    heat = mask / mask.sum(dim=(2, 3), keepdim=True)
    err = (torch.rad2deg(pca_angle(heat)) - data.angles).abs()
    assert err.max() < 0.5, err.max()
    assert data.angles.min() < 2 and data.angles.max() > 88  # near both ends of the range, without wrapping
    # the representative of a line angle sits in [-45, 135) degrees
    wrapped = wrap_line_angle(torch.deg2rad(torch.tensor([-100.0, -45.0, 0.0, 90.0, 134.0, 135.0, 200.0])))
    np.testing.assert_allclose(torch.rad2deg(wrapped).numpy(), [80, -45, 0, 90, 134, -45, 20], atol=1e-4)


@pytest.mark.parametrize("name", NETWORKS)
def test_every_network_predicts_one_angle_per_image_and_starts_mid_range(name):
    torch.manual_seed(0)
    net = build_angle_net(name, TINY_NET).eval()
    out = net(make_rectangles(4, 32, seed=0).images)
    assert out.shape == (4,) and torch.isfinite(out).all()
    if name != "pca":
        assert (out - math.pi / 4).abs().max() < 0.3


def test_the_pca_head_beats_regression_and_naive_on_the_test_set():
    """The paper's finding on a run small enough for a test (2 x 64 samples, 32 px, 30 epochs; seeds fixed)."""
    cfg = ToyConfig(net=TINY_NET, train_sizes=(64,), test_size=64, epochs=30)
    result = run_toy(cfg, log=lambda line: None)
    err = {name: result.errors[name][64] for name in NETWORKS}
    assert err["pca"] < 0.5 * min(err["regression"], err["naive"]), err
    assert err["pca"] < 3.0, err


def test_cli_writes_the_table_and_the_plot(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="motionpipe")
    add_toy_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["toy", "--out", str(tmp_path), "--sizes", "16,8", "--epochs", "1", "--threads", "1"])
    assert args.func(args) == 0
    table = json.loads((tmp_path / "toy_experiment.json").read_text())
    assert table["config"]["train_sizes"] == [8, 16] and table["config"]["net"]["image_size"] == 32
    assert set(table["test_error_deg"]) == set(NETWORKS)
    assert all(set(v) == {"8", "16"} for v in table["test_error_deg"].values())
    png = (tmp_path / "toy_experiment.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "toy experiment (reduced)" in capsys.readouterr().out
