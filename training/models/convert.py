"""Official checkpoints (Monkey-Net, FOMM, MRAA, TPSMM) -> motionpipe modules, and back.

(Over 400 lines: the four official key layouts side by side, both directions, so each is read against the others.)

A user with a released checkpoint of one of the four official codebases can evaluate or fine-tune it here
and get the official outputs. Each layout is a top-level dict of per-network state dicts (plus optimisers
and an epoch counter) saved by the official ``Logger.save_cpk``:

- first-order-model:   generator, kp_detector, discriminator, optimizer_{generator,kp_detector,discriminator}, epoch
- articulated-animation: generator, region_predictor, bg_predictor, [avd_network], optimizer_reconstruction,
  [optimizer_avd], epoch_reconstruction / epoch_avd
- Thin-Plate-Spline-Motion-Model: kp_detector, dense_motion_network, inpainting_network, [bg_predictor],
  [avd_network], optimizer, [optimizer_bg_predictor], [optimizer_avd], epoch
- monkey-net: generator, kp_detector (kp_extractor in early versions), discriminator, optimizer_*, epoch, it

Our modules keep the official module names, so most keys load as they are. What differs:
- FOMM/MRAA generators: ``bottleneck.r<i>`` (a named Sequential) is ``bottleneck.<i>`` here;
- FOMM multi-scale discriminator: scale ``1`` is named ``1-0`` here (scales are floats);
- MRAA background predictor: ``encoder`` is ``bg_encoder`` here;
- Monkey-Net: 3-D (1, k, k) kernels are 2-D here and the U-Net output convs sit outside the Hourglass
  (``training.models.monkeynet.OFFICIAL_KEY_RENAMES``);
- the AVD network (``avd_network``) is our separate ``avd`` network.
Keys saved through ``DataParallel``/``DistributedDataParallel`` (``module.``) or ``torch.compile``
(``_orig_mod.``) are accepted, and BatchNorm ``num_batches_tracked`` counters that pre-1.0 checkpoints lack are
filled with 0. Everything else must match exactly: a checkpoint of another model, or of another architecture
(widths, keypoint count, motion scale factor), fails with an error that names every mismatched key.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from training.config import require_official_convention
from training.models import MODELS, build_avd_network, build_model

log = logging.getLogger(__name__)

LAYOUT_NAMES = {"fomm": "first-order-model", "mraa": "articulated-animation",
                "tpsmm": "Thin-Plate-Spline-Motion-Model", "monkeynet": "monkey-net"}
WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # (Distributed)DataParallel, torch.compile


class CheckpointMismatchError(ValueError):
    """The checkpoint does not fit the config's model; ``report`` lists every missing/unexpected/mismatched key."""

    def __init__(self, message: str, report: "ConversionReport | None" = None):
        super().__init__(message)
        self.report = report


# -----------------------------------------------------------------------------
# layouts: official top-level keys and key renames


@dataclass(frozen=True)
class Layout:
    """How one official repository stores a model: network entries (official -> ours) and key renames."""
    model: str
    networks: dict[str, str]  # official top-level key -> our network name
    optional: frozenset[str]  # our networks that a checkpoint may lack (kept at their initialisation)
    to_ours: Callable[[str], str]  # '<our network>.<official key>' -> '<our network>.<our key>'
    to_official: Callable[[str], str]  # the inverse
    squeeze_3d: bool = False  # Monkey-Net: 5-D (out, in, 1, k, k) kernels <-> 4-D


def _identity(key: str) -> str:
    return key


def _sub_all(rules: list[tuple[str, str]]) -> Callable[[str], str]:
    compiled = [(re.compile(p), r) for p, r in rules]

    def rename(key: str) -> str:
        for pattern, repl in compiled:
            key = pattern.sub(repl, key)
        return key
    return rename


def _scale_to_ours(match: re.Match) -> str:
    return f"discriminator.discs.{str(float(match.group(1).replace('-', '.'))).replace('.', '-')}."


