"""Parity with the official code: motionpipe against a local clone of an official repository, fp32 on the CPU.
(Over 400 lines: one adapter per official repository, four of them, each emulating its pinned torch's defaults.)

The official networks are imported from the user's clone (it goes on ``sys.path``; nothing is copied here) and built
from the official config the way the official ``run.py`` builds them. Weights:
- without ``--checkpoint``: a freshly built motionpipe model with every weight and BatchNorm statistic perturbed off
  its initialisation (so zero/identity-initialised heads matter), exported with ``training.models.convert.to_official``
  and loaded into the official networks;
- with ``--checkpoint``: the official file, loaded into the official networks as their ``Logger.load_cpk`` does and
  into motionpipe through ``training.models.convert.load_official``.
On a few deterministic frames (a smooth moving textured blob) it prints, per animation mode, the max |Δ| of the
motion parameters (keypoints / regions: value & jacobian, shift & affine & covar, TPS keypoints, mean & var) and of
the frames, motionpipe's ``training.evaluation.animate.Animator`` against the official code:
- reconstruction: source = frame 0, every frame driven by itself, with the background predictor where the model has
  one (as the official reconstruction.py does);
- standard: the driving parameters as they are;
- relative: the official normalisation function itself (FOMM animate.py ``normalize_kp``, MRAA animate.py
  ``get_animation_region_params``, TPSMM demo.py ``relative_kp``, Monkey-Net transfer.py ``normalize_kp``), with and
  without adapt_movement_scale where the official code has the switch (MRAA and TPSMM always adapt);
- avd (MRAA, TPSMM): the official AVD network.
PASS when every parameter Δ <= 1e-4 and every frame Δ <= 1e-3.

Torch version emulation: the official code ran under the torch its repository pinned. F.grid_sample's
align_corners default was True-behaviour up to torch 1.2 and False from 1.3, so for FOMM (torch 1.0) and Monkey-Net
(0.4.1) every official grid_sample call that leaves it out gets True; MRAA (1.4) gets False (today's default);
TPSMM passes True itself. Monkey-Net also calls ``torch.gesv`` (removed from torch), given as ``torch.linalg.solve``.
Both patches live only inside ``pinned_torch`` around the official forward passes, and are printed.
Imports that do not touch the math are stubbed when the environment lacks them (``sync_batchnorm`` -> torch BatchNorm,
identical in eval mode; matplotlib, flow_vis, imageio); TPSMM needs a working torchvision (its ResNet-18 is math).

    .venv/bin/python benchmarks/official_parity.py --model mraa --official-repo ~/src/articulated-animation \\
        --official-config ~/src/articulated-animation/config/taichi256.yaml [--checkpoint taichi256.pth] \\
        [--config mraa-taichi-256] [--size 256] [--frames 3] [--fp64-check] [--no-emulation]

The official networks run frame by frame (batch 1), as their animate/reconstruction loops do; the Animator batches.
When a row is over a bar (or always, with ``--fp64-check``) the official code is rerun in float64 and both fp32
results are measured against it: if motionpipe is as close to that exact result as the official fp32 code, the Δ is
fp32 rounding amplified by an ill-conditioned input, not a difference of the code. ``--no-emulation`` is a control
run that shows what the grid_sample emulation changes.
"""
from __future__ import annotations

import abc
import argparse
import ast
import contextlib
import importlib
import importlib.abc
import importlib.util
import subprocess
import sys
import time
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.evaluation.animate import Animator, convex_hull_area  # noqa: E402
from training.config import load_config  # noqa: E402
from training.models.perturb import perturb_weights  # noqa: E402
from training.models import build_avd_network  # noqa: E402
from training.models.convert import (build_inference_model, load_official, read_checkpoint,  # noqa: E402
                                      strip_wrapper_prefixes, to_official)

CONFIGS = {"fomm": "fomm-taichi-256", "mraa": "mraa-taichi-256", "tpsmm": "tpsmm-taichi-256",
           "monkeynet": "monkeynet-vox-256"}
# torch each repository pinned, and the align_corners its grid_sample calls got when they left it out
PINNED = {"fomm": ("1.0.0", True), "monkeynet": ("0.4.1", True), "mraa": ("1.4.0", False),
          "tpsmm": ("1.10.0", False)}
PARAM_KEYS = {"fomm": ("value", "jacobian"), "mraa": ("shift", "affine", "covar"), "tpsmm": ("fg_kp",),
              "monkeynet": ("mean", "var")}
PARAM_BAR, FRAME_BAR = 1e-4, 1e-3
WEIGHT_SEED, NOISE_SEED = 0, 1

