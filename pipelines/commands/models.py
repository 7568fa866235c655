"""`motionpipe models`: parameter counts per network of every training config and experiment against the official
ones."""
from __future__ import annotations

import argparse

from training.reporting.model_summary import count_config, format_rows, summary_config, summary_names


def add_models_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("models", help="parameter counts per network of every training config and experiment "
                                             "vs official")
    p.add_argument("--config", action="append", default=None,
                   help="only this config (name in training/configs, a YAML path, or an experiment such as mraa-k5, "
                        "counted on taichi); repeatable")
    p.set_defaults(func=models_command)
    return p


def models_command(args) -> int:
    """Print the parameter table; exit 1 if a config with an official architecture is off by >= 1%."""
    names = args.config or summary_names()
    rows = [r for name in names for r in count_config(summary_config(name))]
    print(format_rows(rows))
    off = [r for r in rows if r.diff_percent is not None and abs(r.diff_percent) >= 1.0]
    for r in off:
        print(f"{r.config} {r.network}: {r.diff_percent:+.2f}% from the official count")
    return 1 if off else 0
