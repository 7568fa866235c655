"""Per-dataset rules, loaded from `assets/configs/<dataset>.yaml` and validated on load.

One file per dataset keeps the published numbers (TaiChiHD 256 px / 128-1024 frames, TED 384 px / 64-1024 frames,
box >= 384 px) in one reviewable place; the code reads only this object.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

CONFIG_DIR = Path(__file__).parent / "configs"
DATASETS = ("taichi", "ted", "sample")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DownloadSettings(_Strict):
    retries: int = Field(3, ge=0, le=10)
    backoff_base: float = Field(2.0, gt=0)
    backoff_max: float = Field(60.0, gt=0)
    rate_limit_bytes: int | None = Field(None, gt=0, description="yt-dlp ratelimit, bytes/s")
    max_bytes: int | None = Field(4 << 30, gt=0, description=(
        "one video's download stops (limit_exceeded, nothing kept) past this many bytes (None: unbounded)"))
    max_seconds: float | None = Field(3600.0, gt=0, description=(
        "one download attempt stops past this many seconds of transfer (None: unbounded)"))
    sleep_between_s: float = Field(0.0, ge=0, description="pause between two videos' downloads")
    socket_timeout: float = Field(30.0, gt=0)
    min_height: int | None = Field(None, gt=0, description="fallback minimum height when the manifest gives none")


class DetectSettings(_Strict):
    backend: Literal["auto", "mediapipe", "detectron2"] = "auto"
    stride: int = Field(10, ge=1, description="detect every k-th frame, interpolate between")
    max_side: int = Field(640, ge=64, description="frames are downscaled to this longest side for detection")
    cut_threshold: float = Field(27.0, gt=0, description="PySceneDetect ContentDetector threshold")
    min_scene_len: int = Field(8, ge=1)


class ChunkSettings(_Strict):
    min_frames: int = Field(..., ge=2)
    max_frames: int = Field(1024, ge=2)
    iou_with_start: float = Field(0.25, ge=0, le=1)
    min_box_size: int = Field(..., ge=1, description="minimum person-box height in source pixels")
    require_upper_body: bool = False
    require_full_body: bool = False

    @model_validator(mode="after")
    def _lengths(self) -> "ChunkSettings":
        if self.min_frames > self.max_frames:
            raise ValueError(f"min_frames {self.min_frames} > max_frames {self.max_frames}")
        return self


class CropSettings(_Strict):
    size: int = Field(..., ge=16, description="output side in pixels (square)")
    style: Literal["replay", "square", "upper_body"] = "square"
    increase: float = Field(0.1, ge=0, description="square growth around the person box (video-preprocessing)")
    upper_body_scale: float = Field(0.55, gt=0, le=2)
    min_crop_side: int | None = Field(None, ge=1, description=(
        "smallest crop side in source pixels a chunk may have (None: the output size, i.e. never upscale)"))
    box_method: Literal["median", "union"] = "median"
    out_of_frame: Literal["clip", "pad", "reject"] = "pad"
    frame_format: Literal["jpeg", "png"] = "jpeg"
    jpeg_quality: int = Field(95, ge=50, le=100)


class SplitSettings(_Strict):
    test_fraction: float = Field(0.1, ge=0, lt=1)
    seed: int = 0


class ShardSettings(_Strict):
    max_samples: int = Field(256, ge=1)
    max_bytes: int = Field(1 << 30, ge=1 << 16)


class DatasetConfig(_Strict):
    name: Literal["taichi", "ted", "sample"]
    mode: Literal["replay", "discover"]
    youtube_ids: bool = True
    manifest_url: str | None = None
    manifest_md5: str | None = None
    search_query: str | None = None
    license_filter: str | None = None
    max_candidates: int = Field(3035, ge=1)
    decode_threads: int | None = Field(1, ge=1, description=(
        "ffmpeg decoding threads per video (None: all cores). One leaves the other cores to cropping/encoding and "
        "to other videos processed in parallel; see benchmarks/README.md"))
    download: DownloadSettings = DownloadSettings()
    detect: DetectSettings = DetectSettings()
    chunks: ChunkSettings
    crop: CropSettings
    split: SplitSettings = SplitSettings()
    shards: ShardSettings = ShardSettings()

    def fingerprint(self) -> str:
        """Stable hash of every rule: a change marks this dataset's outputs stale. The download limits are left
        out: they bound a fetch, they do not change what is made of the file (whose sha256 is stamped anyway)."""
        rules = self.model_dump(mode="json", exclude={"download": {"max_bytes", "max_seconds"}})
        blob = json.dumps(rules, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class DatasetConfigError(ValueError):
    pass


def load_dataset_config(name_or_path: str | Path) -> DatasetConfig:
    path = Path(name_or_path)
    if not path.suffix:
        if str(name_or_path) not in DATASETS:
            raise DatasetConfigError(f"unknown dataset {name_or_path!r}; choose one of {', '.join(DATASETS)}")
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DatasetConfigError(f"cannot read dataset config {path}: {exc}") from exc
    try:
        return DatasetConfig.model_validate(raw)
    except ValidationError as exc:
        raise DatasetConfigError(f"invalid dataset config {path}:\n{exc}") from exc
