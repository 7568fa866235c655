"""The settings of one motionpipe process, resolved once: command-line flags > MOTIONPIPE_* environment > defaults.

`resolve_settings` is the one place that reads the MOTIONPIPE_* variables; the object it returns is handed to the
definitions factory and the resources (`pipelines/`), so the config folder and params file that version a model
asset are the ones that train it. Library modules take these values as arguments. Here (not in `pipelines/`) so
that every floor may import the type; it imports nothing of the project.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

DEFAULT_DATA_ROOT = "./data"
DEFAULT_RETRAIN_CRON = "0 3 * * 0"  # Sundays 03:00
DEFAULT_BREAKER_AFTER = 3
EXECUTORS = ("multiprocess", "celery")
BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp")
DEFAULT_VISIBILITY_TIMEOUT = 3600.0  # kombu's own default for Redis


def default_cache_dir() -> str:
    return str(Path.home() / ".cache" / "motionpipe")


@dataclass(frozen=True)
class EnvVar:
    name: str
    field: str | None  # the Settings field it sets; None: read elsewhere, named here so the list is whole
    meaning: str


# Every MOTIONPIPE_* variable. The last group is not a Settings field yet: read where named, until those modules
# take the value as an argument.
ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar("MOTIONPIPE_DATA_ROOT", "data_root", "the data root: a local folder or fsspec URL (default ./data)"),
    EnvVar("MOTIONPIPE_CONFIG_DIR", "config_dir", "folder of model configs that override the shipped ones"),
    EnvVar("MOTIONPIPE_PARAMS", "params_file", "run settings file (default: the project's params.yaml)"),
    EnvVar("MOTIONPIPE_RETRAIN_CRON", "retrain_cron", "cron of the (stopped by default) retraining schedule"),
    EnvVar("MOTIONPIPE_CACHE", "cache_dir", "cache of fetched manifests and the sample's upstream videos "
                                            "(default ~/.cache/motionpipe)"),
    EnvVar("MOTIONPIPE_FFMPEG", "ffmpeg", "the ffmpeg binary (default: the one bundled by imageio-ffmpeg)"),
    EnvVar("MOTIONPIPE_DETECTOR", "detector", "detector backend: auto | ssd | mediapipe | detectron2 "
                                              "(default: the dataset config's)"),
    EnvVar("MOTIONPIPE_DETECTRON2_WEIGHTS", "detectron2_weights", "local Keypoint R-CNN weights (.pkl/.pth)"),
    EnvVar("MOTIONPIPE_COOKIES", "cookies", "Netscape cookies file passed to yt-dlp (bot checks)"),
    EnvVar("MOTIONPIPE_PROXY", "proxy", "proxy URL passed to yt-dlp"),
    EnvVar("MOTIONPIPE_RATE_LIMIT", "rate_limit_bytes", "download rate cap, bytes/s"),
    EnvVar("MOTIONPIPE_MIRROR", "mirror", "file:// or http(s):// folder of <video_id>.mp4 used instead of YouTube"),
    EnvVar("MOTIONPIPE_MAX_DOWNLOAD_BYTES", "max_download_bytes", "one video's download size bound (500M, 4G; "
                                                                  "default: the dataset config's)"),
    EnvVar("MOTIONPIPE_MAX_DOWNLOAD_SECONDS", "max_download_seconds", "one download attempt's time bound "
                                                                      "(default: the dataset config's)"),
    EnvVar("MOTIONPIPE_BREAKER_AFTER", "breaker_after", "stop a rebuild after this many videos in a row fail for "
                                                        "one machine-wide reason (default 3, 0: never)"),
    EnvVar("MOTIONPIPE_DEVICE", "device", "training and scoring device: auto | cpu | cuda (default auto)"),
    EnvVar("MOTIONPIPE_NPROC_PER_NODE", "nproc_per_node", "> 1: torchrun with this many processes per node"),
    EnvVar("MOTIONPIPE_NNODES", "nnodes", "nodes of a multi-node torchrun (needs the rendezvous endpoint)"),
    EnvVar("MOTIONPIPE_RDZV_ENDPOINT", "rdzv_endpoint", "host:port of the torchrun rendezvous"),
    EnvVar("MOTIONPIPE_DIST_TIMEOUT", "dist_timeout", "seconds a node waits for the others to join, and any "
                                                      "collective for the other ranks (default 600)"),
    EnvVar("MOTIONPIPE_EXECUTOR", "executor", "how steps run: multiprocess (this machine, the default) | celery "
                                              "(workers anywhere that share the data root and a broker)"),
    EnvVar("MOTIONPIPE_CELERY_BROKER", "celery_broker", "the celery executor's broker, redis://host:6379/0 "
                                                        "(or amqp://...); needed with MOTIONPIPE_EXECUTOR=celery"),
    EnvVar("MOTIONPIPE_CELERY_BACKEND", "celery_backend", "the celery executor's result backend (default: the "
                                                          "broker for redis://, else rpc://)"),
    EnvVar("MOTIONPIPE_CELERY_VISIBILITY_TIMEOUT", "celery_visibility_timeout",
           "seconds before a step taken by a lost worker is handed to another (default 3600; keep it above the "
           "longest step, or a slow step runs twice)"),
    EnvVar("MOTIONPIPE_VGG19_WEIGHTS", "vgg19_weights", "torchvision VGG-19 weights for the perceptual loss "
                                                       "(offline machines; python -m training.train also reads it)"),
    EnvVar("MOTIONPIPE_RULES_<DATASET>", None, "another dataset's rules or a rules file for <DATASET> "
                                               "(assets/dataset_config.py; set by `--rules` so that Dagster's "
                                               "child processes see it too)"),
    EnvVar("MOTIONPIPE_REID_WEIGHTS", None, "person re-id weights for AED (read by the scoring entry points)"),
    EnvVar("MOTIONPIPE_OPENPOSE_WEIGHTS", None, "OpenPose body weights for AKD/MKR "
                                                "(read by the scoring entry points)"),
    EnvVar("MOTIONPIPE_MOBILENETV2_WEIGHTS", None, "offline identity weights (read by the "
                                                   "scoring entry points)"),
)


# An s3:// data root (or DVC remote) is configured by the standard AWS variables, which botocore reads itself (s3fs
# and dvc-s3 go through it) in every process motionpipe starts: Dagster's steps, torchrun's ranks, DataLoader workers.
# motionpipe reads none of them; they are listed so that the list of what configures a run is whole.
OBJECT_STORE_ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar("AWS_ENDPOINT_URL", None, "an S3-compatible endpoint other than AWS (MinIO, Ceph, moto: "
                                     "http://host:9000); AWS_ENDPOINT_URL_S3 for S3 alone"),
    EnvVar("AWS_ACCESS_KEY_ID", None, "S3 credentials (or AWS_PROFILE and ~/.aws, or an instance role)"),
    EnvVar("AWS_SECRET_ACCESS_KEY", None, "S3 credentials, with AWS_ACCESS_KEY_ID"),
    EnvVar("AWS_DEFAULT_REGION", None, "the bucket's region (optional for most S3-compatible servers)"),
)


@dataclass(frozen=True)
class Settings:
    """Where data lives, what trains and how, how videos are fetched. None: the documented default applies
    downstream (a dataset config's value, torch's choice, the bundled binary)."""

    data_root: str = DEFAULT_DATA_ROOT
    config_dir: str | None = None
    params_file: str | None = None
    retrain_cron: str = DEFAULT_RETRAIN_CRON
    cache_dir: str | None = None
    ffmpeg: str | None = None
    detector: str | None = None
    detectron2_weights: str | None = None
    cookies: str | None = None
    proxy: str | None = None
    rate_limit_bytes: int | None = None
    mirror: str | None = None
    max_download_bytes: int | None = None
    max_download_seconds: float | None = None
    breaker_after: int = DEFAULT_BREAKER_AFTER
    device: str = "auto"
    nproc_per_node: int = 1
    nnodes: int = 1
    rdzv_endpoint: str | None = None
    dist_timeout: float = 600
    vgg19_weights: str | None = None
    executor: str = "multiprocess"
    celery_broker: str | None = None
    celery_backend: str | None = None
    celery_visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT

    def __post_init__(self) -> None:
        check_executor(self.executor, self.celery_broker)

    def with_flags(self, **flags: Any) -> "Settings":
        """These settings with the flags that were given (None: not given) on top."""
        return replace(self, **{k: v for k, v in flags.items() if v is not None})


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


def _whole(text: str, what: str, minimum: int, hint: str = "") -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ValueError(f"{what}: {text!r} is not a whole number >= {minimum}{hint}")
    return value


def check_broker(url: str, what: str = "celery broker (--broker, MOTIONPIPE_CELERY_BROKER)") -> str:
    """A broker URL celery can use: redis://host:port/db or amqp://user@host//."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in BROKER_SCHEMES or not rest.strip("/"):
        raise ValueError(f"{what}: {url!r} is not a broker URL (e.g. redis://127.0.0.1:6379/0, "
                         f"amqp://guest@host//)")
    return url


