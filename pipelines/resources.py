"""Which resources a deployment runs with: the classes of `assets/resources.py`, filled from the environment."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping

import dagster as dg

from assets.resources import DataRootResource, DetectorResource, DownloaderResource, TrainingResource
from storage.root import DATA_ROOT_ENV, DEFAULT_DATA_ROOT

_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str, what: str = "size") -> int:
    """'1048576', '512K', '200M', '4G' (binary units, an optional trailing B/iB) -> bytes > 0."""
    raw = text.strip().upper().removesuffix("IB").removesuffix("B")
    number, unit = (raw[:-1], raw[-1]) if raw and raw[-1] in "KMGT" else (raw, "")
    try:
        value = float(number) * _SIZE_UNITS[unit]
    except ValueError:
        value = float("nan")
    if not math.isfinite(value):
        raise ValueError(f"{what}: {text!r} is not a size (e.g. 1048576, 500M, 4G)")
    if value < 1:
        raise ValueError(f"{what}: {text!r} must be at least one byte")
    return int(value)


def parse_seconds(text: str, what: str = "seconds") -> float:
    """A positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{what}: {text!r} is not a positive number of seconds")
    return value


def downloader_from_env(env: Mapping[str, str], **overrides) -> DownloaderResource:
    """The downloader options of MOTIONPIPE_* environment variables (unset: the dataset config's defaults), with
    ``overrides`` (command-line options) on top. A new resource, not ``model_copy``: Dagster configures a run's
    resource from its constructor arguments."""
    seconds, size = env.get("MOTIONPIPE_MAX_DOWNLOAD_SECONDS"), env.get("MOTIONPIPE_MAX_DOWNLOAD_BYTES")
    options = dict(
        cookies_file=env.get("MOTIONPIPE_COOKIES") or None,
        proxy=env.get("MOTIONPIPE_PROXY") or None,
        rate_limit_bytes=int(env["MOTIONPIPE_RATE_LIMIT"]) if env.get("MOTIONPIPE_RATE_LIMIT") else None,
        mirror=env.get("MOTIONPIPE_MIRROR") or None,
        max_bytes=parse_size(size, "MOTIONPIPE_MAX_DOWNLOAD_BYTES") if size else None,
        max_seconds=parse_seconds(seconds, "MOTIONPIPE_MAX_DOWNLOAD_SECONDS") if seconds else None,
    )
    return DownloaderResource(**{**options, **overrides})


def default_resources() -> dict[str, dg.ConfigurableResource]:
    env = os.environ
    return {
        "training": TrainingResource(
            device=env.get("MOTIONPIPE_DEVICE") or "auto",
            nproc_per_node=int(env.get("MOTIONPIPE_NPROC_PER_NODE") or 1),
            nnodes=int(env.get("MOTIONPIPE_NNODES") or 1),
            rdzv_endpoint=env.get("MOTIONPIPE_RDZV_ENDPOINT") or None,
            vgg_weights=env.get("MOTIONPIPE_VGG19_WEIGHTS") or None,
            params_file=env.get("MOTIONPIPE_PARAMS") or None,
            config_dir=env.get("MOTIONPIPE_CONFIG_DIR") or None,
        ),
        "pipes_subprocess_client": dg.PipesSubprocessClient(cwd=str(Path(__file__).resolve().parents[1])),
        "data_root": DataRootResource(url=env.get(DATA_ROOT_ENV, DEFAULT_DATA_ROOT)),
        "downloader": downloader_from_env(env),
        "detector": DetectorResource(
            backend=env.get("MOTIONPIPE_DETECTOR") or None,
            detectron2_weights=env.get("MOTIONPIPE_DETECTRON2_WEIGHTS") or None,
        ),
    }
