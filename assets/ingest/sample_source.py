"""The offline `sample` source: short videos rendered from real photographs of people that ship with scikit-image.

They need nothing from the internet yet exercise the real pipeline: a real photograph of a person (the astronaut
Eileen Collins, `skimage.data.astronaut()`; the cameraman, `skimage.data.camera()`) is pasted as a sprite on a
real-photo or smooth background and animated, so the pose detector, the shot-cut detector, the chunker and the crop
all see realistic input. Each spec carries its ground truth (cut frames, the frame from which the presenter is gone,
the sprite's box per frame), so tests can check every stage against it.

Kinds:
  smooth    one shot; the person drifts, bobs, breathes in scale and tilts gently (one period per video).
  walk_off  the presenter stands, then walks off the right edge; from `person_gone_from` on, only background.
  cuts      three shots separated by hard cuts at `cut_frames`: astronaut close-up, cameraman, astronaut far.

Rendering is deterministic: the same spec gives the same pixels before encoding (no wall-clock, no global RNG).
"""
from __future__ import annotations

import functools
import json
import math
import os
import uuid
from dataclasses import asdict, dataclass
from typing import Iterator, Literal

import cv2
import numpy as np

from storage.ids import validate_video_id
from storage.video import VideoWriter

Kind = Literal["smooth", "walk_off", "cuts"]
KINDS = ("smooth", "walk_off", "cuts")
# Bump when the rendering changes, so cached files made by an older renderer are redrawn.
RENDER_VERSION = 1
SAMPLE_CRF = 12


@dataclass(frozen=True)
class SampleVideoSpec:
    """One offline sample video. The seed picks backgrounds, mirroring and motion phases; the kind fixes the story."""

    video_id: str
    kind: Kind
    n_frames: int
    fps: float
    width: int
    height: int
    seed: int

    def __post_init__(self) -> None:
        validate_video_id(self.video_id, youtube=False)
        if self.kind not in KINDS:
            raise ValueError(f"{self.video_id}: unknown kind {self.kind!r}, expected one of {KINDS}")
        if self.n_frames < 30:
            raise ValueError(f"{self.video_id}: need at least 30 frames, got {self.n_frames}")
        if self.width % 2 or self.height % 2 or min(self.width, self.height) < 64:
            raise ValueError(f"{self.video_id}: size {self.width}x{self.height} must be even and at least 64")
        if not self.fps > 0:
            raise ValueError(f"{self.video_id}: fps must be positive, got {self.fps}")

    @property
    def cut_frames(self) -> tuple[int, ...]:
        """Frame indices that start a new shot (frame i differs entirely from i-1); empty unless kind == 'cuts'."""
        return tuple(shot.start for shot in _shots(self)[1:])

    @property
    def person_gone_from(self) -> int | None:
        """walk_off only: the first frame in which no pixel of the person is inside the frame (None otherwise)."""
        if self.kind != "walk_off":
            return None
        return next(i for i in range(self.n_frames) if sprite_box(self, i) is None)

    def ground_truth(self) -> dict:
        return {"cut_frames": list(self.cut_frames), "person_gone_from": self.person_gone_from}


def default_sample_specs() -> list[SampleVideoSpec]:
    """Five small videos (320x240, 25 fps, 100-150 frames): two smooth, one walk-off, one with two hard cuts."""
    return [
        SampleVideoSpec("sample-astro-a", "smooth", 125, 25.0, 320, 240, seed=1),
        SampleVideoSpec("sample-astro-b", "smooth", 100, 25.0, 320, 240, seed=2),
        SampleVideoSpec("sample-astro-c", "smooth", 150, 25.0, 320, 240, seed=3),
        SampleVideoSpec("sample-walkoff", "walk_off", 150, 25.0, 320, 240, seed=4),
        SampleVideoSpec("sample-cuts", "cuts", 150, 25.0, 320, 240, seed=5),
    ]


# ------------------------------------------------------------------------------------------------ photographs


@functools.lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    """A person or background photograph as RGB uint8, read-only (cached: skimage decodes on every call)."""
    from skimage import data

    if name == "astronaut":
        img = data.astronaut()
    elif name == "cameraman":
        # Head, shoulders and camera: the whole 512x512 frame is mostly sky, which the pose model finds harder.
        img = np.repeat(data.camera()[20:300, 120:320, None], 3, axis=2)[:, ::-1]
    elif name in ("coffee", "rocket", "chelsea"):
        img = getattr(data, name)()
    else:
        raise ValueError(f"unknown photograph {name!r}")
    img = np.ascontiguousarray(img, dtype=np.uint8)
    img.flags.writeable = False
    return img


