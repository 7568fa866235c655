"""MRAA: closed-form PCA regions, official parameter counts, forward/backward at 64x64, bg motion, AVD."""

import math

import pytest
import torch
import yaml

from training.blocks import count_parameters
from training.config import CONFIG_DIR, load_config, validate_config
from training.grids import make_coordinate_grid, region2gaussian
from training.models import build_model
from training.models.avd import (KeypointAVD, RegionAVD, build_region_avd, random_scale_keypoints,
                                 random_scale_regions)
from training.models.mraa import BGMotionPredictor, MRAAModel, heatmap_to_region, pca_sqrt_2x2
from training.vgg import Vgg19


def _rot(angle):
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s], [s, c]], dtype=torch.float64)


# --- PCA regions ---------------------------------------------------------------------------------

@pytest.mark.parametrize("angle", [0.0, 0.4, -1.0, 1.2])
def test_pca_region_of_anisotropic_blob_recovers_rotation_and_scale(angle):
    sx, sy = 0.2, 0.08  # standard deviations along the blob's own axes
    rot = _rot(angle)
    cov = rot @ torch.diag(torch.tensor([sx ** 2, sy ** 2], dtype=torch.float64)) @ rot.T
    center = torch.tensor([0.1, -0.15], dtype=torch.float64)
    heat = region2gaussian(center.view(1, 1, 2), cov.view(1, 1, 2, 2), (129, 129))
    heat = heat / heat.sum(dim=(2, 3), keepdim=True)
    region = heatmap_to_region(heat)
    assert torch.allclose(region["shift"][0, 0], center, atol=1e-4)
    affine = region["affine"][0, 0]
    # A = R diag(sx, sy): rotation and scales, with the first axis oriented to x >= 0 (cos(angle) > 0 here)
    assert torch.allclose(affine, rot @ torch.diag(torch.tensor([sx, sy], dtype=torch.float64)), atol=2e-3)
    assert torch.allclose(affine @ affine.T, region["covar"][0, 0], atol=1e-8)


def test_pca_closed_form_matches_eigh():
    x = torch.randn(500, 2, 3, dtype=torch.float64)
    cov = x @ x.transpose(-1, -2) / 3 + 1e-3 * torch.eye(2, dtype=torch.float64)
    u, s = pca_sqrt_2x2(cov)
    ref = torch.linalg.eigvalsh(cov).flip(-1)  # descending
    assert torch.allclose(s, ref, atol=1e-9)
    assert torch.allclose(u @ torch.diag_embed(s) @ u.transpose(-1, -2), cov, atol=1e-9)
    assert torch.allclose(torch.linalg.det(u), torch.ones(500, dtype=torch.float64))  # a rotation
    assert (u[:, 0, 0] >= 0).all()


def test_pca_gradients_are_finite_even_when_isotropic():
    cov = torch.tensor([[[0.01, 0.0], [0.0, 0.01]], [[0.02, 0.003], [0.003, 0.01]],
                        [[0.01, 0.0], [0.0, 0.02]]], dtype=torch.float64, requires_grad=True)
    u, s = pca_sqrt_2x2(cov)
    (u * s.sqrt()[..., None, :]).sum().backward()
    assert torch.isfinite(cov.grad).all()
    well_conditioned = cov[1:2].detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda c: (lambda u, s: u * s.sqrt()[..., None, :])(*pca_sqrt_2x2(c)),
                                    (well_conditioned,))


# --- parameter counts ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mraa-taichi-256", "mraa-ted-384"])
def test_parameter_counts_match_official(name):
    # model_anchors.md §3: region 14.147 M, bg 6.282 M, flow 37.730 M, generator 45.575 M, total w/o AVD 66.0 M
    with torch.device("meta"):
        m = build_model(load_config(name), vgg=Vgg19())
    counts = {"region": count_parameters(m.region_predictor), "bg": count_parameters(m.bg_predictor),
              "flow": count_parameters(m.generator.pixelwise_flow_predictor), "gen": count_parameters(m.generator)}
    for key, ref in {"region": 14.147e6, "bg": 6.282e6, "flow": 37.730e6, "gen": 45.575e6}.items():
        assert abs(counts[key] - ref) / ref < 0.001, (key, counts[key])
    total = counts["region"] + counts["bg"] + counts["gen"]
    assert abs(total - 66.0e6) / 66.0e6 < 0.01 and total == 66_004_557
    assert sum(p.numel() for p in m.parameters() if p.requires_grad) == total  # the frozen VGG aside
    assert sum(count_parameters(net) for net in m.networks().values()) == total
    assert sum(p.numel() for p in m.optimizer_groups()["generator"]) == total


