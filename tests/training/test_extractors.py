"""Extractors: the registry and labels, mediapipe on a real photo, OpenPose and re-id up to their weight files."""

import cv2
import numpy as np
import pytest
import skimage.data
import torch
import torch.nn as nn

from training.extractors import (EXTRACTORS, WeightsNotFound, as_uint8_frames, extractor_class, extractor_names,
                                 extractor_spec, get_extractor, weights_from_env)
from training.extractors import openpose, reid
from training.extractors.offline_identity import MobileNetV2ImageNet, packaged_weights
from training.metrics import ExtractorMismatch, Keypoints, akd, mkr


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return cv2.resize(skimage.data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)


# --- registry ------------------------------------------------------------------------------------

def test_registry_names_kinds_and_labels():
    assert set(EXTRACTORS) == {"openpose-coco18", "reid-resnet50-market1501", "mediapipe-pose33",
                               "mobilenetv2-imagenet"}
    assert extractor_spec("openpose-coco18").labels() == ("AKD[openpose-coco18]", "MKR[openpose-coco18]")
    assert extractor_spec("reid-resnet50-market1501").labels() == ("AED[reid-resnet50-market1501]",)
    assert extractor_spec("mediapipe-pose33").labels() == ("AKD[mediapipe-pose33]", "MKR[mediapipe-pose33]")
    assert extractor_names(paper_comparable=True) == ["openpose-coco18", "reid-resnet50-market1501"]
    assert extractor_names("keypoints", offline=True) == ["mediapipe-pose33"]
    assert extractor_names("identity", offline=True) == ["mobilenetv2-imagenet"]
    for name, spec in EXTRACTORS.items():
        cls = extractor_class(name)
        assert (cls.name, cls.kind, cls.metrics, cls.paper_comparable) == (
            name, spec.kind, spec.metrics, spec.paper_comparable)
    with pytest.raises(KeyError, match="unknown extractor 'vgg'"):
        get_extractor("vgg")


def test_frames_are_quantised_like_the_reconstruction_pngs():
    x = torch.tensor([0.0, 0.5, 0.999, 1.2, -0.1]).view(1, 1, 5, 1).expand(1, 3, 5, 1)
    out = as_uint8_frames(x)  # (T, 3, H, W) float -> (T, H, W, 3) uint8, truncating like (255 * x).astype(uint8)
    assert out.shape == (1, 5, 1, 3) and out.dtype == np.uint8
    assert out[0, :, 0, 0].tolist() == [0, 127, 254, 255, 0]
    with pytest.raises(ValueError, match="3 colour channels"):
        as_uint8_frames(np.zeros((1, 4, 4, 4), np.uint8))


# --- mediapipe (runs for real) -------------------------------------------------------------------

@pytest.fixture(scope="module")
def mediapipe_pose():
    with get_extractor("mediapipe-pose33") as ex:
        yield ex


def test_mediapipe_finds_the_astronaut(mediapipe_pose, astronaut):
    kp = mediapipe_pose.extract(astronaut[None])
    assert kp.extractor == "mediapipe-pose33" and kp.xy.shape == (1, 33, 2)
    assert kp.present.sum() >= 10
    nose, left_shoulder, right_shoulder = kp.xy[0, 0], kp.xy[0, 11], kp.xy[0, 12]
    assert kp.present[0, [0, 11, 12]].all()
    assert 90 < nose[0] < 135 and 40 < nose[1] < 90  # her face, in pixels of the 256x256 frame
    assert right_shoulder[0] < nose[0] < left_shoulder[0]  # facing the camera
    assert nose[1] < min(left_shoulder[1], right_shoulder[1])


def test_mediapipe_shifted_copy_gives_akd_close_to_the_shift(mediapipe_pose, astronaut):
    shift = 16
    moved = np.roll(astronaut, (shift, shift), axis=(0, 1))
    real, gen = mediapipe_pose.extract(astronaut[None]), mediapipe_pose.extract(moved[None])
    res = akd({"astronaut": (real, gen)})
    assert res.label == "AKD[mediapipe-pose33]"
    assert abs(res.value - shift) < 3.0
    assert mkr({"astronaut": (real, gen)}).value <= 0.2


def test_mediapipe_frame_without_person_has_no_joint(mediapipe_pose, astronaut):
    frames = np.stack([astronaut, np.zeros_like(astronaut)])
    kp = mediapipe_pose.extract(frames)
    assert kp.present[0].any() and not kp.present[1].any()
    per_video = akd({"v": (kp, kp)})
    assert per_video.frames_counted == 1 and per_video.value == 0.0


