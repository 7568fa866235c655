"""Evaluation as the papers measure it: reconstruct every test chunk, score it, and keep what was generated.

``evaluate_checkpoint`` reconstructs each chunk of a dataset's test split (source = frame 0, every frame driven by
itself, ``batch_size`` frames per forward pass on the device) and scores it:

- L1 on the model's float output in [0, 1] against the real frames, before any quantisation, as the repos'
  reconstruction mode computes it; pooled over all frames, and the per-video mean Monkey-Net reported;
- per extractor, AKD/MKR (keypoint extractors) or AED (identity extractors), each labelled ``METRIC[extractor]``.
  Extractors see the generated frames quantised as the repos wrote their PNGs (``as_uint8_frames``: truncation),
  which is exactly what the artifact holds.

Outputs under ``out_dir``:
  ``generated.tar``       the artifact: one WebDataset sample per chunk, key = chunk key, frames ``000000.png`` ...
                          and ``json`` (fps, n_frames, source sha256). PNG in a tar, not MP4: lossless, so the
                          artifact is byte for byte what the extractors scored (pose-evaluation reads PNG frames,
                          an MP4 codec would move keypoints), and it has our shards' layout, so the same readers
                          (``storage.shards.iter_tar_samples``) open it.
  ``per_frame.parquet``   one row per frame: chunk, video_id, frame, L1 and one column per metric label (NaN where
                          the frame does not count).
  ``metrics.json``        DVC metrics: ``{label: pooled value}``, numbers only (null where no frame counted); one
                          column per metric in `dvc metrics show` (each metric's per-video mean is in
                          ``evaluation.json`` and the leaderboard's per_video tables).
  ``evaluation.json``     provenance (checkpoint, relative to the data root when inside it, and its sha256, model,
                          config, dataset content hash, extractors used and skipped with the reason, motionpipe
                          version) and every metric's summary.

``evaluate_no_motion`` scores the no-motion baseline (each chunk's frame 0 as every prediction,
``training.evaluation.no_motion``) through the same path, so it has the same outputs and metrics as a model
(``motionpipe evaluate no-motion --dataset D``).

Extractor outputs on the REAL frames are cached in ``cache_dir`` (default ``out_dir/extractor-cache``) as
``<extractor>/<chunk sha256>.npz``: a chunk's sha256 names its exact bytes, so every model evaluated on the dataset
reuses them. Extractors whose weights are not installed (OpenPose, re-id) are skipped with the reason recorded,
never silently.
"""

from __future__ import annotations

import inspect
import io
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from storage.dataset_version import dataset_version_record
from storage.frames import encode_frame
from storage.paths import EXTRACTOR_CACHE
from storage.recorded_paths import record_path
from storage.root import DataRoot, sha256_file
from storage.shards import ClipTarWriter
from training.evaluation.no_motion import NO_MOTION, NO_MOTION_NAME, no_motion_frames
from training.evaluation.progress import chunk_bar
from training.extractors import (Extractor, WeightsNotFound, as_uint8_frames, extractor_class, extractor_spec,
                                 get_extractor)
from training.loop.data import EvalChunk, SplitIndex, iter_eval_chunks, load_split_index
from training.metrics import (Embeddings, Keypoints, MetricResult, aed_per_frame, akd_per_frame, frame_l1,
                              l1_from_frames, mkr_per_frame, pool)
from training.metrics.result import check_same_length

log = logging.getLogger(__name__)

DEFAULT_EXTRACTORS = ("mediapipe-pose33", "mobilenetv2-imagenet")
GENERATED = "generated.tar"
PER_FRAME = "per_frame.parquet"
METRICS = "metrics.json"
EVALUATION = "evaluation.json"
CACHE = EXTRACTOR_CACHE
SPLIT = "test"

# generated frames of one chunk, as (b, C, H, W) float batches in [0, 1] (or uint8), frame 0 first
Generate = Callable[[EvalChunk, np.ndarray], Iterable[torch.Tensor]]


@dataclass(frozen=True)
class EvaluationResult:
    """What one evaluation produced. ``metrics``: label -> result, L1 first; ``skipped``: extractor -> reason."""

    out_dir: Path
    metrics: dict[str, MetricResult]
    skipped: dict[str, str]
    provenance: dict
    n_chunks: int
    n_frames: int
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def values(self) -> dict[str, float]:
        return {label: r.value for label, r in self.metrics.items()}


# ---- extractors and their cache --------------------------------------------------------------------------------------


