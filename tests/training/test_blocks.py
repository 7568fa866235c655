"""Shared building blocks: grids, blocks, random TPS, equivariance losses, VGG, config loading."""

import math

import pytest
import torch
import yaml

from training.config import CONFIG_DIR, ConfigError, load_config, validate_config
from training.models import blocks, grids, losses, vgg
from training.models.transforms import RandomTps


# --- grids ---------------------------------------------------------------------------------------

def test_coordinate_grid_convention():
    g = grids.make_coordinate_grid(3, 5)
    assert g.shape == (3, 5, 2)
    assert torch.allclose(g[0, :, 0], torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))  # x along width
    assert torch.allclose(g[:, 0, 1], torch.tensor([-1.0, 0.0, 1.0]))  # y along height
    assert g.dtype == torch.float32
    assert grids.make_coordinate_grid(2, 2, dtype=torch.float64).dtype == torch.float64


def test_identity_warp_is_exact():
    img = torch.rand(2, 3, 7, 9)
    grid = grids.make_coordinate_grid(7, 9).expand(2, 7, 9, 2)
    assert torch.allclose(grids.warp(img, grid, align_corners=True), img, atol=1e-6)  # align_corners=True convention


def test_warp_conventions_worked_by_hand():
    """A 1x4 row [1, 2, 3, 4] sampled at the [-1, 1] grid's own points x = -1, -1/3, 1/3, 1.

    align_corners=True puts x = -1 and 1 on the centres of the first and last pixels: the identity.
    align_corners=False puts them on the outer edges, pixel coordinate ((x + 1) * 4 - 1) / 2 = -0.5, 0.833,
    2.167, 3.5: bilinear with zero padding gives 0.5 * 1, 1 + 0.833, 3 + 0.167, 0.5 * 4 (MRAA's torch 1.4 weights
    were trained on exactly this slight zoom)."""
    img = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 1, 4)
    grid = grids.make_coordinate_grid(1, 4).unsqueeze(0)  # (1, 1, 4, 2), y = 0
    torch.testing.assert_close(grids.warp(img, grid, align_corners=True)[0, 0, 0], torch.tensor([1.0, 2, 3, 4]))
    torch.testing.assert_close(grids.warp(img, grid, align_corners=False)[0, 0, 0],
                               torch.tensor([0.5, 1 + 5 / 6, 3 + 1 / 6, 2.0]))
    # grid_sample's own default since torch 1.3 (the one MRAA's code relied on) is False
    with pytest.warns(UserWarning):
        default = torch.nn.functional.grid_sample(img, grid)
    torch.testing.assert_close(default, grids.warp(img, grid, align_corners=False))
    with pytest.raises(TypeError, match="align_corners"):
        grids.warp(img, grid)  # no silent default


def test_warp_shift_by_one_pixel():
    img = torch.arange(5.0).view(1, 1, 1, 5).expand(1, 1, 5, 5)
    grid = grids.make_coordinate_grid(5, 5).clone().unsqueeze(0)
    grid[..., 0] += 0.5  # one pixel to the right (spacing 2/(5-1))
    out = grids.warp(img, grid, align_corners=True)
    assert torch.allclose(out[0, 0, 2, :4], torch.tensor([1.0, 2.0, 3.0, 4.0]))


def test_gaussians():
    mean = torch.tensor([[[0.5, -0.5]]])  # (1, 1, 2): x right, y up in the image
    heat = grids.kp2gaussian(mean, (9, 9), 0.01)
    assert heat.shape == (1, 1, 9, 9)
    iy, ix = divmod(int(heat.flatten().argmax()), 9)
    assert (iy, ix) == (2, 6) and math.isclose(heat.max().item(), 1.0, rel_tol=1e-6)
    iso = grids.region2gaussian(mean, 0.01 * torch.eye(2).view(1, 1, 2, 2), (9, 9))
    assert torch.allclose(iso, heat, atol=1e-6)
    # anisotropic: wider along x than along y
    aniso = grids.region2gaussian(torch.zeros(1, 1, 2), torch.diag(torch.tensor([0.2, 0.01])).view(1, 1, 2, 2),
                                  (9, 9))
    assert aniso[0, 0, 4, 8] > aniso[0, 0, 8, 4]


def test_inverse_2x2():
    m = torch.randn(4, 3, 2, 2) + 2 * torch.eye(2)
    assert torch.allclose(grids.inverse_2x2(m), torch.linalg.inv(m), atol=1e-5)


