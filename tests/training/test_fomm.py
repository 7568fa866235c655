"""FOMM: official parameter counts, forward/backward at 64x64, GAN path, and a one-pair overfit check."""

import pytest
import torch
import yaml

from training.config import CONFIG_DIR, load_config, validate_config
from training.models import build_model
from training.models.blocks import count_parameters
from training.models.fomm import FOMMModel, KPDetector
from training.models.grids import make_coordinate_grid
from training.models.vgg import Vgg19


def _build_meta(cfg):
    with torch.device("meta"):
        return build_model(cfg, vgg=Vgg19())


@pytest.mark.parametrize("name", ["fomm-taichi-256", "fomm-ted-384"])
def test_parameter_counts_match_official(name):
    # model_anchors.md §2: KP 14.215 M, dense motion 37.730 M, generator 45.575 M, G + KP 59.79 M
    m = _build_meta(load_config(name))
    counts = {"kp": count_parameters(m.kp_detector), "dense": count_parameters(m.generator.dense_motion_network),
              "gen": count_parameters(m.generator)}
    for key, ref in {"kp": 14.215e6, "dense": 37.730e6, "gen": 45.575e6}.items():
        assert abs(counts[key] - ref) / ref < 0.001, (key, counts[key])
    total = counts["kp"] + counts["gen"]
    assert abs(total - 59.79e6) / 59.79e6 < 0.01 and total == 59_790_759
    assert m.discriminator is None  # generator_gan 0: not trained, not built


def test_discriminator_count_and_gan_path():
    raw = yaml.safe_load((CONFIG_DIR / "fomm-taichi-256.yaml").read_text())
    raw["train"]["loss_weights"]["generator_gan"] = 1
    with torch.device("meta"):
        d = build_model(validate_config(raw), vgg=Vgg19()).discriminator
    assert count_parameters(d) == 2_758_849  # anchors: 2.759 M
    raw["model_params"]["discriminator"]["use_kp"] = True
    with torch.device("meta"):
        d = build_model(validate_config(raw), vgg=Vgg19()).discriminator
    assert count_parameters(d) == 2_769_089  # anchors: 2.769 M with use_kp

    raw = yaml.safe_load((CONFIG_DIR / "fomm-sample-64.yaml").read_text())
    raw["train"]["loss_weights"]["generator_gan"] = 1
    raw["model_params"]["discriminator"]["use_kp"] = True
    m = build_model(validate_config(raw), vgg=Vgg19())
    s, dr = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    losses, gen = m(s, dr)
    assert {"gen_gan", "feature_matching"} <= set(losses)
    d_losses = m.discriminator_losses(dr, gen)
    d_losses["disc_gan"].backward()
    assert all(p.grad is None for p in m.generator.parameters())  # D step sees detached predictions
    assert any(p.grad is not None for p in m.discriminator.parameters())
    assert set(m.optimizer_groups()) == {"generator", "kp_detector", "discriminator"}


def test_forward_backward_tiny():
    cfg = load_config("fomm-sample-64")
    m = build_model(cfg, vgg=Vgg19())
    assert isinstance(m, FOMMModel)
    s, d = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    losses, gen = m(s, d)
    assert set(losses) == {"perceptual", "equivariance_value", "equivariance_jacobian"}
    assert gen["prediction"].shape == (2, 3, 64, 64)
    assert gen["kp_source"]["value"].shape == (2, 10, 2) and gen["kp_source"]["jacobian"].shape == (2, 10, 2, 2)
    assert gen["mask"].shape == (2, 11, 32, 32) and gen["occlusion_map"].shape == (2, 1, 32, 32)
    assert torch.allclose(gen["mask"].sum(1), torch.ones(2, 32, 32), atol=1e-5)
    assert gen["sparse_deformed"].shape == (2, 11, 3, 32, 32)
    sum(losses.values()).backward()
    for name, net in [("kp", m.kp_detector), ("gen", m.generator)]:
        grads = [p.grad for p in net.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name
    assert all(p.grad is None for p in m.vgg.parameters())


def test_mixed_precision_keeps_geometry_in_fp32():
    raw = yaml.safe_load((CONFIG_DIR / "fomm-sample-64.yaml").read_text())
    raw["train"]["loss_weights"]["perceptual"] = []  # bf16 VGG on a CPU is slow and beside the point here
    m = build_model(validate_config(raw))
    s, d = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses, gen = m(s, d)
    assert gen["kp_driving"]["value"].dtype == torch.float32
    assert gen["kp_driving"]["jacobian"].dtype == torch.float32
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()


def test_kp_detector_jacobian_starts_at_identity():
    det = KPDetector(num_kp=4, num_channels=3, block_expansion=8, max_features=32, num_blocks=3, temperature=0.1,
                     scale_factor=0.5)
    out = det(torch.rand(2, 3, 64, 64))
    assert out["heatmap"].shape == (2, 4, 26, 26)  # 32 - 6 with pad 0, as in the official models
    assert torch.allclose(out["jacobian"], torch.eye(2).expand(2, 4, 2, 2), atol=1e-5)
    assert out["value"].abs().max() <= 1


def test_identical_keypoints_give_identity_flow():
    m = build_model(load_config("fomm-sample-64"), vgg=Vgg19()).eval()
    src = torch.rand(1, 3, 64, 64)
    kp = m.kp_detector(src)
    motion = m.generator.dense_motion_network(src, kp, kp)
    # every sparse motion is the identity when source and driving keypoints coincide
    grid = make_coordinate_grid(32, 32)
    assert torch.allclose(motion["deformation"][0], grid, atol=1e-5)


def _blob_image(center):
    g = make_coordinate_grid(64, 64)
    r = torch.exp(-((g - torch.tensor(center)) ** 2).sum(-1) / 0.05)
    return torch.stack([r, 1 - r, 0.5 * r + 0.2]).unsqueeze(0)


def test_overfit_one_pair():
    """30 Adam steps on one (source, driving) pair: the reconstruction must improve a lot."""
    m = build_model(load_config("fomm-sample-64"), vgg=Vgg19())
    params = [p for group in m.optimizer_groups().values() for p in group]
    opt = torch.optim.Adam(params, lr=2e-3, betas=(0.5, 0.999))
    src, drv = _blob_image([-0.3, -0.2]), _blob_image([0.3, 0.25])
    history = []
    for _ in range(30):
        losses, gen = m(src, drv)
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
        history.append((losses["perceptual"].item(), (gen["prediction"] - drv).abs().mean().item()))
    (p0, l0), (p1, l1) = history[0], history[-1]
    assert p1 < 0.3 * p0, history
    assert l1 < 0.3 * l0, history
