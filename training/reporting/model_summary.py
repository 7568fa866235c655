"""``motionpipe models``: parameter counts per network of every config and experiment (a variant of
``training/experiments/variants.yaml``), against the official figures.

The official figures were counted from the official module definitions (model_anchors.md, "Params"); a
config gets them only when it has the official architecture (the ``*-sample-64`` configs are shrunk, and
Monkey-Net never had a TaiChi-256 config: ``monkeynet-taichi-256`` reuses the vox-256 architecture, so it is
compared with vox-256's counts). Models are built on the ``meta`` device: no memory, no initialisation cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from training.config import CONFIG_DIR
from training.models import build_avd_network
from training.models import build_model
from training.models.blocks import count_parameters

M = 1e6
# official parameter counts (model_anchors.md); 'total' = generator + motion networks, no discriminator, no AVD
OFFICIAL = {
    "fomm": {"kp_detector": 14.215 * M, "generator": 45.575 * M, "discriminator": 2.759 * M, "total": 59.79 * M},
    "mraa": {"region_predictor": 14.147 * M, "bg_predictor": 6.282 * M, "generator": 45.575 * M,
             "avd": 2.291 * M, "total": 66.0 * M},
    "tpsmm": {"kp_detector": 11.228 * M, "bg_predictor": 11.189 * M, "dense_motion_network": 37.941 * M,
              "inpainting_network": 24.737 * M, "avd": 2.584 * M, "total": 85.10 * M},
    "monkeynet": {"kp_detector": 14.13 * M, "generator": 80.63 * M, "discriminator": 1.72 * M, "total": 94.8 * M},
}
# configs with an official architecture -> the anchor set they are compared with
OFFICIAL_CONFIGS = {
    "fomm-taichi-256": "fomm", "fomm-ted-384": "fomm",
    "mraa-taichi-256": "mraa", "mraa-ted-384": "mraa",
    "tpsmm-taichi-256": "tpsmm", "tpsmm-ted-384": "tpsmm",
    "monkeynet-vox-256": "monkeynet", "monkeynet-taichi-256": "monkeynet",
    "fomm-taichi512-512": "fomm", "mraa-taichi512-512": "mraa",  # the same networks at 512 (convolutional)
}
VARIANT_DATASET = "taichi"  # the variants (training/experiments) are counted as the papers ran them: TaiChiHD-256
NOT_IN_TOTAL = ("discriminator", "avd")
# sub-networks the anchors also count: printed as '<network>.<sub>' rows (not added to the total)
SUBNETWORKS = {"fomm": {"generator.dense_motion_network": 37.730 * M},
               "mraa": {"generator.pixelwise_flow_predictor": 37.730 * M},
               "monkeynet": {"generator.dense_motion_module": 14.16 * M}}


@dataclass(frozen=True)
class Row:
    config: str
    network: str
    params: int
    official: float | None

    @property
    def diff_percent(self) -> float | None:
        return None if self.official is None else 100.0 * (self.params - self.official) / self.official


def count_config(cfg) -> list[Row]:
    """Per-network parameter counts of ``cfg`` (+ AVD where the model has one) and the total without D/AVD."""
    from training.models.vgg import Vgg19

    with torch.device("meta"):
        model = build_model(cfg, vgg=Vgg19())
        avd = build_avd_network(cfg)
    anchors = OFFICIAL.get(OFFICIAL_CONFIGS.get(cfg.name, ""), {})
    counts = {name: count_parameters(net) for name, net in model.networks().items()}
    if avd is not None:
        counts["avd"] = count_parameters(avd)
    rows = [Row(cfg.name, name, n, anchors.get(name)) for name, n in counts.items()]
    subs = SUBNETWORKS.get(cfg.model, {})
    official_subs = SUBNETWORKS.get(OFFICIAL_CONFIGS.get(cfg.name, ""), {})
    for path in subs:
        try:
            sub = model.get_submodule(path)
        except AttributeError:  # e.g. a generator without a dense motion network
            continue
        if sub is not None:
            rows.append(Row(cfg.name, path, count_parameters(sub), official_subs.get(path)))
    total = sum(n for name, n in counts.items() if name not in NOT_IN_TOTAL)
    rows.append(Row(cfg.name, "total (no D/AVD)", total, anchors.get("total")))
    return rows


def config_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def summary_config(name: str):
    """The config ``motionpipe models`` counts for a name: a variant (``mraa-k5``) on TaiChiHD-256, else a config
    name in training/configs or a YAML path."""
    from training.config import load_config
    from training.experiments.variants import run_config, variant_names

    return run_config(name, VARIANT_DATASET) if name in variant_names() else load_config(name)


def summary_names() -> list[str]:
    """Every config, then every variant: what ``motionpipe models`` lists by default."""
    from training.experiments.variants import variant_names

    return config_names() + list(variant_names())


def format_rows(rows: list[Row]) -> str:
    lines = [f"{'config':<32} {'network':<36} {'params':>14} {'official':>12} {'diff':>8}"]
    last = None
    for r in rows:
        official = "n/a" if r.official is None else f"{r.official / M:.3f} M"
        diff = "n/a" if r.diff_percent is None else f"{r.diff_percent:+.2f}%"
        name = r.config if r.config != last else ""
        lines.append(f"{name:<32} {r.network:<36} {r.params:>14,} {official:>12} {diff:>8}")
        last = r.config
    return "\n".join(lines)
