"""Train/test assignment: the manifest's partition when it has one, else a deterministic video-disjoint split."""
from __future__ import annotations

from assets.dataset_config import DatasetConfig
from assets.ingest.ted_manifest import split_score, video_disjoint_split


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
