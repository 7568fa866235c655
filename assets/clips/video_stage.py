"""The per-video stage behind the `detections`, `chunks` and `clips` assets: resumable, stamped, atomic.

A stamp (`video_pass.json`) records the inputs that produced the outputs (source sha256, dataset rules, stage code
version, detector); when they match and the clips file is intact, the stage returns the cached result.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from assets.clips.geometry import Box, replay_box, replay_frame_range
from assets.clips.video_pass import PassResult, ReplayClip, discover_pass, downscale_for, replay_pass
from assets.clips.streaming_chunker import PersonSample
from assets.detect.registry import resolve_backend
from assets.dataset_config import DatasetConfig
from assets.ingest.download_stage import load_download_record, source_path
from assets.ingest.manifest_stage import read_manifest_clips
from assets.versions import STAGE_VERSIONS
from storage import paths
from storage.frames import frame_extension
from storage.root import DataRoot
from storage.shards import ClipTarWriter
from storage.video import CorruptVideoError, iter_frames, probe


class VideoStageError(RuntimeError):
    pass


@dataclass
class VideoPassSummary:
    video_id: str
    detector: str
    n_frames: int
    fps: float
    width: int
    height: int
    n_detections: int
    cuts: list[int]
    n_chunks: int
    n_chunk_frames: int
    rejected: list[dict]
    clips_bytes: int
    clips_sha256: str
    elapsed_s: float
    timings: dict[str, float] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    cached: bool = False


def _stamp_inputs(cfg: DatasetConfig, source_sha: str, detector_name: str, clips: list[ReplayClip] | None) -> dict:
    replay = json.dumps([(c.key, c.box.to_list()) for c in clips], sort_keys=True) if clips else ""
    return {"source_sha256": source_sha, "rules": cfg.fingerprint(), "code": STAGE_VERSIONS["video_pass"],
            "detector": detector_name, "replay": hashlib.sha256(replay.encode()).hexdigest()[:16]}


def _cached(root: DataRoot, cfg: DatasetConfig, video_id: str, inputs: dict) -> VideoPassSummary | None:
    stamp_path = paths.video_pass_path(root, cfg.name, video_id)
    clips = paths.clips_path(root, cfg.name, video_id)
    if not (root.exists(stamp_path) and root.exists(clips)):
        return None
    try:
        stamp = VideoPassSummary(**json.loads(root.read_bytes(stamp_path)))
    except (ValueError, TypeError):
        return None  # unreadable stamp: redo
    if stamp.inputs != inputs or root.sha256(clips) != stamp.clips_sha256:
        return None
    stamp.cached = True
    return stamp


def replay_clips_for(cfg: DatasetConfig, root: DataRoot, video_id: str, fps: float, width: int, height: int,
                     n_frames: int | None) -> list[ReplayClip]:
    """Manifest clips mapped onto the downloaded video's own fps and resolution, as the reference does."""
    out = []
    for c in read_manifest_clips(root, cfg.name, video_id):
        frames = replay_frame_range(c.start, c.end, c.ref_fps, fps, n_frames if n_frames else 10**12)
        box = replay_box(Box(*c.bbox), c.ref_width, c.ref_height, width, height)
        out.append(ReplayClip(f"{video_id}#{c.start:06d}#{c.end:06d}", frames, box, c.start, c.end, c.split))
    return out


def _write_detections(root: DataRoot, cfg: DatasetConfig, video_id: str, result: PassResult) -> None:
    rows = {"frame": [], "x0": [], "y0": [], "x1": [], "y1": [], "upper_body": [], "full_body": []}
    for d in result.detections:
        rows["frame"].append(d.frame)
        for k, v in zip(("x0", "y0", "x1", "y1"), d.box.to_list() if d.box else (None,) * 4):
            rows[k].append(v)
        rows["upper_body"].append(bool(d.box and d.upper_body))
        rows["full_body"].append(bool(d.box and d.full_body))
    table = pa.table({
        "frame": pa.array(rows["frame"], pa.int64()),
        **{k: pa.array(rows[k], pa.float64()) for k in ("x0", "y0", "x1", "y1")},
        "upper_body": pa.array(rows["upper_body"], pa.bool_()),
        "full_body": pa.array(rows["full_body"], pa.bool_()),
    }).replace_schema_metadata({"cuts": json.dumps(result.cuts), "n_frames": str(result.n_frames)})
    with root.open_atomic(paths.detections_path(root, cfg.name, video_id)) as f:
        pq.write_table(table, f)


