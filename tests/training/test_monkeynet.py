"""Monkey-Net: official parameter counts (vox-256), forward/backward of both adversarial steps at 64x64,
covariance keypoints, the initial dense motion, and the derived taichi-256 config."""

import pytest
import torch
import yaml

from training.config import CONFIG_DIR, ConfigError, load_config, validate_config
from training.models import build_model
from training.models.blocks import count_parameters
from training.models.grids import make_coordinate_grid, region2gaussian
from training.models.monkeynet import MonkeyNetModel, gaussian2kp, smallest_singular_value


def _pair(b=2, size=64):
    g = torch.Generator().manual_seed(1)
    return torch.rand(b, 3, size, size, generator=g), torch.rand(b, 3, size, size, generator=g)


# -----------------------------------------------------------------------------
# parameter counts (model_anchors.md §1): KP 14.13 M, G 80.63 M (dense motion 14.16 M), D 1.72 M


def test_parameter_counts_match_official_vox_256():
    with torch.device("meta"):
        m = build_model(load_config("monkeynet-vox-256"))
    counts = {"kp": count_parameters(m.kp_detector), "gen": count_parameters(m.generator),
              "dense": count_parameters(m.generator.dense_motion_module), "disc": count_parameters(m.discriminator)}
    for key, ref in {"kp": 14.13e6, "gen": 80.63e6, "dense": 14.16e6, "disc": 1.72e6}.items():
        assert abs(counts[key] - ref) < 0.005e6, (key, counts[key])  # equal at the anchors' 2 decimals
    total = counts["kp"] + counts["gen"]
    assert abs(total - 94.8e6) / 94.8e6 < 0.01 and total == 94_762_419
    assert set(m.optimizer_groups()) == {"generator", "discriminator", "kp_detector"}


def test_taichi_256_is_the_vox_256_architecture():
    taichi, vox = load_config("monkeynet-taichi-256"), load_config("monkeynet-vox-256")
    assert taichi.model_params == vox.model_params
    assert taichi.frame_size == (256, 256)
    t = taichi.train
    assert (t.batch_size, t.lr, t.loss_weights.reconstruction) == (20, vox.train.lr, (10, 10, 10, 10, 1))
    assert t.loss_weights.generator_gan == 1 and t.loss_weights.discriminator_gan == 1
    assert (t.detach_kp_generator, t.detach_kp_discriminator) == (False, True)


def test_config_rules():
    raw = yaml.safe_load((CONFIG_DIR / "monkeynet-taichi-256.yaml").read_text())
    raw["train"]["loss_weights"]["reconstruction"] = [10, 10, 10, 1]  # D has 4 blocks: 5 maps
    with pytest.raises(ConfigError, match="5 weights"):
        validate_config(raw, "monkeynet-taichi-256.yaml")
    raw = yaml.safe_load((CONFIG_DIR / "monkeynet-taichi-256.yaml").read_text())
    del raw["train"]["lr"]["kp_detector"]
    with pytest.raises(ConfigError, match="kp_detector"):
        validate_config(raw)


# -----------------------------------------------------------------------------
# both training steps


