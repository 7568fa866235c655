"""The four models and the blocks they share; ``MODELS`` is the one list of their names.

Each model lives in its own module (imported lazily, so a model's import cost or a missing optional
dependency never affects the others, and importing this package needs no torch) and exposes
``build(cfg, vgg=None) -> nn.Module`` returning its training wrapper, whose ``forward(source, driving)`` gives
``(losses, generated)``. A module may also define a pydantic ``Params`` class (validates ``model_params``),
``check_config(cfg)`` (cross-section rules) and, when the model has an AVD stage, ``build_avd_network(cfg)`` (the
bare network) and ``build_avd(cfg, main)`` (the trainable stage around a trained main model's motion estimator).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch.nn as nn

MODELS = ("monkeynet", "fomm", "mraa", "tpsmm")  # in the order of the papers


def model_module(name: str) -> ModuleType:
    """The module of model ``name`` (``training.models.<name>``)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {list(MODELS)}")
    return importlib.import_module(f"training.models.{name}")


def has_avd(name: str) -> bool:
    return hasattr(model_module(name), "build_avd")


def build_model(cfg, vgg: nn.Module | None = None) -> nn.Module:
    """Build the training wrapper of ``cfg.model`` (a validated ``training.config.Config``)."""
    return model_module(cfg.model).build(cfg, vgg=vgg)


def build_avd_network(cfg) -> nn.Module | None:
    """The AVD network of ``cfg.model`` (MRAA: regions; TPSMM: keypoints), or None for a model without one."""
    build = getattr(model_module(cfg.model), "build_avd_network", None)
    return None if build is None else build(cfg)


def build_avd(cfg, main: nn.Module) -> nn.Module:
    """The AVD stage of ``cfg.model`` around the frozen motion estimator of ``main`` (its trained wrapper)."""
    build = getattr(model_module(cfg.model), "build_avd", None)
    if build is None:
        raise ValueError(f"{cfg.model} has no AVD stage (only {[m for m in MODELS if has_avd(m)]})")
    return build(cfg, main)