def test_heatmap_moments():
    heat = grids.kp2gaussian(torch.tensor([[[0.2, -0.3]]]), (65, 65), 0.005)
    heat = heat / heat.sum(dim=(2, 3), keepdim=True)
    mean = grids.heatmap_mean(heat)
    assert torch.allclose(mean, torch.tensor([[[0.2, -0.3]]]), atol=1e-4)
    cov = grids.heatmap_covariance(heat, mean)
    assert torch.allclose(cov, 0.005 * torch.eye(2).view(1, 1, 2, 2), atol=1e-4)


# --- blocks --------------------------------------------------------------------------------------

def test_antialias_downsample():
    aa = blocks.AntiAliasInterpolation2d(3, 0.25)
    assert aa.weight.shape == (3, 1, 13, 13)  # sigma 1.5 -> kernel 2*round(6)+1
    assert torch.allclose(aa.weight.sum(dim=(1, 2, 3)), torch.ones(3))
    x = torch.full((1, 3, 64, 64), 0.7)
    y = aa(x)
    assert y.shape == (1, 3, 16, 16)
    assert torch.allclose(y[..., 2:-2, 2:-2], torch.full_like(y[..., 2:-2, 2:-2], 0.7), atol=1e-5)
    assert blocks.AntiAliasInterpolation2d(3, 1.0)(x) is x
    with pytest.raises(ValueError, match="1/n"):
        blocks.AntiAliasInterpolation2d(3, 0.3)


def test_hourglass_shapes_and_channels():
    hg = blocks.Hourglass(block_expansion=8, in_features=5, num_blocks=3, max_features=16)
    x = torch.rand(2, 5, 32, 32)
    out = hg(x)
    assert out.shape == (2, hg.out_filters, 32, 32) and hg.out_filters == 8 + 5
    outs = hg(x, return_all=True)
    assert [o.shape[1] for o in outs] == hg.out_channels
    assert [o.shape[-1] for o in outs] == [8, 16, 32]
    enc = blocks.Encoder(8, 5, 3, 16)
    assert [o.shape[1] for o in enc(x)] == enc.out_channels == [5, 16, 16, 16]


def test_official_hourglass_parameter_count():
    # FOMM/MRAA keypoint hourglass Hourglass(32, 3, 5, 1024): 14,129,568 parameters (counted from the official code)
    with torch.device("meta"):
        hg = blocks.Hourglass(32, 3, 5, 1024)
    assert blocks.count_parameters(hg) == 14_129_568 and hg.out_filters == 35


def test_instance_norm_blocks():
    rb = blocks.ResBlock2d(4, norm="instance")
    assert isinstance(rb.norm1, torch.nn.InstanceNorm2d) and rb(torch.rand(2, 4, 8, 8)).shape == (2, 4, 8, 8)
    with pytest.raises(ValueError, match="unknown norm"):
        blocks.SameBlock2d(3, 4, norm="group")


def test_image_pyramid():
    pyr = blocks.ImagePyramid([1, 0.5, 0.25], 3)(torch.rand(1, 3, 32, 32))
    assert {s: v.shape[-1] for s, v in pyr.items()} == {1.0: 32, 0.5: 16, 0.25: 8}


# --- random TPS ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kernel", ["l1", "euclidean"])
def test_random_tps_zero_coefficients_is_identity(kernel):
    t = RandomTps(3, sigma_affine=0.0, sigma_tps=0.0, points_tps=5, kernel=kernel)
    frame = torch.rand(3, 3, 16, 16)
    assert torch.allclose(t.transform_frame(frame, align_corners=True), frame, atol=1e-6)
    pts = torch.rand(3, 7, 2) * 2 - 1
    assert torch.allclose(t.warp_coordinates(pts), pts)
    assert torch.allclose(t.jacobian(pts), torch.eye(2).expand(3, 7, 2, 2))


@pytest.mark.parametrize("kernel", ["l1", "euclidean"])
def test_random_tps_jacobian_matches_autograd(kernel):
    t = RandomTps(4, sigma_affine=0.05, sigma_tps=0.005, points_tps=5, kernel=kernel)
    pts = (torch.rand(4, 10, 2, dtype=torch.float64) * 2 - 1).requires_grad_()
    t.theta, t.control_params = t.theta.double(), t.control_params.double()
    out = t.warp_coordinates(pts)
    gx = torch.autograd.grad(out[..., 0].sum(), pts, retain_graph=True)[0]
    gy = torch.autograd.grad(out[..., 1].sum(), pts)[0]
    assert torch.allclose(t.jacobian(pts), torch.stack([gx, gy], dim=-2), atol=1e-10)


def test_random_tps_l1_kernel_quirk():
    # official FOMM/MRAA: U = r^2 log(r + 1e-6) with r the L1 distance, added to x and y alike
    theta = torch.eye(2, 3).unsqueeze(0)
    params = torch.zeros(1, 4)
    params[0, 0] = 1.0  # control point (-1, -1) of the 2x2 grid
    t = RandomTps.from_params(theta, params, points_tps=2, kernel="l1")
    p = torch.tensor([[[0.0, 0.5]]])
    r = 1.0 + 1.5
    expected = p + r ** 2 * math.log(r + 1e-6)
    assert torch.allclose(t.warp_coordinates(p), expected, atol=1e-5)


