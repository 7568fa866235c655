"""MRAA's toy experiment (Sec. 4.1, Fig. 5; supplement Sec. 1) and ``motionpipe toy``.

Every network of ``angle_nets`` is trained on nested training sets of growing size, with the paper's recipe
(L1 on the angle, ``epochs`` epochs, batch 8, Adam at 1e-4), and scored by its mean absolute angle error, in
degrees, on one fixed test set of 128. The result is a JSON table and a plot of test error against training-set
size, one line per network, as the paper's Fig. 5.

``ToyConfig.reduced()`` (the default of ``motionpipe toy``) is the same experiment at 32x32 with narrower
networks and training sets up to 256 (7 minutes on one thread of a busy 2-core machine); ``ToyConfig.full()``
(``--full``) is the paper's sweep, 32 to 1,024 samples at 64x64 with MRAA's region-predictor widths (many hours
on a CPU: ``--device cuda``).

Seeds: the training pool, the test set, every network's initialisation and every run's batch order come from
``seed`` alone, so a run is repeatable on one machine.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from training.experiments.angle_nets import NETWORKS, NetSize, build_angle_net
from training.experiments.rectangles import Rectangles, make_rectangles

PAPER_SIZES = (32, 64, 128, 256, 512, 1024)


@dataclass(frozen=True)
class ToyConfig:
    net: NetSize = field(default_factory=NetSize)
    train_sizes: tuple[int, ...] = PAPER_SIZES
    test_size: int = 128
    epochs: int = 100
    batch_size: int = 8
    lr: float = 1e-4
    networks: tuple[str, ...] = NETWORKS
    seed: int = 0

    @classmethod
    def full(cls) -> "ToyConfig":
        return cls()

    @classmethod
    def reduced(cls) -> "ToyConfig":
        return cls(net=NetSize(image_size=32, block_expansion=8, max_features=64, num_blocks=3),
                   train_sizes=(32, 64, 128, 256))


@dataclass
class ToyResult:
    config: ToyConfig
    errors: dict[str, dict[int, float]]  # network -> training-set size -> mean |angle error| on the test set (deg)
    seconds: dict[str, dict[int, float]]  # network -> training-set size -> training time

    def to_json(self) -> dict:
        return {"config": asdict(self.config),
                "test_error_deg": {k: {str(n): e for n, e in v.items()} for k, v in self.errors.items()},
                "train_seconds": {k: {str(n): s for n, s in v.items()} for k, v in self.seconds.items()}}

    def ordering_holds(self) -> bool:
        """The paper's finding: pca < regression < naive at every training-set size (networks that were run)."""
        order = [n for n in ("pca", "regression", "naive") if n in self.errors]
        return all(self.errors[a][n] < self.errors[b][n]
                   for a, b in zip(order, order[1:]) for n in self.config.train_sizes)


def train_one(name: str, train: Rectangles, test: Rectangles, cfg: ToyConfig, seed: int,
              device: torch.device) -> float:
    """Train network ``name`` on ``train`` with the paper's recipe; its mean |error| in degrees on ``test``."""
    torch.manual_seed(seed)
    net = build_angle_net(name, cfg.net).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    order = torch.Generator().manual_seed(seed)
    images, targets = train.images.to(device), torch.deg2rad(train.angles).to(device)
    net.train()
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(train), generator=order).to(device)
        for lo in range(0, len(train), cfg.batch_size):
            idx = perm[lo:lo + cfg.batch_size]
            loss = (net(images[idx]) - targets[idx]).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return evaluate(net, test, device)


@torch.no_grad()
def evaluate(net: torch.nn.Module, test: Rectangles, device: torch.device, batch_size: int = 64) -> float:
    """Mean absolute angle error in degrees (eval mode: BatchNorm on its running statistics)."""
    net.eval()
    preds = torch.cat([net(test.images[i:i + batch_size].to(device)).cpu() for i in range(0, len(test), batch_size)])
    return float((torch.rad2deg(preds) - test.angles).abs().mean())


def run_toy(cfg: ToyConfig, device: str | torch.device = "cpu", log=print) -> ToyResult:
    """The whole sweep: every network at every training-set size."""
    device = torch.device(device)
    s = cfg.net.image_size
    pool = make_rectangles(max(cfg.train_sizes), s, seed=cfg.seed)
    test = make_rectangles(cfg.test_size, s, seed=cfg.seed + 1)
    errors: dict[str, dict[int, float]] = {name: {} for name in cfg.networks}
    seconds: dict[str, dict[int, float]] = {name: {} for name in cfg.networks}
    for n in cfg.train_sizes:
        for i, name in enumerate(cfg.networks):
            t0 = time.perf_counter()
            errors[name][n] = train_one(name, pool.subset(n), test, cfg, seed=cfg.seed + 1000 * n + i,
                                        device=device)
            seconds[name][n] = time.perf_counter() - t0
            log(f"  {name:<10} n={n:<5} test error {errors[name][n]:6.2f} deg  ({seconds[name][n]:.0f} s)")
    return ToyResult(cfg, errors, seconds)


def plot_toy(result: ToyResult, path: str | Path) -> None:
    """Test error against training-set size, one line per network (log-log, as Fig. 5 spans decades)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    styles = {"naive": ("Naive", "tab:gray", "s"), "regression": ("Regression-based", "tab:blue", "o"),
              "pca": ("PCA-based", "tab:red", "^")}
    sizes = list(result.config.train_sizes)
    for name, errs in result.errors.items():
        label, colour, marker = styles[name]
        ax.plot(sizes, [errs[n] for n in sizes], marker=marker, color=colour, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.set_xlabel("training-set size")
    ax.set_ylabel("mean |angle error| on the test set (deg)")
    s = result.config.net.image_size
    ax.set_title(f"rotated rectangles, {s}x{s}, {result.config.epochs} epochs", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
