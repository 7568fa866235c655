"""Resources: where data lives, how videos are fetched, which detector runs. Local defaults, environment overrides.

Kept free of asset imports so assets may type-hint these classes without a cycle.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping

import dagster as dg
from pydantic import Field

from storage.root import DATA_ROOT_ENV, DEFAULT_DATA_ROOT, DataRoot


class DataRootResource(dg.ConfigurableResource):
    """The one data root: a local folder by default, any fsspec URL (s3://, gs://, ...) otherwise."""

    url: str = Field(default=DEFAULT_DATA_ROOT, description="local folder or fsspec URL")

    def get(self) -> DataRoot:
        return DataRoot(self.url)


class DownloaderResource(dg.ConfigurableResource):
    """Network-facing download options (per deployment, not per dataset)."""

    cookies_file: str | None = Field(default=None, description="Netscape cookies file passed to yt-dlp")
    proxy: str | None = Field(default=None, description="proxy URL passed to yt-dlp")
    rate_limit_bytes: int | None = Field(default=None, description="download rate cap, bytes/s")
    max_bytes: int | None = Field(default=None, gt=0, description=(
        "one video's download size bound, bytes (None: the dataset config's download.max_bytes)"))
    max_seconds: float | None = Field(default=None, gt=0, description=(
        "one download attempt's time bound, seconds (None: the dataset config's download.max_seconds)"))
    enable_file_urls: bool = Field(default=True, description="allow file:// sources (offline sample, tests)")
    mirror: str | None = Field(default=None, description=(
        "base URL (file:// or http[s]://) holding already-downloaded videos as <video_id>.mp4; used instead of "
        "YouTube, e.g. the video folder of an earlier video-preprocessing run"))


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


class DetectorResource(dg.ConfigurableResource):
    """Which person detector runs: the dataset's choice unless overridden here."""

    backend: str | None = Field(default=None, description="auto | ssd | mediapipe | detectron2 (None: dataset config)")
    detectron2_weights: str | None = Field(default=None, description="path to Keypoint R-CNN weights (.pkl/.pth)")


class TrainingResource(dg.ConfigurableResource):
    """Where the model assets train and score: the device and process layout (CPU, one GPU, or several through
    torchrun), and the run settings file. The experiment itself (configs, params.yaml) is not set here."""

    device: str = Field(default="auto", description="auto | cpu | cuda")
    nproc_per_node: int = Field(default=1, description="> 1: torchrun with this many processes per node")
    nnodes: int = Field(default=1, description="nodes of a multi-node torchrun (needs rdzv_endpoint)")
    rdzv_endpoint: str | None = Field(default=None, description="host:port of the torchrun rendezvous")
    workers: int | None = Field(default=None, description="data loader workers per process (None: the config's)")
    vgg_weights: str | None = Field(default=None, description="torchvision VGG-19 weight file (offline machines)")
    params_file: str | None = Field(default=None, description="run settings (default: the project's params.yaml)")
    config_dir: str | None = Field(default=None, description="folder of model configs that override the shipped ones")

    def launch(self):
        from assets.models.runs import Launch
        return Launch(self.device, self.nproc_per_node, self.nnodes, self.rdzv_endpoint, self.workers,
                      self.vgg_weights)

    def params(self, dataset: str):
        from training.run_params import PARAMS_FILE, load_params
        return load_params(self.params_file or PARAMS_FILE).for_dataset(dataset)

    def torch_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch
        return "cuda" if torch.cuda.is_available() else "cpu"


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