def test_generator_and_discriminator_steps():
    m = build_model(load_config("monkeynet-sample-64")).train()
    assert isinstance(m, MonkeyNetModel)
    s, d = _pair()
    losses, gen = m(s, d)
    assert set(losses) == {"reconstruction", "feature_matching", "gen_gan"}
    assert all(torch.isfinite(v) for v in losses.values())
    # the first feature-matching term is the pixel L1 on the discriminator's input, weight 10
    assert torch.allclose(losses["reconstruction"], 10 * (gen["prediction"] - d).abs().mean())
    assert gen["prediction"].shape == (2, 3, 64, 64) and gen["deformed"].shape == (2, 3, 64, 64)
    assert gen["kp_driving"]["mean"].shape == (2, 4, 2) and gen["kp_driving"]["var"].shape == (2, 4, 2, 2)
    assert gen["mask"].shape == (2, 5, 32, 32) and gen["deformation"].shape == (2, 32, 32, 2)
    sum(losses.values()).backward()
    for name in ("generator", "kp_detector"):
        grads = [p.grad for p in getattr(m, name).parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name

    m.zero_grad(set_to_none=True)  # the trainer zeroes D before its step (the G step's feature matching reaches D)
    d_losses = m.discriminator_losses(d, gen)
    assert set(d_losses) == {"disc_gan"} and torch.isfinite(d_losses["disc_gan"])
    d_losses["disc_gan"].backward()
    assert all(p.grad is None for p in m.generator.parameters())  # detached prediction
    assert all(p.grad is None for p in m.kp_detector.parameters())  # detach_kp_discriminator
    assert all(p.grad is not None for p in m.discriminator.parameters())

    m.eval()
    out = m.reconstruct(s, d)
    assert out.shape == (2, 3, 64, 64) and 0 <= out.min() and out.max() <= 1


def test_identical_keypoints_give_identity_flow_at_init():
    """The mask head starts at zero weights: with equal keypoints every shift is zero, so is the correction."""
    m = build_model(load_config("monkeynet-sample-64")).eval()
    g = make_coordinate_grid(64, 64)
    blob = torch.exp(-((g - torch.tensor([0.2, -0.3])) ** 2).sum(-1) / 0.1)
    src = torch.stack([blob, 0.5 + 0.4 * g[..., 0], 0.5 + 0.4 * g[..., 1]]).unsqueeze(0)  # smooth image
    kp = m.kp_detector(src)
    out = m.generator(src, kp, kp)
    assert torch.allclose(out["deformation"][0], make_coordinate_grid(32, 32), atol=1e-6)
    # (not exactly the identity at 64 px: like the official trilinear resize, align_corners=False zooms slightly)
    assert (out["deformed"] - src)[..., 2:-2, 2:-2].abs().max() < 0.03
    bg = torch.exp(torch.tensor(2.0))  # official bg_init logit 2, keypoint logits 0
    assert torch.allclose(out["mask"][0, :, 0, 0], torch.tensor([bg, 1, 1, 1, 1]) / (bg + 4))


# -----------------------------------------------------------------------------
# keypoints with covariance


def test_gaussian2kp_recovers_mean_and_covariance():
    mean = torch.tensor([[[0.2, -0.1]]])
    covar = torch.tensor([[[[0.02, 0.008], [0.008, 0.03]]]])
    heat = region2gaussian(mean, covar, (128, 128))
    heat = heat / heat.sum(dim=(-1, -2), keepdim=True)
    kp = gaussian2kp(heat)
    assert torch.allclose(kp["mean"], mean, atol=1e-3)
    assert torch.allclose(kp["var"], covar, atol=1e-3)


def test_covariance_clipping_and_stable_singular_value():
    m = torch.randn(100, 2, 2)
    assert torch.allclose(smallest_singular_value(m), torch.linalg.svdvals(m)[:, -1], rtol=1e-4, atol=1e-6)
    thin = torch.tensor([[1.0, 0.0], [0.0, 1e-6]])  # the official sqrt((s1 - s2)/2) gives 0 here in fp32
    assert torch.isclose(smallest_singular_value(thin), torch.tensor(1e-6), rtol=1e-3)
    # a nearly one-pixel-wide heatmap: clipping raises sigma_min to clip_variance, keeps the orientation
    heat = torch.zeros(1, 1, 32, 32)
    heat[0, 0, 16, 4:28] = 1.0 / 24
    kp = gaussian2kp(heat, clip_variance=0.001)
    assert torch.isclose(torch.linalg.eigvalsh(kp["var"])[0, 0, 0], torch.tensor(0.001), rtol=1e-3)
    raw = gaussian2kp(heat)["var"]
    assert torch.allclose(kp["var"] / kp["var"][..., 0, 0, None, None], raw / raw[..., 0, 0, None, None])


def test_state_dict_follows_the_official_layout():
    """Official keys (after OFFICIAL_KEY_RENAMES) and shapes (3-D kernels squeezed) for the vox-256 config."""
    from training.models.monkeynet import OFFICIAL_KEY_RENAMES
    with torch.device("meta"):
        m = build_model(load_config("monkeynet-vox-256"))
    state = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    official = {
        "kp_detector.predictor.decoder.conv.weight": (10, 35, 3, 3),
        "kp_detector.predictor.encoder.down_blocks.4.norm.running_mean": (1024,),
        "generator.dense_motion_module.group_blocks.1.conv.weight": (44, 4, 1, 1),
        "generator.dense_motion_module.hourglass.decoder.conv.bias": (13,),
        "generator.appearance_encoder.down_blocks.6.conv.weight": (1024, 1024, 3, 3),
        "generator.video_decoder.up_blocks.0.conv.weight": (1024, 1034, 3, 3),
        "generator.refinement_module.r3.norm2.weight": (45,),
        "generator.refinement_module.conv-last.weight": (3, 45, 1, 1),
        "discriminator.down_blocks.0.conv.weight": (64, 13, 4, 4),
        "discriminator.conv.weight": (1, 256, 1, 1),
    }
    for key, shape in official.items():
        for old, new in OFFICIAL_KEY_RENAMES.items():
            key = key.replace(old, new)
        assert state[key] == shape, key


def _blob_image(center):
    g = make_coordinate_grid(64, 64)
    r = torch.exp(-((g - torch.tensor(center)) ** 2).sum(-1) / 0.05)
    return torch.stack([r, 1 - r, 0.5 * r + 0.2]).unsqueeze(0)


def test_overfit_one_pair():
    """40 alternating G/D Adam steps on one pair: the reconstruction L1 must fall at least 4x (measured ~12x)."""
    m = build_model(load_config("monkeynet-sample-64")).train()
    groups = m.optimizer_groups()
    opt_g = torch.optim.Adam(groups["generator"] + groups["kp_detector"], lr=2e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(groups["discriminator"], lr=2e-3, betas=(0.5, 0.999))
    src, drv = _blob_image([-0.3, -0.2]), _blob_image([0.3, 0.25])
    history = []
    for _ in range(40):
        losses, gen = m(src, drv)
        opt_g.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        opt_g.step()
        opt_d.zero_grad(set_to_none=True)
        m.discriminator_losses(drv, gen)["disc_gan"].backward()
        opt_d.step()
        history.append((gen["prediction"] - drv).abs().mean().item())
    assert history[-1] < history[0] / 4, history[::5]
