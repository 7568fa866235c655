"""Train/test assignment: the manifest's partition when it has one, else a deterministic video-disjoint split (the
one a discovery manifest such as TED's records up front, too)."""
from __future__ import annotations

import hashlib
from typing import Iterable

from assets.dataset_config import DatasetConfig


def split_score(video_id: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by (seed, id): sha256, never Python's salted `hash`."""
    digest = hashlib.sha256(f"{seed}:{video_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def video_disjoint_split(video_ids: Iterable[str], test_fraction: float = 0.1, seed: int = 0) -> dict[str, str]:
    """`test` for ids whose score is below `test_fraction`, else `train`: each id decides alone, so the split is
    video-disjoint by construction and an id keeps its split when others are added or removed. The test share
    is ≈ test_fraction (binomial), e.g. about 41 of 411 videos at 0.1."""
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    return {v: "test" if split_score(v, seed) < test_fraction else "train" for v in dict.fromkeys(video_ids)}


def dataset_video_splits(video_ids: list[str], test_fraction: float, seed: int) -> dict[str, str]:
    """`video_disjoint_split` (each id decides alone, so splits survive added ids), plus one guard: a dataset of
    two or more videos with a positive test fraction always gets a test video (the lowest-scoring one)."""
    splits = video_disjoint_split(video_ids, test_fraction, seed)
    if test_fraction > 0 and len(splits) >= 2 and "test" not in splits.values():
        splits[min(splits, key=lambda v: split_score(v, seed))] = "test"
    return splits


def assign_splits(cfg: DatasetConfig, manifest_videos: list[dict], accepted: dict[str, list[dict]]) -> dict[str, str]:
    """chunk id -> split: the clip's manifest partition, else its video's manifest split, else the hash split.
    Decided over all manifest videos, so it does not depend on which downloads happened to succeed."""
    by_video = dataset_video_splits([v["video_id"] for v in manifest_videos], cfg.split.test_fraction,
                                    cfg.split.seed)
    by_video.update({v["video_id"]: v["split"] for v in manifest_videos if v.get("split")})
    return {c["chunk_id"]: c.get("split") or by_video[vid] for vid, chunks in accepted.items() for c in chunks}
