"""Animation samples a person can open: source, driving video and every model's output side by side.

For a fixed set of (source image, driving chunk) pairs per dataset (chosen from the test split's chunk keys with a
seeded generator, like the official ``pairs_list``), each model animates the source in ``relative`` and ``avd``
mode; the columns are written as an MP4 (``storage.video.VideoWriter``), an animated GIF (Pillow) and a
contact-sheet PNG (a few time steps, one row each). Keypoints or region centres, (K, 2) in [-1, 1], can be
drawn on any column (the same points on every frame, or (T, K, 2) one set per frame).

This module only lays out frames; producing them is ``training.evaluation.animate``'s job.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from typing import Mapping, Sequence

import cv2
import numpy as np
from PIL import Image

from storage.ids import ChunkKey
from storage.root import DataRoot
from storage.video import VideoWriter
from training.reporting.visualize import draw_keypoints

HEADER_PX = 18
SAMPLE_MODES = ("relative", "avd")


# ------------------------------------------------------------------------------------------------ pairs


@dataclass(frozen=True, order=True)
class SamplePair:
    """Animate frame ``source_frame`` of chunk ``source`` with the motion of chunk ``driving``."""

    source: str
    driving: str
    source_frame: int = 0

    @property
    def name(self) -> str:
        """A file-safe name: ``<source video>_<start>--<driving video>_<start>``."""
        s, d = ChunkKey.parse(self.source), ChunkKey.parse(self.driving)
        return f"{s.video_id}_{s.start:06d}--{d.video_id}_{d.start:06d}"


def choose_pairs(dataset: str, test_keys: Sequence[str], n: int = 4, seed: int = 0) -> list[SamplePair]:
    """n (source, driving) pairs from the test chunks, the same for the same keys, dataset and seed.

    Keys are sorted first, so the order they arrive in does not matter. Source and driving come from different
    videos whenever the split has more than one video (a cross-identity animation shows more than a
    reconstruction does); no pair repeats while distinct pairs remain.
    """
    keys = sorted({str(ChunkKey.parse(k)) for k in test_keys})
    if not keys:
        raise ValueError(f"{dataset}: no test chunk keys to choose sample pairs from")
    if n <= 0:
        raise ValueError(f"{dataset}: number of sample pairs must be positive, got {n}")
    digest = hashlib.sha256(f"{dataset}\x00{seed}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    video = {k: ChunkKey.parse(k).video_id for k in keys}
    cross = len(set(video.values())) > 1
    candidates = [(s, d) for s in keys for d in keys if not cross or video[s] != video[d]]
    order = rng.permutation(len(candidates))
    picked, used_sources = [], set()
    # first pass: distinct sources; second pass: whatever remains
    for i in order:
        s, d = candidates[i]
        if s not in used_sources:
            picked.append(SamplePair(s, d))
            used_sources.add(s)
        if len(picked) == n:
            return picked
    for i in order:
        pair = SamplePair(*candidates[i])
        if pair not in picked:
            picked.append(pair)
        if len(picked) == n:
            break
    return picked


# ------------------------------------------------------------------------------------------------ layout


@dataclass
class Stream:
    """One column: a label, (T, H, W, 3) frames (or one (H, W, 3) still), optional (K, 2)/(T, K, 2) overlay."""

    label: str
    frames: np.ndarray
    keypoints: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.frames = _as_uint8(self.frames, self.label)
        if self.frames.ndim == 3:
            self.frames = self.frames[None]
        if self.keypoints is not None:
            kp = np.asarray(self.keypoints, np.float64)
            if kp.ndim not in (2, 3) or kp.shape[-1] != 2:
                raise ValueError(f"{self.label}: keypoints must be (K, 2) or (T, K, 2), got {kp.shape}")
            if kp.ndim == 3 and len(kp) not in (1, len(self.frames)):
                raise ValueError(f"{self.label}: {len(kp)} keypoint sets for {len(self.frames)} frames")
            self.keypoints = kp

    @property
    def still(self) -> bool:
        return len(self.frames) == 1

    def frame(self, t: int) -> np.ndarray:
        image = self.frames[0 if self.still else t]
        if self.keypoints is None:
            return image
        kp = self.keypoints if self.keypoints.ndim == 2 else self.keypoints[0 if len(self.keypoints) == 1 else t]
        return draw_keypoints(image, kp)


def _as_uint8(frames: np.ndarray, label: str) -> np.ndarray:
    x = np.asarray(frames)
    if x.ndim not in (3, 4) or x.shape[-1] != 3:
        raise ValueError(f"{label}: frames must be (H, W, 3) or (T, H, W, 3) RGB, got shape {x.shape}")
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.floating):  # [0, 1] floats, as the models produce
        return (np.clip(x, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    raise ValueError(f"{label}: frames must be uint8 or float in [0, 1], got {x.dtype}")


def sample_streams(source: np.ndarray, driving: np.ndarray, outputs: Mapping[str, Mapping[str, np.ndarray]],
                   overlays: Mapping[str, np.ndarray] | None = None) -> list[Stream]:
    """Columns: source, driving, then ``model/mode`` for each model's ``relative`` and ``avd`` output.

    outputs: model -> mode -> (T, H, W, 3) frames (a model without an AVD network simply has no ``avd``).
    overlays: column label ("source", "driving", "fomm/relative", ...) -> keypoints to draw on it.
    """
    overlays = dict(overlays or {})
    streams = [Stream("source", source, overlays.pop("source", None)),
               Stream("driving", driving, overlays.pop("driving", None))]
    n = len(streams[1].frames)
    for model in outputs:
        for mode in sorted(outputs[model], key=lambda m: (SAMPLE_MODES + (m,)).index(m)):
            label = f"{model}/{mode}"
            stream = Stream(label, outputs[model][mode], overlays.pop(label, None))
            if len(stream.frames) != n:
                raise ValueError(f"{label}: {len(stream.frames)} frames, but the driving chunk has {n}")
            streams.append(stream)
    if overlays:
        raise ValueError(f"overlays for unknown columns {sorted(overlays)}; columns are "
                         f"{[s.label for s in streams]}")
    return streams


def _check(streams: Sequence[Stream]) -> tuple[int, int, int]:
    if not streams:
        raise ValueError("no columns to lay out")
    h, w = streams[0].frames.shape[1:3]
    for s in streams:
        if s.frames.shape[1:3] != (h, w):
            raise ValueError(f"{s.label}: frames are {s.frames.shape[2]}x{s.frames.shape[1]}, expected {w}x{h}")
    lengths = {len(s.frames) for s in streams if not s.still}
    if len(lengths) > 1:
        raise ValueError(f"columns differ in length: {[(s.label, len(s.frames)) for s in streams]}")
    return (lengths.pop() if lengths else 1), h, w


def _header(labels: Sequence[str], w: int) -> np.ndarray:
    bar = np.full((HEADER_PX, w * len(labels), 3), 255, np.uint8)
    for i, label in enumerate(labels):
        scale = 0.45
        while scale > 0.25 and cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > w - 4:
            scale -= 0.05
        cv2.putText(bar, label, (i * w + 3, HEADER_PX - 5), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return bar


def composite(streams: Sequence[Stream], t: int, header: bool = True) -> np.ndarray:
    """Frame t of every column side by side, with the labels on a white band above."""
    _, _, w = _check(streams)
    row = np.concatenate([s.frame(t) for s in streams], axis=1)
    row[:, w::w] = 255  # a 1-px white rule at each column's left edge (drawn over, so sizes stay columns x W)
    return np.concatenate([_header([s.label for s in streams], w), row], axis=0) if header else row


def _even(image: np.ndarray) -> np.ndarray:
    """Pad with white to even sides (yuv420p cannot encode odd ones)."""
    h, w = image.shape[:2]
    if h % 2 or w % 2:
        image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), constant_values=255)
    return image


def _footer(note: str, width: int) -> np.ndarray:
    """A white band with ``note`` in one line, shrunk to fit (a long note is cut with an ellipsis)."""
    bar = np.full((HEADER_PX, width, 3), 255, np.uint8)
    scale = 0.4
    while scale > 0.25 and cv2.getTextSize(note, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > width - 6:
        scale -= 0.05
    while len(note) > 4 and cv2.getTextSize(note, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > width - 6:
        note = note[:-4] + "..."
    cv2.putText(bar, note, (3, HEADER_PX - 6), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return bar


def contact_sheet(streams: Sequence[Stream], rows: int = 4, note: str | None = None) -> np.ndarray:
    """``rows`` evenly spaced time steps, one row each, labels on top and ``t=`` in each row's first cell; ``note``
    (e.g. whose keypoints the source and driving columns show) on a band below.

    Size: (HEADER_PX + rows' * H (+ HEADER_PX with a note), columns * W) where rows' = min(rows, T).
    """
    n, h, w = _check(streams)
    times = np.unique(np.linspace(0, n - 1, min(rows, n)).round().astype(int))
    body = []
    for t in times:
        row = composite(streams, int(t), header=False).copy()
        cv2.putText(row, f"t={t}", (3, h - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 2, cv2.LINE_AA)
        cv2.putText(row, f"t={t}", (3, h - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        if body:
            row[0] = 255  # a 1-px rule between time steps
        body.append(row)
    footer = [_footer(note, w * len(streams))] if note else []
    return np.concatenate([_header([s.label for s in streams], w), *body, *footer], axis=0)


# ------------------------------------------------------------------------------------------------ files


@dataclass(frozen=True)
class SampleFiles:
    mp4: str
    gif: str
    png: str
    frames: int


def _png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _gif_bytes(frames: list[np.ndarray], fps: float, max_width: int) -> bytes:
    images = []
    for f in frames:
        im = Image.fromarray(f)
        if im.width > max_width:
            im = im.resize((max_width, round(im.height * max_width / im.width)), Image.Resampling.LANCZOS)
        images.append(im)
    buf = io.BytesIO()
    # Pillow folds identical consecutive frames into one longer frame; real animations rarely have any.
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=max(20, round(1000 / fps)), disposal=1)
    return buf.getvalue()


def write_sample(streams: Sequence[Stream], out_dir: str, name: str, fps: float = 25.0,
                 sheet_rows: int = 4, gif_max_width: int = 1024, note: str | None = None) -> SampleFiles:
    """Write ``<name>.mp4``, ``<name>.gif`` and ``<name>.png`` (contact sheet) under out_dir, each atomically."""
    n, _, _ = _check(streams)
    frames = [_even(composite(streams, t)) for t in range(n)]
    root = DataRoot(out_dir)
    paths = {ext: root.path(f"{name}.{ext}") for ext in ("mp4", "gif", "png")}
    with tempfile.TemporaryDirectory(prefix="motionpipe-sample-") as tmp:
        local = os.path.join(tmp, f"{name}.mp4")
        h, w = frames[0].shape[:2]
        with VideoWriter(local, fps, (w, h), crf=20, preset="veryfast") as writer:
            for frame in frames:
                writer.write(frame)
        root.put_file(local, paths["mp4"])
    root.write_bytes(paths["gif"], _gif_bytes(frames, fps, gif_max_width))
    root.write_bytes(paths["png"], _png_bytes(contact_sheet(streams, sheet_rows, note)))
    return SampleFiles(paths["mp4"], paths["gif"], paths["png"], n)
