"""The papers' ablations and region counts (MRAA Tables 1 and 3, TPSMM Tables 3 and 4) as named variants of the four
models, defined in ``variants.yaml``.

A variant is its base model's config for a dataset with a few fields changed, named ``<variant>-<dataset>-<size>``:
it trains, scores and reports through the same trainer, scorer and leaderboard as its base model, under its own
name (``data/models/<dataset>/<variant>/``), so an ablation cannot drift from the model it ablates.
"""
from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from training.models import MODELS

VARIANTS_FILE = Path(__file__).with_name("variants.yaml")


class Variant(BaseModel):
    """One variant: its base model, where the paper prints its number, and the config fields it changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    model: str
    paper: str  # e.g. "MRAA Table 1"
    row: str  # the paper's row label, e.g. "Ours w/o skip & bg, 5 regions"
    changes: dict[str, Any] = Field(min_length=1)  # dotted config path -> value

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        if v not in MODELS:
            raise ValueError(f"unknown model {v!r}; expected one of {list(MODELS)}")
        return v

    @property
    def label(self) -> str:
        """How the leaderboard names the paper's row: ``MRAA Table 1: Ours, 5 regions``."""
        return f"{self.paper}: {self.row}"


def parse_variants(raw: Any, source: str = "<dict>") -> dict[str, Variant]:
    """Validate a variants mapping (name -> fields); errors name the source and the variant."""
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: top level must be a mapping of variant names")
    out: dict[str, Variant] = {}
    for name, fields in raw.items():
        if name in MODELS:
            raise ValueError(f"{source}: variant {name!r} has a model's name; give it its own")
        if not isinstance(fields, dict):
            raise ValueError(f"{source}: variant {name!r} must be a mapping")
        try:
            out[name] = Variant.model_validate({"name": name, **fields})
        except ValidationError as err:
            raise ValueError(f"{source}: invalid variant {name!r}:\n{err}") from None
    return out


@functools.cache
def load_variants(path: str | Path = VARIANTS_FILE) -> dict[str, Variant]:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read variants file {path}: {exc}") from None
    return parse_variants(raw, str(path))


def variant_names() -> tuple[str, ...]:
    return tuple(load_variants())


def get_variant(name: str) -> Variant:
    variants = load_variants()
    if name not in variants:
        raise ValueError(f"unknown model or variant {name!r}; models: {list(MODELS)}, variants: {list(variants)}")
    return variants[name]


def base_model(run: str) -> str:
    """The model a run name trains: a model's own name, or a variant's base model."""
    return run if run in MODELS else get_variant(run).model


def variant_of(config_name: str) -> str | None:
    """The variant a config name belongs to (``mraa-no-pca-sample-64`` -> ``mraa-no-pca``; the longest match, so
    ``mraa-no-pca-no-bg-...`` is not read as ``mraa-no-pca``), None for a model's own config."""
    found = [v for v in load_variants() if config_name == v or config_name.startswith(v + "-")]
    return max(found, key=len) if found else None


def apply_changes(raw: dict, changes: dict[str, Any], source: str) -> dict:
    """A copy of a parsed config with each dotted path set; a path through a non-mapping is an error naming it."""
    out = copy.deepcopy(raw)
    for dotted, value in changes.items():
        node = out
        *parents, leaf = dotted.split(".")
        for i, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"{source}: change {dotted!r}: {'.'.join(parents[:i + 1])} is not a mapping")
            node = child
        node[leaf] = copy.deepcopy(value)
    return out


def variant_raw_config(name: str, base_file: Path) -> dict:
    """The variant's config as a plain dict: the base config file with its changes, renamed after the variant."""
    v = get_variant(name)
    raw = yaml.safe_load(base_file.read_text())
    base_name = raw.get("name", base_file.stem)
    if not base_name.startswith(v.model + "-"):
        raise ValueError(f"{base_file}: config name {base_name!r} does not start with its model {v.model!r}")
    raw = apply_changes(raw, v.changes, f"variant {name}")
    raw["name"] = name + base_name[len(v.model):]
    return raw


def run_config(run: str, dataset: str, config_dir: str | Path | None = None):
    """The validated config a run name trains on ``dataset``: a model's own config, or a variant's."""
    from training.config import load_config, validate_config
    from training.run_params import config_path

    model = base_model(run)
    base_file = config_path(model, dataset, config_dir)
    if run == model:
        return load_config(base_file)
    return validate_config(variant_raw_config(run, base_file), source=f"variant {run} of {base_file}")


def write_run_config(run: str, dataset: str, out_file: Path, config_dir: str | Path | None = None) -> Path:
    """A variant's config written as a YAML file (what ``training/train.py --config`` reads); a model's own
    config file is returned as it is."""
    from training.run_params import config_path

    model = base_model(run)
    base_file = config_path(model, dataset, config_dir)
    if run == model:
        return base_file
    raw = variant_raw_config(run, base_file)
    text = f"# variant {run} of {base_file.name} (training/experiments/variants.yaml)\n" + yaml.safe_dump(
        raw, sort_keys=False)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    if not out_file.is_file() or out_file.read_text() != text:
        out_file.write_text(text)
    return out_file
