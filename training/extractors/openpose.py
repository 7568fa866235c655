"""AKD/MKR keypoints from OpenPose's COCO-18 body network, run exactly as pose-evaluation ran it.

The network is the CMU "rtpose" VGG-19 with six two-branch stages (38 PAF + 19 heatmap channels at stride 8),
defined here with the module names and ``nn.Sequential`` indices of the PyTorch port pose-evaluation used, so its
published ``pose_model.pth`` loads as is (``model0.0.weight`` ... ``model6_2.12.bias``). Per frame:

1. RGB -> BGR; one scale, resized (bilinear) so the height is 368, zero-padded to a multiple of 8,
   ``x / 256 - 0.5``; the same again for the horizontally flipped frame.
2. The last stage's heatmaps are cut to the unpadded area, upsampled x8 and then to the frame size (bicubic);
   the flipped pass is flipped back with left/right joints swapped and the two are averaged.
3. Per joint type: local maxima above 0.1 (3x3 cross neighbourhood), each moved to the maximum of its 5x5 window.
   The peaks are written by joint type in scan order, so with several peaks **the last one wins**; no person
   grouping. Missing joints are (-1, -1); coordinates are integer pixels of the frame given.

PAFs only matter for person grouping, which the protocol does not use, so they are computed but not decoded.
The weights cannot be installed here: pass their path or set ``$MOTIONPIPE_OPENPOSE_WEIGHTS``.
"""

from __future__ import annotations

import os

import cv2
import numpy as np
import torch
import torch.nn as nn
from scipy.ndimage import generate_binary_structure, maximum_filter

from training.extractors.base import KeypointExtractor, as_uint8_frames, load_state_dict, resolve_weights
from training.metrics.keypoints import Keypoints

WEIGHTS_ENV = "MOTIONPIPE_OPENPOSE_WEIGHTS"
WHAT = "OpenPose COCO-18 body network (pose-evaluation's pose_model.pth)"

JOINT_NAMES = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "right_eye", "left_eye",
    "right_ear", "left_ear",
)
# heatmap channel order after a horizontal flip (left <-> right); channel 18 is the background
FLIP_HEATMAP_ORDER = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16, 18)
BOX_HEIGHT = 368.0
STRIDE = 8
PEAK_THRESHOLD = 0.1  # decode_pose thre1 (thre2/thre3 only act on limbs and persons)
REFINE_WINDOW = 2  # peaks move to the maximum of a (2w+1)^2 window

# -----------------------------------------------------------------------------
# network: (name, in, out, kernel, padding) per conv; "pool" = 2x2 max-pool, stride 2

_TRUNK = [(3, 64), (64, 64), "pool", (64, 128), (128, 128), "pool", (128, 256), (256, 256), (256, 256),
          (256, 256), "pool", (256, 512), (512, 512), (512, 256), (256, 128)]  # VGG-19 to conv4_2 + two CPM convs
_STAGE1 = [(128, 128, 3), (128, 128, 3), (128, 128, 3), (128, 512, 1)]  # + final 1x1 to 38 / 19
_STAGE_N = [(185, 128, 7), (128, 128, 7), (128, 128, 7), (128, 128, 7), (128, 128, 7), (128, 128, 1)]
PAF_CHANNELS, HEATMAP_CHANNELS = 38, 19


