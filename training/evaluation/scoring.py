"""The one scorer of a model (or the no-motion baseline) on a dataset's test split, called by the Dagster evaluation
assets and by `motionpipe evaluate` (and so `dvc repro`) alike: the checkpoint, the output folder and the shared
extractor cache all come from ``storage.paths``, the settings from params.yaml's ``RunParams``. Scores already in the
output folder are reused when the very same checkpoint, data and extractors made them. Knows nothing of Dagster."""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

from storage import paths
from storage.root import DataRoot, sha256_file
from storage.shards import read_shard_manifest
from training.reporting.tensorboard_eval import log_evaluation
from training.run_params import RunParams

if TYPE_CHECKING:  # the evaluation itself (torch, extractors) is imported only when something is scored
    from training.evaluation.evaluate import EvaluationResult


@dataclass(frozen=True)
class Scores:
    out_dir: Path
    metrics: dict[str, float | None]  # label -> pooled value (None: no frame counted)
    provenance: dict
    reused: bool  # the same checkpoint, data and extractors were scored before: nothing recomputed
    result: EvaluationResult | None = None  # what was computed (None when reused)


def _previous(out_dir: Path, made_by: dict, content_hash: str, params: RunParams) -> Scores | None:
    """The scores already in ``out_dir`` if they were made by ``made_by`` (provenance fields: the checkpoint's
    sha256, or the baseline's name) on these data with these extractors; else None."""
    try:
        report = json.loads((out_dir / "evaluation.json").read_text())
        metrics = json.loads((out_dir / "metrics.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    prov = report.get("provenance", {})
    tried = set(prov.get("extractors", {})) | set(prov.get("skipped_extractors", {}))
    same = (all(prov.get(k) == v for k, v in made_by.items()) and prov.get("dataset_content_hash") == content_hash
            and prov.get("max_chunks") == params.eval_max_chunks and tried == set(params.extractors)
            and (out_dir / "generated.tar").is_file())
    if not same:
        return None
    return Scores(out_dir, {k: v for k, v in metrics.items() if not isinstance(v, dict)}, prov, reused=True)


def _scores(result: EvaluationResult) -> Scores:
    values = {label: (None if math.isnan(v) else float(v)) for label, v in result.values.items()}
    return Scores(result.out_dir, values, result.provenance, reused=False, result=result)


def published_main(root: DataRoot, model: str, dataset: str) -> Path:
    """The published main-stage checkpoint of ``model`` on ``dataset``; a clear error when it was never trained."""
    checkpoint = Path(paths.published_checkpoint(root, dataset, model, "main"))
    if not checkpoint.is_file():
        raise FileNotFoundError(f"no published checkpoint of {model} on {dataset} at {checkpoint}: motionpipe train "
                                f"{model} --dataset {dataset}, or materialize {dataset}/{model}/checkpoint first")
    return checkpoint


def score_model(root: DataRoot, model: str, dataset: str, params: RunParams, device: str = "cpu", *,
                checkpoint: str | Path | None = None, config: str | None = None, out_dir: str | Path | None = None,
                bf16: bool = False, reuse: bool = True, extractor_weights: Mapping[str, str] | None = None) -> Scores:
    """Reconstruct and score ``dataset``'s test split with ``checkpoint`` (default: the published main checkpoint of
    ``model``; an official one needs ``config``), into ``out_dir`` (default: the model's evaluation folder).
    ``extractor_weights``: extractor name -> weight file, for the extractors no package installs."""
    from training.evaluation.evaluate import evaluate_checkpoint

    paths.local_base(root)
    checkpoint = Path(checkpoint) if checkpoint is not None else published_main(root, model, dataset)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    out_dir = Path(out_dir if out_dir is not None else paths.evaluation_dir(root, dataset, model))
    if reuse:
        content_hash = read_shard_manifest(root, paths.shards_dir(root, dataset)).content_hash
        previous = _previous(out_dir, {"checkpoint_sha256": sha256_file(checkpoint)}, content_hash, params)
        if previous is not None:
            return previous
    scores = _scores(evaluate_checkpoint(checkpoint, root, dataset, out_dir, extractors=params.extractors,
                                         device=device, batch_size=params.eval_batch_size,
                                         max_chunks=params.eval_max_chunks, config=config, bf16=bf16,
                                         cache_dir=paths.evaluation_cache_dir(root, dataset),
                                         extractor_weights=extractor_weights))
    if config is None:  # ours (an official checkpoint has no training run): scores beside its curves
        log_evaluation(checkpoint, scores.metrics, dataset, root)
    return scores


def score_no_motion(root: DataRoot, dataset: str, params: RunParams, device: str = "cpu", *,
                    out_dir: str | Path | None = None, reuse: bool = True,
                    extractor_weights: Mapping[str, str] | None = None) -> Scores:
    """The no-motion baseline (each chunk's source frame as every prediction) on ``dataset``'s test split, scored
    like the models (same chunks, extractors and extractor cache)."""
    from training.evaluation.evaluate import evaluate_no_motion
    from training.evaluation.no_motion import NO_MOTION

    paths.local_base(root)
    out_dir = Path(out_dir if out_dir is not None else paths.evaluation_dir(root, dataset, NO_MOTION))
    if reuse:
        content_hash = read_shard_manifest(root, paths.shards_dir(root, dataset)).content_hash
        previous = _previous(out_dir, {"model": NO_MOTION}, content_hash, params)
        if previous is not None:
            return previous
    return _scores(evaluate_no_motion(root, dataset, out_dir, extractors=params.extractors, device=device,
                                      batch_size=params.eval_batch_size, max_chunks=params.eval_max_chunks,
                                      cache_dir=paths.evaluation_cache_dir(root, dataset),
                                      extractor_weights=extractor_weights))


# Sane ranges of every metric (pixels for AKD are bounded by the frame size).
def metric_problems(metrics: dict[str, float | None], frame_size: int) -> list[str]:
    """Reasons a score is not believable: outside its possible range, not finite, or L1 missing."""
    problems = []
    if metrics.get("L1") is None:
        problems.append("L1 is missing")
    for label, value in metrics.items():
        if value is None:
            continue
        metric = label.split("[")[0]
        if not math.isfinite(value):
            problems.append(f"{label} = {value} is not finite")
        elif metric in ("L1", "MKR") and not 0.0 <= value <= 1.0:
            problems.append(f"{label} = {value:.4g} outside [0, 1]")
        elif metric == "AKD" and not 0.0 <= value <= frame_size:
            problems.append(f"{label} = {value:.4g} outside [0, {frame_size}] px")
        elif metric == "AED" and value < 0.0:
            problems.append(f"{label} = {value:.4g} is negative")
    return problems
