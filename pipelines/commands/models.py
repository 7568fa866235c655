"""`motionpipe models`: parameter counts per network of every training config against the official ones."""
from __future__ import annotations

import argparse

from training.config import load_config
from training.reporting.model_summary import config_names, count_config, format_rows


def add_models_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("models", help="parameter counts per network of every training config vs official")
    p.add_argument("--config", action="append", default=None,
                   help="only this config (name in training/configs or a YAML path); repeatable")
    p.set_defaults(func=models_command)
    return p


def models_command(args) -> int:
    """Print the parameter table; exit 1 if a config with an official architecture is off by >= 1%."""
    names = args.config or config_names()
    rows = [r for name in names for r in count_config(load_config(name))]
    print(format_rows(rows))
    off = [r for r in rows if r.diff_percent is not None and abs(r.diff_percent) >= 1.0]
    for r in off:
        print(f"{r.config} {r.network}: {r.diff_percent:+.2f}% from the official count")
    return 1 if off else 0