Params = dict[str, torch.Tensor]


# -----------------------------------------------------------------------------
# torch version emulation and import stubs


def _gesv(b: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """torch <= 1.1's torch.gesv(B, A) -> (X, LU) with A X = B."""
    return torch.linalg.solve(a, b), torch.linalg.lu_factor(a)[0]


@contextlib.contextmanager
def pinned_torch(model: str, emulate: bool = True) -> Iterator[dict[str, int]]:
    """Run the official code with the defaults of the torch its repository pinned (see the module docstring);
    counts the grid_sample calls and those that left align_corners to the default. ``emulate=False``: today's
    default (False) instead, to see what the emulation changes."""
    original, default = F.grid_sample, PINNED[model][1] and emulate
    counts = {"grid_sample": 0, "defaulted": 0}

    def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=None):
        counts["grid_sample"] += 1
        if align_corners is None:
            counts["defaulted"] += 1
            align_corners = default
        return original(input, grid, mode, padding_mode, align_corners)

    add_gesv = model == "monkeynet" and not hasattr(torch, "gesv")
    F.grid_sample = grid_sample
    if add_gesv:
        torch.gesv = _gesv
    try:
        with warnings.catch_warnings():  # deprecations of F.sigmoid, meshgrid indexing, ... in the 2019-22 code
            warnings.simplefilter("ignore")
            yield counts
    finally:
        F.grid_sample = original
        if add_gesv:
            del torch.gesv


class StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Supplies, last on sys.meta_path, the modules below when the official code imports them and nothing
    installed (or in the clone) provides them; ``used`` records which were stubbed."""
    STUBS = {
        "sync_batchnorm": ("torch.nn.BatchNorm1d/2d/3d (in eval mode both are F.batch_norm with the running "
                           "statistics)", lambda: dict(SynchronizedBatchNorm1d=nn.BatchNorm1d,
                                                       SynchronizedBatchNorm2d=nn.BatchNorm2d,
                                                       SynchronizedBatchNorm3d=nn.BatchNorm3d,
                                                       DataParallelWithCallback=nn.DataParallel)),
        "matplotlib": ("an empty module (plotting only)", lambda: dict(use=lambda *a, **k: None)),
        "matplotlib.pyplot": ("an empty module (plotting only)", dict),
        "flow_vis": ("an empty module (flow visualisation only)", dict),
        "imageio": ("an empty module (video I/O only)", dict),
    }

    def __init__(self):
        self.used: list[str] = []

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.STUBS:
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=fullname == "matplotlib")

    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module):
        why, attrs = self.STUBS[module.__name__]
        module.__dict__.update(attrs())
        self.used.append(f"{module.__name__} -> {why}")


@contextlib.contextmanager
def official_imports(clone: Path) -> Iterator[StubFinder]:
    """The clone first on sys.path and the stub finder last on sys.meta_path, while the official modules load."""
    finder = StubFinder()
    sys.path.insert(0, str(clone))
    sys.meta_path.append(finder)
    try:
        yield finder
    finally:
        sys.meta_path.remove(finder)
        sys.path.remove(str(clone))


def import_official(clone: Path, module: str) -> types.ModuleType:
    """``module`` from the clone (first on sys.path), never from anywhere else."""
    mod = importlib.import_module(module)
    origin = Path(mod.__file__).resolve()
    if clone.resolve() not in origin.parents:
        raise SystemExit(f"{module} was imported from {origin}, not from the clone {clone}")
    return mod


class _Hull:
    """scipy.spatial.ConvexHull stand-in (``.volume`` of 2-D points) when scipy is missing."""

    def __init__(self, points):
        self.volume = convex_hull_area(np.asarray(points))


def convex_hull_class() -> tuple[type, str | None]:
    try:
        from scipy.spatial import ConvexHull
        return ConvexHull, None
    except ImportError:
        return _Hull, "scipy.spatial.ConvexHull -> motionpipe's convex_hull_area (scipy missing)"


def official_function(path: Path, name: str, namespace: dict) -> Callable:
    """One function of an official script, compiled on its own from the clone's source: the script's data-loading
    and logging imports (frames_dataset, logger, imageio) are not needed to run it."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    if not nodes:
        raise SystemExit(f"{path} defines no function {name!r}")
    scope = dict(namespace)
    exec(compile(ast.Module(body=nodes, type_ignores=[]), str(path), "exec"), scope)
    return scope[name]