def _background(name: str, width: int, height: int, seed: int) -> np.ndarray:
    """A full-frame background: a photograph cropped to the frame's aspect ratio, or a smooth colour gradient."""
    if name == "gradient":
        rng = np.random.default_rng(seed)
        corners = rng.integers(40, 216, size=(2, 2, 3)).astype(np.float32)
        grid = cv2.resize(corners, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.clip(np.rint(grid), 0, 255).astype(np.uint8)
    img = _photo(name)
    h, w = img.shape[:2]
    scale = max(width / w, height / h)
    cw, ch = round(width / scale), round(height / scale)
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    return cv2.resize(img[y0 : y0 + ch, x0 : x0 + cw], (width, height), interpolation=cv2.INTER_AREA)


# ------------------------------------------------------------------------------------------------------ story


@dataclass(frozen=True)
class _Shot:
    start: int
    end: int  # exclusive
    subject: str
    mirror: bool
    background: str
    height_frac: float  # sprite height / frame height
    center_x: float  # resting centre, fraction of frame width


@dataclass(frozen=True)
class _Placement:
    cx: float
    cy: float
    height: float  # sprite height in pixels
    angle: float  # degrees, counter-clockwise


@functools.lru_cache(maxsize=64)
def _shots(spec: SampleVideoSpec) -> tuple[_Shot, ...]:
    rng = np.random.default_rng(spec.seed)
    n = spec.n_frames
    if spec.kind == "smooth":
        background = ("coffee", "rocket", "gradient")[int(rng.integers(3))]
        return (_Shot(0, n, "astronaut", bool(rng.integers(2)), background, 0.78, 0.5),)
    if spec.kind == "walk_off":
        return (_Shot(0, n, "astronaut", False, "coffee", 0.8, 0.4),)
    c1, c2 = n // 3, (2 * n) // 3
    return (
        _Shot(0, c1, "astronaut", False, "coffee", 0.95, 0.5),
        _Shot(c1, c2, "cameraman", False, "rocket", 0.8, 0.45),
        _Shot(c2, n, "astronaut", True, "gradient", 0.65, 0.62),
    )


def _shot_at(spec: SampleVideoSpec, i: int) -> _Shot:
    if not 0 <= i < spec.n_frames:
        raise IndexError(f"{spec.video_id}: frame {i} outside [0, {spec.n_frames})")
    return next(s for s in _shots(spec) if s.start <= i < s.end)


@functools.lru_cache(maxsize=64)
def _phases(spec: SampleVideoSpec) -> tuple[float, ...]:
    # A separate stream from _shots' choices, so changing one never shifts the other.
    return tuple(np.random.default_rng([spec.seed, 1]).uniform(0, 2 * math.pi, size=4).tolist())


def _placement(spec: SampleVideoSpec, i: int) -> _Placement:
    shot = _shot_at(spec, i)
    W, H = spec.width, spec.height
    t = (i - shot.start) / max(1, shot.end - shot.start)  # 0..1 within the shot
    p = _phases(spec)
    base_h = shot.height_frac * H
    wave = lambda k, cycles=1.0: math.sin(2 * math.pi * cycles * t + p[k])  # noqa: E731
    if spec.kind == "smooth":
        cx = W * (shot.center_x + 0.12 * wave(0))
        height = base_h * (1 + 0.06 * wave(1))
        cy = H - height / 2 + 0.02 * H * (1 + wave(2))
        return _Placement(cx, cy, height, 5.0 * wave(3))
    if spec.kind == "cuts":
        cx = W * (shot.center_x + 0.03 * wave(0))
        height = base_h * (1 + 0.02 * wave(1))
        return _Placement(cx, H - height / 2 + 0.02 * H, height, 0.0)
    # walk_off: stand (swaying) until 40% of the video, then walk right until fully gone at 70%.
    stand_end, gone = round(0.4 * spec.n_frames), round(0.7 * spec.n_frames)
    sprite_w = base_h * _aspect(shot)
    rest_x = W * shot.center_x
    if i < stand_end:
        cx = rest_x + 0.02 * W * math.sin(2 * math.pi * i / 40 + p[0])
    else:
        sway_end = rest_x + 0.02 * W * math.sin(2 * math.pi * stand_end / 40 + p[0])
        speed = (W + sprite_w / 2 + 1 - sway_end) / (gone - stand_end)
        cx = sway_end + speed * (i - stand_end)
    bob = 0.015 * H * abs(math.sin(math.pi * i / 6)) if i >= stand_end else 0.0
    return _Placement(cx, H - base_h / 2 + 0.02 * H - bob, base_h, 0.0)


def _aspect(shot: _Shot) -> float:
    h, w = _photo(shot.subject).shape[:2]
    return w / h


def _corners(spec: SampleVideoSpec, i: int) -> np.ndarray:
    shot, pl = _shot_at(spec, i), _placement(spec, i)
    hw, hh = pl.height * _aspect(shot) / 2, pl.height / 2
    a = math.radians(pl.angle)
    rot = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])  # image y points down
    local = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]])
    return local @ rot.T + [pl.cx, pl.cy]