def _scale_to_official(match: re.Match) -> str:
    s = float(match.group(1).replace("-", "."))
    name = str(int(s)) if s == int(s) else str(s)  # official YAML scales are [1] (int), [1, 0.5], ...
    return f"discriminator.discs.{name.replace('.', '-')}."


def _fomm_to_ours(key: str) -> str:
    key = re.sub(r"^generator\.bottleneck\.r(\d+)\.", r"generator.bottleneck.\1.", key)
    return re.sub(r"^discriminator\.discs\.([0-9-]+)\.", _scale_to_ours, key)


def _fomm_to_official(key: str) -> str:
    key = re.sub(r"^generator\.bottleneck\.(\d+)\.", r"generator.bottleneck.r\1.", key)
    return re.sub(r"^discriminator\.discs\.([0-9-]+)\.", _scale_to_official, key)


def _monkeynet_renames() -> tuple[Callable[[str], str], Callable[[str], str]]:
    from training.models.monkeynet import OFFICIAL_KEY_RENAMES
    fwd = [("^" + re.escape(a), b) for a, b in OFFICIAL_KEY_RENAMES.items()]
    back = [("^" + re.escape(b), a) for a, b in OFFICIAL_KEY_RENAMES.items()]
    return _sub_all(fwd), _sub_all(back)


def layout(model: str) -> Layout:
    """The official layout of ``model`` (one of fomm, mraa, tpsmm, monkeynet)."""
    if model == "fomm":
        return Layout("fomm", {"kp_detector": "kp_detector", "generator": "generator",
                               "discriminator": "discriminator"},
                      frozenset({"discriminator"}), _fomm_to_ours, _fomm_to_official)
    if model == "mraa":
        return Layout("mraa", {"region_predictor": "region_predictor", "bg_predictor": "bg_predictor",
                               "generator": "generator", "avd_network": "avd"},
                      frozenset({"avd"}),
                      _sub_all([(r"^generator\.bottleneck\.r(\d+)\.", r"generator.bottleneck.\1."),
                                (r"^bg_predictor\.encoder\.", "bg_predictor.bg_encoder.")]),
                      _sub_all([(r"^generator\.bottleneck\.(\d+)\.", r"generator.bottleneck.r\1."),
                                (r"^bg_predictor\.bg_encoder\.", "bg_predictor.encoder.")]))
    if model == "tpsmm":
        # the official trainer stores bg_predictor only once epoch >= bg_start
        return Layout("tpsmm", {"kp_detector": "kp_detector", "dense_motion_network": "dense_motion_network",
                                "inpainting_network": "inpainting_network", "bg_predictor": "bg_predictor",
                                "avd_network": "avd"},
                      frozenset({"bg_predictor", "avd"}), _identity, _identity)
    if model == "monkeynet":
        to_ours, to_official = _monkeynet_renames()
        return Layout("monkeynet", {"kp_detector": "kp_detector", "generator": "generator",
                                    "discriminator": "discriminator"},
                      frozenset({"discriminator"}), to_ours, to_official, squeeze_3d=True)
    raise ValueError(f"unknown model {model!r}; expected one of {list(MODELS)}")


# -----------------------------------------------------------------------------
# reading and recognising checkpoints


def read_checkpoint(path: str | os.PathLike) -> dict:
    """torch.load onto the CPU with ``weights_only=True``: official checkpoints (tensors, dicts, numbers, optimiser
    states) and ours load so. A file that pickles other Python objects could run code when unpickled, so it is
    refused (:class:`UnsafeCheckpointError`), with no way round: the loader that would run it is not in the
    project."""
    from training.checkpoint import UnsafeCheckpointError, load_weights_only

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    try:
        ckpt = load_weights_only(p)
    except UnsafeCheckpointError as err:
        raise UnsafeCheckpointError(f"{err}. If you trust where it comes from, re-save its state dicts alone "
                                    f"(torch.save of tensors and dicts) and pass that file") from None
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
        raise ValueError(f"{p} is not a readable PyTorch checkpoint: {err}") from None
    if not isinstance(ckpt, dict):
        raise ValueError(f"{p}: a checkpoint must be a dict of state dicts, got {type(ckpt).__name__}")
    return ckpt


