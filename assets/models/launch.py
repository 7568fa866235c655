"""How a training run is started: one process, torchrun on one node, or the same torchrun command on every node of
a multi-node run. A deployment choice (the ``training`` resource, ``MOTIONPIPE_*`` settings), not part of the
experiment: a run's key holds the world size it makes, nothing else of it.

On several nodes every node runs the identical command: ``--nnodes N --rdzv-backend c10d --rdzv-endpoint host:port
--rdzv-id <run>``, the id derived from the run (not random, not per node), so the nodes of one run meet and a rerun of
the same run meets again; no ``--node-rank`` (the c10d rendezvous assigns ranks). ``dist_timeout_s`` bounds both the
wait for the other nodes to join and every collective, so a node that died makes the others fail, not hang;
``--max-restarts 0``: a failed run is rerun as a whole (resuming from its newest checkpoint), never half the nodes.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

DEVICES = ("auto", "cpu", "cuda")
ENTRY_MODULE = "assets.models.pipes_train"
DEFAULT_DIST_TIMEOUT_S = 600  # torch's own NCCL default; gloo's is 30 min, the rendezvous join 10 min


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) of the rendezvous; a clear error naming the value otherwise."""
    host, sep, port = endpoint.rpartition(":")
    if not (sep and host and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"rendezvous endpoint must be host:port (e.g. node0.cluster:29400), got {endpoint!r}")
    return host, int(port)


@dataclass(frozen=True)
class Launch:
    """Where and how a run executes."""

    device: str = "auto"  # auto: CUDA when the machine has it, else CPU
    nproc_per_node: int = 1  # > 1: torchrun with that many processes (GPUs, or gloo processes on CPU)
    nnodes: int = 1
    rdzv_endpoint: str | None = None  # host:port of the rendezvous for nnodes > 1
    workers: int | None = None  # data loader workers per process (None: the config's)
    vgg_weights: str | None = None
    dist_timeout_s: float = DEFAULT_DIST_TIMEOUT_S  # rendezvous join and every collective (several processes)

    def __post_init__(self):
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.nproc_per_node < 1 or self.nnodes < 1:
            raise ValueError(f"nproc_per_node and nnodes must be >= 1, got {self.nproc_per_node}, {self.nnodes}")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ValueError("several nodes need a rendezvous endpoint (host:port)")
        if self.rdzv_endpoint:
            parse_endpoint(self.rdzv_endpoint)
        if not self.dist_timeout_s > 0:
            raise ValueError(f"dist_timeout_s must be > 0 seconds, got {self.dist_timeout_s!r}")

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes

    def prefix(self, run_id: str) -> list[str]:
        """The interpreter (and torchrun) part of the command; ``run_id`` names the run's rendezvous."""
        if self.world_size == 1:
            return [sys.executable, "-m", ENTRY_MODULE]
        if self.nnodes == 1:
            rendezvous = ["--standalone"]
        else:
            rendezvous = ["--nnodes", str(self.nnodes), "--rdzv-backend", "c10d", "--rdzv-endpoint",
                          self.rdzv_endpoint, "--rdzv-id", run_id, "--rdzv-conf",
                          f"join_timeout={max(1, round(self.dist_timeout_s))}", "--max-restarts", "0"]
        return [sys.executable, "-m", "torch.distributed.run", *rendezvous,
                "--nproc-per-node", str(self.nproc_per_node), "-m", ENTRY_MODULE]

    def train_args(self) -> list[str]:
        """The ``training.train`` options this launch sets."""
        args = []
        if self.device != "auto":
            args += ["--device", self.device]
        if self.workers is not None:
            args += ["--workers", str(self.workers)]
        if self.vgg_weights:
            args += ["--vgg-weights", self.vgg_weights]
        if self.world_size > 1:
            args += ["--dist-timeout", f"{self.dist_timeout_s:g}"]
        return args
