"""TPSMM: official parameter counts, forward/backward at 64x64, TPS identities, the dropout schedule, the
warp loss's gradient path and the config rules."""

import math

import pytest
import torch
import yaml

from training.config import CONFIG_DIR, ConfigError, load_config, validate_config
from training.models import build_model
from training.models.blocks import count_parameters
from training.models.grids import make_coordinate_grid
from training.models.tpsmm import DenseMotionNetwork, KeypointTps, TPSMMModel, dropout_probability, dropout_softmax
from training.models.vgg import Vgg19


def _raw(name):
    return yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())


def _pair(b=2, size=64):
    g = torch.Generator().manual_seed(1)
    return torch.rand(b, 3, size, size, generator=g), torch.rand(b, 3, size, size, generator=g)


# -----------------------------------------------------------------------------
# parameter counts (model_anchors.md §4 and table (a))


@pytest.mark.parametrize("name", ["tpsmm-taichi-256", "tpsmm-ted-384"])
def test_parameter_counts_match_official(name):
    with torch.device("meta"):
        m = build_model(load_config(name), vgg=Vgg19())
    counts = {key: count_parameters(net) for key, net in m.networks().items()}
    anchors = {"kp_detector": 11.228e6, "bg_predictor": 11.189e6, "dense_motion_network": 37.941e6,
               "inpainting_network": 24.737e6}
    for key, ref in anchors.items():
        assert abs(counts[key] - ref) < 1e3, (key, counts[key])  # equal at the anchors' 3 decimals
    total = sum(counts.values())  # the anchors' 85.10 M excludes the AVD network and the frozen VGG
    assert abs(total - 85.10e6) / 85.10e6 < 0.01 and total == 85_095_490
    assert set(m.optimizer_groups()) == {"generator", "bg_predictor"}


# -----------------------------------------------------------------------------
# forward / backward


@pytest.fixture(scope="module")
def sample_model():
    torch.manual_seed(0)
    return build_model(load_config("tpsmm-sample-64"), vgg=Vgg19())


def test_forward_backward_tiny(sample_model):
    m = sample_model.train()
    assert isinstance(m, TPSMMModel)
    m.zero_grad(set_to_none=True)
    m.set_epoch(1)  # dropout on (P = 0.5 in the sample config)
    s, d = _pair()
    losses, gen = m(s, d)
    assert set(losses) == {"perceptual", "equivariance_value", "warp_loss", "bg"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert gen["prediction"].shape == (2, 3, 64, 64) and gen["deformed"].shape == (2, 3, 64, 64)
    assert gen["kp_source"]["fg_kp"].shape == (2, 10, 2) and gen["kp_source"]["fg_kp"].abs().max() < 1
    assert [tuple(o.shape) for o in gen["occlusion_map"]] == [(2, 1, r, r) for r in (8, 16, 32, 64)]
    assert gen["contribution_maps"].shape == (2, 3, 16, 16) and gen["deformation"].shape == (2, 16, 16, 2)
    assert gen["deformed_source"].shape == (2, 3, 3, 16, 16)
    assert torch.allclose(gen["bg_param"][:, 2], torch.tensor([0.0, 0.0, 1.0]).expand(2, 3))
    sum(losses.values()).backward()
    m.clip_gradients()
    for name, net in m.networks().items():
        grads = [p.grad for p in net.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name
        if name != "inpainting_network":  # clipped: inf-norm <= clip_grad_norm
            assert max(g.abs().max() for g in grads) <= 10 + 1e-6
    assert all(p.grad is None for p in m.vgg.parameters())

    m.eval()
    out = m.reconstruct(s, d)
    assert out.shape == (2, 3, 64, 64) and 0 <= out.min() and out.max() <= 1


def test_bg_predictor_starts_at_identity_and_bg_loss_is_the_cycle(sample_model):
    m = sample_model.train()
    s, d = _pair()
    assert torch.allclose(m.bg_predictor(s, d), torch.eye(3).expand(2, 3, 3))
    with torch.no_grad():
        m.bg_predictor.bg_encoder.fc.bias.add_(torch.tensor([0.1, 0.0, 0.05, 0.0, -0.1, 0.0]))
    try:
        m.set_epoch(5)
        losses, gen = m(s, d)
        a, a_rev = m.bg_predictor(s, d), m.bg_predictor(d, s)
        expected = 10 * (torch.eye(3) - a @ a_rev).abs().mean()
        assert losses["bg"] > 0.01 and torch.allclose(losses["bg"], expected, rtol=1e-4)
    finally:
        with torch.no_grad():
            m.bg_predictor.bg_encoder.fc.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))


