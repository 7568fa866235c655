"""One factory builds the same asset graph for every dataset: manifest → raw_video → detections/chunks/clips
(per video) → catalog/shards → coverage."""
from __future__ import annotations

import dagster as dg

from assets.clips.defs import video_pass_assets
from assets.ingest.defs import manifest_asset, raw_video_asset
from assets.keys import (CATALOG, COVERAGE, MANIFEST, SHARDS, dataset_job_name, dataset_key, manifest_job_name,
                         video_job_name, video_partitions_name)
from assets.shards.defs import dataset_assets


def video_partitions(dataset: str) -> dg.DynamicPartitionsDefinition:
    return dg.DynamicPartitionsDefinition(name=video_partitions_name(dataset))


def dataset_definitions(dataset: str) -> dg.Definitions:
    partitions = video_partitions(dataset)
    per_video = [raw_video_asset(dataset, partitions), video_pass_assets(dataset, partitions)]
    assets = [manifest_asset(dataset, partitions), *per_video, *dataset_assets(dataset)]
    jobs = [
        dg.define_asset_job(manifest_job_name(dataset), selection=dg.AssetSelection.assets(
            dataset_key(dataset, MANIFEST))),
        dg.define_asset_job(video_job_name(dataset), partitions_def=partitions,
                            selection=dg.AssetSelection.assets(*per_video)),
        dg.define_asset_job(dataset_job_name(dataset), selection=dg.AssetSelection.assets(
            *(dataset_key(dataset, stage) for stage in (CATALOG, SHARDS, COVERAGE)))),
    ]
    return dg.Definitions(assets=assets, jobs=jobs)