def default_extractor_workers() -> int:
    """Processes for one-image-per-call extractors (mediapipe): half the cores, at most 8 (the rest decode, write
    the artifact and drive the model)."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def open_extractors(names: Sequence[str], device: str | torch.device = "cpu",
                    weights: Mapping[str, str | os.PathLike] | None = None,
                    workers: int | None = None) -> tuple[dict[str, Extractor], dict]:
    """(name -> ready extractor, name -> reason skipped). Unknown names are an error; missing weights a skip."""
    ready, skipped = {}, {}
    workers = default_extractor_workers() if workers is None else workers
    for name in dict.fromkeys(names):
        extractor_spec(name)  # unknown name: KeyError listing the known ones
        cls_params = _constructor_params(name)
        kwargs = {}
        if "device" in cls_params:
            kwargs["device"] = device
        if "workers" in cls_params:
            kwargs["workers"] = workers
        if weights and name in weights:
            kwargs["weights"] = weights[name]
        try:
            ready[name] = get_extractor(name, **kwargs)
        except WeightsNotFound as err:
            skipped[name] = f"weights not found: {err}"
            log.warning("extractor %s skipped: %s", name, err)
    return ready, skipped


def _constructor_params(name: str) -> set[str]:
    return set(inspect.signature(extractor_class(name).__init__).parameters)


class ExtractorCache:
    """Extractor outputs on real chunks, keyed by (extractor name, chunk sha256), as ``.npz`` files."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self._root = DataRoot(str(self.directory))

    def path(self, extractor: str, sha256: str) -> Path:
        return self.directory / extractor / f"{sha256}.npz"

    def load(self, extractor: str, sha256: str, n_frames: int) -> Keypoints | Embeddings | None:
        p = self.path(extractor, sha256)
        if not p.is_file():
            return None
        try:
            with np.load(p) as z:
                out = (Keypoints(z["xy"], z["present"], extractor) if "xy" in z
                       else Embeddings(z["values"], extractor))
        except (OSError, ValueError, KeyError) as err:
            log.warning("%s: unreadable cache entry (%s); recomputing", p, err)
            return None
        if len(out) != n_frames:
            log.warning("%s holds %d frames, the chunk has %d; recomputing", p, len(out), n_frames)
            return None
        return out

    def store(self, sha256: str, out: Keypoints | Embeddings) -> Path:
        buf = io.BytesIO()
        if isinstance(out, Keypoints):
            np.savez(buf, xy=out.xy, present=out.present)
        else:
            np.savez(buf, values=out.values)
        p = self.path(out.extractor, sha256)
        self._root.write_bytes(self._root.path(out.extractor, p.name), buf.getvalue())
        return p


# ---- scoring ---------------------------------------------------------------------------------------------------------


def _real_frames(chunk: EvalChunk, batch_size: int) -> np.ndarray:
    """(T, H, W, 3) uint8: the chunk's frames exactly as stored (the loader's float x 255 is exact)."""
    batches = [(b * 255).round_().to(torch.uint8).permute(0, 2, 3, 1).numpy() for b in chunk.frames(batch_size)]
    return np.concatenate(batches)