def check_executor(executor: str, broker: str | None) -> None:
    if executor not in EXECUTORS:
        raise ValueError(f"MOTIONPIPE_EXECUTOR: {executor!r} is not one of {', '.join(EXECUTORS)}")
    if executor == "celery" and not broker:
        raise ValueError("MOTIONPIPE_EXECUTOR=celery needs a broker: set MOTIONPIPE_CELERY_BROKER "
                         "(or --broker), e.g. redis://127.0.0.1:6379/0")
    if broker:
        check_broker(broker)


_PARSERS = {
    "celery_broker": check_broker, "celery_backend": lambda text, what: text,
    "celery_visibility_timeout": parse_seconds, "dist_timeout": parse_seconds,
    "max_download_bytes": parse_size, "max_download_seconds": parse_seconds,
    "rate_limit_bytes": lambda text, what: int(text),
    "breaker_after": lambda text, what: _whole(text, what, 0, " (0 turns the breaker off)"),
    "nproc_per_node": lambda text, what: _whole(text, what, 1), "nnodes": lambda text, what: _whole(text, what, 1),
}


def _env_values(env: Mapping[str, str]) -> dict[str, Any]:
    known = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}
    for var in ENV_VARS:
        text = (env.get(var.name) or "").strip()
        if var.field in known and text:
            parse = _PARSERS.get(var.field)
            values[var.field] = parse(text, var.name) if parse else text
    return values


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """The settings the MOTIONPIPE_* variables of `env` give (an empty value counts as unset)."""
    return Settings(**_env_values(env))


def resolve_settings(env: Mapping[str, str] | None = None, **flags: Any) -> Settings:
    """Command-line `flags` (None: not given) > `env` (default: this process's environment) > defaults, checked
    together (a broker given as a flag completes MOTIONPIPE_EXECUTOR=celery)."""
    values = _env_values(os.environ if env is None else env)
    return Settings(**{**values, **{k: v for k, v in flags.items() if v is not None}})
