"""Training configuration: YAML -> validated, frozen pydantic objects.

Layout of a config file (see ``training/configs/*.yaml``)::

    name, model                      # model in {fomm, mraa, tpsmm, monkeynet}
    dataset:      DatasetParams      # frame shape, id sampling, augmentation
    model_params: <model>.Params     # validated by the model file's own ``Params`` class (if it defines one)
    train:        TrainParams        # schedule, optimiser groups, loss weights, equivariance transform
    train_avd:    AvdTrainParams     # second stage (MRAA, TPSMM) or absent
    reconstruction, animate          # evaluation settings

Unknown keys are errors everywhere (a typo must not silently fall back to a default); every error names the
file and the dotted path of the offending field.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from training.models import MODELS, model_module

CONFIG_DIR = Path(__file__).parent / "configs"
log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A config file is missing, unparsable or invalid; the message names the file and the field."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -----------------------------------------------------------------------------
# dataset


class JitterParams(Strict):
    brightness: float = Field(ge=0)
    contrast: float = Field(ge=0)
    saturation: float = Field(ge=0)
    hue: float = Field(ge=0, le=0.5)


class AugmentationParams(Strict):
    horizontal_flip: bool = True
    time_flip: bool = True
    jitter: JitterParams | None = None
    crop: int | None = None  # Monkey-Net's random crop size


class DatasetParams(Strict):
    name: str
    frame_shape: tuple[int, int, int]
    id_sampling: bool = True
    augmentation: AugmentationParams = AugmentationParams()
    pairs_list: str | None = None

    @field_validator("frame_shape")
    @classmethod
    def _positive(cls, v):
        if min(v) <= 0:
            raise ValueError(f"frame_shape must be positive, got {v}")
        return v


# -----------------------------------------------------------------------------
# training


class TransformParams(Strict):
    """Random affine + TPS of the equivariance losses (``training.models.transforms.RandomTps``)."""
    sigma_affine: float = Field(ge=0)
    sigma_tps: float = Field(ge=0)
    points_tps: int = Field(ge=1)
    kernel: Literal["l1", "euclidean"] = "l1"


class LossWeights(Strict):
    """Every loss weight used by any of the four models; absent = 0 (term not computed)."""
    perceptual: tuple[float, ...] = ()
    equivariance_value: float = 0.0
    equivariance_jacobian: float = 0.0
    equivariance_shift: float = 0.0
    equivariance_affine: float = 0.0
    generator_gan: float = 0.0
    discriminator_gan: float = 0.0
    feature_matching: tuple[float, ...] = ()
    warp_loss: float = 0.0
    bg: float = 0.0
    reconstruction: tuple[float, ...] = ()  # Monkey-Net: pixel L1 + D feature matching
    reconstruction_deformed: float = 0.0


class DropoutParams(Strict):
    """TPSMM's dropout-softmax schedule."""
    dropout_epoch: int = Field(ge=0)
    dropout_maxp: float = Field(ge=0, lt=1)
    dropout_startp: float = Field(ge=0, lt=1)
    dropout_inc_epoch: int = Field(ge=1)