def test_random_tps_statistics():
    t = RandomTps(2000, sigma_affine=0.05, sigma_tps=0.005, points_tps=5)
    assert abs((t.theta - torch.eye(2, 3)).std().item() - 0.05) < 0.003
    assert abs(t.control_params.std().item() - 0.005) < 0.0003
    assert t.control_points.shape == (25, 2)


def _blob_frame(center, cov, size=96):
    g = grids.make_coordinate_grid(size, size, dtype=torch.float64)
    d = g - torch.tensor(center, dtype=torch.float64)
    inv = torch.linalg.inv(torch.tensor(cov, dtype=torch.float64))
    return torch.exp(-0.5 * torch.einsum("hwi,ij,hwj->hw", d, inv, d)).view(1, 1, size, size)


def _detect(frame):
    """An exactly equivariant 'detector': heatmap = normalised frame, mean + PCA affine (MRAA's maths)."""
    from training.models.mraa import heatmap_to_region
    heat = frame / frame.sum(dim=(2, 3), keepdim=True)
    return heatmap_to_region(heat)


def test_equivariance_losses_vanish_on_exactly_transformed_pair():
    # driving frame: an anisotropic blob; transformed frame: the same frame resampled by a similarity T
    frame = _blob_frame([0.1, -0.05], [[0.02, 0.008], [0.008, 0.01]])
    ang, scale = 0.3, 1.1
    rot = scale * torch.tensor([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]], dtype=torch.float64)
    theta = torch.cat([rot, torch.tensor([[0.05], [-0.03]], dtype=torch.float64)], 1).unsqueeze(0)
    t = RandomTps.from_params(theta, torch.zeros(1, 25, dtype=torch.float64), points_tps=5)
    transformed = t.transform_frame(frame, align_corners=True)
    drv, trn = _detect(frame), _detect(transformed)
    value = losses.equivariance_value_loss(drv["shift"], trn["shift"], t)
    jac = losses.equivariance_jacobian_loss(drv["affine"], trn["shift"], trn["affine"], t, sign_fix=True)
    assert value.item() < 1e-3 and jac.item() < 1e-2
    # a pair that is NOT related by T gives clearly larger losses
    other = _detect(_blob_frame([-0.3, 0.2], [[0.01, -0.006], [-0.006, 0.03]]))
    assert losses.equivariance_value_loss(drv["shift"], other["shift"], t).item() > 0.1
    assert losses.equivariance_jacobian_loss(drv["affine"], other["shift"], other["affine"], t,
                                             sign_fix=True).item() > 0.1


def test_perceptual_pyramid_loss():
    net = vgg.Vgg19()
    pyr = blocks.ImagePyramid([1, 0.5], 3)
    real = torch.rand(1, 3, 32, 32)
    fake = real.clone().requires_grad_()
    zero = losses.perceptual_pyramid_loss(net, pyr(real), pyr(fake), [1, 0.5], [10] * 5)
    assert zero.item() == 0.0
    fake2 = (real + 0.1 * torch.randn_like(real)).requires_grad_()
    val = losses.perceptual_pyramid_loss(net, pyr(real), pyr(fake2), [1, 0.5], [10] * 5)
    val.backward()
    assert val.item() > 0 and fake2.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="5 feature maps"):
        losses.perceptual_pyramid_loss(net, pyr(real), pyr(fake2), [1], [10] * 4)


def test_lsgan_and_feature_matching():
    assert losses.lsgan_generator_loss(torch.ones(2, 1, 3, 3)).item() == 0
    assert losses.lsgan_discriminator_loss(torch.ones(4), torch.zeros(4)).item() == 0
    assert losses.lsgan_discriminator_loss(torch.zeros(4), torch.ones(4)).item() == 2
    a, b = [torch.zeros(2), torch.zeros(3)], [torch.ones(2), torch.ones(3)]
    assert losses.feature_matching_loss(a, b, [10, 0]).item() == 10


# --- VGG -----------------------------------------------------------------------------------------

def test_vgg_layout_matches_torchvision_indices():
    net = vgg.Vgg19()
    convs = [i for i, m in enumerate(net.features) if isinstance(m, torch.nn.Conv2d)]
    assert convs == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28]
    assert blocks.count_parameters(net) == 12_944_960
    feats = net(torch.rand(1, 3, 32, 32))
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4, 2]
    assert not any(p.requires_grad for p in net.parameters())


