"""Render the animation samples of a dataset: every model animates the same (source, driving) test pairs.

For a fixed set of pairs (``training.evaluation.samples.choose_pairs`` over the test split's chunk keys: the same dataset,
keys and seed give the same pairs), the source frame and the driving chunk are read from the published shards and
each model animates the source in ``relative`` mode and, where it has an AVD network, in ``avd`` mode. Columns:
source, driving, then ``<model>/relative`` and ``<model>/avd``; written per pair as an MP4, a GIF and a
contact-sheet PNG by ``training.evaluation.samples.write_sample``.

Overlays, as the official visualiser draws them: each output column shows, per frame, the keypoints / region
centres that drove its generator (the relative-mode points p_d - p_d0 + p_s, or what the AVD network produced), so
a person sees where the model meant each part to go. The source and driving columns show the keypoints the FIRST
model detects on them (``input_keypoints=False`` leaves them clean); colours match between columns of one model.

A model without an AVD network (FOMM, Monkey-Net, or an MRAA/TPSMM run whose AVD stage was not trained) gets no
``avd`` column: the column is absent, never filled with relative-mode frames.

``motionpipe samples`` finds checkpoints as ``motionpipe evaluate`` does (the published
``models/<dataset>/<model>/main.pt``, else the newest under ``runs/<model>-<dataset>/checkpoints``) and the AVD-stage
one from the same place (``avd.pt`` beside it, else the newest under ``runs/<model>-<dataset>-avd/checkpoints``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from storage import paths
from storage.catalog import CHUNKS_SCHEMA, read_table
from storage.root import DataRoot
from training.evaluation.animate import Animator, load_animator, to_uint8
from training.evaluation.samples import SampleFiles, SamplePair, choose_pairs, sample_streams, write_sample
from training.loop.data import DataError, FrameReader, SplitIndex, load_split_index

SPLIT = "test"
DEFAULT_FPS = 25.0


@dataclass(frozen=True)
class ModelCheckpoints:
    """One model's column group: ``name`` labels the columns; ``avd`` is the AVD-stage checkpoint, if trained.

    ``config`` is only for an official checkpoint (ours carry their config); an official MRAA/TPSMM checkpoint
    usually holds its AVD network itself.
    """

    name: str
    main: Path
    avd: Path | None = None
    config: str | None = None


@dataclass(frozen=True)
class RenderedSample:
    """What one pair produced: the files, the column labels left to right, and the frame count."""

    pair: SamplePair
    files: SampleFiles
    columns: tuple[str, ...]

    @property
    def frames(self) -> int:
        return self.files.frames


# ---- rendering -------------------------------------------------------------------------------------------------------


def render_samples(root: DataRoot, dataset: str, models: Sequence[ModelCheckpoints], out_dir: str | os.PathLike, *,
                   n_pairs: int = 4, seed: int = 0, device: str = "cpu", max_frames: int | None = None,
                   batch_size: int = 16, input_keypoints: bool = True) -> list[RenderedSample]:
    """Animate ``n_pairs`` test pairs of ``dataset`` with every model and write ``<pair name>.{mp4,gif,png}``.

    Each model is loaded once. ``max_frames`` keeps only the first N frames of each driving chunk (short demo
    clips). Fails before writing anything when the dataset has no test chunks or a checkpoint is for frames of
    another size than the dataset's.
    """
    if not models:
        raise ValueError("no models to render samples with")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"model names label the columns and must differ, got {names}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    index = _test_index(root, dataset)
    pairs = choose_pairs(dataset, [c.key for c in index.chunks], n_pairs, seed)
    animators: dict[str, Animator] = {}
    for m in models:
        animator = load_animator(m.main, m.config, m.avd, device=device)
        check_frame_size(index, animator, m)
        animators[m.name] = animator

    refs = {c.key: c for c in index.chunks}
    fps = _chunk_fps(root, dataset)
    reader = FrameReader(root)
    rendered = []
    for pair in pairs:
        (source,) = reader.read(refs[pair.source], [pair.source_frame])
        ref = refs[pair.driving]
        n = ref.n_frames if max_frames is None else min(ref.n_frames, max_frames)
        driving = np.stack(reader.read(ref, range(n)))
        outputs: dict[str, dict[str, np.ndarray]] = {}
        overlays: dict[str, np.ndarray] = {}
        for name, animator in animators.items():
            for mode in modes_of(animator):
                frames, points = animate_with_points(animator, source, driving, mode, batch_size)
                outputs.setdefault(name, {})[mode] = frames
                overlays[f"{name}/{mode}"] = points
        note = None
        if input_keypoints:
            first_name, first = next(iter(animators.items()))
            overlays["source"] = detect_points(first, source[None], batch_size)[0]
            overlays["driving"] = detect_points(first, driving, batch_size)
            note = keypoints_note(first_name)
        streams = sample_streams(source, driving, outputs, overlays)
        files = write_sample(streams, os.fspath(out_dir), pair.name, fps=fps.get(ref.key, DEFAULT_FPS), note=note)
        rendered.append(RenderedSample(pair, files, tuple(s.label for s in streams)))
    return rendered


def keypoints_note(model: str) -> str:
    """The contact sheet's caption of the points drawn on the source and driving columns."""
    return f"points on source and driving: {model}'s keypoint detector (colours as in {model}/relative)"