def git_commit(clone: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(clone), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or "not a git checkout"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# -----------------------------------------------------------------------------
# the official side


def _frame(params: Params, i: int) -> Params:
    return {k: v[i:i + 1] for k, v in params.items() if torch.is_tensor(v)}


def _cat(items: list[Params]) -> Params:
    return {k: torch.cat([d[k] for d in items]) for k in items[0] if torch.is_tensor(items[0][k])}


def load_networks(networks: dict[str, nn.Module], state: dict, what: str) -> None:
    """Official ``Logger.load_cpk``: each network's state dict by its checkpoint key; only BatchNorm counters that
    older checkpoints lack may be missing."""
    for key, net in networks.items():
        if key not in state:
            raise SystemExit(f"{what} has no {key!r} entry (keys {sorted(map(str, state))})")
        try:
            missing, unexpected = net.load_state_dict(strip_wrapper_prefixes(state[key]), strict=False)
        except RuntimeError as err:  # shape mismatches: another architecture than the official config's
            raise SystemExit(f"{what}: {key} does not fit the official network: {err}") from None
        bad = [m for m in missing if not m.endswith("num_batches_tracked")] + list(unexpected)
        if bad:
            raise SystemExit(f"{what}: {key} does not fit the official network: {bad[:10]}")
        net.eval()


class Official(abc.ABC):
    """The official networks of one repository and how its scripts call them; parameters in motionpipe's layout."""
    relative_adapt: tuple[bool, ...] = (False, True)  # adapt_movement_scale settings the official code offers
    relative_note = ""

    def __init__(self, clone: Path, config: dict, state: dict, what: str, hull: type):
        self.clone, self.config, self.hull = clone, config, hull
        self.mp = config["model_params"]
        self.avd_network = None
        self.build(state, what)

    @abc.abstractmethod
    def build(self, state: dict, what: str) -> None:
        """Construct the official networks from ``self.mp`` and load ``state`` (motionpipe's layout) into them."""

    def networks(self) -> list[nn.Module]:
        return [v for v in vars(self).values() if isinstance(v, nn.Module)]

    @abc.abstractmethod
    def detect(self, frames: torch.Tensor) -> Params:
        """The official keypoint/region detector's output on ``frames``."""

    @abc.abstractmethod
    def generate(self, source: torch.Tensor, src: Params, drv: Params,
                 driving: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """{'prediction', 'deformed' (the source warped by the dense flow)}; ``driving``: reconstruction (bg)."""

    @abc.abstractmethod
    def relative(self, src: Params, drv: Params, drv0: Params, adapt: bool) -> Params:
        """Driving parameters made relative to the first driving frame, as the official animate script does."""

    def avd(self, src: Params, drv: Params) -> Params | None:
        return None


class OfficialFOMM(Official):
    def build(self, state, what):
        gen = import_official(self.clone, "modules.generator").OcclusionAwareGenerator
        kpd = import_official(self.clone, "modules.keypoint_detector").KPDetector
        self.generator = gen(**self.mp["generator_params"], **self.mp["common_params"])
        self.kp_detector = kpd(**self.mp["kp_detector_params"], **self.mp["common_params"])
        load_networks({"generator": self.generator, "kp_detector": self.kp_detector}, state, what)
        self.normalize_kp = official_function(self.clone / "animate.py", "normalize_kp",
                                              {"torch": torch, "np": np, "ConvexHull": self.hull})
        self.normalization = dict(self.config.get("animate_params", {}).get(
            "normalization_params", {"use_relative_movement": True, "use_relative_jacobian": True}))

    def detect(self, frames):
        return dict(self.kp_detector(frames))

    def generate(self, source, src, drv, driving=None):
        return self.generator(source, kp_driving=drv, kp_source=src)

    def relative(self, src, drv, drv0, adapt):
        opts = {**self.normalization, "adapt_movement_scale": adapt}
        return _cat([self.normalize_kp(kp_source=src, kp_driving=_frame(drv, i), kp_driving_initial=drv0, **opts)
                     for i in range(len(drv["value"]))])


class OfficialMRAA(Official):
    relative_adapt = (True,)
    relative_note = "get_animation_region_params always adapts the movement scale (its flag is unused)"

    def build(self, state, what):
        mp = self.mp
        common = {"num_regions": mp["num_regions"], "num_channels": mp["num_channels"]}
        self.generator = import_official(self.clone, "modules.generator").Generator(
            revert_axis_swap=mp["revert_axis_swap"], **common, **mp["generator_params"])
        self.region_predictor = import_official(self.clone, "modules.region_predictor").RegionPredictor(
            estimate_affine=mp["estimate_affine"], **common, **mp["region_predictor_params"])
        self.bg_predictor = import_official(self.clone, "modules.bg_motion_predictor").BGMotionPredictor(
            num_channels=mp["num_channels"], **mp["bg_predictor_params"])
        nets = {"generator": self.generator, "region_predictor": self.region_predictor,
                "bg_predictor": self.bg_predictor}
        if "avd_network" in state:
            self.avd_network = import_official(self.clone, "modules.avd_network").AVDNetwork(
                num_regions=mp["num_regions"], **mp["avd_network_params"])
            nets["avd_network"] = self.avd_network
        load_networks(nets, state, what)
        self.animation_params = official_function(self.clone / "animate.py", "get_animation_region_params",
                                                  {"torch": torch, "np": np, "ConvexHull": self.hull})

    def detect(self, frames):
        return dict(self.region_predictor(frames))

    def generate(self, source, src, drv, driving=None):
        bg = self.bg_predictor(source, driving) if driving is not None else None
        return self.generator(source, driving_region_params=drv, source_region_params=src, bg_params=bg)

    def _per_frame(self, src, drv, drv0, mode):
        return _cat([self.animation_params(src, _frame(drv, i), drv0, mode=mode, avd_network=self.avd_network)
                     for i in range(len(drv["shift"]))])

    def relative(self, src, drv, drv0, adapt):
        return self._per_frame(src, drv, drv0, "relative")

    def avd(self, src, drv):
        return self._per_frame(src, drv, _frame(drv, 0), "avd") if self.avd_network is not None else None


class OfficialTPSMM(Official):
    relative_adapt = (True,)
    relative_note = "demo.py's relative_kp always adapts the movement scale"

    def build(self, state, what):
        mp = self.mp
        try:
            kpd = import_official(self.clone, "modules.keypoint_detector").KPDetector
        except (ImportError, RuntimeError) as err:
            raise SystemExit(f"TPSMM's KPDetector is torchvision's ResNet-18, and torchvision does not import "
                             f"here ({err}): install the torchvision that matches torch {torch.__version__}")
        self.kp_detector = kpd(**mp["common_params"])
        self.dense_motion = import_official(self.clone, "modules.dense_motion").DenseMotionNetwork(
            **mp["common_params"], **mp["dense_motion_params"])
        self.inpainting = import_official(self.clone, "modules.inpainting_network").InpaintingNetwork(
            **mp["generator_params"], **mp["common_params"])
        nets = {"kp_detector": self.kp_detector, "dense_motion_network": self.dense_motion,
                "inpainting_network": self.inpainting}
        self.bg_predictor = None
        if mp["common_params"].get("bg") and "bg_predictor" in state:
            self.bg_predictor = import_official(self.clone, "modules.bg_motion_predictor").BGMotionPredictor()
            nets["bg_predictor"] = self.bg_predictor
        if "avd_network" in state:
            self.avd_network = import_official(self.clone, "modules.avd_network").AVDNetwork(
                num_tps=mp["common_params"]["num_tps"], **mp["avd_network_params"])
            nets["avd_network"] = self.avd_network
        load_networks(nets, state, what)
        self.relative_kp = official_function(self.clone / "demo.py", "relative_kp",
                                             {"torch": torch, "np": np, "ConvexHull": self.hull})

    def detect(self, frames):
        return dict(self.kp_detector(frames))

    def generate(self, source, src, drv, driving=None):
        bg = self.bg_predictor(source, driving) if driving is not None and self.bg_predictor is not None else None
        motion = self.dense_motion(source_image=source, kp_driving=drv, kp_source=src, bg_param=bg,
                                   dropout_flag=False)
        return self.inpainting(source, motion)

    def relative(self, src, drv, drv0, adapt):
        return _cat([self.relative_kp(kp_source=src, kp_driving=_frame(drv, i), kp_driving_initial=drv0)
                     for i in range(len(drv["fg_kp"]))])

    def avd(self, src, drv):
        if self.avd_network is None:
            return None
        return _cat([self.avd_network(src, _frame(drv, i)) for i in range(len(drv["fg_kp"]))])


class OfficialMonkeyNet(Official):
    """Monkey-Net works on (B, C, D, H, W) videos with (B, D, K, ...) keypoints; here D = 1 per frame."""

    def build(self, state, what):
        gen = import_official(self.clone, "modules.generator").MotionTransferGenerator
        kpd = import_official(self.clone, "modules.keypoint_detector").KPDetector
        self.generator = gen(**self.mp["generator_params"], **self.mp["common_params"])
        self.kp_detector = kpd(**self.mp["kp_detector_params"], **self.mp["common_params"])
        if "kp_detector" not in state and "kp_extractor" in state:  # early monkey-net checkpoints
            state = {**state, "kp_detector": state["kp_extractor"]}
        load_networks({"generator": self.generator, "kp_detector": self.kp_detector}, state, what)
        util = import_official(self.clone, "modules.util")
        self.normalize_kp = official_function(self.clone / "transfer.py", "normalize_kp",
                                              {"torch": torch, "np": np, "ConvexHull": self.hull,
                                               "matrix_inverse": util.matrix_inverse})
        self.normalization = dict(self.config.get("transfer_params", {}).get(
            "normalization_params", {"move_location": True, "adapt_variance": False}))

    @staticmethod
    def _video(params: Params) -> Params:  # (B, K, ...) -> (B, 1, K, ...)
        return {k: v.unsqueeze(1) for k, v in params.items()}

    def detect(self, frames):
        return {k: v.squeeze(1) for k, v in self.kp_detector(frames.unsqueeze(2)).items()}

    def generate(self, source, src, drv, driving=None):
        out = self.generator(source.unsqueeze(2), kp_driving=self._video(drv), kp_source=self._video(src))
        return {"prediction": out["video_prediction"].squeeze(2), "deformed": out["video_deformed"].squeeze(2)}

    def relative(self, src, drv, drv0, adapt):
        """transfer.py's normalize_kp takes the whole driving video (1, T, K, ...); its first frame is drv0."""
        opts = {**self.normalization, "movement_mult": adapt}
        video = {k: v.unsqueeze(0) for k, v in drv.items()}  # (1, T, K, ...)
        out = self.normalize_kp(video, self._video(src), **opts)
        return {k: v.squeeze(0) for k, v in out.items()}


OFFICIAL: dict[str, type[Official]] = {"fomm": OfficialFOMM, "mraa": OfficialMRAA, "tpsmm": OfficialTPSMM,
                                       "monkeynet": OfficialMonkeyNet}


# -----------------------------------------------------------------------------
# motionpipe side, weights and frames


def with_frame_size(cfg, size: int | None):
    """``cfg`` at ``size`` x ``size`` frames (the architecture does not depend on it)."""
    if size is None or cfg.frame_size == (size, size):
        return cfg
    shape = (size, size, cfg.dataset.frame_shape[2])
    return cfg.model_copy(update={"dataset": cfg.dataset.model_copy(update={"frame_shape": shape})})


def perturbed_weights(cfg) -> tuple[Animator, dict]:
    """A new motionpipe model (+ AVD network), perturbed, and the same weights in the official layout."""
    torch.manual_seed(WEIGHT_SEED)
    model, avd = build_inference_model(cfg), build_avd_network(cfg)
    nets = dict(model.networks())
    if avd is not None:
        nets["avd"] = avd.eval()
    perturb_weights(nets.values(), NOISE_SEED)
    return Animator(cfg, model, avd), to_official(cfg, nets)


def checkpoint_weights(cfg, path: Path) -> tuple[Animator, dict]:
    loaded = load_official(path, cfg)
    print(loaded.report.summary())
    return Animator(cfg, loaded.model, loaded.avd), read_checkpoint(path)


def blob_frame(t: float, size: int) -> torch.Tensor:
    """(3, size, size) in [0, 1]: a smooth textured blob whose centre moves with t, on a graded background."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    cx, cy = -0.3 + 0.1 * t, 0.2 - 0.05 * t
    blob = torch.exp(-((xx - cx) ** 2 / 0.05 + (yy - cy) ** 2 / 0.1))
    img = torch.stack([0.3 + 0.5 * blob, 0.5 + 0.3 * torch.sin(3 * xx + t) * blob, 0.2 + 0.2 * yy.abs()])
    return img.clamp(0, 1)


def test_frames(size: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The source image (t = 0) and an n-frame driving video (t = 1..n); the reconstruction uses the video alone
    (its frame 0 is the source there)."""
    return blob_frame(0, size), torch.stack([blob_frame(t, size) for t in range(1, n + 1)])


# -----------------------------------------------------------------------------
# running both sides


def _expand(params: Params, n: int) -> Params:
    return {k: v.expand(n, *v.shape[1:]).contiguous() for k, v in params.items()}


# the generator call of training.evaluation.animate's adapters, with every output (the adapters keep the prediction only)
GENERATOR_OUTPUTS: dict[str, Callable[[nn.Module, torch.Tensor, Params, Params], dict]] = {
    "fomm": lambda m, source, src, drv: m.generator(source, kp_driving=drv, kp_source=src),
    "mraa": lambda m, source, src, drv: m.generator(source, drv, src),
    "tpsmm": lambda m, source, src, drv: m.generate(source, src, drv),
    "monkeynet": lambda m, source, src, drv: m.generator(source, drv, src),
}


@torch.no_grad()
def run_motionpipe(anim: Animator, source: torch.Tensor, video: torch.Tensor, official: Official) -> dict:
    """Detections, every mode's parameters (as Animator.animate builds them) and frames."""
    n, a = len(video), anim.adapter
    rel_jac = bool(getattr(official, "normalization", {}).get("use_relative_jacobian", True))
    src, drv = a.detect(anim.model, source[None]), a.detect(anim.model, video)
    drv0, sources = {k: v[:1] for k, v in drv.items()}, source[None].expand(n, -1, -1, -1).contiguous()
    out = {"src": src, "drv": drv,
           "reconstruction": torch.cat(list(anim.reconstruct(list(video)))),
           "standard": torch.cat(list(anim.animate(source, list(video), mode="standard"))),
           "deformed": GENERATOR_OUTPUTS[anim.cfg.model](anim.model, sources, _expand(src, n), drv)["deformed"]}
    if getattr(anim.model, "bg_predictor", None) is not None:
        out["bg"] = {"bg": anim.model.bg_predictor(video[:1].expand(n, -1, -1, -1).contiguous(), video)}
    for adapt in official.relative_adapt:
        scale = anim.movement_scale(src, drv0) if adapt else 1.0
        out[f"relative_params_{adapt}"] = a.relative(_expand(src, n), drv, _expand(drv0, n), scale, rel_jac)
        out[f"relative_{adapt}"] = torch.cat(list(anim.animate(
            source, list(video), mode="relative", adapt_movement_scale=adapt, use_relative_jacobian=rel_jac)))
    if anim.avd_network is not None:
        out["avd_params"] = a.avd(anim.avd_network, _expand(src, n), drv)
        out["avd"] = torch.cat(list(anim.animate(source, list(video), mode="avd")))
    return out


def _generate_per_frame(official: Official, source: torch.Tensor, src: Params, drv: Params, n: int,
                        driving: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Frame by frame (batch 1), as the official animate/reconstruction loops run; source: (1, C, H, W)."""
    outs = [official.generate(source, src, _frame(drv, i), driving=None if driving is None else driving[i:i + 1])
            for i in range(n)]
    return {k: torch.cat([o[k] for o in outs]) for k in ("prediction", "deformed")}


@torch.no_grad()
def run_official(official: Official, source: torch.Tensor, video: torch.Tensor,
                 modes: set[str] | None = None) -> dict:
    """The same quantities from the official networks and functions; ``modes``: only these frame keys."""
    n = len(video)
    source, first = source[None], video[:1]
    src, drv, src0 = official.detect(source), official.detect(video), official.detect(first)
    drv0 = _frame(drv, 0)
    want = (lambda key: True) if modes is None else modes.__contains__
    out = {"src": src, "drv": drv}
    if want("reconstruction"):
        out["reconstruction"] = _generate_per_frame(official, first, src0, drv, n, driving=video)["prediction"]
        if getattr(official, "bg_predictor", None) is not None:
            out["bg"] = {"bg": official.bg_predictor(first.repeat(n, 1, 1, 1), video)}
    if want("standard") or want("deformed"):
        standard = _generate_per_frame(official, source, src, drv, n)
        out["standard"], out["deformed"] = standard["prediction"], standard["deformed"]
    for adapt in official.relative_adapt:
        if want(f"relative_{adapt}"):
            out[f"relative_params_{adapt}"] = rel = official.relative(src, drv, drv0, adapt)
            out[f"relative_{adapt}"] = _generate_per_frame(official, source, src, rel, n)["prediction"]
    avd = official.avd(src, drv) if want("avd") else None
    if avd is not None:
        out["avd_params"] = avd
        out["avd"] = _generate_per_frame(official, source, src, avd, n)["prediction"]
    return out


@torch.no_grad()
def run_official_fp64(official: Official, source: torch.Tensor, video: torch.Tensor, model: str,
                      emulate: bool, modes: set[str]) -> dict:
    """The official code in float64 (``modes`` only): the exact result both fp32 runs round away from."""
    for net in official.networks():
        net.double()
    try:
        with pinned_torch(model, emulate):
            return run_official(official, source.double(), video.double(), modes)
    finally:
        for net in official.networks():
            net.float()


# -----------------------------------------------------------------------------
# comparison


@dataclass
class Row:
    """One line of the table: the result keys of its parameters (dicts) and of its frames."""
    mode: str
    param_keys: tuple[str, ...] = ()
    frames_key: str | None = None
    note: str = ""


def table_rows(model: str, ours: dict, theirs: dict, official: Official) -> list[Row]:
    rows = [Row("detection (source + driving frames)", ("src", "drv"))]
    bg = ("bg",) if "bg" in theirs and "bg" in ours else ()
    rows += [Row("reconstruction" + (" (+ bg predictor)" if bg else ""), bg, "reconstruction"),
             Row("standard", (), "standard"),
             Row("standard: source warped by the flow", (), "deformed")]
    for adapt in (False, True):
        name = f"relative adapt_movement_scale={adapt}"
        if adapt in official.relative_adapt:
            rows.append(Row(name, (f"relative_params_{adapt}",), f"relative_{adapt}"))
        else:
            rows.append(Row(name, note=f"n/a: {official.relative_note}"))
    if model in ("mraa", "tpsmm"):
        rows.append(Row("avd", ("avd_params",), "avd") if "avd" in theirs and "avd" in ours
                    else Row("avd", note="n/a: the checkpoint has no avd_network"))
    return rows


def params_delta(ours: dict, theirs: dict, row: Row, keys) -> dict[str, float]:
    """Max |Δ| per parameter over the row's parameter sets (keys: the model's, or 'bg')."""
    out: dict[str, float] = {}
    for part in row.param_keys:
        for k in keys if part != "bg" else ("bg",):
            if k in ours[part] and k in theirs[part]:
                d = (ours[part][k].double() - theirs[part][k].double()).abs().max().item()
                out[k] = max(out.get(k, 0.0), d)
    return out


def frames_delta(ours: dict, theirs: dict, row: Row) -> float | None:
    """Animator clamps to [0, 1] (a no-op on the sigmoid/occlusion-mixed outputs); the official frames likewise."""
    if row.frames_key is None:
        return None
    a, b = ours[row.frames_key].double(), theirs[row.frames_key].double().clamp(0, 1)
    return (a - b).abs().max().item()


def row_worst(ours: dict, theirs: dict, row: Row, keys) -> tuple[float, float]:
    params = params_delta(ours, theirs, row, keys)
    return max(params.values(), default=0.0), frames_delta(ours, theirs, row) or 0.0


def print_table(rows: list[Row], ours: dict, theirs: dict, keys) -> list[Row]:
    """The table; returns the rows over a bar."""
    print(f"\n{'mode':<40} {'motion parameters max|Δ|':<52} frames max|Δ|")
    failing = []
    for r in rows:
        if r.note:
            print(f"{r.mode:<40} {r.note}")
            continue
        params = params_delta(ours, theirs, r, keys)
        text = "  ".join(f"{k} {v:.1e}" for k, v in params.items()) or "(the detection's)"
        frames = frames_delta(ours, theirs, r)
        print(f"{r.mode:<40} {text:<52} {'-' if frames is None else f'{frames:.1e}'}")
        p, f = row_worst(ours, theirs, r, keys)
        if p > PARAM_BAR or f > FRAME_BAR:
            failing.append(r)
    return failing


def print_verdict(rows: list[Row], failing: list[Row], ours: dict, theirs: dict, keys) -> bool:
    worst = [row_worst(ours, theirs, r, keys) for r in rows if not r.note]
    wp, wf = max(p for p, _ in worst), max(f for _, f in worst)
    print(f"\n{'FAIL' if failing else 'PASS'}: worst motion-parameter Δ {wp:.1e} (bar {PARAM_BAR:g}), worst frame Δ "
          f"{wf:.1e} (bar {FRAME_BAR:g})" + (f" in {', '.join(r.mode for r in failing)}" if failing else ""))
    return not failing


def _pf(row: Row, params: float, frames: float) -> str:
    return " ".join(([f"params {params:.1e}"] if row.param_keys else []) +
                    ([f"frames {frames:.1e}"] if row.frames_key else []))


def print_fp64_diagnosis(rows: list[Row], failing: list[Row], ours: dict, theirs: dict, exact: dict, keys) -> None:
    """For each row: how far each fp32 result is from the official float64 one. Where motionpipe is no further from
    it than the official fp32 code, a Δ over the bar is fp32 rounding amplified by an ill-conditioned input (e.g. a
    near-singular affine from an untrained AVD network), not a difference of the code."""
    print("fp64 check (the official code rerun in float64: the exact result both fp32 runs round away from):")
    for r in rows:
        mp_p, mp_f = row_worst(ours, exact, r, keys)
        off_p, off_f = row_worst(theirs, exact, r, keys)
        close = mp_p <= max(2 * off_p, PARAM_BAR) and mp_f <= max(2 * off_f, FRAME_BAR)
        verdict = ("motionpipe is as close to it as the official fp32 code"
                   + ("; the Δ over the bar is fp32 rounding of an ill-conditioned input" if r in failing else "")
                   if close else "motionpipe is further from it than the official fp32 code: a real difference")
        print(f"  {r.mode}: motionpipe {_pf(r, mp_p, mp_f)}, official fp32 {_pf(r, off_p, off_f)} -> {verdict}")


# -----------------------------------------------------------------------------
# command line


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, choices=sorted(CONFIGS))
    p.add_argument("--official-repo", required=True, type=Path, help="local clone of the official repository")
    p.add_argument("--official-config", required=True, type=Path, help="the official YAML config of the model")
    p.add_argument("--checkpoint", type=Path, default=None, help="official checkpoint (default: perturbed weights)")
    p.add_argument("--config", default=None, help="motionpipe config (default: the model's 256-px config)")
    p.add_argument("--size", type=int, default=None, help="frame size (default: the config's)")
    p.add_argument("--frames", type=int, default=3, help="driving frames (>= 2)")
    p.add_argument("--fp64-check", action="store_true",
                   help="rerun the official code in float64 for every row (by default only for rows over a bar)")
    p.add_argument("--no-emulation", action="store_true",
                   help="control run: the official grid_sample calls get today's default (False), not their torch's")
    return p.parse_args(argv)


def build_official(args, cfg, clone: Path) -> tuple[Animator, Official]:
    """Both sides' networks with the same weights; prints where the weights and stubs come from."""
    hull, hull_stub = convex_hull_class()
    if args.checkpoint is None:
        print(f"weights: a new motionpipe model, perturbed (seeds {WEIGHT_SEED}/{NOISE_SEED}), exported with "
              "training.models.convert.to_official")
        anim, state = perturbed_weights(cfg)
    else:
        print(f"weights: {args.checkpoint} (official networks: load_state_dict; motionpipe: load_official)")
        anim, state = checkpoint_weights(cfg, args.checkpoint)
    config = yaml.safe_load(args.official_config.read_text())
    with official_imports(clone) as finder:
        official = OFFICIAL[args.model](clone, config, state, str(args.checkpoint or "to_official"), hull)
    for line in finder.used + ([hull_stub] if hull_stub else []):
        print(f"stubbed (missing here, not part of the math): {line}")
    return anim, official


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(2)
    started = time.perf_counter()
    clone = args.official_repo.resolve()
    if not (clone / "modules").is_dir():
        raise SystemExit(f"{clone} is not a clone of the official repository (no modules/ folder)")
    if args.frames < 2:
        raise SystemExit("--frames must be >= 2 (relative mode moves by the difference to the first frame)")
    cfg = with_frame_size(load_config(args.config or CONFIGS[args.model]), args.size)
    if cfg.model != args.model:
        raise SystemExit(f"config {cfg.name!r} is a {cfg.model} config, not {args.model}")
    print(f"motionpipe {cfg.name} vs {clone} (commit {git_commit(clone)}), config {args.official_config}")
    print(f"torch {torch.__version__}, fp32, CPU, {torch.get_num_threads()} threads; "
          f"{args.frames} driving frames at {cfg.frame_size[0]}x{cfg.frame_size[1]}")
    anim, official = build_official(args, cfg, clone)

    source, video = test_frames(cfg.frame_size[0], args.frames)
    emulate = not args.no_emulation
    with pinned_torch(args.model, emulate) as counts:
        theirs = run_official(official, source, video)
    ours = run_motionpipe(anim, source, video, official)
    pinned, default = PINNED[args.model]
    print(f"{'emulated' if emulate else 'NOT emulated (control run)'}: torch {pinned} defaults: {counts['defaulted']} "
          f"of {counts['grid_sample']} official grid_sample calls left align_corners out and were given "
          f"{default and emulate}" + ("; torch.gesv -> torch.linalg.solve" if args.model == "monkeynet" else ""))
    keys = PARAM_KEYS[args.model]
    rows = table_rows(args.model, ours, theirs, official)
    failing = print_table(rows, ours, theirs, keys)
    ok = print_verdict(rows, failing, ours, theirs, keys)
    check = [r for r in rows if not r.note] if args.fp64_check else failing
    if check:
        exact = run_official_fp64(official, source, video, args.model, emulate,
                                  {r.frames_key for r in check if r.frames_key})
        print_fp64_diagnosis(check, failing, ours, theirs, exact, keys)
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
