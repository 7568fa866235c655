"""One streamed decode of a downloaded video produces its detections, its chunks and its cropped clips.

Decoding dominates the cost of the chain, so every stage that needs pixels rides the same pass: shot-cut detection
on every frame (downscaled), person detection every `stride` frames (downscaled), the streaming chunker, and crop →
anti-aliased resize → encode for frames inside an open chunk. Encoded frames of a chunk are held until the chunk
closes (bounded by `max_frames`), then written as one WebDataset sample; nothing else is kept, so memory does not
grow with the video's length.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from assets.boxes import Box, OutOfFrameError, box_inside, crop_frame, square_box
from assets.clips.geometry import resize_antialiased, upper_body_box
from assets.clips.detection_stats import DetectionStats
from assets.clips.person_tracker import PersonTracker
from assets.clips.streaming_chunker import PersonSample, StreamingChunker
from assets.clips.track_chunker import TrackChunk, TrackChunker
from assets.dataset_config import DatasetConfig
from storage.frames import encode_frame
from storage.ids import ChunkKey

# Called with (key, encoded frames, metadata) when a chunk is accepted.
SampleSink = Callable[[str, list[bytes], dict], None]


@dataclass(frozen=True)
class ReplayClip:
    """A chunk whose frames and box are already known (a manifest row mapped to the downloaded video)."""

    key: str
    src_frames: range
    box: Box
    ref_start: int
    ref_end: int
    split: str | None


@dataclass
class PassResult:
    n_frames: int = 0
    accepted: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    detections: list[PersonSample] = field(default_factory=list)  # every person found, tracked
    sampled_frames: list[int] = field(default_factory=list)  # the frames the detector ran on
    stats: DetectionStats = field(default_factory=DetectionStats)
    cuts: list[int] = field(default_factory=list)
    elapsed_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


class _Timer:
    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def add(self, name: str, t0: float) -> None:
        self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - t0


@dataclass
class _Encoder:
    cfg: DatasetConfig

    def __call__(self, frame: np.ndarray, box: Box) -> bytes:
        c = self.cfg.crop
        crop = crop_frame(frame, box, c.out_of_frame)
        small = resize_antialiased(crop, (c.size, c.size))
        return encode_frame(small, c.frame_format, c.jpeg_quality)


def lacks_resolution(box: Box, crop) -> bool:
    """A crop box too small for the output size without upscaling (``crop.min_crop_side``, else ``crop.size``)."""
    return min(box.width, box.height) < (crop.min_crop_side or crop.size)


def crop_box_factory(cfg: DatasetConfig, width: int, height: int) -> Callable[[Box], Box | None]:
    """The dataset's crop-box rule, plus the rejections that depend on the frame (out of frame, too little resolution)."""
    c = cfg.crop

    def crop_box_for(person: Box) -> Box | None:
        box = upper_body_box(person, c.upper_body_scale) if c.style == "upper_body" else square_box(person, c.increase)
        if c.out_of_frame == "reject" and not box_inside(box, width, height):
            return None
        if lacks_resolution(box, c):
            return None  # "without enough resolution"
        return box

    return crop_box_for


def _meta(key: str, start: int, end: int, box: Box, n: int, cfg: DatasetConfig, extra: dict) -> dict:
    return {
        "chunk_id": key, "src_start": start, "src_end": end, "box": list(box.as_ints()),
        "n_frames": n, "width": cfg.crop.size, "height": cfg.crop.size, "frame_format": cfg.crop.frame_format,
        "jpeg_quality": cfg.crop.jpeg_quality if cfg.crop.frame_format == "jpeg" else None,
        "out_of_frame": cfg.crop.out_of_frame, **extra,
    }


