"""The model stages' run settings (``params.yaml``), validated on load: one file read by `dvc repro`, the
`motionpipe` commands and the Dagster model assets, so all of them train, evaluate and render the same thing."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from training.config import CONFIG_DIR
from training.models import MODELS

REPO_ROOT = Path(__file__).resolve().parents[1]
PARAMS_FILE = REPO_ROOT / "params.yaml"


class RunParams(BaseModel):
    """One dataset's settings; None keeps the model config's own value (batch size, full schedule)."""

    model_config = ConfigDict(extra="forbid")

    max_steps: int | None = Field(default=None, ge=1)
    avd_max_steps: int | None = Field(default=None, ge=1)
    batch_size: int | None = Field(default=None, ge=1)
    checkpoint_every: int = Field(default=1000, ge=1)
    log_every: int = Field(default=50, ge=1)
    image_every: int = Field(default=500, ge=0)
    precision: Literal["fp32", "bf16"] = "fp32"
    eval_max_chunks: int | None = Field(default=None, ge=1)
    eval_batch_size: int = Field(default=16, ge=1)
    extractors: tuple[str, ...] = ("mediapipe-pose33", "mobilenetv2-imagenet")
    sample_pairs: int = Field(default=4, ge=1)
    sample_max_frames: int | None = Field(default=None, ge=2)
    # only these models on this dataset (None: every model); taichi512 has configs for the two MRAA published at 512
    models: tuple[str, ...] | None = None


class ParamsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: tuple[str, ...] = MODELS
    avd_models: tuple[str, ...] = ("mraa", "tpsmm")
    # variants (training/experiments/variants.yaml) trained and scored beside the models, main stage only; opt-in
    experiments: tuple[str, ...] = ()
    datasets: dict[str, RunParams]

    @model_validator(mode="after")
    def _known_models(self) -> "ParamsFile":
        unknown = sorted(set(self.models) - set(MODELS))
        if unknown:
            raise ValueError(f"unknown models {unknown}; motionpipe trains {list(MODELS)}")
        if not set(self.avd_models) <= set(self.models):
            raise ValueError(f"avd_models {list(self.avd_models)} must be among models {list(self.models)}")
        from training.experiments.variants import variant_names
        unknown = sorted(set(self.experiments) - set(variant_names()))
        if unknown:
            raise ValueError(f"unknown experiments {unknown}; training/experiments/variants.yaml has "
                             f"{list(variant_names())}")
        return self

    def models_for(self, dataset: str) -> tuple[str, ...]:
        """The models trained on ``dataset``: its own ``models`` list if it has one, else every model."""
        settings = self.datasets.get(dataset)
        only = None if settings is None else settings.models
        return self.models if only is None else tuple(m for m in self.models if m in only)

    def experiments_for(self, dataset: str) -> tuple[str, ...]:
        """The experiments trained on ``dataset``: all, or those of the dataset's own ``models`` list if it has one
        (taichi512 has configs for fomm and mraa only)."""
        from training.experiments.variants import base_model
        settings = self.datasets.get(dataset)
        only = None if settings is None else settings.models
        return tuple(e for e in self.experiments if only is None or base_model(e) in only)

    def for_dataset(self, dataset: str) -> RunParams:
        try:
            return self.datasets[dataset]
        except KeyError:
            raise KeyError(f"params.yaml has no settings for dataset {dataset!r} "
                           f"(it has {sorted(self.datasets)})") from None


def load_params(path: str | Path = PARAMS_FILE) -> ParamsFile:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"run parameters not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    try:
        return ParamsFile.model_validate(raw or {})
    except ValidationError as exc:
        raise ValueError(f"{path}: invalid run parameters:\n{exc}") from None


def config_path(model: str, dataset: str, config_dir: str | Path | None = None) -> Path:
    """The model config for a dataset: the one ``<model>-<dataset>-<size>.yaml`` in ``config_dir`` (a folder of
    the user's own configs, e.g. ``$MOTIONPIPE_CONFIG_DIR``) if it has one, else in ``training/configs``."""
    for folder in ([Path(config_dir)] if config_dir else []) + [CONFIG_DIR]:
        found = sorted(folder.glob(f"{model}-{dataset}-*.yaml"))
        if len(found) > 1:
            raise LookupError(f"several configs for {model} on {dataset} in {folder}: {[p.name for p in found]}")
        if found:
            return found[0]
    raise LookupError(f"no config {model}-{dataset}-<size>.yaml in {config_dir or ''} {CONFIG_DIR}".replace("  ", " "))


def config_name(model: str, dataset: str, config_dir: str | Path | None = None) -> str:
    return config_path(model, dataset, config_dir).stem


def dataset_params(dataset: str, path: str | Path | None = None) -> RunParams | None:
    """The dataset's settings in ``path`` (default: the project's params.yaml, if present), None when it has none;
    for commands whose own defaults apply outside a project checkout."""
    if path is None and not PARAMS_FILE.is_file():
        return None
    return load_params(path or PARAMS_FILE).datasets.get(dataset)