def run_video_pass(cfg: DatasetConfig, root: DataRoot, video_id: str, detector_res=None) -> VideoPassSummary:
    """Run the pass; a video that stops decoding part-way is recorded as `corrupt` (nothing of it is published)."""
    try:
        return _run_video_pass(cfg, root, video_id, detector_res)
    except CorruptVideoError as exc:
        root.write_bytes(paths.chunks_path(root, cfg.name, video_id), json.dumps(
            {"error": "corrupt", "message": str(exc), "accepted": [], "rejected": []}).encode())
        root.rm(paths.video_pass_path(root, cfg.name, video_id))
        raise


def _run_video_pass(cfg: DatasetConfig, root: DataRoot, video_id: str, detector_res=None) -> VideoPassSummary:
    record = load_download_record(root, cfg.name, video_id)
    if record is None or record.status != "ok":
        raise VideoStageError(f"{cfg.name}/{video_id}: no successful download to process")
    has_clips = bool(read_manifest_clips(root, cfg.name, video_id))
    weights = getattr(detector_res, "detectron2_weights", None)
    backend = resolve_backend(getattr(detector_res, "backend", None) or cfg.detect.backend, weights)
    detector_name = "manifest-boxes" if has_clips else backend
    with root.local_path(source_path(root, cfg.name, video_id, record)) as local:
        info = probe(local)
        clips = replay_clips_for(cfg, root, video_id, info.fps, info.width, info.height, info.n_frames) \
            if has_clips else None
        inputs = _stamp_inputs(cfg, record.sha256, detector_name, clips)
        cached = _cached(root, cfg, video_id, inputs)
        if cached is not None:
            return cached
        ext = frame_extension(cfg.crop.frame_format)
        tar_path = paths.clips_path(root, cfg.name, video_id)
        decoded = iter_frames(local, threads=cfg.decode_threads)
        with ClipTarWriter(root, tar_path) as writer, contextlib.closing(decoded) as frames:
            written: dict[str, dict] = {}

            def sink(key: str, data: list[bytes], meta: dict) -> None:
                meta = {"video_id": video_id, "dataset": cfg.name, "fps": info.fps, **meta}
                sample = writer.add_sample(key, data, ext, meta)
                written[key] = {**meta, "sha256": sample.sha256, "bytes": sample.bytes}

            if clips is not None:
                result = replay_pass(frames, clips, cfg, sink,
                                     lambda c: {"split": c.split, "provenance": "manifest"})
            else:
                detector_name, result = _discover(cfg, frames, video_id, sink, info, backend, detector_res)
    if clips is None:
        _write_detections(root, cfg, video_id, result)
    summary = VideoPassSummary(
        video_id=video_id, detector=detector_name, n_frames=result.n_frames, fps=info.fps, width=info.width,
        height=info.height, n_detections=len(result.detections), cuts=result.cuts,
        n_chunks=len(result.accepted), n_chunk_frames=sum(a["end"] - a["start"] for a in result.accepted),
        rejected=result.rejected, clips_bytes=root.size(tar_path), clips_sha256=root.sha256(tar_path),
        elapsed_s=result.elapsed_s, timings={k: round(v, 3) for k, v in result.timings.items()}, inputs=inputs,
    )
    accepted = [{**a, **written[a["chunk_id"]]} for a in result.accepted]
    root.write_bytes(paths.chunks_path(root, cfg.name, video_id),
                     json.dumps({"accepted": accepted, "rejected": result.rejected}, indent=1).encode())
    root.write_bytes(paths.video_pass_path(root, cfg.name, video_id), json.dumps(asdict(summary), indent=1).encode())
    return summary


def _discover(cfg, frames, video_id, sink, info, backend, detector_res) -> tuple[str, PassResult]:
    from assets.clips.cuts import CutDetector
    from assets.detect.base import main_person
    from assets.detect.registry import make_detector

    options = {}
    weights = getattr(detector_res, "detectron2_weights", None)
    if weights:
        options["weights"] = weights
    detector = make_detector(backend, **options)
    scale, shrink = downscale_for(info.width, info.height, cfg.detect.max_side)
    cuts = CutDetector(fps=info.fps, threshold=cfg.detect.cut_threshold, min_scene_len=cfg.detect.min_scene_len)

    def detect(frame) -> PersonSample:
        best = main_person(detector.detect(shrink(frame)))
        if best is None:
            return PersonSample(-1, None, False, False)
        box = best.box.scaled(1 / scale, 1 / scale)
        return PersonSample(-1, box, best.upper_body_visible, best.full_body_visible)

    def cut_push(i, frame) -> bool:
        return bool(cuts.push(i, frame))  # immediate mode: a cut is reported on the first frame of the new shot

    try:
        result = discover_pass(frames, video_id, cfg, detect, cut_push, sink, info.width, info.height)
    finally:
        detector.close()
    return detector.name, result
