"""`motionpipe`: the command line over the Dagster graph and the stored datasets."""
from __future__ import annotations

import argparse
import sys

from assets.dataset_config import DATASETS


def _rebuild(args: argparse.Namespace) -> int:
    from assets.dataset_config import load_dataset_config
    from assets.shards.coverage import compute_coverage, print_coverage
    from pipelines.rebuild import rebuild
    from pipelines.rebuild_outcome import exit_code, summary_line
    from storage.root import DataRoot

    result = rebuild(args.dataset, data_root=args.data_root, source=args.manifest, limit=args.limit,
                     retry_failed=args.retry_failed, detector=args.detector, mirror=args.mirror,
                     max_download_bytes=args.max_download_bytes, max_download_seconds=args.max_download_seconds,
                     allow_shrink=args.allow_shrink, rules=args.rules, workers=args.workers,
                     executor=args.executor, broker=args.broker)
    cov = compute_coverage(load_dataset_config(args.dataset), DataRoot.from_env(args.data_root))
    print_coverage(cov)
    print(summary_line(result))  # counts either way; the exit code says whether anything was rebuilt
    return exit_code(result)


def _status(args: argparse.Namespace) -> int:
    from assets.dataset_config import load_dataset_config
    from assets.shards.coverage import compute_coverage, print_coverage
    from storage.root import DataRoot

    cov = compute_coverage(load_dataset_config(args.dataset), DataRoot.from_env(args.data_root))
    print_coverage(cov, show_all=args.all)
    return 0


