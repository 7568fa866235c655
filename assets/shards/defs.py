"""Dagster assets of the shards domain: catalog + WebDataset shards, the coverage report, and their checks."""

import dagster as dg

from assets.dataset_config import load_dataset_config
from assets.keys import (CATALOG, CLIPS, COVERAGE, RAW_VIDEO, SHARDS, catalog_and_shards_name, dataset_group,
                         dataset_key)
from assets.resources import DataRootResource
from assets.shards.build import build_dataset
from assets.shards.checks import run_checks
from assets.shards.coverage import compute_coverage, coverage_markdown
from assets.versions import STAGE_VERSIONS

CHECKS = {
    "videos_disjoint_splits": "No video has chunks in both train and test.",
    "chunk_rules": "Every chunk's frame count, length and resolution follow the dataset's rules.",
    "catalog_matches_shards": "Catalog rows and shard samples agree (keys, frame counts, sha256).",
}


class PublishConfig(dg.Config):
    allow_shrink: bool = False
    """Publish even when the rebuild has fewer samples than the published shards and catalog (refused by default:
    a bad manifest or a network outage must not erase a dataset)."""


def dataset_assets(dataset: str) -> list[dg.AssetsDefinition]:
    clips = dataset_key(dataset, CLIPS)
    catalog_key, shards_key = dataset_key(dataset, CATALOG), dataset_key(dataset, SHARDS)

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(catalog_key, deps=[clips, dataset_key(dataset, RAW_VIDEO)],
                         group_name=dataset_group(dataset), code_version=STAGE_VERSIONS["shards"], kinds={"parquet"},
                         description="Parquet catalog: one row per video (status, error, format) and per chunk."),
            dg.AssetSpec(shards_key, deps=[clips], group_name=dataset_group(dataset),
                         code_version=STAGE_VERSIONS["shards"],
                         kinds={"webdataset"}, description="WebDataset tar shards per split, with sidecars."),
        ],
        check_specs=[dg.AssetCheckSpec(name, asset=shards_key, description=d) for name, d in CHECKS.items()],
        name=catalog_and_shards_name(dataset),
        can_subset=False,
    )
    def _catalog_and_shards(context: dg.AssetExecutionContext, config: PublishConfig, data_root: DataRootResource):
        cfg, root = load_dataset_config(dataset), data_root.get()
        s = build_dataset(cfg, root, allow_shrink=config.allow_shrink)
        version = dg.DataVersion(s.content_hash[:16])
        yield dg.MaterializeResult(
            asset_key=catalog_key, data_version=version,
            metadata={"videos": s.n_videos, "videos_ok": s.n_videos_ok, "chunks": s.n_chunks,
                      "path": s.catalog_dir},
        )
        yield dg.MaterializeResult(
            asset_key=shards_key, data_version=version,
            metadata={"shards": s.n_shards, "content_hash": s.content_hash, "bytes": s.bytes,
                      **{f"chunks_{k}": v for k, v in s.chunks_per_split.items()}, "path": s.shards_dir},
        )
        for result in run_checks(cfg, root):
            yield dg.AssetCheckResult(asset_key=shards_key, check_name=result.name, passed=result.passed,
                                      metadata={"problems": dg.MetadataValue.json(result.problems[:50]),
                                                "checked": result.checked})

    @dg.asset(
        key=dataset_key(dataset, COVERAGE),
        deps=[catalog_key, shards_key],
        group_name=dataset_group(dataset),
        code_version=STAGE_VERSIONS["coverage"],
        description="What of the manifest was rebuilt, what was not, and why.",
    )
    def _coverage(context: dg.AssetExecutionContext, data_root: DataRootResource) -> dg.MaterializeResult:
        cfg, root = load_dataset_config(dataset), data_root.get()
        cov = compute_coverage(cfg, root, write=True)
        return dg.MaterializeResult(metadata={
            "videos_rebuilt": cov.videos_rebuilt, "videos_in_manifest": cov.videos_total,
            "chunks_rebuilt": cov.chunks_rebuilt,
            "chunks_in_manifest": cov.chunks_expected if cov.chunks_expected is not None else -1,
            "frames": cov.frames, "bytes_on_disk": cov.bytes,
            "missing_by_reason": dg.MetadataValue.json(cov.missing_by_reason),
            "report": dg.MetadataValue.md(coverage_markdown(cov)),
        })

    return [_catalog_and_shards, _coverage]