def sprite_box(spec: SampleVideoSpec, i: int) -> tuple[int, int, int, int] | None:
    """Ground-truth box (x0, y0, x1, y1; pixels, end exclusive) of the person photo in frame i, clipped to the
    frame; None when no part of it is inside. The photo includes some background around the person."""
    pts = _corners(spec, i)
    x0, y0 = np.floor(pts.min(axis=0)).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, spec.width), min(y1, spec.height)
    if x0 >= x1 or y0 >= y1:
        return None
    return int(x0), int(y0), int(x1), int(y1)


# -------------------------------------------------------------------------------------------------- rendering


@functools.lru_cache(maxsize=16)
def _sprite(subject: str, mirror: bool, height: int) -> np.ndarray:
    """The person photo resized (anti-aliased) once per shot to about its on-screen height."""
    img = _photo(subject)
    if mirror:
        img = img[:, ::-1]
    width = max(2, round(img.shape[1] * height / img.shape[0]))
    out = cv2.resize(np.ascontiguousarray(img), (width, height), interpolation=cv2.INTER_AREA)
    out.flags.writeable = False
    return out


def render_frames(spec: SampleVideoSpec) -> Iterator[np.ndarray]:
    """The video's frames as RGB uint8 (height, width, 3), before any encoding."""
    W, H = spec.width, spec.height
    for shot in _shots(spec):
        background = _background(shot.background, W, H, spec.seed)
        sprite = _sprite(shot.subject, shot.mirror, round(shot.height_frac * H))
        sh, sw = sprite.shape[:2]
        ones = np.ones((sh, sw), np.float32)
        for i in range(shot.start, shot.end):
            frame = background.copy()
            box = sprite_box(spec, i)
            if box is not None:  # composite only around the sprite: outside it alpha is exactly 0
                x0, y0 = max(box[0] - 2, 0), max(box[1] - 2, 0)
                x1, y1 = min(box[2] + 2, W), min(box[3] + 2, H)
                pl = _placement(spec, i)
                m = cv2.getRotationMatrix2D((sw / 2, sh / 2), pl.angle, pl.height / sh)
                m[:, 2] += (pl.cx - sw / 2 - x0, pl.cy - sh / 2 - y0)
                size = (x1 - x0, y1 - y0)
                rgb = cv2.warpAffine(sprite, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
                alpha = cv2.warpAffine(ones, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)[..., None]
                region = background[y0:y1, x0:x1].astype(np.float32)
                mixed = region + (rgb.astype(np.float32) - region) * alpha
                frame[y0:y1, x0:x1] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
            yield frame


def render_sample_video(spec: SampleVideoSpec, out_path: str | os.PathLike) -> str:
    """Encode the spec's frames to `out_path` (H.264, crf 12) atomically; returns the path."""
    with VideoWriter(out_path, spec.fps, (spec.width, spec.height), crf=SAMPLE_CRF) as writer:
        for frame in render_frames(spec):
            writer.write(frame)
    return os.fspath(out_path)


def _sidecar(spec: SampleVideoSpec) -> dict:
    return {"renderer": RENDER_VERSION, "crf": SAMPLE_CRF, "spec": asdict(spec), "ground_truth": spec.ground_truth()}


def write_sample_videos(
    folder: str | os.PathLike, specs: list[SampleVideoSpec] | None = None
) -> dict[str, str]:
    """Write `<video_id>.mp4` plus a `<video_id>.json` sidecar (spec and ground truth) for each spec into a local
    folder; a video whose file exists with an identical sidecar is kept. Returns video_id -> mp4 path."""
    specs = default_sample_specs() if specs is None else list(specs)
    ids = [s.video_id for s in specs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate sample video ids: {sorted({i for i in ids if ids.count(i) > 1})}")
    folder = os.path.abspath(os.fspath(folder))
    os.makedirs(folder, exist_ok=True)
    paths: dict[str, str] = {}
    for spec in specs:
        mp4 = os.path.join(folder, f"{spec.video_id}.mp4")
        side = os.path.join(folder, f"{spec.video_id}.json")
        wanted = _sidecar(spec)
        if not (os.path.isfile(mp4) and _read_json(side) == wanted):
            render_sample_video(spec, mp4)
            tmp = os.path.join(folder, f".{spec.video_id}.json.tmp-{uuid.uuid4().hex[:12]}")
            with open(tmp, "w") as f:
                json.dump(wanted, f, indent=2, sort_keys=True)
            os.replace(tmp, side)
        paths[spec.video_id] = mp4
    return paths


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
