"""What every extractor shares: the interface, the frame format it takes, and how its weights are found.

An extractor turns one video's frames (T, H, W, 3) uint8 RGB at the dataset resolution into per-frame outputs:
``Keypoints`` (for AKD/MKR) or ``Embeddings`` (for AED), stamped with the extractor's registry name so results
from different extractors are never mixed. ``paper_comparable`` says whether its numbers can stand beside the
published tables (only the networks pose-evaluation used, run with its quirks).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch

from training.metrics.identity import Embeddings
from training.metrics.keypoints import Keypoints


class WeightsNotFound(FileNotFoundError):
    """An extractor's weight file is not where it was looked for; the message names the path and the file."""


def resolve_weights(path: str | os.PathLike | None, env_var: str, what: str) -> Path:
    """The given path; a clear error naming what file it wants and where it looked. ``$env_var`` is read by the
    command line (``weights_from_env``), never here."""
    if path is None:
        raise WeightsNotFound(f"{what}: no weight file given; pass its path or set ${env_var}")
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsNotFound(f"{what}: weight file not found at {p} (set ${env_var} or pass the path)")
    return p


def load_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    """A plain state dict from ``path`` (weights_only), with a DataParallel ``module.`` prefix removed."""
    from training.checkpoint import UnsafeCheckpointError, load_weights_only
    try:
        state = load_weights_only(path)
    except UnsafeCheckpointError as exc:
        raise ValueError(f"{what}: {exc}") from None
    except Exception as exc:  # truncated file, pickle of a whole model, not a torch file ...
        raise ValueError(f"{what}: cannot read {path} as a state dict ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{what}: {path} holds a {type(state).__name__}, not a state dict")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def as_uint8_frames(frames: np.ndarray | torch.Tensor) -> np.ndarray:
    """(T, H, W, 3) contiguous uint8 RGB from uint8 or [0, 1] float frames, (T, H, W, 3) or (T, 3, H, W).

    Float frames are quantised as the repos wrote their reconstruction PNGs, ``(255 * x).astype(uint8)``
    (truncation, after clipping to [0, 1]), so extractors see what pose-evaluation saw.
    """
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    x = np.asarray(frames)
    if x.ndim != 4:
        raise ValueError(f"frames must be (T, H, W, 3) or (T, 3, H, W), got shape {x.shape}")
    if x.shape[-1] != 3 and x.shape[1] == 3:
        x = x.transpose(0, 2, 3, 1)
    if x.shape[-1] != 3:
        raise ValueError(f"frames must have 3 colour channels, got shape {x.shape}")
    if x.dtype != np.uint8:
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"frames must be uint8 or float in [0, 1], got {x.dtype}")
        x = (255 * np.clip(x, 0.0, 1.0)).astype(np.uint8)
    return np.ascontiguousarray(x)


class Extractor(ABC):
    """Base of every extractor; use as a context manager or call ``close()`` to free its resources."""

    name: ClassVar[str]
    kind: ClassVar[Literal["keypoints", "identity"]]
    metrics: ClassVar[tuple[str, ...]]
    paper_comparable: ClassVar[bool]

    def close(self) -> None:
        """Release graphs, worker processes or device memory (nothing by default)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class KeypointExtractor(Extractor):
    kind = "keypoints"
    metrics = ("AKD", "MKR")
    joint_names: ClassVar[tuple[str, ...]]

    @abstractmethod
    def extract(self, frames: np.ndarray | torch.Tensor) -> Keypoints:
        """Keypoints of one video, in pixels of the frames given."""


class IdentityExtractor(Extractor):
    kind = "identity"
    metrics = ("AED",)
    dim: ClassVar[int]

    @abstractmethod
    def extract(self, frames: np.ndarray | torch.Tensor) -> Embeddings:
        """Identity embeddings of one video, one row per frame."""
