"""Rules lent to a discovery dataset: `--rules taichi|ted|sample` or a rules file, e.g. for one's own videos.

One's own videos (`rebuild sample --manifest videos.csv`) used to get the 64-px sample rules only. A rules spec
swaps the rule sections (detect, chunks, crop, split, shards) of the dataset being rebuilt for another dataset's
(with that dataset's `own_videos` changes: TaiChi's csv boxes become crop_taichi.py's square crop) or for a YAML
file's; the dataset's name, sources and download settings stay. A rules file:

    extends: ted              # optional: start from these rules (default: the rebuilt dataset's own)
    crop: {size: 256}
    chunks: {min_seconds: 2, max_seconds: 40, min_box_size: 200}

is validated on load, every error naming the file and the field. A copy of a whole `assets/configs/*.yaml` is a
rules file too (its rule sections are used). The choice reaches every asset of a run through
`MOTIONPIPE_RULES_<DATASET>` (read by `load_dataset_config`), so Dagster's child processes and the UI see it as well.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from assets.dataset_config import (
    DATASETS,
    RULE_SECTIONS,
    DatasetConfig,
    DatasetConfigError,
    load_dataset_config,
    merge_rules,
    rules_env_var,
    shipped_config,
)

F = TypeVar("F", bound=Callable[..., Any])


class RulesFile(BaseModel):
    """What a rules file may hold: a starting point and field-by-field changes to the rule sections."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    extends: Literal["taichi", "ted", "sample"] | None = None
    detect: dict[str, Any] | None = None
    chunks: dict[str, Any] | None = None
    crop: dict[str, Any] | None = None
    split: dict[str, Any] | None = None
    shards: dict[str, Any] | None = None

    def changes(self) -> dict[str, dict[str, Any]]:
        return {name: fields for name in RULE_SECTIONS if (fields := getattr(self, name)) is not None}


def _errors(where: str, exc: ValidationError) -> DatasetConfigError:
    """One line per problem: `<file>: <section.field>: <what is wrong> (got <value>)`."""
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        got = f" (got {err['input']!r})" if err["type"] not in ("missing", "extra_forbidden") and \
            not isinstance(err["input"], dict) else ""
        lines.append(f"{where}: {field}: {msg}{got}")
    return DatasetConfigError("invalid rules:\n  " + "\n  ".join(lines))


def _own_sections(cfg: DatasetConfig) -> dict[str, dict[str, Any]]:
    return {name: getattr(cfg, name).model_dump() for name in RULE_SECTIONS}


def _file_sections(path: Path, base: DatasetConfig) -> dict[str, dict[str, Any]]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DatasetConfigError(f"cannot read rules file {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise DatasetConfigError(f"{path}: a rules file is a YAML mapping (extends, detect, chunks, crop, split, "
                                 f"shards), got {type(raw).__name__}")
    if "name" in raw and "mode" in raw:  # a whole dataset config: its rules, as `--rules <name>` would take them
        try:
            return DatasetConfig.model_validate(raw).rules_for_own_videos()
        except ValidationError as exc:
            raise _errors(str(path), exc) from None
    try:
        rules = RulesFile.model_validate(raw)
    except ValidationError as exc:
        err = _errors(str(path), exc)
        raise DatasetConfigError(f"{err}\n  (a rules file holds extends, {', '.join(RULE_SECTIONS)}; the dataset's "
                                 f"name, sources and downloads come from the dataset being rebuilt)") from None
    start = shipped_config(rules.extends).rules_for_own_videos() if rules.extends else _own_sections(base)
    try:
        return merge_rules(start, rules.changes())
    except ValueError as exc:
        raise DatasetConfigError(f"{path}: {exc}") from None


def apply_rules(base: DatasetConfig, spec: str) -> DatasetConfig:
    """`base` with the rules `spec` names: a dataset (`taichi`, `ted`, `sample`) or a YAML file's path."""
    if base.mode != "discover":
        raise DatasetConfigError(
            f"{base.name} replays its published csv (the csv fixes every chunk and box), so it takes no other rules; "
            f"rules apply to discovery datasets: "
            f"{', '.join(d for d in DATASETS if shipped_config(d).mode == 'discover')}")
    if spec in DATASETS:
        sections, where = shipped_config(spec).rules_for_own_videos(), f"rules {spec!r}"
    else:
        path = Path(spec)
        if not path.is_file():
            raise DatasetConfigError(f"rules {spec!r}: neither one of {', '.join(DATASETS)} nor a readable file")
        sections, where = _file_sections(path, base), str(path)
    try:
        return base.with_rules(sections)
    except ValidationError as exc:
        raise _errors(where, exc) from None


def describe_rules(cfg: DatasetConfig) -> str:
    """One line for the terminal: size, crop, lengths, person size."""
    c, k = cfg.crop, cfg.chunks
    lo = " / ".join(x for x in (k.min_frames and f"{k.min_frames} frames", k.min_seconds and f"{k.min_seconds:g} s")
                    if x)
    hi = " / ".join(x for x in (f"{k.max_frames} frames", k.max_seconds and f"{k.max_seconds:g} s") if x)
    return (f"{c.size}x{c.size} {c.style} crops, chunks of at least {lo} and at most {hi}, "
            f"person box >= {k.min_box_size} px")


@contextlib.contextmanager
def rules_in_effect(dataset: str, spec: str | None) -> Iterator[DatasetConfig]:
    """Inside the block every `load_dataset_config(dataset)` (this process and its children) gets `spec`'s rules.

    The spec is checked first, so a bad file fails before any work; the previous setting is restored after.
    Without a spec the block changes nothing.
    """
    if spec is None:
        yield load_dataset_config(dataset)
        return
    stored = spec if spec in DATASETS else str(Path(spec).resolve())  # children may run in another folder
    cfg = apply_rules(shipped_config(dataset), stored)
    var = rules_env_var(dataset)
    previous = os.environ.get(var)
    os.environ[var] = stored
    try:
        yield cfg
    finally:
        if previous is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = previous


def rules_argument(fn: F) -> F:
    """For a `fn(dataset, ..., rules=None, progress=print)`: runs it with `rules` in effect for `dataset` and says
    which rules it uses."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        dataset, spec = bound.arguments["dataset"], bound.arguments.get("rules")
        with rules_in_effect(dataset, spec) as cfg:
            if spec is not None:
                bound.arguments.get("progress", print)(f"[{dataset}] rules {spec}: {describe_rules(cfg)}")
            return fn(*args, **kwargs)

    return run  # type: ignore[return-value]