def strip_wrapper_prefixes(state: dict) -> dict:
    """Drop leading 'module.' / '_orig_mod.' (DataParallel, DDP, torch.compile) from every key."""
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        out[key] = value
    return out


def is_motionpipe_checkpoint(ckpt: dict) -> bool:
    """Our own training checkpoints (``training.checkpoint``) carry their format tag, config and networks."""
    from training.checkpoint import FORMAT
    return isinstance(ckpt, dict) and ckpt.get("format") == FORMAT


def detect_layout(ckpt: dict) -> str:
    """Which official codebase wrote ``ckpt``: 'fomm', 'mraa', 'tpsmm' or 'monkeynet'."""
    keys = set(ckpt)
    if is_motionpipe_checkpoint(ckpt):
        raise ValueError("this is a motionpipe training checkpoint, not an official one")
    if keys & {"inpainting_network", "dense_motion_network"}:
        return "tpsmm"
    if "region_predictor" in keys:
        return "mraa"
    if "kp_extractor" in keys:
        return "monkeynet"
    generator = ckpt.get("generator")
    if isinstance(generator, dict):
        gen_keys = strip_wrapper_prefixes(generator)
        if any(k.startswith(("appearance_encoder.", "dense_motion_module.", "video_decoder.")) for k in gen_keys):
            return "monkeynet"
        if any(k.startswith(("dense_motion_network.", "first.", "bottleneck.")) for k in gen_keys):
            return "fomm"
    raise ValueError("not a checkpoint of first-order-model, articulated-animation, Thin-Plate-Spline-Motion-Model "
                     f"or monkey-net: top-level keys {sorted(map(str, keys))}")


# -----------------------------------------------------------------------------
# conversion report


@dataclass
class NetworkReport:
    """One network: tensors loaded, and what did not fit (keys are '<network>.<our key>')."""
    name: str
    loaded: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # key, checkpoint, model shape
    filled: list[str] = field(default_factory=list)  # num_batches_tracked set to 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)


@dataclass
class ConversionReport:
    source: str
    layout: str
    config: str
    networks: dict[str, NetworkReport] = field(default_factory=dict)
    absent: list[str] = field(default_factory=list)  # our optional networks the checkpoint lacks
    ignored: list[str] = field(default_factory=list)  # checkpoint entries not loaded (optimisers, epoch, ...)

    @property
    def ok(self) -> bool:
        return all(n.ok for n in self.networks.values())

    def problems(self, limit: int = 20) -> list[str]:
        lines = []
        for n in self.networks.values():
            lines += [f"shape mismatch {k}: checkpoint {tuple(a)} vs model {tuple(b)}" for k, a, b in n.mismatched]
            lines += [f"missing from checkpoint: {k}" for k in n.missing]
            lines += [f"unexpected in checkpoint: {k}" for k in n.unexpected]
        if len(lines) > limit:
            lines = lines[:limit] + [f"... and {len(lines) - limit} more"]
        return lines

    def summary(self) -> str:
        head = f"{self.source}: {LAYOUT_NAMES[self.layout]} checkpoint -> config {self.config}"
        lines = [head]
        for n in self.networks.values():
            extra = f", {len(n.filled)} num_batches_tracked filled with 0" if n.filled else ""
            state = "ok" if n.ok else (f"{len(n.mismatched)} shape mismatches, {len(n.missing)} missing, "
                                       f"{len(n.unexpected)} unexpected")
            lines.append(f"  {n.name}: {n.loaded} tensors loaded, {state}{extra}")
        if self.absent:
            lines.append(f"  not in checkpoint (kept at initialisation): {', '.join(self.absent)}")
        if self.ignored:
            lines.append(f"  ignored: {', '.join(self.ignored)}")
        lines += [f"  {p}" for p in self.problems()]
        return "\n".join(lines)


