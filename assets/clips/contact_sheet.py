"""A contact sheet of chunks: one row per chunk, a few frames spread over it, labelled — to see at a glance that
each chunk shows one person, framed the same way throughout."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

LABEL_HEIGHT = 18


@dataclass(frozen=True)
class SheetRow:
    label: str  # e.g. the chunk key and the track it followed
    frames: Sequence[np.ndarray]  # the chunk's frames, RGB uint8, all the same size


def spread(n: int, columns: int) -> list[int]:
    """`columns` frame indices spread evenly over [0, n), first and last included."""
    if n <= 0:
        return []
    if columns <= 1 or n == 1:
        return [0]
    return sorted({round(k * (n - 1) / (columns - 1)) for k in range(columns)})


def contact_sheet(rows: Sequence[SheetRow], columns: int = 8, tile: int = 96) -> np.ndarray:
    """An RGB image: per row a label strip, then `columns` tiles of `tile` px taken evenly over the chunk."""
    if not rows:
        raise ValueError("a contact sheet needs at least one row")
    width = columns * tile
    strips = []
    for row in rows:
        label = np.full((LABEL_HEIGHT, width, 3), 255, np.uint8)
        cv2.putText(label, row.label, (4, LABEL_HEIGHT - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1,
                    cv2.LINE_AA)
        tiles = np.zeros((tile, width, 3), np.uint8)
        for col, k in enumerate(spread(len(row.frames), columns)):
            tiles[:, col * tile:(col + 1) * tile] = cv2.resize(np.asarray(row.frames[k]), (tile, tile),
                                                               interpolation=cv2.INTER_AREA)
        strips += [label, tiles]
    return np.concatenate(strips, axis=0)