def test_twenty_regions_and_avd_counts():
    raw = yaml.safe_load((CONFIG_DIR / "mraa-taichi-256.yaml").read_text())
    raw["model_params"]["num_regions"] = 20
    with torch.device("meta"):
        m = build_model(validate_config(raw), vgg=Vgg19())
        avd10, avd20 = RegionAVD(10, 64, 64), RegionAVD(20, 64, 64)
        tps_avd = KeypointAVD(50, 128, 128)
    total = sum(count_parameters(x) for x in (m.region_predictor, m.bg_predictor, m.generator))
    assert abs(total - 66.16e6) / 66.16e6 < 0.01
    assert count_parameters(avd10) == 2_290_620  # anchors: 2.291 M
    assert abs(count_parameters(avd20) - 2.34e6) / 2.34e6 < 0.01
    assert count_parameters(tps_avd) == 2_583_652  # anchors (TPSMM): 2.584 M


# --- model ---------------------------------------------------------------------------------------

def test_forward_backward_tiny():
    m = build_model(load_config("mraa-sample-64"), vgg=Vgg19())
    assert isinstance(m, MRAAModel)
    s, d = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    losses, gen = m(s, d)
    assert set(losses) == {"perceptual", "equivariance_shift", "equivariance_affine"}
    assert gen["prediction"].shape == (2, 3, 64, 64)
    assert gen["optical_flow"].shape == (2, 32, 32, 2) and gen["occlusion_map"].shape == (2, 1, 32, 32)
    assert gen["driving_region_params"]["affine"].shape == (2, 10, 2, 2)
    assert torch.allclose(gen["bg_params"], torch.eye(3).expand(2, 3, 3))  # bg predictor starts at identity
    sum(losses.values()).backward()
    for net in (m.region_predictor, m.bg_predictor, m.generator):
        grads = [p.grad for p in net.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert m.reconstruct(s, d).shape == (2, 3, 64, 64)


def test_bg_motion_fills_the_bg_slot():
    m = build_model(load_config("mraa-sample-64"), vgg=Vgg19()).eval()
    src = torch.rand(1, 3, 64, 64)
    regions = m.region_predictor(src)
    bg = torch.tensor([[[0.9, 0.1, 0.05], [-0.1, 0.9, 0.02], [0.0, 0.0, 1.0]]])
    motions = m.generator.pixelwise_flow_predictor.sparse_motions((32, 32), regions, regions, bg)
    grid = make_coordinate_grid(32, 32)
    expected = grid @ bg[0, :2, :2].T + bg[0, :2, 2]
    assert torch.allclose(motions[0, 0], expected, atol=1e-6)
    assert torch.allclose(motions[0, 1:], grid.expand(10, 32, 32, 2), atol=1e-5)  # same regions -> identity


def test_revert_axis_swap_cancels_pca_sign_ambiguity():
    m = build_model(load_config("mraa-sample-64"), vgg=Vgg19()).eval()
    src = torch.rand(1, 3, 64, 64)
    drv = m.region_predictor(torch.rand(1, 3, 64, 64))
    srp = m.region_predictor(src)
    flipped = dict(srp, affine=-srp["affine"])  # an axis pair flipped by pi: same covariance
    fp = m.generator.pixelwise_flow_predictor
    a = fp.sparse_motions((32, 32), drv, srp)
    b = fp.sparse_motions((32, 32), drv, flipped)
    assert torch.allclose(a, b, atol=1e-6)


def test_bg_types():
    x = torch.rand(2, 3, 32, 32)
    for bg_type in ("zero", "shift", "affine", "perspective"):
        out = BGMotionPredictor(3, 8, 32, 3, bg_type=bg_type)(x, x)
        assert out.shape == (2, 3, 3) and torch.allclose(out, torch.eye(3).expand(2, 3, 3))


# --- AVD -----------------------------------------------------------------------------------------

def test_region_avd_stage_trains_only_avd():
    cfg = load_config("mraa-sample-64")
    m = build_model(cfg, vgg=Vgg19())
    stage = build_region_avd(cfg, m.region_predictor)
    opt = torch.optim.Adam(stage.optimizer_groups()["avd"], lr=cfg.train_avd.lr)
    s, d = torch.rand(8, 3, 64, 64), torch.rand(8, 3, 64, 64)
    first = None
    for _ in range(5):
        losses, gen = stage(s, d)
        total = sum(losses.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        first = total.item() if first is None else first
    assert set(losses) == {"rec_shift", "rec_affine"}
    assert gen["avd_region_params"]["covar"].shape == (8, 10, 2, 2)
    assert all(p.grad is None for p in m.region_predictor.parameters())
    assert total.item() < first


def test_random_scale_range():
    params = {"shift": torch.ones(1000, 3, 2), "affine": torch.eye(2).expand(1000, 3, 2, 2)}
    out = random_scale_regions(params, 0.25)
    assert out["shift"].min() >= 0.75 and out["shift"].max() <= 1.25
    assert torch.allclose(out["affine"].diagonal(dim1=-2, dim2=-1), out["shift"])  # same diag scale
    assert torch.equal(out["shift"][:, 0], out["shift"][:, 2])  # one scale per sample, shared by regions
    kp = random_scale_keypoints(torch.ones(4, 50, 2), 0.25)
    assert kp.shape == (4, 50, 2)
    assert KeypointAVD(50)(kp, kp).shape == (4, 50, 2)
