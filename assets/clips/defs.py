"""Dagster assets of the clips domain: one streamed pass per video yields its detections, chunks and clips."""

import dagster as dg

from assets.clips.video_stage import run_video_pass
from assets.dataset_config import load_dataset_config
from assets.versions import STAGE_VERSIONS
from assets.resources import DataRootResource, DetectorResource


def video_pass_assets(dataset: str, partitions: dg.DynamicPartitionsDefinition) -> dg.AssetsDefinition:
    version = STAGE_VERSIONS["video_pass"]
    raw = dg.AssetKey([dataset, "raw_video"])
    specs = [
        dg.AssetSpec([dataset, "detections"], deps=[raw], group_name=dataset, code_version=version,
                     partitions_def=partitions,
                     description="Person boxes on every k-th frame and the shot cuts (discovery datasets)."),
        dg.AssetSpec([dataset, "chunks"], deps=[dg.AssetKey([dataset, "detections"])], group_name=dataset,
                     code_version=version, partitions_def=partitions,
                     description="Chunk spans and crop boxes, and every rejected span with its reason."),
        dg.AssetSpec([dataset, "clips"], deps=[dg.AssetKey([dataset, "chunks"])], group_name=dataset,
                     code_version=version, partitions_def=partitions, kinds={"webdataset"},
                     description="Cropped, resized chunks of this video as WebDataset samples."),
    ]

    @dg.multi_asset(specs=specs, name=f"{dataset}_video_pass", can_subset=False)
    def _video_pass(context: dg.AssetExecutionContext, data_root: DataRootResource, detector: DetectorResource):
        cfg = load_dataset_config(dataset)
        s = run_video_pass(cfg, data_root.get(), context.partition_key, detector)
        yield dg.MaterializeResult(
            asset_key=[dataset, "detections"],
            metadata={"detector": s.detector, "sampled_frames": s.n_sampled_frames,
                      "frames_with_person": s.n_frames_with_person, "detection_rate": s.detection_rate,
                      "valid_person_rate": s.valid_person_rate, "tracks": s.n_tracks, "cuts": len(s.cuts),
                      "frames": s.n_frames, "cached": s.cached},
        )
        yield dg.MaterializeResult(
            asset_key=[dataset, "chunks"],
            metadata={"accepted": s.n_chunks, "rejected": len(s.rejected),
                      "rejections": dg.MetadataValue.json(s.rejected[:50]), "cached": s.cached},
        )
        yield dg.MaterializeResult(
            asset_key=[dataset, "clips"],
            metadata={"chunks": s.n_chunks, "frames": s.n_chunk_frames, "bytes": s.clips_bytes,
                      "sha256": s.clips_sha256, "seconds": round(s.elapsed_s, 2), "cached": s.cached},
            data_version=dg.DataVersion(s.clips_sha256[:16]),
        )

    return _video_pass