def test_warp_loss_only_trains_the_flow():
    """Encoder features and occlusion masks are detached: only KP detector and flow head get gradients."""
    raw = _raw("tpsmm-sample-64")
    raw["train"]["loss_weights"] = {"warp_loss": 10}
    m = build_model(validate_config(raw))
    m.train().set_epoch(5)
    losses, _ = m(*_pair())
    assert set(losses) == {"warp_loss"} and losses["warp_loss"] > 0
    losses["warp_loss"].backward()
    assert all(p.grad is None for p in m.inpainting_network.parameters())
    assert all(p.grad is None for p in m.dense_motion_network.occlusion.parameters())
    assert m.dense_motion_network.maps.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.kp_detector.parameters())


# -----------------------------------------------------------------------------
# thin-plate splines


def test_zero_coefficient_tps_is_identity():
    b, k, n = 2, 3, 5
    controls = torch.rand(b, k, n, 2) * 2 - 1
    affine = torch.eye(2, 3).expand(b, k, 2, 3)
    tps = KeypointTps(affine=affine, weights=torch.zeros(b, k, n, 2), controls=controls)
    grid = make_coordinate_grid(7, 9)
    assert torch.equal(tps.grid(7, 9), grid.expand(b, k, 7, 9, 2))


def test_tps_fit_interpolates_and_reproduces_affine_motion():
    kp_d = torch.rand(2, 3, 5, 2) * 1.6 - 0.8
    kp_s = torch.rand(2, 3, 5, 2) * 1.6 - 0.8
    # unregularised: an exact interpolant of the 5 pairs
    tps = KeypointTps.fit(kp_d, kp_s, regularization=0.0)
    for bi in range(2):
        for ki in range(3):
            assert torch.allclose(tps.warp_coordinates(kp_d[bi, ki])[bi, ki], kp_s[bi, ki], atol=1e-4)
    # identical keypoints -> identity; affinely related keypoints -> that affine everywhere
    grid = make_coordinate_grid(8, 8)
    assert torch.allclose(KeypointTps.fit(kp_d, kp_d, regularization=0.0).grid(8, 8), grid.expand(2, 3, 8, 8, 2),
                          atol=1e-4)
    a, t = torch.tensor([[0.9, 0.2], [-0.1, 1.1]]), torch.tensor([0.05, -0.1])
    fitted = KeypointTps.fit(kp_d, kp_d @ a.T + t, regularization=0.0).grid(8, 8)
    assert torch.allclose(fitted, (grid @ a.T + t).expand(2, 3, 8, 8, 2), atol=1e-4)
    # the official +0.01 diagonal regularisation smooths: same pairs, no longer an exact interpolant
    reg = KeypointTps.fit(kp_d, kp_s)
    assert not torch.allclose(reg.warp_coordinates(kp_d[0, 0])[0, 0], kp_s[0, 0], atol=1e-3)


# -----------------------------------------------------------------------------
# dropout-softmax schedule (paper Sec. 3.1, Eq. 7-8)


def test_dropout_schedule_official_values():
    taichi = load_config("tpsmm-taichi-256").train.dropout
    ps = [dropout_probability(e, taichi) for e in range(40)]
    assert ps[0] == 0.0 and math.isclose(ps[5], 0.35) and math.isclose(ps[9], 0.63)
    assert all(math.isclose(p, 0.7) for p in ps[10:35])  # capped at dropout_maxp
    assert all(p is None for p in ps[35:])  # off from dropout_epoch on
    ted = load_config("tpsmm-ted-384").train.dropout
    assert math.isclose(dropout_probability(20, ted), 0.5) and dropout_probability(35, ted) is None


def test_dropout_is_applied_while_training_only(sample_model):
    m = sample_model
    m.train()
    m.set_epoch(1)
    assert m.dropout_p() == 0.5
    m.set_epoch(2)
    assert m.dropout_p() is None
    m.set_epoch(1)
    m.eval()
    assert m.dropout_p() is None


def test_dropout_softmax_drops_tps_channels_and_keeps_background():
    logits = torch.randn(64, 5, 4, 4)
    # P -> 1: every TPS channel dropped, all weight on the background (up to the official 1e-6 in the
    # partition function, relative to exp(bg - max over all channels, dropped ones included))
    out = dropout_softmax(logits, 0.999999)
    assert torch.equal(out[:, 1:], torch.zeros_like(out[:, 1:]))
    assert torch.allclose(out[:, 0], torch.ones(64, 4, 4), atol=1e-3)
    # P = 0: the softmax (up to the official 1e-6 in the partition function)
    assert torch.allclose(dropout_softmax(logits, 0.0), torch.softmax(logits, 1), atol=1e-5)
    # P = 0.5: whole (sample, channel) maps dropped at about that rate, the rest renormalised
    out = dropout_softmax(logits, 0.5)
    dropped = (out[:, 1:].flatten(2).amax(-1) == 0).float().mean()
    assert 0.35 < dropped < 0.65
    assert torch.allclose(out.sum(1), torch.ones(64, 4, 4), atol=1e-3)


