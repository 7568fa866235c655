"""Asset checks on a built dataset, as pure functions over catalog rows (tests call them directly)."""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field

from assets.dataset_config import ChunkSettings, DatasetConfig
from storage import paths
from storage.catalog import read_records
from storage.root import DataRoot


@dataclass
class CheckResult:
    name: str
    passed: bool
    checked: int
    problems: list[str] = field(default_factory=list)


def check_videos_disjoint(chunks: list[dict]) -> CheckResult:
    splits: dict[str, set[str]] = defaultdict(set)
    for c in chunks:
        splits[c["video_id"]].add(c["split"])
    problems = [f"{vid}: chunks in {sorted(s)}" for vid, s in sorted(splits.items()) if len(s) > 1]
    return CheckResult("videos_disjoint_splits", not problems, len(splits), problems)


def check_chunk_rules(cfg: DatasetConfig, chunks: list[dict]) -> CheckResult:
    rules, size = cfg.chunks, cfg.crop.size
    problems = []
    for c in chunks:
        cid, n = c["chunk_id"], int(c["n_frames"])
        if (c["width"], c["height"]) != (size, size):
            problems.append(f"{cid}: {c['width']}x{c['height']}, expected {size}x{size}")
        if c["split"] not in ("train", "test"):
            problems.append(f"{cid}: split {c['split']!r}")
        if n != int(c["src_end"]) - int(c["src_start"]):
            problems.append(f"{cid}: {n} frames but source span {c['src_start']}..{c['src_end']}")
        if json.loads(c["provenance"]).get("source") == "manifest":
            # Replayed chunks: the manifest fixes the length at the reference fps; the frame count follows the
            # downloaded fps, so only the reference length is held to the dataset's limits.
            length = int(c["end"]) - int(c["start"])
            lo = rules.min_frames or 2
            if not lo <= length <= rules.max_frames:
                problems.append(f"{cid}: manifest length {length} outside [{lo}, {rules.max_frames}]")
            if n < 1:
                problems.append(f"{cid}: no frames")
        else:
            problems += _length_problems(cid, n, rules, c.get("fps"))
    return CheckResult("chunk_rules", not problems, len(chunks), problems)


def _length_problems(cid: str, n: int, rules: ChunkSettings, fps: float | None) -> list[str]:
    """Frame bounds of a found chunk; durations in seconds are held at the chunk's own fps."""
    timed = rules.min_seconds is not None or rules.max_seconds is not None
    if timed and not fps:
        return [f"{cid}: no fps recorded, cannot hold it to lengths in seconds"]
    try:
        bounds = rules.at_fps(float(fps)) if timed else rules
    except ValueError as exc:
        return [f"{cid}: {exc}"]
    if bounds.min_frames <= n <= bounds.max_frames:
        return []
    at = f" at {float(fps):g} fps" if timed else ""
    return [f"{cid}: {n} frames outside [{bounds.min_frames}, {bounds.max_frames}]{at}"]


def check_catalog_matches_shards(chunks: list[dict], samples: list[dict]) -> CheckResult:
    """`samples`: one row per sample found in the shards (key, shard, n_frames, sha256)."""
    in_shards = {s["key"]: s for s in samples}
    problems = []
    for c in chunks:
        s = in_shards.pop(c["chunk_id"], None)
        if s is None:
            problems.append(f"{c['chunk_id']}: in the catalog, not in any shard")
            continue
        for field_name, catalog_field in (("shard", "shard"), ("n_frames", "n_frames"), ("sha256", "sha256")):
            if s.get(field_name) != c.get(catalog_field):
                problems.append(f"{c['chunk_id']}: {field_name} {c.get(catalog_field)!r} in catalog, "
                                f"{s.get(field_name)!r} in shards")
    problems += [f"{key}: in shard {s.get('shard')}, not in the catalog" for key, s in sorted(in_shards.items())]
    return CheckResult("catalog_matches_shards", not problems, len(chunks), problems)


def run_checks(cfg: DatasetConfig, root: DataRoot) -> list[CheckResult]:
    from storage.shards import shard_samples, verify_shards

    chunks = read_records(root, paths.catalog_path(root, cfg.name, "chunks"))
    shards_dir = paths.shards_dir(root, cfg.name)
    integrity = verify_shards(root, shards_dir)
    matches = check_catalog_matches_shards(chunks, shard_samples(root, shards_dir))
    matches.problems += integrity
    matches.passed = matches.passed and not integrity
    return [check_videos_disjoint(chunks), check_chunk_rules(cfg, chunks), matches]