class TrainParams(Strict):
    num_epochs: int = Field(ge=1)
    num_repeats: int = Field(default=1, ge=1)
    epoch_milestones: tuple[int, ...] = ()
    lr: dict[str, float]  # one entry per optimiser group of the model (see *Model.optimizer_groups)
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0
    batch_size: int = Field(ge=1)
    scales: tuple[float, ...] = (1.0,)
    checkpoint_freq: int = Field(ge=1)
    dataloader_workers: int = Field(default=6, ge=0)
    transform: TransformParams | None = None
    loss_weights: LossWeights
    clip_grad_norm: float | None = None  # TPSMM: inf-norm clipping of the motion networks
    dropout: DropoutParams | None = None  # TPSMM
    bg_start: int | None = None  # TPSMM: epoch from which the bg predictor is used
    detach_kp_generator: bool | None = None  # Monkey-Net
    detach_kp_discriminator: bool | None = None  # Monkey-Net
    # Train the perceptual loss on a randomly initialised VGG-19 when the ImageNet weights are not available.
    # Off by default: only a config that asks for it (or the --allow-random-vgg flag) may; checkpoints record it.
    allow_random_vgg: bool = False

    @field_validator("epoch_milestones")
    @classmethod
    def _sorted(cls, v):
        if list(v) != sorted(v):
            raise ValueError(f"epoch_milestones must be increasing, got {list(v)}")
        return v

    @field_validator("scales")
    @classmethod
    def _scales(cls, v):
        for s in v:
            if not (0 < s <= 1) or abs(1 / s - round(1 / s)) > 1e-6:
                raise ValueError(f"pyramid scale {s} is not 1/n for an integer n")
        return tuple(float(s) for s in v)

    @model_validator(mode="after")
    def _consistent(self):
        w = self.loss_weights
        if (w.equivariance_value or w.equivariance_jacobian or w.equivariance_shift or w.equivariance_affine) \
                and self.transform is None:
            raise ValueError("equivariance loss weights are set but train.transform is missing")
        if any(m > self.num_epochs for m in self.epoch_milestones):
            raise ValueError(f"epoch_milestones {list(self.epoch_milestones)} exceed num_epochs {self.num_epochs}")
        return self


class AvdTrainParams(Strict):
    """Second stage: the shape/pose disentanglement network (MRAA, TPSMM)."""
    num_epochs: int = Field(ge=1)
    num_repeats: int = Field(default=1, ge=1)
    batch_size: int = Field(ge=1)
    epoch_milestones: tuple[int, ...] = ()
    lr: float = Field(gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    lambda_shift: float = 1.0
    lambda_affine: float | None = None  # MRAA only
    random_scale: float = Field(ge=0, lt=1)
    checkpoint_freq: int = Field(ge=1)
    dataloader_workers: int = Field(default=6, ge=0)


class ReconstructionParams(Strict):
    num_videos: int | None = None  # None: every test video (TPSMM); FOMM/MRAA cap at 1000


class AnimateParams(Strict):
    num_pairs: int = 50
    mode: Literal["standard", "relative", "avd"] = "relative"
    adapt_movement_scale: bool = False
    use_relative_jacobian: bool = True


class Config(Strict):
    name: str
    model: Literal[MODELS]
    dataset: DatasetParams
    model_params: Any  # dict, or the model file's ``Params`` instance after validation
    train: TrainParams
    train_avd: AvdTrainParams | None = None
    reconstruction: ReconstructionParams = ReconstructionParams()
    animate: AnimateParams = AnimateParams()

    @model_validator(mode="after")
    def _pyramid_fits_vgg(self):
        smallest = min(self.dataset.frame_shape[:2]) * min(self.train.scales)
        if sum(self.train.loss_weights.perceptual) and smallest < 16:
            raise ValueError(f"train.scales {list(self.train.scales)} shrink {self.dataset.frame_shape[:2]} frames to "
                             f"{smallest:g} px; the VGG-19 perceptual loss needs at least 16 px (4 max-pools)")
        return self

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.dataset.frame_shape[0], self.dataset.frame_shape[1]


# -----------------------------------------------------------------------------
# loading


def _format_errors(err: ValidationError, prefix: str = "") -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in (prefix, *e["loc"]) if p != "")
        lines.append(f"  {loc or '<root>'}: {e['msg']}")
    return "\n".join(lines)