def test_dense_motion_dropout_changes_the_flow_mixture():
    net = DenseMotionNetwork(num_tps=2, num_channels=3, block_expansion=8, max_features=32, num_blocks=3,
                             scale_factor=0.25, num_occlusion_masks=4, align_corners=True)
    src = torch.rand(2, 3, 64, 64)
    kp_d, kp_s = torch.rand(2, 10, 2) * 2 - 1, torch.rand(2, 10, 2) * 2 - 1
    off = net(src, kp_d, kp_s)["contribution_maps"]
    assert (off > 0).all()
    on = net(src, kp_d, kp_s, dropout_p=0.999999)["contribution_maps"]
    assert torch.equal(on[:, 1:], torch.zeros_like(on[:, 1:]))


# -----------------------------------------------------------------------------
# config rules


def test_config_rules():
    raw = _raw("tpsmm-taichi-256")
    raw["train"]["transform"]["kernel"] = "l1"
    with pytest.raises(ConfigError, match="Euclidean"):
        validate_config(raw, "tpsmm-taichi-256.yaml")
    raw = _raw("tpsmm-taichi-256")
    del raw["train"]["lr"]["bg_predictor"]
    with pytest.raises(ConfigError, match="bg_predictor"):
        validate_config(raw)
    raw = _raw("tpsmm-taichi-256")
    raw["model_params"]["dense_motion"]["scale_factor"] = 0.0625  # 4 masks would need 0 hourglass levels
    with pytest.raises(ConfigError, match="occlusion masks"):
        validate_config(raw)
    assert load_config("tpsmm-taichi-256").model_params.avd_network.id_bottle_size == 128


def test_state_dict_follows_the_official_layout():
    """Official TPSMM checkpoints ({kp_detector, bg_predictor, dense_motion_network, inpainting_network}) load by
    key: names and shapes below are those of the public code with the taichi-256 config."""
    with torch.device("meta"):
        m = build_model(load_config("tpsmm-taichi-256"), vgg=Vgg19())
    expected = {
        "kp_detector": {"fg_encoder.conv1.weight": (64, 3, 7, 7), "fg_encoder.fc.weight": (100, 512),
                        "fg_encoder.layer2.0.downsample.1.running_var": (128,)},
        "bg_predictor": {"bg_encoder.conv1.weight": (64, 6, 7, 7), "bg_encoder.fc.bias": (6,)},
        "dense_motion_network": {"down.weight": (3, 1, 13, 13),
                                 "hourglass.encoder.down_blocks.0.conv.weight": (128, 84, 3, 3),
                                 "hourglass.decoder.up_blocks.0.conv.weight": (1024, 1024, 3, 3),
                                 "maps.weight": (11, 148, 7, 7), "up.1.conv.weight": (37, 74, 3, 3),
                                 "occlusion.0.weight": (1, 256, 7, 7), "occlusion.3.weight": (1, 37, 7, 7)},
        "inpainting_network": {"first.conv.weight": (64, 3, 7, 7), "down_blocks.2.norm.weight": (512,),
                               "resblock.5.conv2.weight": (256, 256, 3, 3), "up_blocks.2.conv.weight": (64, 256, 3, 3),
                               "final.weight": (3, 64, 7, 7)},
    }
    nets = m.networks()
    for net, keys in expected.items():
        state = nets[net].state_dict()
        for key, shape in keys.items():
            assert tuple(state[key].shape) == shape, (net, key)


def _blob_image(center):
    g = make_coordinate_grid(64, 64)
    r = torch.exp(-((g - torch.tensor(center)) ** 2).sum(-1) / 0.05)
    return torch.stack([r, 1 - r, 0.5 * r + 0.2]).unsqueeze(0)


@pytest.mark.slow
def test_overfit_one_pair():
    """10 Adam steps on one pair (every loss, one pyramid scale): reconstruction L1 falls >= 2.5x (measured 2.9x
    to 5x: the exact curve depends on the CPU's convolution kernels)."""
    raw = _raw("tpsmm-sample-64")
    raw["train"]["scales"] = [1]
    m = build_model(validate_config(raw), vgg=Vgg19()).train()
    m.set_epoch(5)
    opt = torch.optim.Adam([p for g in m.optimizer_groups().values() for p in g], lr=2e-3, betas=(0.5, 0.999))
    src, drv = _blob_image([-0.3, -0.2]), _blob_image([0.3, 0.25])
    history = []
    for _ in range(10):
        losses, gen = m(src, drv)
        opt.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        m.clip_gradients()
        opt.step()
        history.append((gen["prediction"] - drv).abs().mean().item())
    assert history[-1] < history[0] / 2.5, history