def test_keypoints_of_two_extractors_cannot_be_scored_together(mediapipe_pose, astronaut):
    mp_kp = mediapipe_pose.extract(astronaut[None])
    other = Keypoints.from_sentinel(-np.ones((1, 18, 2)), "openpose-coco18")
    with pytest.raises(ExtractorMismatch):
        akd({"v": (other, mp_kp)})


# --- OpenPose COCO-18 ----------------------------------------------------------------------------

def _published_rtpose_layout() -> dict[str, tuple[int, ...]]:
    """Key -> shape of pose_model.pth, written out from the published architecture (not from our module)."""
    shapes = {}
    trunk = [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256),
             (14, 256, 256), (16, 256, 256), (19, 256, 512), (21, 512, 512), (23, 512, 256), (25, 256, 128)]
    for i, cin, cout in trunk:
        shapes[f"model0.{i}.weight"], shapes[f"model0.{i}.bias"] = (cout, cin, 3, 3), (cout,)
    for branch, out in ((1, 38), (2, 19)):
        for i, cin, cout, k in [(0, 128, 128, 3), (2, 128, 128, 3), (4, 128, 128, 3), (6, 128, 512, 1),
                                (8, 512, out, 1)]:
            shapes[f"model1_{branch}.{i}.weight"], shapes[f"model1_{branch}.{i}.bias"] = (cout, cin, k, k), (cout,)
        for s in range(2, 7):
            for i, cin, cout, k in [(0, 185, 128, 7), (2, 128, 128, 7), (4, 128, 128, 7), (6, 128, 128, 7),
                                    (8, 128, 128, 7), (10, 128, 128, 1), (12, 128, out, 1)]:
                key = f"model{s}_{branch}.{i}"
                shapes[f"{key}.weight"], shapes[f"{key}.bias"] = (cout, cin, k, k), (cout,)
    return shapes


def test_openpose_missing_weights_name_the_path(tmp_path, monkeypatch):
    monkeypatch.delenv(openpose.WEIGHTS_ENV, raising=False)
    missing = tmp_path / "pose_estimation" / "pose_model.pth"
    with pytest.raises(WeightsNotFound, match=f"not found at {missing}"):
        get_extractor("openpose-coco18", weights=missing)
    with pytest.raises(WeightsNotFound, match=openpose.WEIGHTS_ENV):
        get_extractor("openpose-coco18")
    monkeypatch.setenv(openpose.WEIGHTS_ENV, str(missing))
    with pytest.raises(WeightsNotFound, match="no weight file given"):  # the extractor never reads the variable
        get_extractor("openpose-coco18")
    weights = weights_from_env({openpose.WEIGHTS_ENV: str(missing), "MOTIONPIPE_UNRELATED": "x"})
    assert weights == {"openpose-coco18": str(missing)}  # what a command line hands on
    with pytest.raises(WeightsNotFound, match=str(missing)):
        get_extractor("openpose-coco18", weights=weights["openpose-coco18"])


