"""Resources: where data lives, how videos are fetched, which detector runs. Local defaults, environment overrides.

Kept free of asset imports so assets may type-hint these classes without a cycle.
"""
from __future__ import annotations

import os

import dagster as dg
from pydantic import Field

from storage.root import DATA_ROOT_ENV, DEFAULT_DATA_ROOT, DataRoot


class DataRootResource(dg.ConfigurableResource):
    """The one data root: a local folder by default, any fsspec URL (s3://, gs://, ...) otherwise."""

    url: str = Field(default=DEFAULT_DATA_ROOT, description="local folder or fsspec URL")

    def get(self) -> DataRoot:
        return DataRoot(self.url)


class DownloaderResource(dg.ConfigurableResource):
    """Network-facing download options (per deployment, not per dataset)."""

    cookies_file: str | None = Field(default=None, description="Netscape cookies file passed to yt-dlp")
    proxy: str | None = Field(default=None, description="proxy URL passed to yt-dlp")
    rate_limit_bytes: int | None = Field(default=None, description="download rate cap, bytes/s")
    enable_file_urls: bool = Field(default=True, description="allow file:// sources (offline sample, tests)")
    mirror: str | None = Field(default=None, description=(
        "base URL (file:// or http[s]://) holding already-downloaded videos as <video_id>.mp4; used instead of "
        "YouTube, e.g. the video folder of an earlier video-preprocessing run"))


class DetectorResource(dg.ConfigurableResource):
    """Which person detector runs: the dataset's choice unless overridden here."""

    backend: str | None = Field(default=None, description="auto | mediapipe | detectron2 (None: dataset config)")
    detectron2_weights: str | None = Field(default=None, description="path to Keypoint R-CNN weights (.pkl/.pth)")


def default_resources() -> dict[str, dg.ConfigurableResource]:
    env = os.environ
    return {
        "data_root": DataRootResource(url=env.get(DATA_ROOT_ENV, DEFAULT_DATA_ROOT)),
        "downloader": DownloaderResource(
            cookies_file=env.get("MOTIONPIPE_COOKIES") or None,
            proxy=env.get("MOTIONPIPE_PROXY") or None,
            rate_limit_bytes=int(env["MOTIONPIPE_RATE_LIMIT"]) if env.get("MOTIONPIPE_RATE_LIMIT") else None,
            mirror=env.get("MOTIONPIPE_MIRROR") or None,
        ),
        "detector": DetectorResource(
            backend=env.get("MOTIONPIPE_DETECTOR") or None,
            detectron2_weights=env.get("MOTIONPIPE_DETECTRON2_WEIGHTS") or None,
        ),
    }
