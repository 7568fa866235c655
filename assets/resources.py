"""Resources: where data lives, how videos are fetched, which detector runs, where models train. Plain defaults;
`pipelines/resources.py` fills them from the resolved settings (environment, command-line flags).

Kept free of asset imports so assets may type-hint these classes without a cycle; they depend on dagster and storage.
"""
from __future__ import annotations

import dagster as dg
from pydantic import Field

from storage.root import DataRoot
from storage.settings import DEFAULT_DATA_ROOT


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
    max_bytes: int | None = Field(default=None, gt=0, description=(
        "one video's download size bound, bytes (None: the dataset config's download.max_bytes)"))
    max_seconds: float | None = Field(default=None, gt=0, description=(
        "one download attempt's time bound, seconds (None: the dataset config's download.max_seconds)"))
    enable_file_urls: bool = Field(default=True, description="allow file:// sources (offline sample, tests)")
    mirror: str | None = Field(default=None, description=(
        "base URL (file:// or http[s]://) holding already-downloaded videos as <video_id>.mp4; used instead of "
        "YouTube, e.g. the video folder of an earlier video-preprocessing run"))
    cache_dir: str | None = Field(default=None, description=(
        "cache of fetched manifests and the offline sample's upstream videos (None: ~/.cache/motionpipe)"))


class DetectorResource(dg.ConfigurableResource):
    """Which person detector runs: the dataset's choice unless overridden here."""

    backend: str | None = Field(default=None, description="auto | ssd | mediapipe | detectron2 (None: dataset config)")
    detectron2_weights: str | None = Field(default=None, description="path to Keypoint R-CNN weights (.pkl/.pth)")


class TrainingResource(dg.ConfigurableResource):
    """Where the model assets train and score: the device and process layout (CPU, one GPU, or several through
    torchrun), and the run settings file. The experiment itself (configs, params.yaml) is not set here."""

    device: str = Field(default="auto", description="auto | cpu | cuda")
    nproc_per_node: int = Field(default=1, description="> 1: torchrun with this many processes per node")
    nnodes: int = Field(default=1, description="nodes of a multi-node torchrun (needs rdzv_endpoint)")
    rdzv_endpoint: str | None = Field(default=None, description="host:port of the torchrun rendezvous")
    dist_timeout_s: float = Field(default=600, gt=0, description=(
        "seconds a node waits for the others to join the rendezvous, and any collective for the other ranks"))
    workers: int | None = Field(default=None, description="data loader workers per process (None: the config's)")
    vgg_weights: str | None = Field(default=None, description="torchvision VGG-19 weight file (offline machines)")
    params_file: str | None = Field(default=None, description="run settings (default: the project's params.yaml)")
    config_dir: str | None = Field(default=None, description="folder of model configs that override the shipped ones")

    def launch(self):
        from assets.models.launch import Launch
        return Launch(self.device, self.nproc_per_node, self.nnodes, self.rdzv_endpoint, self.workers,
                      self.vgg_weights, self.dist_timeout_s)

    def params(self, dataset: str):
        from training.run_params import PARAMS_FILE, load_params
        return load_params(self.params_file or PARAMS_FILE).for_dataset(dataset)

    def torch_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch
        return "cuda" if torch.cuda.is_available() else "cpu"