def modes_of(animator: Animator) -> tuple[str, ...]:
    """``relative`` always; ``avd`` only when the model has a loaded AVD network."""
    return ("relative", "avd") if animator.avd_network is not None else ("relative",)


def _test_index(root: DataRoot, dataset: str) -> SplitIndex:
    try:
        return load_split_index(root, dataset, SPLIT)
    except DataError as err:  # e.g. no test chunks: say what was being attempted
        raise DataError(f"cannot render samples of dataset {dataset!r}: {err}") from err


def check_frame_size(index: SplitIndex, animator: Animator, model: ModelCheckpoints) -> None:
    """The model must take the dataset's frames as stored (samples are never resized to fit a model)."""
    h, w = animator.frame_size
    for c in index.chunks:
        if (c.height, c.width) != (h, w):
            raise ValueError(f"checkpoint {model.main} ({model.name}, config {animator.cfg.name}) is for {h}x{w} "
                             f"frames, but dataset {index.dataset!r} has {c.height}x{c.width} frames (chunk {c.key} "
                             f"in {c.shard}): render it with a dataset of its resolution")


def _chunk_fps(root: DataRoot, dataset: str) -> dict[str, float]:
    table = read_table(root, paths.catalog_path(root, dataset, "chunks"), CHUNKS_SCHEMA)
    return {r["chunk_id"]: r["fps"] for r in table.select(["chunk_id", "fps"]).to_pylist() if r["fps"]}


class _PointsRecorder:
    """Stands in for an Animator's motion adapter during one ``animate`` call and records, per generated frame,
    the points the generator was given. Recording them (rather than recomputing the relative / AVD mapping here)
    guarantees the overlay is exactly the motion that made the frame."""

    def __init__(self, adapter):
        self.adapter, self.points = adapter, []

    def __getattr__(self, name):
        return getattr(self.adapter, name)

    def generate(self, model, source, src, drv, driving=None):
        self.points.append(drv[self.adapter.points_key].detach().float().cpu().numpy())
        return self.adapter.generate(model, source, src, drv, driving=driving)


def animate_with_points(animator: Animator, source: np.ndarray, driving: np.ndarray, mode: str,
                        batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(T, H, W, 3) uint8 animation of ``source`` by ``driving`` in ``mode``, and the (T, K, 2) points in [-1, 1]
    that drove each frame."""
    recorder = _PointsRecorder(animator.adapter)
    animator.adapter = recorder
    try:
        frames = np.concatenate([to_uint8(p) for p in animator.animate(source, list(driving), mode=mode,
                                                                        batch_size=batch_size)])
    finally:
        animator.adapter = recorder.adapter
    return frames, np.concatenate(recorder.points)


@torch.no_grad()
def detect_points(animator: Animator, frames: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """(T, K, 2) keypoints / region centres in [-1, 1] that the model detects on (T, H, W, 3) uint8 frames."""
    key = animator.adapter.points_key
    out = []
    for s in range(0, len(frames), batch_size):
        x = animator.to_tensor(list(frames[s:s + batch_size]))
        out.append(animator.adapter.detect(animator.model, x)[key].float().cpu().numpy())
    return np.concatenate(out)


# ---- finding checkpoints ---------------------------------------------------------------------------------------------


def published_checkpoints(root: DataRoot, model: str, dataset: str, avd: bool | None = None) -> ModelCheckpoints:
    """The published ``main.pt`` of ``model`` on ``dataset`` and its ``avd.pt``: when ``avd`` is None, only if it
    was published (a main checkpoint alone animates in relative mode only)."""
    from training.evaluation.scoring import published_main

    main = published_main(root, model, dataset)
    second = Path(paths.published_checkpoint(root, dataset, model, "avd"))
    if avd is None:
        avd = second.is_file()
    return ModelCheckpoints(model, main, second if avd else None)


def published_models(root: DataRoot, dataset: str) -> list[str]:
    """Models with a published main-stage checkpoint on ``dataset``, in ``training.models.MODELS`` order."""
    from training.models import MODELS

    return [m for m in MODELS if Path(paths.published_checkpoint(root, dataset, m, "main")).is_file()]