def test_vgg_loads_torchvision_state_dict(tmp_path, monkeypatch):
    ref = vgg.Vgg19()
    state = {f"features.{k}": torch.randn_like(v) for k, v in ref.features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)  # present in torchvision's file, ignored
    path = tmp_path / vgg.WEIGHTS_FILE
    torch.save(state, path)
    net = vgg.load_vgg19(path)
    assert net.pretrained and torch.equal(net.features[28].weight, state["features.28.weight"])
    monkeypatch.setenv(vgg.WEIGHTS_ENV, str(path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    assert not vgg.load_vgg19(download=False, allow_random=True).pretrained  # the library never reads the variable
    bad = dict(state)
    del bad["features.5.bias"]
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(KeyError, match="features.5.bias"):
        vgg.Vgg19().load_imagenet_weights(tmp_path / "bad.pth")


def test_vgg_missing_weights_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv(vgg.WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        vgg.load_vgg19(download=False)
    net = vgg.load_vgg19(download=False, allow_random=True)
    assert net.pretrained is False


# --- configs -------------------------------------------------------------------------------------

def test_all_configs_load():
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    for name in ("fomm-taichi-256", "fomm-ted-384", "mraa-taichi-256", "mraa-ted-384",
                 "fomm-sample-64", "mraa-sample-64"):
        assert name in names
        cfg = load_config(name)
        assert cfg.name == name


def test_config_round_trips_through_plain_dict():
    from training.config import config_to_dict
    for name in ("fomm-taichi-256", "mraa-ted-384"):
        cfg = load_config(name)
        assert validate_config(config_to_dict(cfg)) == cfg


def test_config_errors_name_the_field(tmp_path):
    raw = yaml.safe_load((CONFIG_DIR / "fomm-sample-64.yaml").read_text())
    raw["train"]["loss_weights"]["equivariance_valeu"] = 10  # typo
    with pytest.raises(ConfigError, match=r"train\.loss_weights\.equivariance_valeu"):
        validate_config(raw, "x.yaml")
    raw = yaml.safe_load((CONFIG_DIR / "fomm-sample-64.yaml").read_text())
    raw["model_params"]["kp_detector"]["temprature"] = 0.1
    with pytest.raises(ConfigError, match=r"model_params\.kp_detector\.temprature"):
        validate_config(raw, "x.yaml")
    raw = yaml.safe_load((CONFIG_DIR / "fomm-sample-64.yaml").read_text())
    raw["train"]["scales"] = [1, 0.125]
    with pytest.raises(ConfigError, match="16 px"):
        validate_config(raw, "x.yaml")
    raw = yaml.safe_load((CONFIG_DIR / "mraa-sample-64.yaml").read_text())
    raw["train"]["transform"] = None
    with pytest.raises(ConfigError, match="transform"):
        validate_config(raw, "x.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


# --- the warping convention across configs and checkpoints ---------------------------------------

def test_every_config_declares_its_models_official_warping_convention():
    from training.config import OFFICIAL_ALIGN_CORNERS
    for path in sorted(CONFIG_DIR.glob("*.yaml")):
        cfg = load_config(path)
        assert cfg.model_params.align_corners is OFFICIAL_ALIGN_CORNERS[cfg.model], path.name
    assert OFFICIAL_ALIGN_CORNERS == {"fomm": True, "monkeynet": True, "tpsmm": True, "mraa": False}


@pytest.mark.parametrize("name", ["fomm-sample-64", "mraa-sample-64", "tpsmm-sample-64", "monkeynet-sample-64"])
def test_a_config_without_align_corners_is_refused_naming_the_field(name):
    raw = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())
    del raw["model_params"]["align_corners"]
    with pytest.raises(ConfigError, match=r"model_params\.align_corners: Field required"):
        validate_config(raw, "x.yaml")


def test_checkpoint_configs_from_before_the_field_were_trained_with_true(caplog):
    from training.config import config_to_dict, require_same_convention, upgrade_embedded_config
    cfg = load_config("mraa-sample-64")
    old = config_to_dict(cfg)
    del old["model_params"]["align_corners"]
    upgraded = upgrade_embedded_config(old, "old.pt")
    assert upgraded["model_params"]["align_corners"] is True and "align_corners" not in old["model_params"]
    assert "model_params.align_corners" in caplog.text
    assert validate_config(upgraded).model_params.align_corners is True
    # MRAA configs now say False: the old weights are refused for resuming/fine-tuning, naming the field
    with pytest.raises(ConfigError, match=r"trained with model_params\.align_corners=True.*align_corners=False"):
        require_same_convention(old, cfg, "old.pt")
    require_same_convention(config_to_dict(cfg), cfg, "new.pt")  # same convention: fine
