"""`motionpipe samples`: fixed test pairs animated by every published model, side by side (MP4, GIF, contact sheet)."""
from __future__ import annotations

import argparse

import torch

import training.evaluation.sample_render as sample_render
from storage import paths
from storage.root import DataRoot
from training.evaluation.sample_render import published_checkpoints, published_models, render_samples


def add_samples_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("samples", help="animate fixed test pairs with every model: MP4, GIF, contact sheet",
                              description=sample_render.__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True, help="dataset name, e.g. taichi, ted, sample")
    p.add_argument("--models", nargs="+", default=None,
                   help="models (default: every model with a published checkpoint on the dataset)")
    p.add_argument("--data-root", default=None, help="data root (default: $MOTIONPIPE_DATA_ROOT or ./data)")
    p.add_argument("--out", default=None, help="output folder (default: <data-root>/samples/<dataset>)")
    p.add_argument("--pairs", type=int, default=None,
                   help="number of (source, driving) pairs (default: params.yaml's sample_pairs, else 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pair choice")
    p.add_argument("--max-frames", type=int, default=None,
                   help="keep only the first N driving frames (default: params.yaml's sample_max_frames)")
    p.add_argument("--batch-size", type=int, default=16, help="frames per forward pass")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--no-input-keypoints", dest="input_keypoints", action="store_false",
                   help="do not draw the first model's keypoints on the source and driving columns")
    p.set_defaults(func=samples_command)
    return p


def samples_command(args) -> int:
    """``motionpipe samples``: render the pairs and print what was written."""
    root = DataRoot.from_env(args.data_root)
    if not root.is_local:
        raise ValueError(f"motionpipe samples needs a local data root (checkpoints are files): {root.url}")
    names = args.models or published_models(root, args.dataset)
    if not names:
        raise FileNotFoundError(f"no published checkpoint of any model on {args.dataset} (none at "
                                f"{paths.model_dir(root, args.dataset, '<model>')}/main.pt); train one first "
                                "(motionpipe train)")
    models = [published_checkpoints(root, name, args.dataset) for name in names]
    out = args.out or paths.samples_dir(root, args.dataset)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    from training.run_params import dataset_params
    settings = dataset_params(args.dataset)  # the same settings as the Dagster asset and `dvc repro`
    pairs = args.pairs or (settings.sample_pairs if settings else 4)
    max_frames = args.max_frames or (settings.sample_max_frames if settings else None)
    rendered = render_samples(root, args.dataset, models, out, n_pairs=pairs, seed=args.seed, device=device,
                              max_frames=max_frames, batch_size=args.batch_size,
                              input_keypoints=args.input_keypoints)
    for m in models:
        print(f"{m.name}: {m.main}" + (f" + AVD {m.avd}" if m.avd else " (no AVD checkpoint: relative mode only)"))
    for r in rendered:
        print(f"{r.pair.source} <- {r.pair.driving}: {r.frames} frames, columns {', '.join(r.columns)}")
        print(f"  {r.files.mp4}\n  {r.files.gif}\n  {r.files.png}")
    if args.out is None and args.models is None:  # the asset's own outputs: the UI shows them
        from assets.evaluation.defs import samples_report
        from assets.keys import ANIMATION_SAMPLES, dataset_key
        from pipelines.instance_reports import report_to_dagster
        from storage.settings import resolve_settings
        report_to_dagster(samples_report(dataset_key(args.dataset, ANIMATION_SAMPLES), out, rendered),
                          resolve_settings(data_root=args.data_root), f"motionpipe samples --dataset {args.dataset}")
    return 0
