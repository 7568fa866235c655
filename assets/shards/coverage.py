"""The coverage report: what of the manifest was rebuilt, what was not, and why — per video and per chunk."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field

from assets.dataset_config import DatasetConfig
from storage import paths
from storage.catalog import read_records
from storage.root import DataRoot


@dataclass
class Coverage:
    dataset: str
    videos_total: int = 0
    videos_rebuilt: int = 0
    chunks_expected: int | None = None  # replay datasets: clips in the manifest
    chunks_rebuilt: int = 0
    frames: int = 0
    bytes: int = 0
    manifest_rows_rejected: int = 0
    per_split: dict[str, dict[str, int]] = field(default_factory=dict)
    missing_by_reason: dict[str, int] = field(default_factory=dict)
    missing: list[dict] = field(default_factory=list)  # one entry per video not rebuilt: id, reason, error
    built: bool = False


def compute_coverage(cfg: DatasetConfig, root: DataRoot, write: bool = False) -> Coverage:
    cov = Coverage(cfg.name)
    manifest_videos = read_records(root, paths.manifest_path(root, cfg.name, "videos"))
    manifest_clips = read_records(root, paths.manifest_path(root, cfg.name, "clips"))
    cov.manifest_rows_rejected = len(read_records(root, paths.manifest_path(root, cfg.name, "errors")))
    videos = {v["video_id"]: v for v in read_records(root, paths.catalog_path(root, cfg.name, "videos"))}
    chunks = read_records(root, paths.catalog_path(root, cfg.name, "chunks"))
    cov.built = bool(videos)
    cov.videos_total = len(manifest_videos)
    if manifest_clips:
        cov.chunks_expected = len(manifest_clips)
    with_chunks = {c["video_id"] for c in chunks}
    cov.videos_rebuilt = len(with_chunks)
    cov.chunks_rebuilt = len(chunks)
    for c in chunks:
        s = cov.per_split.setdefault(c["split"], {"videos": 0, "chunks": 0, "frames": 0})
        s["chunks"] += 1
        s["frames"] += int(c["n_frames"])
        cov.frames += int(c["n_frames"])
        cov.bytes += int(c.get("bytes") or 0)
    for split in cov.per_split:
        cov.per_split[split]["videos"] = len({c["video_id"] for c in chunks if c["split"] == split})
    reasons: Counter[str] = Counter()
    for v in manifest_videos:
        vid = v["video_id"]
        if vid in with_chunks:
            continue
        row = videos.get(vid)
        reason = row["status"] if row else "not processed yet"
        error = (row or {}).get("error") or ""
        reasons[reason] += 1
        cov.missing.append({"video_id": vid, "reason": reason, "error": error})
    cov.missing_by_reason = dict(reasons.most_common())
    if write:
        root.write_bytes(paths.coverage_path(root, cfg.name), json.dumps(asdict(cov), indent=1).encode())
    return cov


def _pct(a: int, b: int | None) -> str:
    return f"{a}/{b} ({100.0 * a / b:.1f}%)" if b else f"{a}"


def coverage_lines(cov: Coverage) -> list[str]:
    lines = [
        f"videos rebuilt: {_pct(cov.videos_rebuilt, cov.videos_total)}",
        f"chunks rebuilt: {_pct(cov.chunks_rebuilt, cov.chunks_expected)}",
        f"frames: {cov.frames}   on disk: {cov.bytes / 1e6:.1f} MB",
    ]
    if cov.manifest_rows_rejected:
        lines.append(f"manifest rows rejected: {cov.manifest_rows_rejected} (see manifest/errors.parquet)")
    return lines


def coverage_markdown(cov: Coverage) -> str:
    out = [f"### {cov.dataset} coverage", "", *[f"- {line}" for line in coverage_lines(cov)], "",
           "| split | videos | chunks | frames |", "|---|---|---|---|"]
    out += [f"| {k} | {v['videos']} | {v['chunks']} | {v['frames']} |" for k, v in sorted(cov.per_split.items())]
    if cov.missing:
        out += ["", "| missing video | reason | error |", "|---|---|---|"]
        out += [f"| {m['video_id']} | {m['reason']} | {m['error'][:120]} |" for m in cov.missing[:200]]
    return "\n".join(out)


def print_coverage(cov: Coverage) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if not cov.built and not cov.videos_total:
        console.print(f"[bold]{cov.dataset}[/]: nothing rebuilt yet (run `motionpipe rebuild {cov.dataset}`)")
        return
    console.print(f"[bold]{cov.dataset} coverage[/]")
    for line in coverage_lines(cov):
        console.print("  " + line)
    table = Table("split", "videos", "chunks", "frames")
    for k, v in sorted(cov.per_split.items()):
        table.add_row(k, str(v["videos"]), str(v["chunks"]), str(v["frames"]))
    console.print(table)
    if cov.missing:
        missing = Table("missing video", "reason", "error", title="not rebuilt")
        for m in cov.missing[:50]:
            missing.add_row(m["video_id"], m["reason"], escape(m["error"][:100]))
        if len(cov.missing) > 50:
            missing.add_row("…", f"{len(cov.missing) - 50} more", "see coverage/coverage.json")
        console.print(missing)
        console.print("  by reason: " + ", ".join(f"{k}: {v}" for k, v in cov.missing_by_reason.items()))