def validate_config(raw: dict, source: str = "<dict>") -> Config:
    """Validate a parsed config dict, including ``model_params`` against ``training.models.<model>.Params``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: top level must be a mapping, got {type(raw).__name__}")
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"{source}: invalid config\n{_format_errors(err)}") from None
    module = model_module(cfg.model)
    schema = getattr(module, "Params", None)
    if schema is not None:
        if not isinstance(cfg.model_params, dict):
            raise ConfigError(f"{source}: model_params must be a mapping")
        try:
            params = schema.model_validate(cfg.model_params)
        except ValidationError as err:
            raise ConfigError(f"{source}: invalid model_params for {cfg.model}\n"
                              f"{_format_errors(err, 'model_params')}") from None
        cfg = cfg.model_copy(update={"model_params": params})
        check = getattr(module, "check_config", None)
        if check is not None:  # cross-section rules (e.g. required loss weights, optimiser groups)
            try:
                check(cfg)
            except ValueError as err:
                raise ConfigError(f"{source}: {err}") from None
    return cfg


def load_config(path: str | Path) -> Config:
    """Load and validate a YAML config. ``path`` may be a file or a bare name in ``training/configs``."""
    p = Path(path)
    if not p.suffix and not p.exists():
        p = CONFIG_DIR / f"{p.name}.yaml"
    if not p.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML: {err}") from None
    return validate_config(raw, source=str(p))


# -----------------------------------------------------------------------------
# the warping convention (model_params.align_corners) across checkpoints

# The grid_sample convention each official repository's weights were trained with (training/models/grids.py says why).
OFFICIAL_ALIGN_CORNERS = {"fomm": True, "monkeynet": True, "tpsmm": True, "mraa": False}
# motionpipe checkpoints written before the field existed were all trained with True.
LEGACY_ALIGN_CORNERS = True


def embedded_align_corners(raw: dict) -> bool:
    """The convention a checkpoint's embedded config (a plain dict) was trained with."""
    params = raw.get("model_params") if isinstance(raw, dict) else None
    if isinstance(params, dict) and "align_corners" in params:
        return bool(params["align_corners"])
    return LEGACY_ALIGN_CORNERS


def upgrade_embedded_config(raw: dict, source: str) -> dict:
    """A checkpoint's embedded config, with ``model_params.align_corners`` filled in where it predates the field.

    Such checkpoints were trained with True, so True is what reproduces them (whatever the YAML says today);
    the log names the field so a user comparing runs knows why an old MRAA run samples differently."""
    params = raw.get("model_params") if isinstance(raw, dict) else None
    if not isinstance(params, dict) or "align_corners" in params:
        return raw
    log.warning(
        "%s: config predates model_params.align_corners; using %s, the convention it was trained with",
        source, LEGACY_ALIGN_CORNERS)
    return {**raw, "model_params": {"align_corners": LEGACY_ALIGN_CORNERS, **params}}


def require_same_convention(checkpoint_config: dict, cfg: Config, source: str) -> None:
    """Refuse weights trained under another grid_sample convention: every warp would sample half a pixel off,
    and resumed training or an AVD stage would silently learn a different model."""
    trained = embedded_align_corners(checkpoint_config)
    wanted = cfg.model_params.align_corners
    if trained != wanted:
        raise ConfigError(f"{source} was trained with model_params.align_corners={trained}, but config "
                          f"{cfg.name!r} sets model_params.align_corners={wanted}: set it to {trained} in the "
                          "config to use these weights, or start a new run")


def require_official_convention(cfg: Config, layout_name: str, source: str) -> None:
    """Official weights only give the official frames under the convention they were trained with."""
    official = OFFICIAL_ALIGN_CORNERS[cfg.model]
    if cfg.model_params.align_corners != official:
        raise ConfigError(f"{source}: {layout_name} checkpoints were trained with grid_sample "
                          f"align_corners={official}, but config {cfg.name!r} sets model_params.align_corners="
                          f"{cfg.model_params.align_corners}; set it to {str(official).lower()} to convert them")


def config_to_dict(cfg: Config) -> dict:
    """Plain-python form of a config (for checkpoints and hashing)."""
    return cfg.model_dump(mode="json")


def config_hash(cfg: Config) -> str:
    """sha256 of the validated config (sorted JSON): the same settings give the same hash wherever they came from."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(config_to_dict(cfg), sort_keys=True, default=str).encode()).hexdigest()[:16]
