"""The coverage report: what of the manifest was rebuilt, what was not, and why — per video and per chunk.

A video's state is read from its own records (download.json, chunks.json), as the catalog step reads it, so the
report is right after any interruption too: a run stopped before the catalog step has no (or an older) catalog,
and its videos' records say what happened. The last rebuild's own record says whether it finished.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field

from assets.dataset_config import DatasetConfig
from assets.ingest.download_stage import load_download_record
from assets.ingest.manifests import RowError
from assets.ingest.rejections import rejection_lines
from assets.shards.build import read_video_chunks, video_status
from storage import paths
from storage.catalog import read_records
from storage.last_rebuild import FINISHED, RUNNING, read_last_rebuild
from storage.root import DataRoot

SHOWN_MISSING = 50


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
    manifest_rejections: list[str] = field(default_factory=list)  # counts per reason, first rows (lines)
    per_split: dict[str, dict[str, int]] = field(default_factory=dict)
    missing_by_reason: dict[str, int] = field(default_factory=dict)
    # one entry per video not in the published dataset: id, reason, error (whole), detection_rate (None: no detector)
    missing: list[dict] = field(default_factory=list)
    videos_unpublished: int = 0  # rebuilt on disk since the catalog was last published
    chunks_unpublished: int = 0
    last_rebuild: str | None = None  # how the last rebuild ended, unless it simply finished
    built: bool = False


def compute_coverage(cfg: DatasetConfig, root: DataRoot, write: bool = False) -> Coverage:
    cov = Coverage(cfg.name)
    manifest_videos = read_records(root, paths.manifest_path(root, cfg.name, "videos"))
    manifest_clips = read_records(root, paths.manifest_path(root, cfg.name, "clips"))
    rejected = [RowError(**r) for r in read_records(root, paths.manifest_path(root, cfg.name, "errors"))]
    cov.manifest_rows_rejected = len(rejected)
    cov.manifest_rejections = rejection_lines(rejected, reasons=3, examples=1)
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
        chunks_json = read_video_chunks(root, cfg.name, vid)
        reason, error = video_status(load_download_record(root, cfg.name, vid), chunks_json)
        if reason == "ok":
            n = len(chunks_json["accepted"])
            cov.videos_unpublished += 1
            cov.chunks_unpublished += n
            reason, error = "not_published", f"rebuilt ({n} chunks); published when a rebuild next completes"
        reasons[reason] += 1
        detection = (chunks_json or {}).get("detection") or {}
        cov.missing.append({"video_id": vid, "reason": reason, "error": error or "",
                            "detection_rate": detection.get("detection_rate")})
    cov.missing_by_reason = dict(reasons.most_common())
    last = read_last_rebuild(root, cfg.name)
    # The coverage asset runs inside a rebuild: its own 'running' record is no news for coverage.json.
    if last is not None and last.state != FINISHED and not (write and last.state == RUNNING and not last.killed()):
        cov.last_rebuild = last.describe()
    if write:
        root.write_bytes(paths.coverage_path(root, cfg.name), json.dumps(asdict(cov), indent=1).encode())
    return cov


def _pct(a: int, b: int | None) -> str:
    return f"{a}/{b} ({100.0 * a / b:.1f}%)" if b else f"{a}"


def _rate(rate: float | None) -> str:
    return f"{100 * rate:.1f}%" if rate is not None else ""


def coverage_lines(cov: Coverage) -> list[str]:
    """The report's head; lines indented by two spaces belong to the line above."""
    lines = [cov.last_rebuild] if cov.last_rebuild else []
    lines += [
        f"videos rebuilt: {_pct(cov.videos_rebuilt, cov.videos_total)}",
        f"chunks rebuilt: {_pct(cov.chunks_rebuilt, cov.chunks_expected)}",
        f"frames: {cov.frames}   on disk: {cov.bytes / 1e6:.1f} MB",
    ]
    if cov.videos_unpublished:
        lines.append(f"rebuilt, not yet published: {cov.videos_unpublished} videos, {cov.chunks_unpublished} "
                     f"chunks (the catalog and shards are written when a rebuild completes)")
    if cov.manifest_rows_rejected:
        lines.append(f"manifest rows rejected: {cov.manifest_rows_rejected} (see manifest/errors.parquet)")
        lines += cov.manifest_rejections
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def coverage_markdown(cov: Coverage) -> str:
    head = [("  " if line.startswith("  ") else "") + f"- {_cell(line.strip())}" for line in coverage_lines(cov)]
    out = [f"### {cov.dataset} coverage", "", *head, "",
           "| split | videos | chunks | frames |", "|---|---|---|---|"]
    out += [f"| {k} | {v['videos']} | {v['chunks']} | {v['frames']} |" for k, v in sorted(cov.per_split.items())]
    if cov.missing:
        out += ["", "| missing video | reason | detected | error |", "|---|---|---|---|"]
        out += [f"| {m['video_id']} | {m['reason']} | {_rate(m.get('detection_rate'))} | {_cell(m['error'])} |"
                for m in cov.missing[:200]]
        if len(cov.missing) > 200:
            out.append(f"\n{len(cov.missing) - 200} more in coverage/coverage.json")
    return "\n".join(out)


def print_coverage(cov: Coverage, show_all: bool = False) -> None:
    """The report on the terminal; errors whole, wrapped. Unless ``show_all``: the first SHOWN_MISSING videos
    not rebuilt, and videos never attempted (a run stopped early) as one row."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if not cov.built and not cov.videos_total:
        console.print(f"[bold]{cov.dataset}[/]: nothing rebuilt yet (run `motionpipe rebuild {cov.dataset}`)")
        return
    console.print(f"[bold]{cov.dataset} coverage[/]")
    for line in coverage_lines(cov):
        console.print("  " + escape(line))
    table = Table("split", "videos", "chunks", "frames")
    for k, v in sorted(cov.per_split.items()):
        table.add_row(k, str(v["videos"]), str(v["chunks"]), str(v["frames"]))
    console.print(table)
    if cov.missing:
        missing = Table("missing video", "reason", "detected", title="not rebuilt (detected: person in % of "
                        "sampled frames)")
        missing.add_column("error", overflow="fold")
        unvisited = [m for m in cov.missing if m["reason"] == "not_attempted"] if not show_all else []
        shown = [m for m in cov.missing if show_all or m["reason"] != "not_attempted"]
        for m in shown[:None if show_all else SHOWN_MISSING]:
            missing.add_row(m["video_id"], m["reason"], _rate(m.get("detection_rate")), escape(m["error"]))
        if len(shown) > SHOWN_MISSING and not show_all:
            missing.add_row("…", f"{len(shown) - SHOWN_MISSING} more", "",
                            f"`motionpipe status {cov.dataset} --all` lists them")
        if unvisited:
            ids = ", ".join(m["video_id"] for m in unvisited[:3]) + (", …" if len(unvisited) > 3 else "")
            missing.add_row(f"{len(unvisited)} videos", "not_attempted", "",
                            f"no record yet ({ids}); `motionpipe status {cov.dataset} --all` lists them")
        console.print(missing)
        console.print("  by reason: " + ", ".join(f"{k}: {v}" for k, v in cov.missing_by_reason.items()))
