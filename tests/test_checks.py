"""The dataset asset checks fail on exactly the problems they name."""
import json

from assets.dataset_config import load_dataset_config
from assets.shards.checks import check_catalog_matches_shards, check_chunk_rules, check_videos_disjoint
from assets.shards.splits import dataset_video_splits

SAMPLE = load_dataset_config("sample")


def chunk(vid="v1", start=0, end=40, split="train", size=64, source="detector", **kw):
    return {"chunk_id": f"{vid}#{start:06d}#{end:06d}", "video_id": vid, "start": start, "end": end,
            "src_start": start, "src_end": end, "n_frames": end - start, "width": size, "height": size,
            "split": split, "shard": "train-000000.tar", "sha256": "ab", "provenance": json.dumps({"source": source}),
            **kw}


def test_a_video_in_both_splits_fails():
    ok = check_videos_disjoint([chunk(), chunk(start=40, end=80)])
    bad = check_videos_disjoint([chunk(), chunk(start=40, end=80, split="test")])
    assert ok.passed and not bad.passed and "v1" in bad.problems[0]


def test_chunk_rules_catch_size_length_and_span():
    assert check_chunk_rules(SAMPLE, [chunk()]).passed
    problems = check_chunk_rules(SAMPLE, [chunk(size=32), chunk(vid="v2", end=10),
                                          chunk(vid="v3", n_frames=39)]).problems
    assert any("32x32" in p for p in problems)
    assert any("v2" in p and "outside [32, 96]" in p for p in problems)
    assert any("v3" in p and "source span" in p for p in problems)
    # Replayed chunks are held to the manifest's length, not to the downloaded frame count.
    taichi = load_dataset_config("taichi")
    replay = chunk(end=200, size=256, source="manifest", src_end=100, n_frames=100)
    assert check_chunk_rules(taichi, [replay]).passed
    assert not check_chunk_rules(taichi, [chunk(end=100, size=256, source="manifest")]).passed


def test_catalog_and_shards_must_agree():
    c = chunk()
    sample = {"key": c["chunk_id"], "shard": c["shard"], "n_frames": 40, "sha256": "ab"}
    assert check_catalog_matches_shards([c], [sample]).passed
    assert not check_catalog_matches_shards([c], [{**sample, "sha256": "cd"}]).passed
    assert not check_catalog_matches_shards([c], []).passed
    orphan = check_catalog_matches_shards([], [sample])
    assert not orphan.passed and "not in the catalog" in orphan.problems[0]


def test_split_is_deterministic_disjoint_and_never_empty():
    ids = [f"vid{i:03d}" for i in range(411)]
    a, b = dataset_video_splits(ids, 0.1, 0), dataset_video_splits(ids, 0.1, 0)
    assert a == b and 25 <= list(a.values()).count("test") <= 60
    assert dataset_video_splits(ids + ["extra"], 0.1, 0)["vid000"] == a["vid000"]  # stable when ids are added
    assert "test" in dataset_video_splits(["x", "y"], 0.1, 0).values()
