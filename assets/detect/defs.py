"""The detections asset of the detect domain: person boxes on every k-th frame and the shot cuts of one video.

It is materialized by the clips stage's single streamed pass (assets/clips/defs.py), which decodes each video once
for detection, chunking and cropping; its spec and what it reports live here, with the detectors."""
from __future__ import annotations

import dagster as dg

from assets.keys import DETECTIONS, RAW_VIDEO, dataset_group, dataset_key


def detections_spec(dataset: str, partitions: dg.PartitionsDefinition, code_version: str) -> dg.AssetSpec:
    return dg.AssetSpec(dataset_key(dataset, DETECTIONS), deps=[dataset_key(dataset, RAW_VIDEO)],
                        group_name=dataset_group(dataset), code_version=code_version, partitions_def=partitions,
                        description="Person boxes on every k-th frame and the shot cuts (discovery datasets).")


def detections_result(dataset: str, s) -> dg.MaterializeResult:
    """`s`: the video pass's summary (assets/clips/video_stage.py)."""
    return dg.MaterializeResult(
        asset_key=dataset_key(dataset, DETECTIONS),
        metadata={"detector": s.detector, "sampled_frames": s.n_sampled_frames,
                  "frames_with_person": s.n_frames_with_person, "detection_rate": s.detection_rate,
                  "valid_person_rate": s.valid_person_rate, "tracks": s.n_tracks, "cuts": len(s.cuts),
                  "frames": s.n_frames, "cached": s.cached},
    )
