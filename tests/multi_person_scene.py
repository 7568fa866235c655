"""A multi-person video made from real photographs (scikit-image's astronaut and cameraman) with its ground truth.

Two people share the frame: the cameraman stands on the right, swaying; the astronaut stands on the left, then
walks right, passes in front of him (hiding him) and on towards the right edge. A label map says whose body every
pixel shows (each photo's body region was marked by hand; sky, grass and the shuttle are nobody), so a test can name
the person inside any box of any frame. Rendering is deterministic (no RNG, no clock) and goes through the
project's own video writer (H.264).
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

import cv2
import numpy as np

from storage.video import VideoWriter

W, H, FPS, N_FRAMES = 640, 360, 25.0, 150
PEOPLE = ("cameraman", "astronaut")  # back to front: the astronaut is drawn over the cameraman
WALK_FROM, WALK_SPEED = 60, 4.0  # the astronaut starts walking right at this frame, px per frame
# The body in each (cropped) photo, as fractions of its width and height (x0, y0, x1, y1): the cameraman's coat,
# head and hands up to his camera; the astronaut from her hair down, without the shuttle model on the right.
BODY = {"cameraman": (0.0, 60 / 512, 270 / 410, 1.0), "astronaut": (0.0, 12 / 512, 345 / 400, 1.0)}


@functools.lru_cache(maxsize=None)
def _photo(name: str, height: int) -> np.ndarray:
    from skimage import data

    if name == "astronaut":
        img = data.astronaut()[:, 20:420]  # the woman in her suit, less of the flag and shuttle around her
    elif name == "cameraman":
        img = np.repeat(data.camera()[:, 60:470, None], 3, axis=2)
    else:
        raise ValueError(f"unknown person {name!r}")
    width = round(img.shape[1] * height / img.shape[0])
    out = cv2.resize(np.ascontiguousarray(img), (width, height), interpolation=cv2.INTER_AREA)
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=None)
def _background() -> np.ndarray:
    from skimage import data

    return cv2.resize(data.coffee(), (W, H), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class Placement:
    x0: int
    y0: int
    height: int


def placement(name: str, i: int) -> Placement:
    """Where the person's photo is in frame i (top-left corner, height in px); it may reach past the frame."""
    if name == "cameraman":
        height = 300
        cx = 470 + 10 * math.sin(2 * math.pi * i / 50)
    else:
        height = 280
        cx = 170 + 6 * math.sin(2 * math.pi * i / 40) + WALK_SPEED * max(0, i - WALK_FROM)
    width = _photo(name, height).shape[1]
    return Placement(round(cx - width / 2), H - height, height)


def _body(name: str, p: Placement) -> tuple[int, int, int, int]:
    """The person's body box in frame pixels (may reach past the frame)."""
    h, w = _photo(name, p.height).shape[:2]
    fx0, fy0, fx1, fy1 = BODY[name]
    return p.x0 + round(fx0 * w), p.y0 + round(fy0 * h), p.x0 + round(fx1 * w), p.y0 + round(fy1 * h)


def _clip(x0: int, y0: int, x1: int, y1: int) -> tuple[int, int, int, int]:
    return max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)


@functools.lru_cache(maxsize=8)
def render(i: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame i (RGB) and its label map: whose body each pixel shows (index in PEOPLE + 1; 0 = nobody's).
    Read-only arrays (cached)."""
    frame = _background().copy()
    labels = np.zeros((H, W), np.uint8)
    for k, name in enumerate(PEOPLE):
        p = placement(name, i)
        img = _photo(name, p.height)
        x0, y0, x1, y1 = _clip(p.x0, p.y0, p.x0 + img.shape[1], p.y0 + img.shape[0])
        if x1 > x0 and y1 > y0:
            frame[y0:y1, x0:x1] = img[y0 - p.y0:y1 - p.y0, x0 - p.x0:x1 - p.x0]
            labels[y0:y1, x0:x1] = 0  # the photo hides whoever was behind it
            bx0, by0, bx1, by1 = _clip(*_body(name, p))
            labels[by0:by1, bx0:bx1] = k + 1
    frame.flags.writeable = labels.flags.writeable = False
    return frame, labels


def visible_fraction(name: str, i: int) -> float:
    """How much of the person's body is in view in frame i (not off the frame, not behind the other)."""
    x0, y0, x1, y1 = _body(name, placement(name, i))
    return float((render(i)[1] == PEOPLE.index(name) + 1).sum()) / ((x1 - x0) * (y1 - y0))


def person_in(box: tuple[float, float, float, float], i: int, majority: float = 0.6) -> str | None:
    """Whose body fills most of `box` (x0, y0, x1, y1) in frame i: the person covering at least `majority` of
    the box's pixels that show anybody, else None."""
    labels = render(i)[1]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    region = labels[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)]
    counts = np.bincount(region.ravel(), minlength=len(PEOPLE) + 1)[1:]
    if counts.sum() == 0 or counts.max() < majority * counts.sum():
        return None
    return PEOPLE[int(counts.argmax())]


def write_video(path: str | os.PathLike) -> str:
    with VideoWriter(path, FPS, (W, H), crf=12) as writer:
        for i in range(N_FRAMES):
            writer.write(render(i)[0])
    return os.fspath(path)
