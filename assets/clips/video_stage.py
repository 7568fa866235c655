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

from assets.boxes import Box
from assets.clips.detection_stats import DetectionStats
from assets.clips.geometry import replay_box, replay_frame_range
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
    # Over the sampled frames (every stride-th frame and each cut), see detection_stats.DetectionStats;
    # None for replayed videos, whose boxes come from the manifest (no detector runs).
    n_sampled_frames: int | None
    n_frames_with_person: int | None
    detection_rate: float | None
    n_frames_with_valid_person: int | None
    valid_person_rate: float | None
    n_person_boxes: int | None
    n_tracks: int | None
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
        out.append(ReplayClip(str(c.key), frames, box, c.start, c.end, c.split))
    return out


def _write_detections(root: DataRoot, cfg: DatasetConfig, video_id: str, result: PassResult) -> None:
    """One row per person per sampled frame (with its track), and a row of nulls for a sampled frame with nobody."""
    people: dict[int, list[PersonSample]] = {f: [] for f in result.sampled_frames}
    for d in result.detections:
        people.setdefault(d.frame, []).append(d)
    rows = {k: [] for k in ("frame", "track", "score", "x0", "y0", "x1", "y1", "upper_body", "full_body")}
    for frame in sorted(people):
        for d in people[frame] or [PersonSample(frame, None, False, False)]:
            rows["frame"].append(frame)
            rows["track"].append(d.track)
            rows["score"].append(d.score if d.box else None)
            for k, v in zip(("x0", "y0", "x1", "y1"), d.box.to_list() if d.box else (None,) * 4):
                rows[k].append(v)
            rows["upper_body"].append(bool(d.box and d.upper_body))
            rows["full_body"].append(bool(d.box and d.full_body))
    table = pa.table({
        "frame": pa.array(rows["frame"], pa.int64()),
        "track": pa.array(rows["track"], pa.int64()),
        "score": pa.array(rows["score"], pa.float64()),
        **{k: pa.array(rows[k], pa.float64()) for k in ("x0", "y0", "x1", "y1")},
        "upper_body": pa.array(rows["upper_body"], pa.bool_()),
        "full_body": pa.array(rows["full_body"], pa.bool_()),
    }).replace_schema_metadata({"cuts": json.dumps(result.cuts), "n_frames": str(result.n_frames),
                                "detection": json.dumps(result.stats.to_dict())})
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
        cfg = cfg.at_fps(info.fps)  # lengths given in seconds, in this video's frames (frame rules: unchanged)
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
        height=info.height, **_detection_fields(result.stats if clips is None else None), cuts=result.cuts,
        n_chunks=len(result.accepted), n_chunk_frames=sum(a["end"] - a["start"] for a in result.accepted),
        rejected=result.rejected, clips_bytes=root.size(tar_path), clips_sha256=root.sha256(tar_path),
        elapsed_s=result.elapsed_s, timings={k: round(v, 3) for k, v in result.timings.items()}, inputs=inputs,
    )
    accepted = [{**a, **written[a["chunk_id"]]} for a in result.accepted]
    chunks = {"accepted": accepted, "rejected": result.rejected}
    if clips is None:
        stats = result.stats
        chunks["detection"] = {**stats.to_dict(), "detector": detector_name, "summary": stats.summary()}
    root.write_bytes(paths.chunks_path(root, cfg.name, video_id), json.dumps(chunks, indent=1).encode())
    root.write_bytes(paths.video_pass_path(root, cfg.name, video_id), json.dumps(asdict(summary), indent=1).encode())
    return summary


def _detection_fields(stats: DetectionStats | None) -> dict:
    """The summary's detection fields; all None for a replayed video (no detector ran)."""
    if stats is None:
        return dict.fromkeys(("n_sampled_frames", "n_frames_with_person", "detection_rate",
                              "n_frames_with_valid_person", "valid_person_rate", "n_person_boxes", "n_tracks"))
    return {"n_sampled_frames": stats.sampled_frames, "n_frames_with_person": stats.frames_with_person,
            "detection_rate": round(stats.detection_rate, 4),
            "n_frames_with_valid_person": stats.frames_with_valid_person,
            "valid_person_rate": round(stats.valid_person_rate, 4), "n_person_boxes": stats.person_boxes,
            "n_tracks": stats.tracks}


def _discover(cfg, frames, video_id, sink, info, backend, detector_res) -> tuple[str, PassResult]:
    from assets.clips.cuts import CutDetector
    from assets.detect.registry import backend_accepts, make_detector

    options = {}
    weights = getattr(detector_res, "detectron2_weights", None)
    if weights:
        options["weights"] = weights
    scale, shrink = downscale_for(info.width, info.height, cfg.detect.max_side)
    if backend_accepts(backend, "min_pose_height"):
        options["min_pose_height"] = cfg.chunks.min_box_size * scale  # smaller people cannot open a chunk
    detector = make_detector(backend, **options)
    cuts = CutDetector(fps=info.fps, threshold=cfg.detect.cut_threshold, min_scene_len=cfg.detect.min_scene_len)

    def detect(frame) -> list[PersonSample]:
        return [PersonSample(-1, d.box.scaled(1 / scale, 1 / scale), d.upper_body_visible, d.full_body_visible,
                             d.score)
                for d in detector.detect(shrink(frame)) if d.kind == "person" and d.box.area > 0]

    def cut_push(i, frame) -> bool:
        return bool(cuts.push(i, frame))  # immediate mode: a cut is reported on the first frame of the new shot

    try:
        result = discover_pass(frames, video_id, cfg, detect, cut_push, sink, info.width, info.height)
    finally:
        detector.close()
    return detector.name, result
