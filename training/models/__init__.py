"""Model factory: ``build_model(cfg, vgg=None)`` dispatches on ``cfg.model``.

Each model lives in its own module (imported lazily, so a model's import cost or a missing optional
dependency never affects the others) and exposes ``build(cfg, vgg=None) -> nn.Module`` returning its training
wrapper, whose ``forward(source, driving)`` gives ``(losses, generated)``. A module may also define a pydantic
``Params`` class (validates ``model_params``) and ``check_config(cfg)`` (cross-section rules).
"""

from __future__ import annotations

import importlib

import torch.nn as nn

MODEL_MODULES = {
    "fomm": "training.models.fomm",
    "mraa": "training.models.mraa",
    "tpsmm": "training.models.tpsmm",
    "monkeynet": "training.models.monkeynet",
}


def build_model(cfg, vgg: nn.Module | None = None) -> nn.Module:
    """Build the training wrapper of ``cfg.model`` (a validated ``training.config.Config``)."""
    if cfg.model not in MODEL_MODULES:
        raise ValueError(f"unknown model {cfg.model!r}; expected one of {sorted(MODEL_MODULES)}")
    module = importlib.import_module(MODEL_MODULES[cfg.model])
    return module.build(cfg, vgg=vgg)
