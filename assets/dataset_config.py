"""Per-dataset rules, loaded from `assets/configs/<dataset>.yaml` and validated on load.

One file per dataset keeps the published numbers (TaiChiHD 256 px / 128-1024 frames, TED 384 px / 64-1024 frames,
box >= 384 px) in one reviewable place; the code reads only this object.

Lengths may be given in frames (what the papers count) or in seconds (what one's own footage means: 32 frames are
1.3 s at 25 fps but 3.2 s at 10 fps). Seconds are turned into frames with each video's own fps by `at_fps`, so the
per-video stages only ever see frame counts. `MOTIONPIPE_RULES_<DATASET>` swaps a discovery dataset's rules for
another dataset's or a rules file's (`assets/rules.py`; `motionpipe rebuild --rules`).
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

CONFIG_DIR = Path(__file__).parent / "configs"
DATASETS = ("taichi", "ted", "sample", "taichi512")
# The sections that make a dataset's rules (what is cut and how), as opposed to its identity and sources.
RULE_SECTIONS = ("detect", "chunks", "crop", "split", "shards")
# A duration given without its frame count replaces that frame count, and the other way round (see merge_rules).
_PAIRED = {"chunks": {"min_seconds": "min_frames", "max_seconds": "max_frames"}, "detect": {"stride_seconds": "stride"}}
# Fields added after datasets were built: left out of the fingerprint while unset, so existing outputs stay fresh.
_UNSET_NOT_FINGERPRINTED = {"chunks": ("min_seconds", "max_seconds"), "detect": ("stride_seconds",),
                            "crop": ("replay_min_resolution",)}
# Tolerance when a duration times an fps should land on a whole frame (2.0 s x 29.97 fps = 59.94 -> 59 frames).
_EPS = 1e-6


def rules_env_var(dataset: str) -> str:
    """The environment variable naming the rules a dataset's runs use instead of its own (`ted`, a YAML path)."""
    return f"MOTIONPIPE_RULES_{dataset.upper()}"


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
    backend: Literal["auto", "ssd", "mediapipe", "detectron2"] = "auto"
    stride: int | None = Field(10, ge=1, description="detect every k-th frame, interpolate between")
    stride_seconds: float | None = Field(None, gt=0, description=(
        "detect every this many seconds instead (at least every frame); replaces stride once converted"))
    max_side: int = Field(640, ge=64, description="frames are downscaled to this longest side for detection")
    cut_threshold: float = Field(27.0, gt=0, description="PySceneDetect ContentDetector threshold")
    min_scene_len: int = Field(8, ge=1)

    @model_validator(mode="after")
    def _stride(self) -> "DetectSettings":
        if self.stride is None and self.stride_seconds is None:
            raise ValueError("give stride or stride_seconds (how often to detect)")
        return self


class ChunkSettings(_Strict):
    min_frames: int | None = Field(None, ge=2, description="shortest chunk in frames (or give min_seconds)")
    max_frames: int | None = Field(1024, ge=2, description="longest chunk in frames (or give max_seconds)")
    min_seconds: float | None = Field(None, gt=0, description=(
        "shortest chunk in seconds, in frames at each video's fps (rounded up); with min_frames the longer holds"))
    max_seconds: float | None = Field(None, gt=0, description=(
        "longest chunk in seconds, in frames at each video's fps (rounded down); with max_frames the shorter holds"))
    iou_with_start: float = Field(0.25, ge=0, le=1)
    min_box_size: int = Field(..., ge=1, description="minimum person-box height in source pixels")
    require_upper_body: bool = False
    require_full_body: bool = False

    @model_validator(mode="after")
    def _lengths(self) -> "ChunkSettings":
        if self.min_frames is None and self.min_seconds is None:
            raise ValueError("give min_frames or min_seconds (the shortest chunk)")
        if self.max_frames is None and self.max_seconds is None:
            raise ValueError("give max_frames or max_seconds (the longest chunk)")
        if None not in (self.min_frames, self.max_frames) and self.min_frames > self.max_frames:
            raise ValueError(f"min_frames {self.min_frames} > max_frames {self.max_frames}")
        if self.min_seconds is not None and self.max_seconds is not None and self.min_seconds > self.max_seconds:
            raise ValueError(f"min_seconds {self.min_seconds} > max_seconds {self.max_seconds}")
        return self

    def at_fps(self, fps: float) -> "ChunkSettings":
        """Frame bounds for a video of this fps; durations folded in (and cleared), frame-only rules unchanged."""
        if self.min_seconds is None and self.max_seconds is None:
            return self
        lo = max(self.min_frames or 2, math.ceil(self.min_seconds * fps - _EPS) if self.min_seconds else 2)
        hi = min(x for x in (self.max_frames, self.max_seconds and math.floor(self.max_seconds * fps + _EPS)) if x)
        if lo > hi:
            raise ValueError(f"chunk rules at {fps:g} fps: at least {lo} frames but at most {hi} "
                             f"(min {self.min_frames} frames / {self.min_seconds} s, "
                             f"max {self.max_frames} frames / {self.max_seconds} s)")
        return self.model_copy(update={"min_frames": lo, "max_frames": hi, "min_seconds": None, "max_seconds": None})