def _train(args: argparse.Namespace) -> int:
    from assets.keys import checkpoint_key
    from assets.models.defs import checkpoint_report, tensorboard_loss_series
    from assets.models.runs import plan_training, train_and_publish
    from pipelines.instance_reports import report_to_dagster
    from pipelines.resources import training_resource
    from storage.root import DataRoot
    from storage.settings import resolve_settings

    settings = resolve_settings(data_root=args.data_root, device=args.device or None,
                                nproc_per_node=args.nproc_per_node or None)
    training = training_resource(settings)
    plan = plan_training(DataRoot(settings.data_root), args.model, args.dataset, args.stage,
                         training.params(args.dataset), training.launch(), config_dir=settings.config_dir)
    print(f"training {plan.describe()}: {' '.join(plan.command)}", flush=True)
    published = train_and_publish(plan)
    print(f"published {published.path} (step {published.step}, sha256 {published.sha256[:16]})")
    # the asset's record (lineage, last losses, curves drawn beside the checkpoint), in the Dagster instance too
    report = checkpoint_report(checkpoint_key(args.dataset, args.model, args.stage), plan, published,
                               published.source, tensorboard_loss_series(plan))
    report_to_dagster(report, settings, f"motionpipe train {args.model} --dataset {args.dataset} --stage {args.stage}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from pipelines.demo import run_demo
    return run_demo(data_root=args.data_root, push=not args.no_dvc)


def _size(text: str) -> int:
    from storage.settings import parse_size
    try:
        return parse_size(text, "--max-download-bytes")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_seconds(text: str) -> float:
    from storage.settings import parse_seconds
    try:
        return parse_seconds(text, "--max-download-seconds")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _workers(text: str) -> int:
    try:
        if (n := int(text)) >= 1:
            return n
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected a whole number >= 1 (videos rebuilt at a time), got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="motionpipe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add_root(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-root", default=None,
                       help="local folder or fsspec URL (default: $MOTIONPIPE_DATA_ROOT or ./data)")

    p = sub.add_parser("rebuild", help="rebuild a dataset from its sources and print its coverage report")
    p.add_argument("dataset", choices=DATASETS)
    p.add_argument("--limit", type=int, default=None, help="only the first N videos of the manifest")
    p.add_argument("--manifest", default=None,
                   help="manifest path or URL instead of the default (taichi csv, TED clip list or id list)")
    p.add_argument("--retry-failed", action="store_true",
                   help="retry videos that failed permanently before (private, removed, ...)")
    p.add_argument("--detector", choices=["auto", "ssd", "mediapipe", "detectron2"], default=None,
                   help="person detector (default: the dataset's; auto = detectron2 if installed, else ssd)")
    p.add_argument("--mirror", default=None,
                   help="file:// or http(s):// folder of already-downloaded <video_id>.mp4 to use instead of YouTube")
    p.add_argument("--max-download-bytes", type=_size, default=None, metavar="SIZE",
                   help="stop a video's download past this size, e.g. 500M or 4G (default: "
                        "$MOTIONPIPE_MAX_DOWNLOAD_BYTES, else the dataset config's download.max_bytes)")
    p.add_argument("--max-download-seconds", type=_positive_seconds, default=None, metavar="S",
                   help="stop a download attempt after this many seconds of transfer (default: "
                        "$MOTIONPIPE_MAX_DOWNLOAD_SECONDS, else download.max_seconds)")
    p.add_argument("--allow-shrink", action="store_true",
                   help="publish even if the rebuild has fewer samples than the published shards and catalog "
                        "(refused by default, so a bad manifest or an outage never erases a dataset)")
    p.add_argument("--rules", default=None, metavar="taichi|ted|sample|RULES.yaml",
                   help="discovery datasets (sample, ted): cut the videos with another dataset's rules or a rules "
                        "file's (size, lengths in frames or seconds, person size; see README)")
    p.add_argument("--workers", type=_workers, default=1, metavar="N",
                   help="rebuild N videos at a time, each in its own process (Dagster's multiprocess executor); "
                        "default 1: one after the other")
    p.add_argument("--executor", choices=("multiprocess", "celery"), default=None,
                   help="celery: the videos go to the celery workers on --broker, one per worker at a time "
                        "(default: $MOTIONPIPE_EXECUTOR or multiprocess, this machine's --workers)")
    p.add_argument("--broker", default=None, metavar="URL",
                   help="the celery broker, e.g. redis://127.0.0.1:6379/0 (default: $MOTIONPIPE_CELERY_BROKER)")
    add_root(p)
    p.set_defaults(func=_rebuild)

    p = sub.add_parser("status", help="print a dataset's coverage report from what is on disk")
    p.add_argument("dataset", choices=DATASETS)
    p.add_argument("--all", action="store_true", help="list every video not rebuilt (default: the first 50)")
    add_root(p)
    p.set_defaults(func=_status)

    from training.experiments.variants import variant_names
    from training.models import MODELS

    p = sub.add_parser("train", help="train one model (or an experiment: a variant of one, e.g. mraa-k5) on one "
                                     "dataset with params.yaml's settings and publish its checkpoint (what the "
                                     "Dagster asset and `dvc repro` run)")
    p.add_argument("model", choices=MODELS + variant_names())
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--stage", choices=("main", "avd"), default="main")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                   help="default: $MOTIONPIPE_DEVICE or auto (CUDA when present)")
    p.add_argument("--nproc-per-node", type=int, default=None,
                   help="> 1: torchrun with this many processes (default: $MOTIONPIPE_NPROC_PER_NODE or 1)")
    add_root(p)
    p.set_defaults(func=_train)

    p = sub.add_parser("demo", help="the whole chain offline on CPU: rebuild sample, train every model briefly, AVD, "
                                    "evaluate, samples, leaderboard, then DVC commit and push")
    p.add_argument("--no-dvc", action="store_true", help="skip the DVC commit and push")
    add_root(p)
    p.set_defaults(func=_demo)

    from pipelines.commands.ablations import add_ablations_parser
    from pipelines.commands.animate import add_animate_parser
    from pipelines.commands.evaluate import add_evaluate_parser
    from pipelines.commands.leaderboard import add_leaderboard_parser
    from pipelines.commands.models import add_models_parser
    from pipelines.commands.samples import add_samples_parser
    from pipelines.commands.segment import add_segment_parser
    from pipelines.commands.toy import add_toy_parser
    from pipelines.export import add_export_parser
    from pipelines.lineage import add_lineage_parser

    add_models_parser(sub)
    add_animate_parser(sub)
    add_evaluate_parser(sub)
    add_leaderboard_parser(sub)
    add_ablations_parser(sub)
    add_samples_parser(sub)
    add_lineage_parser(sub)
    add_export_parser(sub)
    add_segment_parser(sub)
    add_toy_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from storage import video
    from storage.settings import resolve_settings

    args = build_parser().parse_args(argv)
    try:
        video.use_ffmpeg(resolve_settings().ffmpeg)  # for the commands that encode or decode without definitions
        return args.func(args)
    except (RuntimeError, ValueError, FileNotFoundError) as exc:
        print(f"motionpipe {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