def test_openpose_loads_a_state_dict_in_the_published_layout(tmp_path):
    layout = _published_rtpose_layout()
    assert sum(int(np.prod(s)) for s in layout.values()) == 52_311_446
    state = {k: torch.zeros(s) for k, s in layout.items()}
    probes = ["model0.21.weight", "model1_2.8.bias", "model6_1.12.weight", "model4_2.0.weight"]
    for k in probes:
        state[k] = torch.randn(layout[k])
    path = tmp_path / "pose_model.pth"
    torch.save(state, path)
    net = openpose.load_rtpose(path)
    own = net.state_dict()
    for k in probes:
        assert torch.equal(own[k], state[k]), k
    paf, heat = net(torch.zeros(1, 3, 16, 24))
    assert paf.shape == (1, 38, 2, 3) and heat.shape == (1, 19, 2, 3)  # stride 8

    del state["model3_1.4.bias"]
    state["model7_1.0.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(KeyError, match=r"bad\.pth.*missing \['model3_1\.4\.bias'\].*model7_1"):
        openpose.load_rtpose(tmp_path / "bad.pth")


def test_openpose_input_is_bgr_at_height_368_padded_to_stride():
    frame = np.zeros((256, 192, 3), np.uint8)
    frame[..., 0] = 255  # red in RGB
    x, (h, w) = openpose.network_input(frame[..., ::-1].copy())  # the protocol feeds BGR
    assert (h, w) == (491, 368)  # the shorter side goes to 368
    assert x.shape == (3, 496, 368) and x.dtype == np.float32  # padded to a multiple of 8
    assert x[2, :h].min() == pytest.approx(255 / 256 - 0.5)  # red is the last BGR channel
    assert x[0, :h].max() == pytest.approx(-0.5)
    assert np.all(x[:, h:] == -0.5)  # zero padding, after normalisation


def test_find_joints_last_peak_wins_and_moves_to_the_window_maximum():
    maps = np.zeros((40, 30, 19))
    maps[5, 10, 0] = 0.9  # nose: two peaks, the later one in scan order (larger y) is kept
    maps[20, 3, 0] = 0.4
    maps[7, 10, 1] = 0.9  # neck: a peak at (10, 7) ...
    maps[8, 10, 1] = 0.8  # ... whose lower neighbour is not a peak,
    maps[10, 10, 1] = 0.5  # and the last peak at (10, 10) moves to (10, 8), the 5x5 window maximum
    maps[30, 15, 2] = 0.1  # at the threshold: not a peak
    joints = openpose.find_joints(maps)
    assert joints.shape == (18, 2)
    assert joints[0].tolist() == [3, 20]
    assert joints[1].tolist() == [10, 8]
    assert joints[2].tolist() == [-1, -1]
    assert (joints[3:] == -1).all()


def test_flip_pass_is_mirrored_back_with_left_and_right_swapped():
    h, w = 10, 12
    direct = np.zeros((h, w, 19))
    mirrored = np.zeros((h, w, 19))
    direct[4, 2, 2] = 1.0  # right shoulder at x=2
    mirrored[4, w - 1 - 2, 5] = 1.0  # in the mirrored frame that shoulder looks like a left shoulder
    avg = openpose.average_with_flip(direct, mirrored)
    assert avg[4, 2, 2] == 1.0 and avg[:, :, 5].max() == 0.0


class _BrightnessNet(nn.Module):
    """Stand-in for the published network: every heatmap is the frame's brightness pooled by 8."""

    def forward(self, x):
        heat = nn.functional.avg_pool2d(x.mean(1, keepdim=True) + 0.5, 8).repeat(1, 19, 1, 1)
        return torch.zeros(x.shape[0], 38, *heat.shape[2:]), heat


def _blob_frame(x: float, y: float, size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    g = 255 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 3.0 ** 2))
    return g.astype(np.uint8)[..., None].repeat(3, -1)


def test_openpose_pipeline_maps_heatmaps_back_to_frame_pixels():
    centres = [(42, 20), (9, 52), (20, 45)]
    frames = np.stack([_blob_frame(x, y) for x, y in centres])
    ex = openpose.OpenPoseCoco18(net=_BrightnessNet(), batch_size=2)
    kp = ex.extract(frames)  # 64x64 frames -> 368x368 network input -> 46x46 heatmaps -> back to 64x64
    assert kp.extractor == "openpose-coco18" and kp.xy.shape == (3, 18, 2)
    assert kp.present.all()
    for i, centre in enumerate(centres):
        assert np.abs(kp.xy[i] - centre).max() <= 0.5, (centre, kp.xy[i, 0])
    assert np.array_equal(ex.extract(frames.astype(np.float32) / 255).xy, kp.xy)  # float frames, same result


# --- re-id (Market-1501 ResNet-50) ---------------------------------------------------------------

def _randomise_norms(net: nn.Module) -> nn.Module:
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    return net


def test_reid_input_divides_by_255_twice():
    frames = np.full((1, 64, 48, 3), 200, np.uint8)
    x = reid.reid_input(frames)
    assert x.shape == (1, 3, 288, 144)
    expected = torch.tensor([(200 / 255 / 255 - m) / s for m, s in zip(reid.IMAGENET_MEAN, reid.IMAGENET_STD)])
    assert torch.allclose(x[0], expected.view(3, 1, 1).expand(3, 288, 144), atol=1e-6)


def test_reid_batch_norm_uses_each_images_own_statistics():
    tiny = dict(layers=(1, 1), width=4)
    ours = _randomise_norms(reid.ResNetFeatures(**tiny))
    reference = reid.ResNetFeatures(**tiny, norm=nn.BatchNorm2d)
    reference.load_state_dict(ours.state_dict())
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 40, 30, 3), dtype=np.uint8)
    frames[2] //= 4  # a darker frame: different statistics
    x = reid.reid_input(frames)
    with torch.no_grad():
        batched = ours(x)
        reference.train()  # the protocol never calls eval(): batch-of-one statistics
        one_by_one = torch.cat([reference(x[i:i + 1]) for i in range(len(x))])
        reference.eval()
        eval_mode = reference(x)
        reference.train()
        mixed = reference(x)  # train mode over the whole batch would mix the frames' statistics
    assert batched.shape == (3, 32)
    assert torch.allclose(batched, one_by_one, atol=1e-5)
    assert not torch.allclose(batched, eval_mode, atol=1e-3)
    assert not torch.allclose(batched, mixed, atol=1e-3)
    ex = reid.ReidResNet50Market1501(net=ours, batch_size=2)
    emb = ex.extract(frames)
    assert emb.extractor == "reid-resnet50-market1501"
    assert np.allclose(emb.values, one_by_one.numpy(), atol=1e-5)


