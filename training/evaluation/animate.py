"""Inference: video reconstruction and image animation, batched on the device, and ``motionpipe animate``.

- Reconstruction (the papers' evaluation): the source is frame 0 and every frame is driven by itself. MRAA and
  TPSMM use their background predictor here, as their official reconstruction does.
- Animation of a source image by a driving video, in three modes:
  ``standard``  the driving frame's motion parameters as they are (absolute);
  ``relative``  the motion of the driving video relative to its first frame, applied to the source's parameters
                (FOMM ``normalize_kp``): p = (p_d - p_d0) * s + p_s, and with ``use_relative_jacobian`` the
                Jacobian/affine J = J_d J_d0^-1 J_s; ``adapt_movement_scale`` sets s = sqrt(area(hull(p_s)) /
                area(hull(p_d0))), else s = 1. The official MRAA/TPSMM demos always adapt the scale (set
                ``animate.adapt_movement_scale: true`` in their configs, or pass ``--adapt-scale``);
  ``avd``       the AVD network maps (source shape, driving pose) to new parameters (MRAA, TPSMM only).
  As in the official animation code the background motion is not used (identity) when animating.

Frames are processed ``batch_size`` at a time; the source's parameters are computed once. Models run in eval
mode, so BatchNorm uses its running statistics and batching does not change the result.

Checkpoints: our own (``training.checkpoint``) carry their config, and the AVD network comes from the separate
AVD-stage checkpoint; an official one needs ``--config`` and goes through ``training.models.convert``.
"""

from __future__ import annotations

import abc
import contextlib
import itertools
import logging
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn as nn

from training.config import load_config, upgrade_embedded_config, validate_config
from training.models import build_avd_network
from training.models.convert import (CheckpointMismatchError, build_inference_model, convert_official, detect_layout,
                                     is_motionpipe_checkpoint, load_official, read_checkpoint)
from training.models.grids import inverse_2x2

log = logging.getLogger(__name__)

MODES = ("standard", "relative", "avd")
CLI_MODES = MODES + ("reconstruction", "part-swap")  # part-swap: training/experiments/part_swap.py


# -----------------------------------------------------------------------------
# per-model motion parameters: detect, generate, relative motion, AVD


