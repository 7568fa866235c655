"""`motionpipe evaluate` (what `dvc repro` runs): score a checkpoint, or the no-motion baseline, on a dataset's test
split through the same scorer as the Dagster evaluation assets (``training.evaluation.scoring``)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch

import training.evaluation.evaluate as evaluate_lib
from storage.root import DataRoot
from training.evaluation.evaluate import DEFAULT_EXTRACTORS
from training.evaluation.no_motion import NO_MOTION
from training.evaluation.progress import show_progress
from training.extractors import weights_from_env


def add_evaluate_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("evaluate", help="reconstruct a dataset's test split and score it (L1, AKD, MKR, AED)",
                              description=evaluate_lib.__doc__.split("\n\n")[0])
    p.add_argument("model", help=f"model (config name prefix), e.g. fomm, mraa, tpsmm, monkeynet; or {NO_MOTION} "
                                 "(the baseline: each chunk's frame 0 as every prediction)")
    p.add_argument("--dataset", required=True, help="dataset name, e.g. taichi, ted, sample")
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint (default: the published <data-root>/models/<dataset>/<model>/main.pt)")
    p.add_argument("--config", default=None, help="config name or YAML, for an official checkpoint")
    p.add_argument("--data-root", default=None, help="data root (default: $MOTIONPIPE_DATA_ROOT or ./data)")
    p.add_argument("--out", default=None, help="output folder (default: <data-root>/evaluations/<dataset>/<model>)")
    p.add_argument("--max-chunks", type=int, default=None,
                   help="score only the first N test chunks (default: params.yaml's eval_max_chunks)")
    p.add_argument("--extractors", nargs="+", default=None,
                   help=f"extractor names (default: params.yaml's for the dataset, else {' '.join(DEFAULT_EXTRACTORS)})")
    p.add_argument("--batch-size", type=int, default=None, help="frames per forward pass (default: params.yaml's)")
    p.add_argument("--params", default=None, help="run settings file (default: the project's params.yaml)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the model")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (drawn only on a terminal anyway: frames scored of the total, chunk, ETA)")
    p.set_defaults(func=evaluate_command)
    return p


def evaluate_command(args) -> int:
    """``motionpipe evaluate``: score a checkpoint on a dataset's test split and print the pooled numbers."""
    from training.evaluation.scoring import published_main, score_model, score_no_motion
    from training.run_params import RunParams, dataset_params

    root = DataRoot.from_env(args.data_root)
    if not root.is_local:
        raise ValueError(f"motionpipe evaluate needs a local data root (checkpoints and outputs are files): {root.url}")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    # the same settings as the Dagster asset and `dvc repro`, unless a flag says otherwise
    settings = dataset_params(args.dataset, args.params) or RunParams(extractors=DEFAULT_EXTRACTORS)
    overrides = {"extractors": tuple(args.extractors) if args.extractors else None, "eval_max_chunks": args.max_chunks,
                 "eval_batch_size": args.batch_size}
    params = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    weights = weights_from_env(os.environ)  # $MOTIONPIPE_OPENPOSE_WEIGHTS, $MOTIONPIPE_REID_WEIGHTS, ...
    with show_progress(not getattr(args, "no_progress", False)):  # the chunk loop draws it (on a terminal)
        if args.model == NO_MOTION:
            scores = score_no_motion(root, args.dataset, params, device, out_dir=args.out, reuse=False,
                                     extractor_weights=weights)
        else:
            checkpoint = Path(args.checkpoint) if args.checkpoint else published_main(root, args.model, args.dataset)
            if not checkpoint.is_file():
                raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
            _check_model(checkpoint, args.model, args.config)
            scores = score_model(root, args.model, args.dataset, params, device, checkpoint=checkpoint,
                                 config=args.config, out_dir=args.out, bf16=args.bf16, reuse=False,
                                 extractor_weights=weights)
    result = scores.result
    for label, r in result.metrics.items():
        value = "n/a (no frame counted)" if np.isnan(r.value) else f"{r.value:.6g}"
        print(f"{label:32s} {value}  ({r.frames_counted}/{r.frames_total} frames)")
    for n, reason in result.skipped.items():
        print(f"skipped {n}: {reason}")
    print(f"wrote {scores.out_dir} ({result.n_chunks} chunks, {result.n_frames} frames)")
    if args.out is None and args.checkpoint is None:  # the asset's own outputs: the UI shows them
        _report(args, root, scores)
    return 0


def _report(args, root: DataRoot, scores) -> None:
    from assets.evaluation.defs import scores_report
    from assets.keys import evaluation_key, no_motion_key
    from pipelines.instance_reports import report_to_dagster
    from storage.settings import resolve_settings
    from training.experiments.variants import run_config
    from training.loop.data import load_split_index

    settings = resolve_settings(data_root=args.data_root, params_file=args.params)
    if args.model == NO_MOTION:
        key = no_motion_key(args.dataset)
        size = max(c.height for c in load_split_index(root, args.dataset, "test").chunks)
    else:
        key = evaluation_key(args.dataset, args.model)
        size = run_config(args.model, args.dataset, settings.config_dir).frame_size[0]
    report_to_dagster(scores_report(key, scores, size), settings,
                      f"motionpipe evaluate {args.model} --dataset {args.dataset}")


def _check_model(checkpoint: Path, model: str, config: str | None) -> None:
    """MODEL must name the checkpoint's model (its config name starts with it, or it is the model kind)."""
    from training.models.convert import is_motionpipe_checkpoint, read_checkpoint
    state = read_checkpoint(checkpoint)
    if is_motionpipe_checkpoint(state):
        kind, name = state.get("model"), state.get("config", {}).get("name", "")
    elif config is not None:
        from training.config import load_config
        cfg = load_config(config)
        kind, name = cfg.model, cfg.name
    else:
        return  # load_animator raises its clear error about the missing --config
    if model != kind and not name.startswith(model):
        raise ValueError(f"{checkpoint} holds a {kind} model (config {name!r}), not {model!r}")