# -----------------------------------------------------------------------------
# conversion


def _convert_network(name: str, official: dict, target: dict[str, torch.Tensor], lay: Layout,
                     report: NetworkReport) -> dict[str, torch.Tensor]:
    """Official state dict of one network -> our keys and shapes, checked against ``target`` (our state dict)."""
    out = {}
    for key, value in strip_wrapper_prefixes(official).items():
        ours = lay.to_ours(f"{name}.{key}")[len(name) + 1:]
        if lay.squeeze_3d and torch.is_tensor(value) and value.dim() == 5 and value.shape[2] == 1:
            value = value.squeeze(2)  # (out, in, 1, k, k) -> (out, in, k, k); temporal kernels stay a mismatch
        out[ours] = value
    for key in sorted(set(out) - set(target)):
        report.unexpected.append(f"{name}.{key}")
    for key in sorted(set(target) - set(out)):
        if key.endswith("num_batches_tracked"):
            out[key] = torch.zeros((), dtype=torch.long)
            report.filled.append(f"{name}.{key}")
        else:
            report.missing.append(f"{name}.{key}")
    for key in sorted(set(out) & set(target)):
        a, b = out[key], target[key]
        if torch.is_tensor(a) and tuple(a.shape) != tuple(b.shape):
            report.mismatched.append((f"{name}.{key}", tuple(a.shape), tuple(b.shape)))
    for key in list(out):
        if key not in target:
            del out[key]
    report.loaded = len(out) - len(report.filled) - len(report.mismatched)
    return out


def convert_official(ckpt: dict, cfg, networks: dict[str, nn.Module], source: str = "<checkpoint>",
                     strict: bool = True) -> tuple[dict[str, dict[str, torch.Tensor]], ConversionReport]:
    """Official checkpoint dict -> our per-network state dicts for ``networks`` (name -> module).

    ``networks`` is typically ``model.networks()`` plus ``{'avd': avd}``. With ``strict`` (default) any
    missing, unexpected or mismatched key raises CheckpointMismatchError naming them; the report is returned
    either way (and logged).
    """
    found = detect_layout(ckpt)
    if found != cfg.model:
        raise CheckpointMismatchError(
            f"{source} is a {LAYOUT_NAMES[found]} ({found}) checkpoint (top-level keys "
            f"{sorted(map(str, ckpt))}), but config {cfg.name!r} is a {cfg.model} model")
    require_official_convention(cfg, LAYOUT_NAMES[found], source)
    lay = layout(cfg.model)
    report = ConversionReport(source=source, layout=found, config=cfg.name)
    entries = dict(ckpt)
    if cfg.model == "monkeynet" and "kp_detector" not in entries and "kp_extractor" in entries:
        entries["kp_detector"] = entries.pop("kp_extractor")  # early monkey-net name
    state_dicts: dict[str, dict[str, torch.Tensor]] = {}
    claimed = set()
    for official_name, ours in lay.networks.items():
        if ours not in networks:
            continue
        if official_name not in entries:
            if ours in lay.optional:
                report.absent.append(ours)
                continue
            raise CheckpointMismatchError(
                f"{source}: the {LAYOUT_NAMES[found]} checkpoint has no {official_name!r} entry, which config "
                f"{cfg.name!r} needs (top-level keys {sorted(map(str, ckpt))})")
        value = entries[official_name]
        if not isinstance(value, dict):
            raise CheckpointMismatchError(f"{source}: entry {official_name!r} is a {type(value).__name__}, "
                                          "not a state dict")
        nr = NetworkReport(ours)
        state_dicts[ours] = _convert_network(ours, value, networks[ours].state_dict(), lay, nr)
        report.networks[ours] = nr
        claimed.add(official_name)
    for key in entries:
        if key not in claimed:
            why = "" if not (key in lay.networks and lay.networks[key] not in networks) \
                else " (not part of this config)"
            report.ignored.append(f"{key}{why}")
    if strict and not report.ok:
        raise CheckpointMismatchError(
            f"{source} does not fit config {cfg.name!r} ({cfg.model}): a checkpoint of another architecture "
            "(widths, keypoint/region count, motion scale factor) or resolution setting?\n  "
            + "\n  ".join(report.problems()), report)
    log.info("%s", report.summary())
    return state_dicts, report


