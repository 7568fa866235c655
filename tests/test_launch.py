"""The command a training run is launched with (`assets/models/launch.py`): one process, torchrun on one node, or
the same torchrun command on every node of a multi-node run, from the settings a cluster sets."""
from __future__ import annotations

import pytest

from assets.models.launch import Launch
from pipelines.resources import training_resource
from storage.settings import resolve_settings


def flags(command: list[str]) -> dict[str, str]:
    return {a: command[i + 1] for i, a in enumerate(command[:-1]) if a.startswith("--") and
            not command[i + 1].startswith("--")}


def test_several_nodes_share_one_rendezvous_named_after_the_run():
    launch = Launch("cuda", nproc_per_node=8, nnodes=2, rdzv_endpoint="node0.cluster:29400", dist_timeout_s=120)
    command = launch.prefix("fomm-taichi-main-0123456789ab")
    assert command[1:3] == ["-m", "torch.distributed.run"]
    got = flags(command[:command.index("-m", 3)])
    assert got == {"--nnodes": "2", "--rdzv-backend": "c10d", "--rdzv-endpoint": "node0.cluster:29400",
                   "--rdzv-id": "fomm-taichi-main-0123456789ab", "--rdzv-conf": "join_timeout=120",
                   "--max-restarts": "0", "--nproc-per-node": "8"}
    assert "--node-rank" not in command  # the c10d rendezvous assigns the ranks
    assert launch.train_args() == ["--device", "cuda", "--dist-timeout", "120"]
    assert launch.world_size == 16


def test_one_node_is_standalone_and_one_process_needs_no_torchrun():
    one_node = Launch(nproc_per_node=2).prefix("run")
    assert "--standalone" in one_node and "--rdzv-id" not in one_node
    assert Launch().prefix("run")[1:] == ["-m", "assets.models.pipes_train"]
    assert "--dist-timeout" not in Launch(device="cpu").train_args()


@pytest.mark.parametrize("kwargs, message", [
    (dict(nnodes=2), "several nodes need a rendezvous endpoint"),
    (dict(nnodes=2, rdzv_endpoint="node0.cluster"), "must be host:port.*'node0.cluster'"),
    (dict(nnodes=2, rdzv_endpoint="node0:http"), "must be host:port.*'node0:http'"),
    (dict(nnodes=2, rdzv_endpoint="node0:70000"), "must be host:port"),
    (dict(dist_timeout_s=0), "dist_timeout_s must be > 0"),
])
def test_a_launch_that_cannot_work_is_refused_naming_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Launch(**kwargs)


def test_the_cluster_settings_reach_the_launch():
    settings = resolve_settings({"MOTIONPIPE_NNODES": "2", "MOTIONPIPE_RDZV_ENDPOINT": "10.0.0.1:29400",
                                 "MOTIONPIPE_DIST_TIMEOUT": "90", "MOTIONPIPE_NPROC_PER_NODE": "4"})
    launch = training_resource(settings).launch()
    assert (launch.nnodes, launch.nproc_per_node, launch.rdzv_endpoint, launch.dist_timeout_s) == (
        2, 4, "10.0.0.1:29400", 90)
    assert training_resource(resolve_settings({})).launch().dist_timeout_s == 600
    with pytest.raises(ValueError, match="MOTIONPIPE_DIST_TIMEOUT: 'soon' is not a positive number of seconds"):
        resolve_settings({"MOTIONPIPE_DIST_TIMEOUT": "soon"})