class CropSettings(_Strict):
    size: int = Field(..., ge=16, description="output side in pixels (square)")
    style: Literal["replay", "square", "upper_body"] = "square"
    increase: float = Field(0.1, ge=0, description="square growth around the person box (video-preprocessing)")
    upper_body_scale: float = Field(0.55, gt=0, le=2)
    min_crop_side: int | None = Field(None, ge=1, description=(
        "smallest crop side in source pixels a chunk may have (None: the output size, i.e. never upscale)"))
    replay_min_resolution: bool | None = Field(None, description=(
        "replay datasets: drop a manifest clip whose box, in the downloaded video's pixels, is smaller than the crop "
        "(min_crop_side, else size), as discovery datasets drop such crops (TaiChiHD-512: 'removing videos lacking "
        "sufficient resolution'); unset: keep every clip, upscaling if need be, as the reference load_videos.py"))
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
    name: Literal["taichi", "ted", "sample", "taichi512"]
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
    own_videos: dict[Literal["detect", "chunks", "crop", "split", "shards"], dict[str, Any]] | None = Field(
        None, description=(
            "changes to these rules when they are applied to videos found by detection (rebuild sample --rules "
            "<name>): a replay dataset's csv boxes become the crop rule its boxes were made with"))

    @model_validator(mode="after")
    def _coherent(self) -> "DatasetConfig":
        if self.mode == "discover" and self.crop.style == "replay":
            raise ValueError("crop.style 'replay' needs a manifest's boxes; a discover dataset crops 'square' or "
                             "'upper_body'")
        if self.own_videos:
            try:
                self.with_rules(self.rules_for_own_videos(), mode="discover")
            except ValidationError as exc:
                raise ValueError(f"own_videos does not give valid discovery rules: {exc}") from None
        return self

    def rules_for_own_videos(self) -> dict[str, dict[str, Any]]:
        """These rules as plain sections, with the `own_videos` changes applied (what `--rules <name>` uses)."""
        sections = {name: getattr(self, name).model_dump() for name in RULE_SECTIONS}
        return merge_rules(sections, self.own_videos or {})

    def with_rules(self, sections: dict[str, dict[str, Any]], **identity: Any) -> "DatasetConfig":
        """This dataset (name, sources, downloads) with other rules; validated like a config file."""
        keep = self.model_dump(exclude={"own_videos", *RULE_SECTIONS})
        return DatasetConfig.model_validate({**keep, **identity, **sections})

    def at_fps(self, fps: float) -> "DatasetConfig":
        """The rules for one video: durations in seconds become frame counts at its own fps. A config given only in
        frames is returned as is (same fingerprint, so nothing built before is redone)."""
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise ValueError(f"{self.name}: cannot convert seconds to frames at fps {fps!r}")
        chunks = self.chunks.at_fps(fps)
        detect = self.detect
        if detect.stride_seconds is not None:
            detect = detect.model_copy(update={"stride": max(1, round(detect.stride_seconds * fps)),
                                               "stride_seconds": None})
        if chunks is self.chunks and detect is self.detect:
            return self
        return self.model_copy(update={"chunks": chunks, "detect": detect})

    def fingerprint(self) -> str:
        """Stable hash of every rule: a change marks this dataset's outputs stale. The download limits are left
        out: they bound a fetch, they do not change what is made of the file (whose sha256 is stamped anyway).
        So are `own_videos` (used only when the rules are lent to another dataset, which then has them applied)
        and duration fields while unset (added later; their absence changes nothing that was built)."""
        rules = self.model_dump(mode="json", exclude={"download": {"max_bytes", "max_seconds"}, "own_videos": True})
        for section, names in _UNSET_NOT_FINGERPRINTED.items():
            for name in names:
                if rules[section].get(name) is None:
                    rules[section].pop(name, None)
        blob = json.dumps(rules, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def merge_rules(base: dict[str, dict[str, Any]], changes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`base` sections with `changes` laid over field by field. A length given in seconds without its frame count
    clears the base's frame count (a file that says `min_seconds: 1` means one second, not "at least 32 frames and
    one second"), and a frame count given without the duration clears the base's duration."""
    out = copy.deepcopy(base)
    for section, fields in changes.items():
        if not isinstance(fields, dict):
            raise ValueError(f"{section}: expected a mapping of fields, got {type(fields).__name__}")
        merged = {**out.get(section, {}), **fields}
        for seconds, frames in _PAIRED.get(section, {}).items():
            if seconds in fields and frames not in fields:
                merged[frames] = None
            if frames in fields and seconds not in fields:
                merged[seconds] = None
        out[section] = merged
    return out


class DatasetConfigError(ValueError):
    pass


def load_dataset_config(name_or_path: str | Path) -> DatasetConfig:
    """A dataset's config by name (with the rules `MOTIONPIPE_RULES_<DATASET>` names, if set) or from a file."""
    path = Path(name_or_path)
    if path.suffix:
        return _load_file(path)
    cfg = shipped_config(str(name_or_path))
    spec = os.environ.get(rules_env_var(cfg.name))
    if spec:
        from assets.rules import apply_rules  # the rules module builds on this one

        cfg = apply_rules(cfg, spec)
    return cfg


def shipped_config(name: str) -> DatasetConfig:
    """The dataset's own config, as shipped in `assets/configs/<name>.yaml` (no rules swapped in)."""
    if name not in DATASETS:
        raise DatasetConfigError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return _load_file(CONFIG_DIR / f"{name}.yaml")


def _load_file(path: Path) -> DatasetConfig:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DatasetConfigError(f"cannot read dataset config {path}: {exc}") from exc
    try:
        return DatasetConfig.model_validate(raw)
    except ValidationError as exc:
        raise DatasetConfigError(f"invalid dataset config {path}:\n{exc}") from exc
