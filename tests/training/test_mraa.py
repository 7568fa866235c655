"""MRAA: closed-form PCA regions, official parameter counts, forward/backward at 64x64, bg motion, AVD."""

import math

import pytest
import torch
import yaml

from training.config import CONFIG_DIR, load_config, validate_config
from training.models import build_avd, build_model
from training.models.avd import (KeypointAVD, RegionAVD, random_scale_keypoints,
                                 random_scale_regions)
from training.models.blocks import count_parameters
from training.models.grids import heatmap_covariance, heatmap_mean, make_coordinate_grid, region2gaussian
from training.models.mraa import (BGMotionPredictor, MRAAModel, heatmap_to_region, official_pca_sqrt_2x2,
                                  pca_sqrt_2x2)
from training.models.vgg import Vgg19


def _rot(angle):
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s], [s, c]], dtype=torch.float64)


# --- PCA regions ---------------------------------------------------------------------------------

@pytest.mark.parametrize("angle", [0.1, 0.4, -1.0, 2.5])
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
    # A = U diag(sx, sy) with U's columns the blob's axes, signed as LAPACK signs them (a reflection)
    assert torch.allclose(affine.abs(), (rot @ torch.diag(torch.tensor([sx, sy], dtype=torch.float64))).abs(),
                          atol=2e-3)
    assert torch.linalg.det(affine) < 0
    assert torch.allclose(affine @ affine.T, region["covar"][0, 0], atol=1e-8)


# The official region predictor: u, s, v = torch.svd(covar.cpu()); affine = u @ diag(sqrt(s)). Expected U of
# three covariances, worked by hand through reference LAPACK's gesdd path for a 2x2 (the Householder step of
# dgebrd, Q = -[[a, b], [b, -a]] / hypot(a, b), then dlasv2 on B = Q C; see official_pca_sqrt_2x2):
# - [[0.04, 0.01], [0.01, 0.02]]: eigenvalues 0.03 +- 0.0141421; principal axis (0.92388, 0.38268) (22.5 deg);
#   no diagonal swap in dlasv2 (|h| = 0.0158 < |f| = 0.0412), so the axis comes out negated: x < 0.
# - [[0.01, 0.005], [0.005, 0.09]]: principal axis (0.062137, 0.998068); b > 0 and dlasv2 swaps (|h| = 0.0783 >
#   |f| = 0.0112), so the axis keeps x > 0.
# - [[0.03, -0.01], [-0.01, 0.02]]: principal axis (0.85065, -0.52573) with x >= 0; b < 0: negated.
# In each case U = [[x, y], [y, -x]] for the signed axis (x, y): det U = -1 (a reflection times a rotation).
HAND_WORKED_SVD = [
    ([[0.04, 0.01], [0.01, 0.02]], [[-0.92388, -0.38268], [-0.38268, 0.92388]]),
    ([[0.01, 0.005], [0.005, 0.09]], [[0.062137, 0.998068], [0.998068, -0.062137]]),
    ([[0.03, -0.01], [-0.01, 0.02]], [[-0.85065, 0.52573], [0.52573, 0.85065]]),
    ([[0.02, 0.0], [0.0, 0.01]], [[1.0, 0.0], [0.0, 1.0]]),  # b = 0: no reflection (dlarfg's tau = 0)
    ([[0.01, 0.0], [0.0, 0.02]], [[0.0, 1.0], [1.0, 0.0]]),  # b = 0, then dbdsqr's sort swaps the columns
]


@pytest.mark.parametrize("covar, expected_u", HAND_WORKED_SVD)
def test_official_affine_signs_worked_by_hand(covar, expected_u):
    cov = torch.tensor(covar).view(1, 2, 2)
    u, s = official_pca_sqrt_2x2(cov)
    torch.testing.assert_close(u[0], torch.tensor(expected_u), atol=2e-5, rtol=0)
    torch.testing.assert_close(u @ torch.diag_embed(s) @ u.transpose(-1, -2), cov, atol=1e-7, rtol=0)
    # and the SVD that the official code runs agrees here (torch.svd on the CPU is LAPACK gesdd)
    torch.testing.assert_close(torch.svd(cov)[0][0], torch.tensor(expected_u), atol=2e-5, rtol=0)


def test_official_affine_equals_lapack_svd_on_many_covariances():
    """The closed form equals torch.svd's U (LAPACK) column for column, sign included, in float32 and float64."""
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(20000, 2, 2, generator=g, dtype=dtype) * torch.rand(20000, 1, 1, generator=g, dtype=dtype)
        cov = 0.1 * x @ x.transpose(-1, -2)
        u, s = official_pca_sqrt_2x2(cov)
        ref_u, ref_s, _ = torch.svd(cov)
        assert (u - ref_u).abs().max() < (1e-4 if dtype == torch.float32 else 1e-9)
        assert (s - ref_s).abs().max() < 1e-6


def test_region_predictor_affine_is_the_official_svd_of_its_covariance():
    """What the official RegionPredictor computes from the same heatmaps: torch.svd on the CPU, U sqrt(S)."""
    m = build_model(load_config("mraa-sample-64"), vgg=Vgg19()).eval()
    with torch.no_grad():
        for p in m.region_predictor.parameters():
            p.add_(0.05 * torch.randn_like(p))
        out = m.region_predictor(torch.rand(4, 3, 64, 64))
    u, s, _ = torch.svd(out["covar"].view(-1, 2, 2).cpu())
    official = (u @ torch.diag_embed(s.sqrt())).view_as(out["affine"])
    assert (out["affine"] - official).abs().max() < 1e-4


def test_heatmap_moments_are_accumulated_in_float64():
    """A float32 einsum over 64x64 pixels misses the exact covariance by ~1e-7; the float64 accumulation is
    within float32 rounding of a float64 reference."""
    g = torch.Generator().manual_seed(0)
    heat = torch.softmax(torch.randn(8, 10, 64 * 64, generator=g) / 0.5, dim=2).view(8, 10, 64, 64)
    mean = heatmap_mean(heat)
    covar = heatmap_covariance(heat, mean)
    h64 = heat.double()
    grid = make_coordinate_grid(64, 64, dtype=torch.float64)
    mean64 = torch.einsum("bkhw,hwc->bkc", h64, grid)
    d = grid - mean.double()[:, :, None, None, :]
    covar64 = torch.einsum("bkhw,bkhwi,bkhwj->bkij", h64, d, d)
    assert mean.dtype == covar.dtype == torch.float32
    half_ulp = 2.0 ** -24  # float32 rounding of the exact value, relative
    assert ((mean.double() - mean64).abs() <= half_ulp * mean64.abs() + 1e-12).all()
    assert ((covar.double() - covar64).abs() <= half_ulp * covar64.abs() + 1e-12).all()
    naive = torch.einsum("bkhw,bkhwi,bkhwj->bkij", heat, d.float(), d.float())  # what float32 einsum gives
    assert (naive.double() - covar64).abs().max() > 3 * (covar.double() - covar64).abs().max()


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
    stage = build_avd(cfg, m)
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