def to_official(cfg, networks: dict[str, nn.Module], extra: dict | None = None) -> dict:
    """Our networks -> a checkpoint dict in the official layout of ``cfg.model`` (the inverse of convert_official;
    for exporting to the official demo code). ``extra`` adds top-level entries (e.g. ``{'epoch': 99}``)."""
    lay = layout(cfg.model)
    ours_to_official = {v: k for k, v in lay.networks.items()}
    out: dict = {}
    for name, module in networks.items():
        if name not in ours_to_official:
            raise ValueError(f"network {name!r} has no place in the {LAYOUT_NAMES[cfg.model]} layout "
                             f"(expected {sorted(ours_to_official)})")
        sd = {}
        for key, value in module.state_dict().items():
            official = lay.to_official(f"{name}.{key}")[len(name) + 1:]
            if lay.squeeze_3d and value.dim() == 4:
                value = value.unsqueeze(2)  # (out, in, k, k) -> (out, in, 1, k, k)
            sd[official] = value
        out[ours_to_official[name]] = sd
    out.update(extra or {})
    return out


# -----------------------------------------------------------------------------
# building and loading


def inference_config(cfg):
    """``cfg`` with the VGG perceptual loss switched off, so a model for inference needs no VGG weights."""
    weights = cfg.train.loss_weights
    if not sum(weights.perceptual):
        return cfg
    train = cfg.train.model_copy(update={"loss_weights": weights.model_copy(update={"perceptual": ()})})
    return cfg.model_copy(update={"train": train})


def build_inference_model(cfg) -> nn.Module:
    """The training wrapper of ``cfg.model`` without its VGG (losses needing it are off), in eval mode."""
    return build_model(inference_config(cfg)).eval()


@dataclass
class LoadedModel:
    """A model with its (optional) AVD network, and how the checkpoint mapped onto them."""
    model: nn.Module
    avd: nn.Module | None
    report: ConversionReport


def load_official(path: str | os.PathLike, cfg, model: nn.Module | None = None, strict: bool = True) -> LoadedModel:
    """Load an official checkpoint into ``model`` (default: a new inference model of ``cfg``) and, when the
    checkpoint has one, into a new AVD network. Raises CheckpointMismatchError when it does not fit ``cfg``;
    reads it as ``read_checkpoint`` does."""
    ckpt = read_checkpoint(path)
    model = model if model is not None else build_inference_model(cfg)
    networks = dict(model.networks())
    avd = build_avd_network(cfg)
    has_avd = avd is not None and "avd_network" in ckpt
    if has_avd:
        networks["avd"] = avd.eval()
    state_dicts, report = convert_official(ckpt, cfg, networks, source=str(path), strict=strict)
    for name, sd in state_dicts.items():
        networks[name].load_state_dict(sd, strict=strict)
    return LoadedModel(model=model, avd=avd if has_avd else None, report=report)


def load_official_checkpoint(path: str | os.PathLike, cfg, model: nn.Module | None = None) -> nn.Module:
    """Load an official checkpoint for ``cfg`` and return the model (see ``load_official`` for the AVD network).

    Without ``model`` a model for inference is built (no VGG: its perceptual loss is off); to fine-tune,
    pass a model built with ``build_model(cfg, vgg=...)``.
    """
    return load_official(path, cfg, model=model).model