def discover_pass(
    frames: Iterable[np.ndarray],
    video_id: str,
    cfg: DatasetConfig,
    detect: Callable[[np.ndarray], list[PersonSample]],
    cut_push: Callable[[int, np.ndarray], bool],
    sink: SampleSink,
    width: int,
    height: int,
) -> PassResult:
    """Discovery datasets (TED, sample): find people and cuts, chunk, crop, encode — all in one pass.

    `detect(frame)` returns every person of a full-resolution frame (frame index and track filled in here);
    `cut_push(i, frame)` feeds the shot-cut detector and returns True when a new shot starts at frame i.
    People are tracked between sampled frames and each track has its own chunker, so every chunk follows one
    person; several chunks (of several people) may be open at once, each with its own buffer.
    """
    rules = cfg.chunks
    crop_box_for = crop_box_factory(cfg, width, height)
    chunker = TrackChunker(lambda: StreamingChunker(
        rules.min_frames, rules.max_frames, rules.iou_with_start, rules.min_box_size, rules.require_upper_body,
        rules.require_full_body, crop_box_for))
    tracker = PersonTracker()
    encode = _Encoder(cfg)
    result, timer = PassResult(), _Timer()
    pending: dict[int, list[bytes]] = {}  # encoded frames of each open chunk, by start frame (unique per video)
    stats = DetectionStats()
    tracks: set[int] = set()
    stride = cfg.detect.stride
    t_start = time.perf_counter()

    def flush(closed: Iterable[TrackChunk]) -> None:
        for tc in closed:
            c = tc.chunk
            n = c.end - c.start
            frames_of = pending.pop(c.start, [])
            if c.accepted and len(frames_of) >= n:
                key = str(ChunkKey(video_id, c.start, c.end))
                t0 = time.perf_counter()
                sink(key, frames_of[:n], _meta(key, c.start, c.end, c.crop_box, n, cfg, {
                    "closed_because": c.reason, "person_box": c.person_box.to_list(), "track": tc.track}))
                timer.add("write", t0)
                result.accepted.append({"chunk_id": key, "start": c.start, "end": c.end, "reason": c.reason,
                                        "track": tc.track})
            else:
                result.rejected.append({"start": c.start, "end": c.end, "reason": c.reason, "track": tc.track})

    i = -1
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        cut = cut_push(i, frame)
        timer.add("cuts", t0)
        n_closed = len(chunker.closed)
        if cut and i > 0:
            result.cuts.append(i)
            chunker.on_cut(i)
            tracker.reset()
        chunker.before_frame(i)
        if i % stride == 0 or cut:
            t0 = time.perf_counter()
            people = [replace(p, frame=i) for p in detect(frame) if p.box is not None and p.box.area > 0]
            timer.add("detect", t0)
            update = tracker.update(people)
            tracks.update(p.track for p in update.people)
            stats = stats.add_frame(len(people), sum(chunker.why_invalid(p) is None for p in people))
            result.sampled_frames.append(i)
            result.detections.extend(update.people)
            chunker.on_detections(i, update.people, update.ended)
        flush(chunker.closed[n_closed:])
        t0 = time.perf_counter()
        for _, o in chunker.active:
            if o.start <= i:
                try:
                    pending.setdefault(o.start, []).append(encode(frame, o.crop_box))
                except OutOfFrameError:
                    pass  # cannot happen: 'reject' boxes never open a chunk
        timer.add("crop_encode", t0)
    result.n_frames = i + 1
    n_closed = len(chunker.closed)
    flush(chunker.finish(result.n_frames)[n_closed:])
    result.stats = stats.with_tracks(len(tracks))
    result.elapsed_s = time.perf_counter() - t_start
    result.timings = timer.totals
    return result


def replay_pass(frames: Iterable[np.ndarray], clips: list[ReplayClip], cfg: DatasetConfig, sink: SampleSink,
                extra_meta: Callable[[ReplayClip], dict]) -> PassResult:
    """Replay datasets (TaiChiHD): chunk windows and boxes come from the manifest; crop them in one pass.

    Clips may overlap in time (several people on screen), so each keeps its own buffer until its window ends.
    """
    encode = _Encoder(cfg)
    result, timer = PassResult(), _Timer()
    t_start = time.perf_counter()
    if cfg.crop.replay_min_resolution:
        small = [c for c in clips if lacks_resolution(c.box, cfg.crop)]
        result.rejected += [{"chunk_id": c.key, "reason": f"box {c.box.width:.0f}x{c.box.height:.0f} px in the "
                             f"downloaded video: not enough resolution for {cfg.crop.size}x{cfg.crop.size}"}
                            for c in small]
        clips = [c for c in clips if c not in small]
    order = sorted(clips, key=lambda c: (c.src_frames.start, c.key))
    buffers: dict[str, list[bytes]] = {}
    waiting = list(order)
    active: list[ReplayClip] = []

    def close(clip: ReplayClip) -> None:
        data = buffers.pop(clip.key)
        n = len(data)
        if n == 0:
            result.rejected.append({"chunk_id": clip.key, "reason": "no frames of the window in the downloaded video"})
            return
        reason = "complete" if n == len(clip.src_frames) else f"video ended: {n} of {len(clip.src_frames)} frames"
        t0 = time.perf_counter()
        sink(clip.key, data, _meta(clip.key, clip.src_frames.start, clip.src_frames.start + n, clip.box, n, cfg,
                                   {"ref_start": clip.ref_start, "ref_end": clip.ref_end, **extra_meta(clip)}))
        timer.add("write", t0)
        result.accepted.append({"chunk_id": clip.key, "start": clip.src_frames.start, "end": clip.src_frames.start + n,
                                "reason": reason})

    i = -1
    for i, frame in enumerate(frames):
        while waiting and waiting[0].src_frames.start <= i:
            clip = waiting.pop(0)
            buffers[clip.key] = []
            active.append(clip)
        for clip in [c for c in active if i >= c.src_frames.stop]:
            active.remove(clip)
            close(clip)
        if not active and not waiting:
            break  # nothing left to cut from this video
        t0 = time.perf_counter()
        for clip in active:
            buffers[clip.key].append(encode(frame, clip.box))
        timer.add("crop_encode", t0)
    result.n_frames = i + 1
    for clip in active:
        close(clip)
    for clip in waiting:
        buffers[clip.key] = []
        close(clip)
    result.elapsed_s = time.perf_counter() - t_start
    result.timings = timer.totals
    return result


def downscale_for(width: int, height: int, max_side: int) -> tuple[float, Callable[[np.ndarray], np.ndarray]]:
    """Scale factor and resizer that bring a frame to at most `max_side` (detectors see small frames)."""
    scale = min(1.0, max_side / max(width, height))
    if scale >= 1.0:
        return 1.0, lambda f: f
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return scale, lambda f: cv2.resize(f, size, interpolation=cv2.INTER_AREA)


def iter_with_stop(frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """Pass frames through; closes the source generator (and its ffmpeg) when the consumer stops early."""
    try:
        yield from frames
    finally:
        close = getattr(frames, "close", None)
        if close:
            close()