def _collect(key: str, real: np.ndarray, generated: Iterable[torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame L1 (on the frames as given) and the generated frames as uint8; a frame-count mismatch raises."""
    n = len(real)
    l1 = np.empty(n)
    gen = np.empty_like(real)
    i = 0
    it = iter(generated)
    for batch in it:
        b = batch.shape[0]
        if i + b > n:
            i += b + sum(x.shape[0] for x in it)  # count them all, for the message
            break
        real_b = torch.from_numpy(real[i:i + b]).permute(0, 3, 1, 2)
        l1[i:i + b] = frame_l1(real_b, batch, video=key).cpu().numpy()
        gen[i:i + b] = as_uint8_frames(batch)
        i += b
    check_same_length(key, n, i)
    return l1, gen


def _extract_real(ex: Extractor, sha256: str, real: np.ndarray, cache: ExtractorCache):
    out = cache.load(ex.name, sha256, len(real))
    if out is None:
        out = ex.extract(real)
        cache.store(sha256, out)
    return out


def evaluate_videos(index: SplitIndex, generate: Generate, out_dir: str | os.PathLike, *,
                    extractors: Sequence[str] = DEFAULT_EXTRACTORS, device: str | torch.device = "cpu",
                    batch_size: int = 16, max_chunks: int | None = None, cache_dir: str | os.PathLike | None = None,
                    provenance: Mapping | None = None,
                    extractor_weights: Mapping[str, str | os.PathLike] | None = None) -> EvaluationResult:
    """Score generated videos against the split's real chunks and write the four outputs (see the module doc).

    ``generate(chunk, real)`` gives the chunk's generated frames in order (``real`` is (T, H, W, 3) uint8); any
    source works (a model, videos made elsewhere). A video with another frame count than its chunk raises
    ``FrameCountMismatch`` naming the chunk, as pose-evaluation asserts.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_chunks is not None and max_chunks < 1:
        raise ValueError(f"max_chunks must be >= 1, got {max_chunks}")
    out = Path(out_dir)
    out_root = DataRoot(str(out))
    cache = ExtractorCache(cache_dir if cache_dir is not None else out / CACHE)
    chunks = list(iter_eval_chunks(index))[:max_chunks]
    catalog = _chunk_catalog(index)

    l1_frames: dict[str, np.ndarray] = {}
    per_metric: dict[tuple[str, str], dict[str, np.ndarray]] = {}  # (metric, extractor) -> key -> per-frame
    ready, skipped = open_extractors(extractors, device, extractor_weights)
    try:
        with ClipTarWriter(out_root, out_root.path(GENERATED)) as tar, \
                chunk_bar(sum(c.n_frames for c in chunks), len(chunks), f"evaluate {index.dataset}") as bar:
            for i, chunk in enumerate(chunks, 1):
                real = _real_frames(chunk, batch_size)
                l1, gen = _collect(chunk.key, real, generate(chunk, real))
                l1_frames[chunk.key] = l1
                tar.add_sample(chunk.key, (encode_frame(f, "png") for f in gen), "png",
                               {"chunk_id": chunk.key, "source_sha256": catalog[chunk.key]["sha256"],
                                "fps": catalog[chunk.key]["fps"]})
                for name, ex in ready.items():
                    r = _extract_real(ex, catalog[chunk.key]["sha256"], real, cache)
                    g = ex.extract(gen)
                    if isinstance(r, Keypoints):
                        per_metric.setdefault(("AKD", name), {})[chunk.key] = akd_per_frame(r, g, chunk.key)
                        per_metric.setdefault(("MKR", name), {})[chunk.key] = mkr_per_frame(r, g, chunk.key)
                    else:
                        per_metric.setdefault(("AED", name), {})[chunk.key] = aed_per_frame(r, g, chunk.key)
                bar.set_postfix_str(f"chunk {i}/{len(chunks)}", refresh=False)
                bar.update(chunk.n_frames)
    finally:
        for ex in ready.values():
            ex.close()

    results = {"L1": l1_from_frames(l1_frames)}
    for (metric, name), frames in per_metric.items():
        res = pool(metric, name, frames)
        results[res.label] = res
    n_frames = sum(len(v) for v in l1_frames.values())
    prov = {**dict(provenance or {}), "dataset": index.dataset, "split": index.split,
            "dataset_content_hash": index.content_hash, "chunks": len(chunks), "chunks_in_split": len(index.chunks),
            "frames": n_frames, "max_chunks": max_chunks, "batch_size": batch_size, "device": str(device),
            "extractors": {n: {"paper_comparable": extractor_spec(n).paper_comparable} for n in ready},
            "skipped_extractors": skipped, "motionpipe_version": _version(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    files = _write_outputs(out_root, out, chunks, results, prov, skipped)
    return EvaluationResult(out, results, skipped, prov, len(chunks), n_frames, files)


def _chunk_catalog(index: SplitIndex) -> dict[str, dict]:
    """chunk key -> catalog row (fps, sha256): the sha256 keys the extractor cache, the fps goes with the artifact."""
    from storage import paths
    from storage.catalog import CHUNKS_SCHEMA, read_table

    table = read_table(index.root, paths.catalog_path(index.root, index.dataset, "chunks"), CHUNKS_SCHEMA)
    return {r["chunk_id"]: r for r in table.select(["chunk_id", "fps", "sha256"]).to_pylist()}


def _version() -> str:
    from motionpipe_version import __version__
    return __version__


def _num(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def _write_outputs(root: DataRoot, out: Path, chunks: list[EvalChunk], results: dict[str, MetricResult],
                   prov: dict, skipped: dict) -> dict[str, Path]:
    keys = [c.key for c in chunks]
    cols: dict[str, list] = {
        "chunk": [k for c in chunks for k in [c.key] * c.n_frames],
        "video_id": [v for c in chunks for v in [c.ref.video_id] * c.n_frames],
        "frame": [i for c in chunks for i in range(c.n_frames)],
    }
    for label, res in results.items():
        cols[label] = np.concatenate([res.per_frame[k] for k in keys]) if keys else np.zeros(0)
    buf = io.BytesIO()
    pq.write_table(pa.table(cols), buf)
    root.write_bytes(root.path(PER_FRAME), buf.getvalue())

    metrics = {label: _num(r.value) for label, r in results.items()}
    root.write_bytes(root.path(METRICS), (json.dumps(metrics, indent=2, allow_nan=False) + "\n").encode())
    report = {"provenance": prov, "metrics": {label: r.summary() for label, r in results.items()},
              "skipped_extractors": skipped}
    root.write_bytes(root.path(EVALUATION), (json.dumps(report, indent=2, allow_nan=False) + "\n").encode())
    return {name: out / name for name in (GENERATED, PER_FRAME, METRICS, EVALUATION)}


# ---- from a checkpoint -----------------------------------------------------------------------------------------------


def check_resolution(index: SplitIndex, frame_size: tuple[int, int], checkpoint: str | os.PathLike,
                     config_name: str) -> None:
    """The checkpoint's model must take the dataset's frames as they are (no silent resize)."""
    for c in index.chunks:
        if (c.height, c.width) != tuple(frame_size):
            raise ValueError(f"checkpoint {checkpoint} (config {config_name}) is for {frame_size[0]}x{frame_size[1]} "
                             f"frames, but dataset {index.dataset!r} chunk {c.key} in {c.shard} is "
                             f"{c.height}x{c.width}: evaluate it on a dataset of its resolution")


def evaluate_checkpoint(checkpoint: str | os.PathLike, root: DataRoot, dataset: str, out_dir: str | os.PathLike,
                        *, extractors: Sequence[str] = DEFAULT_EXTRACTORS, device: str = "cpu", batch_size: int = 16,
                        max_chunks: int | None = None, config: str | os.PathLike | None = None,
                        cache_dir: str | os.PathLike | None = None, bf16: bool = False,
                        extractor_weights: Mapping[str, str | os.PathLike] | None = None) -> EvaluationResult:
    """Reconstruct and score every test chunk of ``dataset`` with the model in ``checkpoint`` (ours, or an official
    one with ``config``); see the module doc for what is written under ``out_dir``."""
    from training.evaluation.animate import load_animator

    index = load_split_index(root, dataset, SPLIT)
    animator = load_animator(checkpoint, config, device=device, bf16=bf16)
    cfg = animator.cfg
    check_resolution(index, cfg.frame_size, checkpoint, cfg.name)
    if cfg.dataset.name != dataset:
        log.warning("checkpoint %s was trained on %r, evaluated on %r", checkpoint, cfg.dataset.name, dataset)

    def generate(chunk: EvalChunk, real: np.ndarray) -> Iterable[torch.Tensor]:
        return animator.reconstruct(list(real), batch_size=batch_size)

    # relative to the data root when inside it: a moved or second clone resolves it against its own root
    prov = {"checkpoint": record_path(checkpoint, root), "checkpoint_sha256": sha256_file(checkpoint),
            "model": cfg.model, "config": cfg.name, "trained_on": cfg.dataset.name, "bf16": bf16,
            "checkpoint_lineage": animator.lineage, "dataset_version": dataset_version_record(root, dataset)}
    return evaluate_videos(index, generate, out_dir, extractors=extractors, device=device, batch_size=batch_size,
                           max_chunks=max_chunks, cache_dir=cache_dir, provenance=prov,
                           extractor_weights=extractor_weights)


# ---- the no-motion baseline ------------------------------------------------------------------------------------------


def evaluate_no_motion(root: DataRoot, dataset: str, out_dir: str | os.PathLike, *,
                       extractors: Sequence[str] = DEFAULT_EXTRACTORS, device: str = "cpu", batch_size: int = 16,
                       max_chunks: int | None = None, cache_dir: str | os.PathLike | None = None,
                       extractor_weights: Mapping[str, str | os.PathLike] | None = None) -> EvaluationResult:
    """Score the no-motion baseline on ``dataset``'s test split exactly as a model is scored (same chunks, same
    metrics, same outputs under ``out_dir``), so the leaderboard can set every model beside it."""
    index = load_split_index(root, dataset, SPLIT)
    prov = {"model": NO_MOTION, "config": NO_MOTION_NAME, "baseline": "frame 0 of each chunk as every prediction",
            "dataset_version": dataset_version_record(root, dataset)}
    return evaluate_videos(index, lambda chunk, real: no_motion_frames(real, batch_size), out_dir,
                           extractors=extractors, device=device, batch_size=batch_size, max_chunks=max_chunks,
                           cache_dir=cache_dir, provenance=prov, extractor_weights=extractor_weights)
