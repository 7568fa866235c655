"""Which resources a deployment runs with: the classes of `assets/resources.py`, filled from the resolved settings
(`storage/settings.py`), so the definitions and their resources read one and the same object."""
from __future__ import annotations

from pathlib import Path

import dagster as dg

from assets.resources import DataRootResource, DetectorResource, DownloaderResource, TrainingResource
from storage.settings import Settings


def downloader_resource(settings: Settings, **overrides) -> DownloaderResource:
    """The downloader options of `settings` (None: the dataset config's defaults), with ``overrides`` (command-line
    options) on top. A new resource, not ``model_copy``: Dagster configures a run's resource from its constructor
    arguments."""
    options = dict(cookies_file=settings.cookies, proxy=settings.proxy, rate_limit_bytes=settings.rate_limit_bytes,
                   mirror=settings.mirror, max_bytes=settings.max_download_bytes,
                   max_seconds=settings.max_download_seconds, cache_dir=settings.cache_dir)
    return DownloaderResource(**{**options, **overrides})


def training_resource(settings: Settings) -> TrainingResource:
    return TrainingResource(device=settings.device, nproc_per_node=settings.nproc_per_node, nnodes=settings.nnodes,
                            rdzv_endpoint=settings.rdzv_endpoint, dist_timeout_s=settings.dist_timeout,
                            vgg_weights=settings.vgg19_weights,
                            params_file=settings.params_file, config_dir=settings.config_dir)


def default_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    return {
        "training": training_resource(settings),
        "pipes_subprocess_client": dg.PipesSubprocessClient(cwd=str(Path(__file__).resolve().parents[1])),
        "data_root": DataRootResource(url=settings.data_root),
        "downloader": downloader_resource(settings),
        "detector": DetectorResource(backend=settings.detector, detectron2_weights=settings.detectron2_weights),
    }
