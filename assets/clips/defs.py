"""Dagster assets of the clips domain: one streamed pass per video yields its detections (the detect domain's
asset, assets/detect/defs.py), chunks and clips."""

import dagster as dg

from assets.clips.video_stage import run_video_pass
from assets.dataset_config import load_dataset_config
from assets.detect.defs import detections_result, detections_spec
from assets.keys import CHUNKS, CLIPS, DETECTIONS, dataset_group, dataset_key, video_pass_name
from assets.resources import DataRootResource, DetectorResource
from assets.versions import STAGE_VERSIONS


def video_pass_assets(dataset: str, partitions: dg.DynamicPartitionsDefinition) -> dg.AssetsDefinition:
    version = STAGE_VERSIONS["video_pass"]
    chunks, clips = dataset_key(dataset, CHUNKS), dataset_key(dataset, CLIPS)
    specs = [
        detections_spec(dataset, partitions, version),
        dg.AssetSpec(chunks, deps=[dataset_key(dataset, DETECTIONS)], group_name=dataset_group(dataset),
                     code_version=version, partitions_def=partitions,
                     description="Chunk spans and crop boxes, and every rejected span with its reason."),
        dg.AssetSpec(clips, deps=[chunks], group_name=dataset_group(dataset),
                     code_version=version, partitions_def=partitions, kinds={"webdataset"},
                     description="Cropped, resized chunks of this video as WebDataset samples."),
    ]

    @dg.multi_asset(specs=specs, name=video_pass_name(dataset), can_subset=False)
    def _video_pass(context: dg.AssetExecutionContext, data_root: DataRootResource, detector: DetectorResource):
        cfg = load_dataset_config(dataset)
        s = run_video_pass(cfg, data_root.get(), context.partition_key, detector)
        yield detections_result(dataset, s)
        yield dg.MaterializeResult(
            asset_key=chunks,
            metadata={"accepted": s.n_chunks, "rejected": len(s.rejected),
                      "rejections": dg.MetadataValue.json(s.rejected[:50]), "cached": s.cached},
        )
        yield dg.MaterializeResult(
            asset_key=clips,
            metadata={"chunks": s.n_chunks, "frames": s.n_chunk_frames, "bytes": s.clips_bytes,
                      "sha256": s.clips_sha256, "seconds": round(s.elapsed_s, 2), "cached": s.cached},
            data_version=dg.DataVersion(s.clips_sha256[:16]),
        )

    return _video_pass