def convex_hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of (N, 2) points (Andrew's monotone chain + shoelace); 0 when degenerate."""
    pts = sorted(set(map(tuple, np.asarray(points, dtype=np.float64).tolist())))
    if len(pts) < 3:
        return 0.0

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    def half(seq):
        chain: list = []
        for p in seq:
            while len(chain) >= 2 and cross(chain[-2], chain[-1], p) <= 0:
                chain.pop()
            chain.append(p)
        return chain[:-1]

    hull = half(pts) + half(pts[::-1])
    x, y = np.array([p[0] for p in hull]), np.array([p[1] for p in hull])
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _relative_matrix(d: torch.Tensor, d0: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """J_d J_d0^-1 J_s (FOMM/MRAA relative Jacobian / affine)."""
    return d.float() @ inverse_2x2(d0) @ s.float()


class MotionAdapter(abc.ABC):
    """How one model's motion parameters are detected, used to generate, and made relative."""
    points_key = "value"  # the (B, N, 2) locations: moved in relative mode, their hull gives the scale
    matrix_key: str | None = None  # the (B, N, 2, 2) local linear motions (relative: J_d J_d0^-1 J_s)
    has_avd = False

    @abc.abstractmethod
    def detect(self, model: nn.Module, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """The model's motion parameters of (B, C, H, W) frames."""

    @abc.abstractmethod
    def generate(self, model: nn.Module, source: torch.Tensor, src: dict, drv: dict,
                 driving: torch.Tensor | None = None) -> torch.Tensor:
        """Prediction (B, C, H, W); ``driving`` is given in reconstruction (enables the background motion)."""

    def relative(self, src: dict, drv: dict, drv0: dict, scale: float, use_relative_jacobian: bool) -> dict:
        out = dict(drv)
        k = self.points_key
        out[k] = (drv[k] - drv0[k]) * scale + src[k]
        m = self.matrix_key
        if use_relative_jacobian and m is not None and m in drv:
            out[m] = _relative_matrix(drv[m], drv0[m], src[m])
        return out

    def avd(self, avd: nn.Module, src: dict, drv: dict) -> dict:
        raise ValueError(f"{type(self).__name__[:-7]} has no AVD network: animation mode 'avd' needs MRAA or TPSMM")


class FommAdapter(MotionAdapter):
    matrix_key = "jacobian"

    def detect(self, model, frames):
        kp = model.kp_detector(frames)
        return {k: v for k, v in kp.items() if k in ("value", "jacobian")}

    def generate(self, model, source, src, drv, driving=None):
        return model.generator(source, kp_driving=drv, kp_source=src)["prediction"]


class MraaAdapter(MotionAdapter):
    # relative mode keeps the driving covariances (the flow predictor's heatmaps), as the official code does
    points_key, matrix_key, has_avd = "shift", "affine", True

    def detect(self, model, frames):
        r = model.region_predictor(frames)
        return {k: v for k, v in r.items() if k in ("shift", "affine", "covar")}

    def generate(self, model, source, src, drv, driving=None):
        bg = model.bg_predictor(source, driving) if driving is not None else None
        return model.generator(source, drv, src, bg)["prediction"]

    def avd(self, avd, src, drv):
        return avd(src, drv)


class TpsmmAdapter(MotionAdapter):
    points_key, has_avd = "fg_kp", True

    def detect(self, model, frames):
        return {"fg_kp": model.kp_detector(frames)["fg_kp"]}

    def generate(self, model, source, src, drv, driving=None):
        bg = model.bg_predictor(source, driving) if driving is not None and model.bg_predictor is not None \
            else None
        return model.generate(source, src, drv, bg_param=bg)["prediction"]

    def avd(self, avd, src, drv):
        return {"fg_kp": avd(src["fg_kp"], drv["fg_kp"])}


class MonkeyNetAdapter(MotionAdapter):
    points_key = "mean"  # covariances stay the driving ones (official adapt_variance: false)

    def detect(self, model, frames):
        return dict(model.kp_detector(frames))

    def generate(self, model, source, src, drv, driving=None):
        return model.generator(source, drv, src)["prediction"]


ADAPTERS: dict[str, type[MotionAdapter]] = {"fomm": FommAdapter, "mraa": MraaAdapter, "tpsmm": TpsmmAdapter,
                                            "monkeynet": MonkeyNetAdapter}


# -----------------------------------------------------------------------------
# the animator


def _expand(params: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
    return {k: v.expand(n, *v.shape[1:]).contiguous() for k, v in params.items()}


def _chunks(items: Iterable, n: int) -> Iterator[list]:
    it = iter(items)
    while chunk := list(itertools.islice(it, n)):
        yield chunk


class Animator:
    """A model (and optional AVD network) in eval mode on ``device``, with batched reconstruction/animation.

    Frames go in as (H, W, C) uint8 arrays or (C, H, W) float tensors in [0, 1], at the config's frame size;
    predictions come out as (n, C, H, W) float32 CPU tensors in [0, 1], ``batch_size`` frames at a time.
    """

    def __init__(self, cfg, model: nn.Module, avd: nn.Module | None = None, device: str | torch.device = "cpu",
                 bf16: bool = False):
        self.cfg, self.device = cfg, torch.device(device)
        self.model = model.to(self.device).eval()
        self.avd_network = avd.to(self.device).eval() if avd is not None else None
        self.adapter = ADAPTERS[cfg.model]()
        self.bf16 = bf16
        self.frame_size = cfg.frame_size  # (H, W)
        p = cfg.model_params
        self.channels = p.num_channels if cfg.model == "mraa" else p.common.num_channels
        self.lineage: dict = {}  # what made the checkpoint (config hash, git commit, dataset version, ...)

    def _autocast(self):
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def to_tensor(self, frames: list, what: str = "frame") -> torch.Tensor:
        """List of frames -> (n, C, H, W) float32 on the device, checking their size."""
        out = []
        for i, f in enumerate(frames):
            t = torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1).float().div(255) \
                if isinstance(f, np.ndarray) else f.float()
            if tuple(t.shape) != (self.channels, *self.frame_size):
                raise ValueError(f"{what} {i} has shape {tuple(t.shape)} (C, H, W), the model expects "
                                 f"({self.channels}, {self.frame_size[0]}, {self.frame_size[1]})")
            out.append(t)
        return torch.stack(out).to(self.device)

    @torch.no_grad()
    def reconstruct(self, frames: Iterable, batch_size: int = 16) -> Iterator[torch.Tensor]:
        """Source = frame 0, every frame driven by itself (with the background motion where the model has one)."""
        source = src = None
        for chunk in _chunks(frames, batch_size):
            driving = self.to_tensor(chunk)
            with self._autocast():
                if source is None:
                    source = driving[:1]
                    src = self.adapter.detect(self.model, source)
                n = driving.shape[0]
                drv = self.adapter.detect(self.model, driving)
                pred = self.adapter.generate(self.model, source.expand(n, -1, -1, -1).contiguous(),
                                             _expand(src, n), drv, driving=driving)
            yield pred.float().clamp(0, 1).cpu()

    @torch.no_grad()
    def animate(self, source_image, driving_frames: Iterable, mode: str = "relative", batch_size: int = 16,
                adapt_movement_scale: bool | None = None,
                use_relative_jacobian: bool | None = None) -> Iterator[torch.Tensor]:
        """Animate one source image by the driving frames; ``None`` options come from the config's animate section."""
        if mode not in MODES:
            raise ValueError(f"unknown animation mode {mode!r}; expected one of {list(MODES)}")
        if mode == "avd":
            if not self.adapter.has_avd:
                self.adapter.avd(None, {}, {})  # raises the model's clear error
            if self.avd_network is None:
                raise ValueError(f"mode 'avd' needs a trained AVD network; the checkpoint of {self.cfg.name!r} "
                                 "has none (train the AVD stage, or pass --avd-checkpoint)")
        a = self.cfg.animate
        adapt = a.adapt_movement_scale if adapt_movement_scale is None else adapt_movement_scale
        rel_jac = a.use_relative_jacobian if use_relative_jacobian is None else use_relative_jacobian
        source = self.to_tensor([source_image], "source image")
        with self._autocast():
            src = self.adapter.detect(self.model, source)
        drv0, scale = None, 1.0
        for chunk in _chunks(driving_frames, batch_size):
            driving = self.to_tensor(chunk, "driving frame")
            n = driving.shape[0]
            with self._autocast():
                drv = self.adapter.detect(self.model, driving)
                if drv0 is None:
                    drv0 = {k: v[:1] for k, v in drv.items()}
                    if mode == "relative" and adapt:
                        scale = self.movement_scale(src, drv0)
                src_n = _expand(src, n)
                if mode == "relative":
                    new = self.adapter.relative(src_n, drv, _expand(drv0, n), scale, rel_jac)
                elif mode == "avd":
                    new = self.adapter.avd(self.avd_network, src_n, drv)
                else:
                    new = drv
                pred = self.adapter.generate(self.model, source.expand(n, -1, -1, -1).contiguous(), src_n, new)
            yield pred.float().clamp(0, 1).cpu()

    def movement_scale(self, src: dict, drv0: dict) -> float:
        """sqrt(hull area of the source points / hull area of the first driving frame's points)."""
        k = self.adapter.points_key
        a_s = convex_hull_area(src[k][0].float().cpu().numpy())
        a_d = convex_hull_area(drv0[k][0].float().cpu().numpy())
        if a_d <= 0 or a_s <= 0:
            log.warning("degenerate keypoint hull (areas %.3g, %.3g): movement scale left at 1", a_s, a_d)
            return 1.0
        return float(np.sqrt(a_s) / np.sqrt(a_d))


# -----------------------------------------------------------------------------
# loading checkpoints


def _from_training_checkpoint(path, state: dict, config) -> tuple:
    """(cfg, model) from one of our main-stage training checkpoints (``training.checkpoint`` format)."""
    from training.checkpoint import CheckpointError, load_networks

    missing = [k for k in ("model", "config", "networks") if k not in state]
    if missing:
        raise CheckpointMismatchError(f"{path}: checkpoint lacks {missing}")
    if state.get("stage", "main") != "main":
        raise ValueError(f"{path} is a {state['stage']!r}-stage checkpoint (networks {sorted(state['networks'])}): "
                         "pass the main-stage checkpoint as --checkpoint and this one as --avd-checkpoint")
    source = f"{path} (embedded config)"
    cfg = validate_config(upgrade_embedded_config(state["config"], source), source=source)
    if config is not None:
        log.warning("%s carries its own config %r; --config %s is ignored", path, cfg.name, config)
    if state["model"] != cfg.model:
        raise CheckpointMismatchError(f"{path}: model {state['model']!r} but its config is {cfg.model}")
    model = build_inference_model(cfg)
    try:
        load_networks(model, state)
    except (CheckpointError, RuntimeError) as err:
        raise CheckpointMismatchError(f"{path}: {err}") from None
    return cfg, model


def load_animator(checkpoint: str | os.PathLike, config: str | os.PathLike | None = None,
                  avd_checkpoint: str | os.PathLike | None = None, device: str = "cpu",
                  bf16: bool = False) -> Animator:
    """Model (+ AVD) from one of our training checkpoints (which carry their config; the AVD network comes
    from the separate AVD-stage checkpoint, ``avd_checkpoint``) or an official one (``config`` required; an
    official MRAA/TPSMM checkpoint usually holds its AVD network too). Files are read with weights_only
    (``convert.read_checkpoint``)."""
    ckpt = read_checkpoint(checkpoint)
    avd = None
    if is_motionpipe_checkpoint(ckpt):
        cfg, model = _from_training_checkpoint(checkpoint, ckpt, config)
    else:
        if config is None:
            layout = detect_layout(ckpt)
            raise ValueError(f"{checkpoint} is an official {layout} checkpoint, which carries no config: pass "
                             f"--config (e.g. {layout}-taichi-256)")
        cfg = load_config(config)
        loaded = load_official(checkpoint, cfg)
        model, avd = loaded.model, loaded.avd
    if avd_checkpoint is not None:
        avd = _load_avd(avd_checkpoint, cfg)
    animator = Animator(cfg, model, avd, device=device, bf16=bf16)
    meta = ckpt.get("meta", {}) if is_motionpipe_checkpoint(ckpt) else {}
    animator.lineage = ({k: meta.get(k) for k in ("config_hash", "git_commit", "motionpipe_version", "lineage")}
                        | {"step": ckpt.get("step")} if meta else {"official_checkpoint": True})
    return animator


def _load_avd(path, cfg) -> nn.Module:
    """The AVD network from our AVD-stage checkpoint or from an official checkpoint holding ``avd_network``."""
    avd = build_avd_network(cfg)
    if avd is None:
        raise ValueError(f"config {cfg.name!r} ({cfg.model}) has no AVD network")
    ckpt = read_checkpoint(path)
    if is_motionpipe_checkpoint(ckpt):
        nets = ckpt.get("networks", {})
        if ckpt.get("model") != cfg.model or "avd" not in nets:
            raise CheckpointMismatchError(f"{path}: not a {cfg.model} AVD-stage checkpoint (model "
                                          f"{ckpt.get('model')!r}, networks {sorted(nets)})")
        try:
            avd.load_state_dict(nets["avd"])
        except RuntimeError as err:
            raise CheckpointMismatchError(f"{path}: the AVD network does not fit config {cfg.name!r}: {err}") \
                from None
    else:
        if "avd_network" not in ckpt:
            raise CheckpointMismatchError(f"{path}: no avd_network in this checkpoint (top-level keys "
                                          f"{sorted(map(str, ckpt))})")
        state_dicts, _ = convert_official(ckpt, cfg, {"avd": avd}, source=str(path))
        avd.load_state_dict(state_dicts["avd"])
    return avd.eval()


# -----------------------------------------------------------------------------
# image and video I/O


def read_image(path: str | os.PathLike, size: tuple[int, int]) -> np.ndarray:
    """Source image -> (H, W, 3) uint8 RGB at ``size`` = (H, W). An alpha channel is dropped; grayscale is an
    error (the models take RGB). Resized as is (no crop): crop the subject yourself for other aspect ratios."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"source image not found: {p}")
    img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"{p}: not an image OpenCV can decode")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ValueError(f"{p}: unsupported pixel type {img.dtype} (expected 8- or 16-bit)")
    channels = 1 if img.ndim == 2 else img.shape[2]
    if channels not in (3, 4):
        raise ValueError(f"{p}: image has {channels} channel(s); the model needs an RGB image (3 channels)")
    img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if channels == 4 else cv2.COLOR_BGR2RGB)
    h, w = size
    if img.shape[:2] != (h, w):
        shrink = img.shape[0] > h or img.shape[1] > w
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return np.ascontiguousarray(img)


def to_uint8(pred: torch.Tensor) -> np.ndarray:
    """(n, C, H, W) in [0, 1] -> (n, H, W, C) uint8."""
    return (pred.permute(0, 2, 3, 1).numpy() * 255).round().clip(0, 255).astype(np.uint8)