def _published_ft_net_layout() -> dict[str, tuple[int, ...]]:
    """Key -> shape of reid_model.pth (ft_net(751), saved before num_batches_tracked existed)."""
    shapes = {"model.conv1.weight": (64, 3, 7, 7)}

    def bn(prefix, c):
        for p in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{p}"] = (c,)

    bn("model.bn1", 64)
    cin = 64
    for li, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), start=1):
        for b in range(blocks):
            pre = f"model.layer{li}.{b}"
            shapes[f"{pre}.conv1.weight"] = (width, cin, 1, 1)
            bn(f"{pre}.bn1", width)
            shapes[f"{pre}.conv2.weight"] = (width, width, 3, 3)
            bn(f"{pre}.bn2", width)
            shapes[f"{pre}.conv3.weight"] = (4 * width, width, 1, 1)
            bn(f"{pre}.bn3", 4 * width)
            if b == 0:
                shapes[f"{pre}.downsample.0.weight"] = (4 * width, cin, 1, 1)
                bn(f"{pre}.downsample.1", 4 * width)
            cin = 4 * width
    shapes.update({"model.fc.weight": (1000, 2048), "model.fc.bias": (1000,),
                   "classifier.add_block.0.weight": (512, 2048), "classifier.add_block.0.bias": (512,),
                   "classifier.classifier.0.weight": (751, 512), "classifier.classifier.0.bias": (751,)})
    bn("classifier.add_block.1", 512)
    return shapes


def test_reid_loads_ft_net_weights_and_drops_fc_and_classifier(tmp_path):
    layout = _published_ft_net_layout()
    state = {k: torch.zeros(s) for k, s in layout.items()}
    probes = ["model.conv1.weight", "model.layer3.5.bn2.bias", "model.layer4.0.downsample.0.weight"]
    for k in probes:
        state[k] = torch.randn(layout[k])
    path = tmp_path / "reid_model.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)  # a DataParallel save loads too
    net = reid.load_reid_backbone(path)
    own = net.state_dict()
    for k in probes:
        assert torch.equal(own[k[len("model."):]], state[k]), k
    assert sum(p.numel() for p in net.parameters()) == 23_508_032  # ResNet-50 without fc
    assert all(isinstance(m, reid.PerImageBatchNorm2d) for m in net.modules() if isinstance(m, nn.BatchNorm2d))

    del state["model.layer2.1.conv2.weight"]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(KeyError, match=r"bad\.pth.*model\.layer2\.1\.conv2\.weight"):
        reid.load_reid_backbone(tmp_path / "bad.pth")


def test_reid_missing_weights_name_the_path(tmp_path, monkeypatch):
    monkeypatch.delenv(reid.WEIGHTS_ENV, raising=False)
    missing = tmp_path / "reid_baseline" / "reid_model.pth"
    with pytest.raises(WeightsNotFound, match=f"not found at {missing}"):
        get_extractor("reid-resnet50-market1501", weights=missing)
    with pytest.raises(WeightsNotFound, match=reid.WEIGHTS_ENV):
        get_extractor("reid-resnet50-market1501")


# --- offline identity (ImageNet MobileNetV2) -----------------------------------------------------

def test_offline_identity_embeddings(astronaut):
    assert packaged_weights().is_file()
    ex = get_extractor("mobilenetv2-imagenet")
    assert isinstance(ex, MobileNetV2ImageNet) and not ex.paper_comparable
    coffee = cv2.resize(skimage.data.coffee(), (256, 256), interpolation=cv2.INTER_AREA)
    frames = np.stack([astronaut, np.roll(astronaut, (8, 8), axis=(0, 1)), coffee])
    emb = ex.extract(frames)
    assert emb.extractor == "mobilenetv2-imagenet" and emb.values.shape == (3, 1280)
    assert np.allclose(np.linalg.norm(emb.values, axis=1), 1.0, atol=1e-5)
    d_shift = ((emb.values[0] - emb.values[1]) ** 2).sum()
    d_other = ((emb.values[0] - emb.values[2]) ** 2).sum()
    assert d_shift < 0.3 < d_other  # the same picture moved stays close; another picture does not


def test_offline_identity_weight_path_error(tmp_path):
    with pytest.raises(WeightsNotFound, match=str(tmp_path / "nope.pt")):
        get_extractor("mobilenetv2-imagenet", weights=tmp_path / "nope.pt")