def _trunk() -> nn.Sequential:
    layers: list[nn.Module] = []
    for item in _TRUNK:
        if item == "pool":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, padding=0))
        else:
            layers += [nn.Conv2d(item[0], item[1], 3, 1, 1), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def _stage(convs: list[tuple[int, int, int]], out_channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for cin, cout, k in convs:
        layers += [nn.Conv2d(cin, cout, k, 1, k // 2), nn.ReLU(inplace=True)]
    layers.append(nn.Conv2d(convs[-1][1], out_channels, 1, 1, 0))  # no ReLU after the last conv
    return nn.Sequential(*layers)


class RtPoseVGG19(nn.Module):
    """The six-stage CPM network; ``forward`` returns the last stage's (PAFs, heatmaps) at 1/8 resolution."""

    def __init__(self):
        super().__init__()
        self.model0 = _trunk()
        self.model1_1 = _stage(_STAGE1, PAF_CHANNELS)
        self.model1_2 = _stage(_STAGE1, HEATMAP_CHANNELS)
        for s in range(2, 7):
            setattr(self, f"model{s}_1", _stage(_STAGE_N, PAF_CHANNELS))
            setattr(self, f"model{s}_2", _stage(_STAGE_N, HEATMAP_CHANNELS))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model0(x)  # (N, 128, H/8, W/8)
        paf, heat = self.model1_1(features), self.model1_2(features)
        for s in range(2, 7):
            joint = torch.cat([paf, heat, features], 1)  # (N, 38 + 19 + 128 = 185, H/8, W/8)
            paf, heat = getattr(self, f"model{s}_1")(joint), getattr(self, f"model{s}_2")(joint)
        return paf, heat


def load_rtpose(path: str | os.PathLike | None = None) -> RtPoseVGG19:
    """The network with the published weights; every key and shape must match (errors name the file)."""
    p = resolve_weights(path, WEIGHTS_ENV, WHAT)
    state = load_state_dict(p, WHAT)
    with torch.device("meta"):  # shapes only: every tensor comes from the file
        net = RtPoseVGG19()
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise KeyError(f"{p}: not the rtpose VGG-19 layout; missing {missing[:4]} ({len(missing)}), "
                       f"unexpected {unexpected[:4]} ({len(unexpected)})")
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise ValueError(f"{p}: {k} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}")
    net.load_state_dict(state, assign=True)
    return net.eval()


# -----------------------------------------------------------------------------
# pre- and post-processing (numpy / OpenCV, as the protocol's code)


def network_input(frame_bgr: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """(3, H', W') float32 input for one BGR uint8 frame and the unpadded resized size (h, w)."""
    height, width = frame_bgr.shape[:2]
    scale = BOX_HEIGHT / float(height) * height / min(height, width)  # multiplier x H, then / shorter side
    resized = cv2.resize(frame_bgr, None, fx=scale, fy=scale)  # bilinear, uint8
    h, w = resized.shape[:2]
    padded = np.zeros((-(-h // STRIDE) * STRIDE, -(-w // STRIDE) * STRIDE, 3), dtype=np.uint8)
    padded[:h, :w] = resized
    return (padded.astype(np.float32) / 256.0 - 0.5).transpose(2, 0, 1), (h, w)


def heatmaps_to_frame(heat: np.ndarray, real_hw: tuple[int, int], frame_hw: tuple[int, int]) -> np.ndarray:
    """(h/8, w/8, C) network heatmaps -> (H, W, C) float64 at the frame size, as the protocol resizes them."""
    hp, wp = -(-real_hw[0] // STRIDE), -(-real_hw[1] // STRIDE)
    up = cv2.resize(np.ascontiguousarray(heat[:hp, :wp]), None, fx=STRIDE, fy=STRIDE, interpolation=cv2.INTER_CUBIC)
    up = np.ascontiguousarray(up[:real_hw[0], :real_hw[1]])
    out = cv2.resize(up, (frame_hw[1], frame_hw[0]), interpolation=cv2.INTER_CUBIC)
    return out.astype(np.float64)


def average_with_flip(heat: np.ndarray, heat_of_flipped: np.ndarray) -> np.ndarray:
    """Mean of a frame's heatmaps and its mirror image's, flipped back with left/right joints swapped."""
    return (heat + heat_of_flipped[:, ::-1, :][:, :, list(FLIP_HEATMAP_ORDER)]) / 2.0


def find_joints(heatmaps: np.ndarray, threshold: float = PEAK_THRESHOLD) -> np.ndarray:
    """(18, 2) x, y per joint type from (H, W, >=18) frame-size heatmaps; (-1, -1) where no peak.

    A peak is a local maximum over the 3x3 cross above ``threshold``; with several, the last in scan order
    (largest y, then x) is the one the protocol keeps. It moves to the maximum of its clipped 5x5 window.
    """
    maps = heatmaps[:, :, :len(JOINT_NAMES)]
    footprint = generate_binary_structure(2, 1)[:, :, None]  # cross in (y, x), nothing across channels
    peaks = (maximum_filter(maps, footprint=footprint) == maps) & (maps > threshold)
    height, width = maps.shape[:2]
    out = -np.ones((len(JOINT_NAMES), 2))
    for j in range(len(JOINT_NAMES)):
        ys, xs = np.nonzero(peaks[:, :, j])
        if len(ys) == 0:
            continue
        y, x = ys[-1], xs[-1]  # np.nonzero scans row-major: the last peak written wins
        y0, x0 = max(0, y - REFINE_WINDOW), max(0, x - REFINE_WINDOW)
        y1, x1 = min(height - 1, y + REFINE_WINDOW), min(width - 1, x + REFINE_WINDOW)
        patch = maps[y0:y1 + 1, x0:x1 + 1, j]
        my, mx = np.unravel_index(patch.argmax(), patch.shape)
        out[j] = (x0 + mx, y0 + my)
    return out


class OpenPoseCoco18(KeypointExtractor):
    name = "openpose-coco18"
    paper_comparable = True
    joint_names = JOINT_NAMES

    def __init__(self, weights: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                 batch_size: int = 8, net: nn.Module | None = None):
        """``net`` replaces the published network (tests); otherwise the weights load from ``weights``."""
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.net = (net if net is not None else load_rtpose(weights)).to(self.device).eval()

    @torch.no_grad()
    def heatmaps(self, frames: np.ndarray | torch.Tensor) -> np.ndarray:
        """(T, H, W, 19) flip-averaged heatmaps at the frame size."""
        frames = as_uint8_frames(frames)
        height, width = frames.shape[1:3]
        out = np.zeros(frames.shape[:3] + (HEATMAP_CHANNELS,))
        for start in range(0, len(frames), self.batch_size):
            bgr = frames[start:start + self.batch_size, :, :, ::-1]
            inputs = [network_input(np.ascontiguousarray(f)) for f in bgr]
            inputs += [network_input(np.ascontiguousarray(f[:, ::-1])) for f in bgr]  # mirrored pass
            real_hw = inputs[0][1]
            batch = torch.from_numpy(np.stack([x for x, _ in inputs])).to(self.device)
            _, heat = self.net(batch)
            heat = heat.float().cpu().numpy().transpose(0, 2, 3, 1)  # (2B, h/8, w/8, 19)
            n = len(bgr)
            for i in range(n):
                direct = heatmaps_to_frame(heat[i], real_hw, (height, width))
                mirrored = heatmaps_to_frame(heat[n + i], real_hw, (height, width))
                out[start + i] = average_with_flip(direct, mirrored)
        return out

    def extract(self, frames: np.ndarray | torch.Tensor) -> Keypoints:
        heat = self.heatmaps(frames)
        joints = np.stack([find_joints(h) for h in heat]) if len(heat) else np.zeros((0, len(JOINT_NAMES), 2))
        return Keypoints.from_sentinel(joints, extractor=self.name)
