"""Gather every video's outcome and clips into the dataset: the Parquet catalog and the WebDataset shards.

Samples are copied byte for byte from the per-video clip tars (no re-encoding), so a chunk's sha256 is the same
in its clip tar, in its shard and in the catalog.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from assets.dataset_config import DatasetConfig
from assets.ingest.download_stage import load_download_record
from assets.ingest.manifest_stage import read_manifest_videos
from assets.shards.splits import assign_splits
from motionpipe_version import __version__
from storage import paths
from storage.catalog import CHUNKS_SCHEMA, VIDEOS_SCHEMA, ChunkRow, VideoRow, write_rows
from storage.root import DataRoot
from storage.shards import ShardError, pack_shards, read_shard_manifest


class ShrinkRefused(RuntimeError):
    """A rebuild would publish fewer samples than the published dataset has: refused unless asked for
    (``--allow-shrink``), so a bad manifest, a network outage or a typo never erases a dataset."""


@dataclass
class DatasetSummary:
    n_videos: int
    n_videos_ok: int
    n_chunks: int
    n_shards: int
    content_hash: str
    bytes: int
    chunks_per_split: dict[str, int] = field(default_factory=dict)
    catalog_dir: str = ""
    shards_dir: str = ""


def read_video_chunks(root: DataRoot, dataset: str, video_id: str) -> dict | None:
    path = paths.chunks_path(root, dataset, video_id)
    return json.loads(root.read_bytes(path)) if root.exists(path) else None


def video_status(record, chunks: dict | None) -> tuple[str, str | None]:
    """One status per manifest video: 'ok' or why it gave no chunk."""
    if record is None:
        return "not_attempted", None
    if record.status != "ok":
        return record.status, record.error
    if chunks is None:
        return "not_processed", "downloaded; the video pass has not run"
    if chunks.get("error"):
        return chunks["error"], chunks.get("message")
    if chunks["accepted"]:
        return "ok", None
    # The detection rate says why (a person in 5% of the sampled frames), where the chunker's reasons say what.
    seen = (chunks.get("detection") or {}).get("summary")
    detection = f"; detection: {seen}" if seen else ""
    if not chunks["rejected"]:
        return "no_person", f"no valid person found (size / visibility rules){detection}"
    reasons = Counter(r["reason"].split(" (")[-1].rstrip(")") for r in chunks["rejected"])
    return "no_chunks", "; ".join(f"{n}x {r}" for r, n in reasons.most_common(3)) + detection


def published_samples(root: DataRoot, dataset: str) -> int:
    """Samples in the published dataset: the larger of the shard manifest's count and the catalog's chunk rows
    (0 when nothing is published yet)."""
    try:
        in_shards = read_shard_manifest(root, paths.shards_dir(root, dataset)).n_samples
    except (FileNotFoundError, ShardError):
        in_shards = 0
    catalog = paths.catalog_path(root, dataset, "chunks")
    in_catalog = 0
    if root.exists(catalog):
        import pyarrow.parquet as pq
        with root.fs.open(catalog, "rb") as f:
            in_catalog = pq.ParquetFile(f).metadata.num_rows
    return max(in_shards, in_catalog)


def _refuse_shrink(root: DataRoot, dataset: str, n_new: int, n_videos_ok: int, n_videos: int) -> None:
    before = published_samples(root, dataset)
    if n_new < before:
        raise ShrinkRefused(
            f"{dataset}: this rebuild has {n_new} samples ({n_videos_ok} of {n_videos} manifest videos usable), "
            f"fewer than the {before} published in {paths.shards_dir(root, dataset)}; the published shards and "
            f"catalog are kept. See why with `motionpipe status {dataset}`, or rerun with --allow-shrink to "
            f"publish the smaller dataset")


def build_dataset(cfg: DatasetConfig, root: DataRoot, allow_shrink: bool = False) -> DatasetSummary:
    """Catalog + shards of every usable video. Refuses (:class:`ShrinkRefused`) to replace a published dataset
    with fewer samples unless ``allow_shrink``."""
    manifest = read_manifest_videos(root, cfg.name)
    video_rows: list[VideoRow] = []
    accepted: dict[str, list[dict]] = {}
    for mv in manifest:
        vid = mv["video_id"]
        record = load_download_record(root, cfg.name, vid)
        chunks = read_video_chunks(root, cfg.name, vid)
        status, error = video_status(record, chunks)
        if status == "ok":
            accepted[vid] = chunks["accepted"]
        r = record
        video_rows.append(VideoRow(
            video_id=vid, dataset=cfg.name, url=mv.get("url"), status=status, error=error,
            format_id=r and r.format_id, ext=r and r.ext, width=r and r.width, height=r and r.height,
            fps=r and r.fps, sha256=r and r.sha256, bytes=r and r.filesize, attempts=r.attempts if r else 0,
            downloaded_at=r and r.downloaded_at, ref_height=mv.get("ref_height"), ref_fps=mv.get("ref_fps"),
            n_chunks=len(accepted.get(vid, [])),
        ))

    split_of = assign_splits(cfg, manifest, accepted)
    samples = [(split_of[c["chunk_id"]], paths.clips_path(root, cfg.name, vid), c["chunk_id"])
               for vid, chunks in accepted.items() for c in chunks]
    if not allow_shrink:
        _refuse_shrink(root, cfg.name, len(samples), len(accepted), len(video_rows))
    shards_dir = paths.shards_dir(root, cfg.name)
    index = pack_shards(root, shards_dir, samples, max_samples_per_shard=cfg.shards.max_samples,
                        max_shard_bytes=cfg.shards.max_bytes)

    chunk_rows = []
    for vid, chunks in accepted.items():
        for c in chunks:
            replay = "ref_start" in c
            start, end = (c["ref_start"], c["ref_end"]) if replay else (c["src_start"], c["src_end"])
            provenance = {"source": "manifest" if replay else "detector", "rules": cfg.fingerprint(),
                          "motionpipe": __version__}
            if not replay:
                provenance.update(person_box=c.get("person_box"), closed_because=c.get("closed_because"))
            chunk_rows.append(ChunkRow(
                chunk_id=c["chunk_id"], video_id=vid, dataset=cfg.name, split=split_of[c["chunk_id"]],
                start=start, end=end, src_start=c["src_start"], src_end=c["src_end"], box=tuple(c["box"]),
                fps=float(c["fps"]), n_frames=c["n_frames"], width=c["width"], height=c["height"],
                frame_format=c["frame_format"], jpeg_quality=c["jpeg_quality"], out_of_frame=c["out_of_frame"],
                sha256=c["sha256"], shard=index.shard_of[c["chunk_id"]], bytes=c["bytes"],
                provenance=json.dumps(provenance, sort_keys=True),
            ))
    chunk_rows.sort(key=lambda r: r.chunk_id)
    write_rows(root, paths.catalog_path(root, cfg.name, "videos"), video_rows, VIDEOS_SCHEMA)
    write_rows(root, paths.catalog_path(root, cfg.name, "chunks"), chunk_rows, CHUNKS_SCHEMA)
    per_split = Counter(r.split for r in chunk_rows)
    return DatasetSummary(
        n_videos=len(video_rows), n_videos_ok=sum(v.status == "ok" for v in video_rows), n_chunks=len(chunk_rows),
        n_shards=len(index.manifest.shards), content_hash=index.content_hash,
        bytes=sum(s.bytes for s in index.manifest.shards), chunks_per_split=dict(per_split),
        catalog_dir=paths.catalog_path(root, cfg.name, "chunks").rpartition("/")[0], shards_dir=shards_dir,
    )
