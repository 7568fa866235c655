"""Dagster assets of the ingest domain: the validated manifest and the per-video download."""

import dagster as dg

from assets.dataset_config import load_dataset_config
from assets.ingest.download import DownloadRecord
from assets.ingest.download_stage import fetch_video
from assets.ingest.manifest_stage import build_manifest
from assets.keys import MANIFEST, RAW_VIDEO, dataset_group, dataset_key
from assets.resources import DataRootResource, DownloaderResource
from assets.versions import STAGE_VERSIONS


class ManifestConfig(dg.Config):
    source: str | None = None
    """Manifest to read instead of the dataset's default: a local path or URL (taichi csv, TED clip list or id list)."""
    limit: int | None = None
    """Keep only the first N videos of the manifest (in manifest order)."""


def manifest_asset(dataset: str, partitions: dg.DynamicPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=dataset_key(dataset, MANIFEST),
        group_name=dataset_group(dataset),
        code_version=STAGE_VERSIONS["manifest"],
        description=f"Validated {dataset} manifest (videos, clips, rejected rows); registers one partition per video.",
        kinds={"parquet"},
    )
    def _manifest(context: dg.AssetExecutionContext, config: ManifestConfig, data_root: DataRootResource,
                  downloader: DownloaderResource) -> dg.MaterializeResult:
        cfg = load_dataset_config(dataset)
        summary = build_manifest(cfg, data_root.get(), source=config.source, limit=config.limit,
                                 cache_dir=downloader.cache_dir)
        known = set(context.instance.get_dynamic_partitions(partitions.name))
        new = [v for v in summary.video_ids if v not in known]
        if new:
            context.instance.add_dynamic_partitions(partitions.name, new)
        for err in summary.errors[:20]:
            context.log.warning(f"manifest row {err.row}: {err.reason}")
        return dg.MaterializeResult(
            metadata={
                "source": summary.source,
                "sha256": summary.sha256,
                "videos": len(summary.video_ids),
                "clips": summary.n_clips,
                "rejected_rows": len(summary.errors),
                "new_partitions": len(new),
            },
            data_version=dg.DataVersion(summary.sha256[:16]),
        )

    return _manifest


def video_page_metadata(record: DownloadRecord) -> dict:
    """What a researcher reads on a video partition's page: where the video comes from (a link), its title and
    duration, and what was actually fetched (format, resolution, fps, bytes, seconds), as the record has them."""
    source = record.source_url or record.url
    meta = {
        "url": dg.MetadataValue.url(source),
        "status": record.status, "attempts": record.attempts, "format_id": record.format_id or "",
        "width": record.width or 0, "height": record.height or 0, "fps": float(record.fps or 0.0),
        "resolution": f"{record.width}x{record.height}" if record.width and record.height else "",
        "below_reference": bool(record.below_reference), "sha256": record.sha256 or "", "reused": record.reused,
    }
    if record.url != source:  # a mirror's copy
        meta["fetched_from"] = dg.MetadataValue.url(record.url)
    if record.title:
        meta["title"] = dg.MetadataValue.text(record.title)
    if record.duration_s:
        meta["duration_s"] = dg.MetadataValue.float(float(record.duration_s))
    if record.filesize:
        meta["download_bytes"] = dg.MetadataValue.int(int(record.filesize))
    if record.elapsed_s:  # a reused file's record keeps the seconds of the download that fetched it
        meta["download_seconds"] = dg.MetadataValue.float(float(record.elapsed_s))
    if record.downloaded_at:
        meta["downloaded_at"] = record.downloaded_at
    return meta


def raw_video_asset(dataset: str, partitions: dg.DynamicPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=dataset_key(dataset, RAW_VIDEO),
        deps=[dataset_key(dataset, MANIFEST)],
        partitions_def=partitions,
        group_name=dataset_group(dataset),
        code_version=STAGE_VERSIONS["download"],
        description="The source video as yt-dlp obtained it, with the format, resolution and fps actually got.",
        kinds={"youtube", "video"},
    )
    def _raw_video(context: dg.AssetExecutionContext, data_root: DataRootResource,
                   downloader: DownloaderResource) -> dg.MaterializeResult:
        cfg = load_dataset_config(dataset)
        record = fetch_video(cfg, data_root.get(), context.partition_key, downloader)
        meta = video_page_metadata(record)
        if record.status != "ok":
            # The reason is on disk (download.json) for the coverage report; the partition stays unmaterialized
            # so a later run retries it.
            raise dg.Failure(description=f"{context.partition_key}: {record.status}: {record.error}",
                             metadata={**meta, "error": record.error or ""}, allow_retries=False)
        return dg.MaterializeResult(metadata=meta, data_version=dg.DataVersion(record.sha256[:16]))

    return _raw_video
