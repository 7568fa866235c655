"""One frame to bytes and back, in the two formats a clip may be stored in.

JPEG is written with 4:4:4 chroma (no subsampling: the crops are small and colour edges matter for the
reconstruction losses); PNG is lossless. Arrays are RGB uint8 HxWx3 on both sides; OpenCV's BGR stays in here.
"""
from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

FrameFormat = Literal["jpeg", "png"]
FRAME_EXTENSIONS: dict[str, str] = {"jpeg": "jpg", "png": "png"}
FORMAT_OF_EXTENSION: dict[str, str] = {ext: fmt for fmt, ext in FRAME_EXTENSIONS.items()}
PNG_COMPRESSION = 3  # zlib level: a fixed value so the same frame always gives the same bytes


def frame_extension(fmt: str) -> str:
    try:
        return FRAME_EXTENSIONS[fmt]
    except KeyError:
        raise ValueError(f"unknown frame format {fmt!r}; expected one of {sorted(FRAME_EXTENSIONS)}") from None


def frame_entry_name(i: int, fmt: str) -> str:
    """The per-frame suffix inside a sample: `000123.jpg` (6 digits, like the chunk key's frame numbers)."""
    if not 0 <= i <= 999_999:
        raise ValueError(f"frame index {i} out of range for a 6-digit entry name")
    return f"{i:06d}.{frame_extension(fmt)}"


def encode_frame(rgb: np.ndarray, fmt: FrameFormat, quality: int = 95) -> bytes:
    """Encode an RGB uint8 HxWx3 frame. `quality` applies to JPEG only (the caller records it in the catalog)."""
    ext = frame_extension(fmt)
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", None)
        dtype = getattr(rgb, "dtype", type(rgb).__name__)
        raise ValueError(f"expected an RGB uint8 array of shape (H, W, 3), got shape {shape} dtype {dtype}")
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if fmt == "jpeg":
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"JPEG quality must be in [1, 100], got {quality}")
        params = [
            cv2.IMWRITE_JPEG_QUALITY, int(quality),
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
        ]
    else:
        params = [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION]
    ok, buf = cv2.imencode("." + ext, bgr, params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {rgb.shape} frame as {fmt}")
    return buf.tobytes()


def decode_frame(data: bytes) -> np.ndarray:
    """Decode JPEG or PNG bytes to an RGB uint8 HxWx3 array."""
    arr = np.frombuffer(data, dtype=np.uint8)
    bgr = cv2.imdecode(arr, cv2.IMREAD_COLOR) if arr.size else None
    if bgr is None:
        raise ValueError(f"cannot decode frame ({len(data)} bytes, starts {bytes(data[:8])!r})")
    return np.ascontiguousarray(bgr[:, :, ::-1])
