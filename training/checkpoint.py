"""Training checkpoints: self-describing, atomically written, loaded with clear errors.

A checkpoint is one ``torch.save`` file holding plain data only (it loads with ``weights_only=True``)::

    format, format_version, model, stage, config (dict), networks {name: state_dict}, optimizers, schedulers,
    scaler, step, epoch, step_in_epoch, world_size, rng [per rank], meta (caller's lineage), vgg_pretrained,
    precision, torch_version, created

Two kinds live side by side in a run's ``checkpoints/`` folder:
- ``step-<step:09d>.pt``: written every N steps and at exit; only the newest K are kept.
- ``epoch-<epoch:04d>-step-<step:09d>.pt``: the official per-``checkpoint_freq`` epoch snapshots; never pruned.

Writes go to a hidden temporary file in the same folder, are fsynced, then renamed over the final name (and the
folder is fsynced), so a crash at any point leaves either the complete new file or none; older checkpoints are
pruned only after the new one is durable.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "motionpipe.train-checkpoint"
FORMAT_VERSION = 1
STEP_RE = re.compile(r"^step-(\d{9})\.pt$")
EPOCH_RE = re.compile(r"^epoch-(\d{4})-step-(\d{9})\.pt$")
_TMP_MARK = ".tmp-"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, corrupted or not a motionpipe training checkpoint; names the file."""


class UnsafeCheckpointError(CheckpointError, ValueError):
    """The file pickles Python objects beyond tensors and plain containers: loading it could run arbitrary code,
    so it was refused (``weights_only=True``). Also a ValueError, as bad input to the official-checkpoint reader."""


def step_checkpoint_name(step: int) -> str:
    return f"step-{step:09d}.pt"


def epoch_checkpoint_name(epoch: int, step: int) -> str:
    return f"epoch-{epoch:04d}-step-{step:09d}.pt"


def checkpoint_step(path: str | os.PathLike) -> int | None:
    """Step encoded in a checkpoint file name, or None for a name that is not a checkpoint."""
    name = Path(path).name
    m = STEP_RE.match(name) or EPOCH_RE.match(name)
    return int(m.groups()[-1]) if m else None


# -----------------------------------------------------------------------------
# RNG state (plain tensors / python values so the file stays weights_only-loadable)


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and (when CUDA is in use) the current CUDA device's generator state.

    Only the current device: under torchrun each rank owns one GPU, and querying all of them would create a
    CUDA context on every GPU from every rank."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None,
    }
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_python_state(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _as_python_state(state):
    """random.setstate needs tuples; a round trip through some serialisers yields lists."""
    version, internal, gauss = state
    return version, tuple(internal), gauss


# -----------------------------------------------------------------------------
# writing


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Atomically write ``state`` to ``path``: temp file beside it, fsync, rename, fsync the folder.

    If anything fails (or the process dies) before the rename, ``path`` is untouched: an existing checkpoint of
    that name, and every other checkpoint in the folder, stays loadable.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{_TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete temp files left by a writer that died mid-save (call before a run starts writing)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = [p for p in directory.iterdir() if p.name.startswith(".") and _TMP_MARK in p.name]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def list_checkpoints(directory: str | os.PathLike, kind: str = "all") -> list[Path]:
    """Checkpoint files in ``directory`` sorted by step (then name); ``kind`` in {'all', 'step', 'epoch'}."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    patterns = {"all": (STEP_RE, EPOCH_RE), "step": (STEP_RE,), "epoch": (EPOCH_RE,)}[kind]
    found = [p for p in directory.iterdir() if any(r.match(p.name) for r in patterns)]
    return sorted(found, key=lambda p: (checkpoint_step(p), p.name.startswith("step-"), p.name))


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1] if found else None


def prune_checkpoints(directory: str | os.PathLike, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest step checkpoints (epoch snapshots are never pruned)."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    found = list_checkpoints(directory, kind="step")
    doomed = found[:-keep]
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed


# -----------------------------------------------------------------------------
# reading

_REFUSED_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)|(\S+) was not an allowed global")


def load_weights_only(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)``: tensors, numbers, strings and containers only, so a file can never run
    code. A file that pickles anything else is refused with :class:`UnsafeCheckpointError` naming the file and
    the object; other failures (truncated, not a torch file) propagate as torch raises them."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = _REFUSED_GLOBAL.search(str(err))
        if found is None:  # not a pickle at all: keep the unpickler's reason, not torch's advice to re-run unsafely
            reason = str(err).partition("WeightsUnpickler error:")[2].strip().split("\n\n")[0] or str(err)
            raise pickle.UnpicklingError(f"{path}: {reason}") from None
        name = found.group(1) or found.group(2)
        raise UnsafeCheckpointError(
            f"{path}: refused to load: it pickles the Python object {name}, and unpickling arbitrary objects "
            f"can run code (checkpoints are read with torch.load(weights_only=True), which admits only tensors "
            f"and plain data)") from None


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and sanity-check a checkpoint; any failure is a :class:`CheckpointError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = load_weights_only(path, map_location=map_location)
    except UnsafeCheckpointError:
        raise
    except Exception as err:  # zip/pickle errors of a truncated or overwritten file
        hint = _previous_hint(path)
        raise CheckpointError(f"{path}: unreadable checkpoint (truncated or corrupted?): "
                              f"{type(err).__name__}: {err}{hint}") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a motionpipe training checkpoint (format "
                              f"{state.get('format') if isinstance(state, dict) else type(state).__name__!r})")
    if state.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {state['format_version']} is newer than this code "
                              f"({FORMAT_VERSION})")
    missing = [k for k in ("model", "config", "networks", "step", "epoch") if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    return state


def _previous_hint(path: Path) -> str:
    others = [p for p in list_checkpoints(path.parent) if p != path and checkpoint_step(p) is not None]
    older = [p for p in others if checkpoint_step(p) <= (checkpoint_step(path) or 0)]
    return f"; the previous checkpoint {older[-1]} is intact, resume from it explicitly" if older else ""


def load_networks(model: torch.nn.Module, state: dict[str, Any], strict: bool = True) -> list[str]:
    """Load ``state['networks']`` into ``model.networks()``; returns the network names that were not found.

    ``strict`` also demands that every network of the model is in the checkpoint (and exact key sets within).
    """
    nets = model.networks()
    saved = state["networks"]
    absent = [name for name in nets if name not in saved]
    if strict and absent:
        raise CheckpointError(f"checkpoint of {state.get('model')!r} lacks networks {absent} "
                              f"(it holds {sorted(saved)})")
    for name, net in nets.items():
        if name in saved:
            net.load_state_dict(saved[name], strict=strict)
    return absent
