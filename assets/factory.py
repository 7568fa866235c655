"""One factory builds the same asset graph for every dataset: manifest → raw_video → detections/chunks/clips
(per video) → catalog/shards → coverage."""
from __future__ import annotations

import dagster as dg

from assets.clips.defs import video_pass_assets
from assets.ingest.defs import manifest_asset, raw_video_asset
from assets.shards.defs import dataset_assets


def video_partitions(dataset: str) -> dg.DynamicPartitionsDefinition:
    return dg.DynamicPartitionsDefinition(name=f"{dataset}_videos")


def video_job_name(dataset: str) -> str:
    return f"{dataset}_video_job"


def dataset_definitions(dataset: str) -> dg.Definitions:
    partitions = video_partitions(dataset)
    per_video = [raw_video_asset(dataset, partitions), video_pass_assets(dataset, partitions)]
    assets = [manifest_asset(dataset, partitions), *per_video, *dataset_assets(dataset)]
    jobs = [
        dg.define_asset_job(f"{dataset}_manifest_job", selection=dg.AssetSelection.assets([dataset, "manifest"])),
        dg.define_asset_job(video_job_name(dataset), partitions_def=partitions,
                            selection=dg.AssetSelection.assets(*per_video)),
        dg.define_asset_job(f"{dataset}_dataset_job",
                            selection=dg.AssetSelection.assets([dataset, "catalog"], [dataset, "shards"],
                                                               [dataset, "coverage"])),
    ]
    return dg.Definitions(assets=assets, jobs=jobs)
