"""Multi-node training: two "nodes" on 127.0.0.1, each its own ``torchrun --nnodes 2 --nproc-per-node 1`` with a c10d
rendezvous, gloo on CPU, on shards built with the storage API.

Each node builds its command as a cluster node would: the ``MOTIONPIPE_*`` settings (the same on both nodes) give
the ``training`` resource, whose launch ``plan_training`` turns into the torchrun command line (what `motionpipe
train` and the Dagster asset run). Both nodes compute it on their own and must get the same one.

- Two nodes train one run: world size 2, global rank 0 alone writes the checkpoints and TensorBoard log, and the
  weights equal those of one node running both processes (the same DDP computation, bit for bit).
- One node is killed (SIGKILL of its torchrun's process group) after a checkpoint exists: the other stops within
  seconds (no hang; its collectives and rendezvous are bounded by ``MOTIONPIPE_DIST_TIMEOUT``), every visible
  checkpoint is complete, and rerunning both nodes resumes from the newest one to weights equal to the run that was
  never interrupted.
- The node a Dagster asset launches through Pipes need not hold global rank 0: it still reports the run.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import torch
import yaml

from assets.models.runs import TrainingPlan, plan_training
from pipelines.local_celery import free_port
from pipelines.resources import training_resource
from storage.root import DataRoot
from storage.settings import resolve_settings
from training.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from training.config import config_to_dict, load_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
MAX_STEPS = 20
KILL_AFTER_STEP = 3
RUN_TIMEOUT_S = 150  # one whole run of both nodes on a loaded 2-core machine (about 15 s unloaded)
DIST_TIMEOUT_S = 30


@dataclass
class Cluster:
    """What the nodes of one run share: the data root, the settings, and each node's own plan."""

    root: DataRoot
    env: dict[str, str]
    plans: list[TrainingPlan]

    @property
    def run_dir(self) -> Path:
        return self.plans[0].run_dir


def make_cluster(tmp: Path, nnodes: int = 2, nproc_per_node: int = 1, max_steps: int = MAX_STEPS) -> Cluster:
    from tests.training.test_data import build_dataset

    root = DataRoot(str(tmp / "data"))
    build_dataset(root)  # 3 training videos
    configs = tmp / "configs"
    configs.mkdir()
    raw = config_to_dict(load_config("monkeynet-sample-64"))
    # 3 videos x 2 repeats over 2 ranks: 3 batches of 1 per rank and epoch; epochs end and begin inside the run
    raw["train"].update(num_repeats=2, num_epochs=100, checkpoint_freq=1000, dataloader_workers=0)
    (configs / "monkeynet-sample-64.yaml").write_text(yaml.safe_dump(raw))
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump({"datasets": {"sample": {
        "max_steps": max_steps, "batch_size": 2, "checkpoint_every": 1, "log_every": 1, "image_every": 0}}}))
    settings_env = {  # what every node of the cluster sets (README, "Several nodes")
        "MOTIONPIPE_DATA_ROOT": str(tmp / "data"), "MOTIONPIPE_CONFIG_DIR": str(configs),
        "MOTIONPIPE_PARAMS": str(params), "MOTIONPIPE_DEVICE": "cpu",
        "MOTIONPIPE_NNODES": str(nnodes), "MOTIONPIPE_NPROC_PER_NODE": str(nproc_per_node),
        "MOTIONPIPE_RDZV_ENDPOINT": f"127.0.0.1:{free_port()}", "MOTIONPIPE_DIST_TIMEOUT": str(DIST_TIMEOUT_S),
    }
    plans = []
    for _ in range(nnodes):  # each node resolves its own settings and plans the run itself
        settings = resolve_settings(settings_env)
        training = training_resource(settings)
        plans.append(plan_training(DataRoot(settings.data_root), "monkeynet", "sample", "main",
                                   training.params("sample"), training.launch(), config_dir=settings.config_dir))
    env = dict(os.environ, **settings_env, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO),
               MOTIONPIPE_VGG19_WEIGHTS=str(tmp / "no-such-vgg19.pth"))
    env.pop("DAGSTER_PIPES_CONTEXT", None)
    return Cluster(root, env, plans)


class Nodes:
    """The nodes' torchrun processes, each the leader of its own process group (as on its own machine); every one
    left is killed with its group on exit, whatever the test did."""

    def __init__(self, cluster: Cluster, logs: Path):
        self.cluster, self.logs, self.procs = cluster, logs, []
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, nodes: int | None = None) -> None:
        """Start the first ``nodes`` nodes (default: all)."""
        self.procs = []
        for i, plan in enumerate(self.cluster.plans[:nodes]):
            log = open(self.logs / f"node{i}-{time.monotonic_ns()}.log", "w")
            self.procs.append(subprocess.Popen(list(plan.command), cwd=REPO, env=self.cluster.env, stdout=log,
                                               stderr=subprocess.STDOUT, start_new_session=True))
            log.close()

    def wait(self, timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        return [p.wait(timeout=max(deadline - time.monotonic(), 0.1)) for p in self.procs]

    def output(self, i: int) -> str:
        """Node ``i``'s output of its latest start."""
        return sorted(self.logs.glob(f"node{i}-*.log"))[-1].read_text()

    def kill(self, i: int) -> None:
        os.killpg(self.procs[i].pid, signal.SIGKILL)  # the torchrun agent's group (its workers have their own)
        self.procs[i].wait()

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.fixture(scope="module")
def nodes_factory(tmp_path_factory):
    made: list[Nodes] = []

    def make(name: str, **kw) -> Nodes:
        tmp = tmp_path_factory.mktemp(name)
        nodes = Nodes(make_cluster(tmp, **kw), tmp / "logs")
        made.append(nodes)
        return nodes

    yield make
    for nodes in made:
        nodes.close()


@pytest.fixture(scope="module")
def uninterrupted(nodes_factory) -> Nodes:
    """Two nodes train the whole run in one go: the reference of every test here."""
    nodes = nodes_factory("uninterrupted")
    nodes.start()
    codes = nodes.wait(RUN_TIMEOUT_S)
    assert codes == [0, 0], [nodes.output(i)[-3000:] for i in range(2)]
    return nodes


def networks(checkpoint: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(checkpoint)
    return {f"{n}.{k}": v for n, net in state["networks"].items() for k, v in net.items()}


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = networks(a), networks(b)
    assert wa.keys() == wb.keys()
    differ = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not differ, f"{a} and {b} differ at {differ[:5]}"


def test_both_nodes_plan_the_same_torchrun_command_with_a_rendezvous_named_after_the_run(uninterrupted):
    first, second = uninterrupted.cluster.plans
    assert first.command == second.command
    command = list(first.command)
    arg = {flag: command[command.index(flag) + 1] for flag in ("--nnodes", "--rdzv-backend", "--rdzv-id",
                                                               "--nproc-per-node", "--dist-timeout")}
    assert arg == {"--nnodes": "2", "--rdzv-backend": "c10d", "--rdzv-id": f"monkeynet-sample-main-{first.run_key}",
                   "--nproc-per-node": "1", "--dist-timeout": str(DIST_TIMEOUT_S)}
    assert "--node-rank" not in command and "--standalone" not in command


def test_two_loopback_nodes_train_one_run_and_rank_0_alone_writes(uninterrupted, nodes_factory):
    run = uninterrupted.cluster.run_dir
    final = load_checkpoint(run / "checkpoints" / f"step-{MAX_STEPS:09d}.pt")
    assert final["world_size"] == final["meta"]["world_size"] == 2 and final["meta"]["global_batch"] == 2
    assert len(final["rng"]) == 2 and not torch.equal(final["rng"][0]["torch"], final["rng"][1]["torch"])
    assert (final["step"], final["epoch"], final["step_in_epoch"]) == (MAX_STEPS, MAX_STEPS // 3, MAX_STEPS % 3)
    # global rank 0 writes, on whichever node the rendezvous put it: one TensorBoard log, checkpoints named once
    logs = [uninterrupted.output(i) for i in range(2)]
    writers = [i for i, out in enumerate(logs) if re.search(r"\[rank 0\] checkpoint ", out)]
    assert len(writers) == 1 and "[rank 0]" not in logs[1 - writers[0]], logs
    assert len(list((run / "tensorboard").iterdir())) == 1
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == [
        f"step-{s:09d}.pt" for s in range(MAX_STEPS - 2, MAX_STEPS + 1)]

    # one node running both processes (torchrun --standalone) makes the same run, bit for bit
    one_node = nodes_factory("one-node", nnodes=1, nproc_per_node=2)
    one_node.start()
    assert one_node.wait(RUN_TIMEOUT_S) == [0], one_node.output(0)[-3000:]
    assert "--standalone" in one_node.cluster.plans[0].command
    assert_same_weights(run / "checkpoints" / f"step-{MAX_STEPS:09d}.pt",
                        one_node.cluster.run_dir / "checkpoints" / f"step-{MAX_STEPS:09d}.pt")


def test_killing_one_node_stops_the_other_and_a_rerun_resumes_exactly(uninterrupted, nodes_factory):
    nodes = nodes_factory("killed")
    checkpoints = nodes.cluster.run_dir / "checkpoints"
    nodes.start()
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not (checkpoints / f"step-{KILL_AFTER_STEP:09d}.pt").exists():
        assert time.monotonic() < deadline and all(p.poll() is None for p in nodes.procs), \
            [nodes.output(i)[-3000:] for i in range(2)]
        time.sleep(0.02)
    nodes.kill(1)
    killed_at = time.monotonic()
    survivor = nodes.procs[0].wait(timeout=DIST_TIMEOUT_S + 30)
    stopped_after = time.monotonic() - killed_at
    assert survivor != 0, "the surviving node finished a run that lost half its ranks"
    assert stopped_after < DIST_TIMEOUT_S, f"the surviving node took {stopped_after:.1f} s to stop"

    # no half-written checkpoint is visible: every listed one loads, and the run stopped well before its end
    steps = [load_checkpoint(p)["step"] for p in list_checkpoints(checkpoints)]
    resumed_at = load_checkpoint(latest_checkpoint(checkpoints))["step"]
    assert resumed_at == max(steps) and KILL_AFTER_STEP <= resumed_at < MAX_STEPS, steps

    nodes.start()  # the same command on both nodes, as after any failure
    assert nodes.wait(RUN_TIMEOUT_S) == [0, 0], [nodes.output(i)[-3000:] for i in range(2)]
    final = load_checkpoint(checkpoints / f"step-{MAX_STEPS:09d}.pt")
    assert [h["step"] for h in final["resume_history"]] == [resumed_at]
    assert not [p for p in checkpoints.iterdir() if p.name.startswith(".")]  # the dead writer's temporaries
    reference = uninterrupted.cluster.run_dir / "checkpoints" / f"step-{MAX_STEPS:09d}.pt"
    expected = load_checkpoint(reference)
    assert (final["epoch"], final["step_in_epoch"]) == (expected["epoch"], expected["step_in_epoch"])
    assert_same_weights(reference, checkpoints / f"step-{MAX_STEPS:09d}.pt")


def test_the_dagster_node_reports_the_run_when_the_other_node_holds_rank_0(nodes_factory):
    """The asset's step launches its node's torchrun through Pipes; the other node runs the same command by hand. On
    one host the rendezvous ranks the nodes by their torchrun's pid, so the node started first holds global rank 0
    and the Pipes node's process is rank 1: it still follows the run and reports its last checkpoint."""
    nodes = nodes_factory("pipes", max_steps=4)
    plan, env = nodes.cluster.plans[1], nodes.cluster.env
    nodes.start(nodes=1)  # the node started by hand

    @dg.asset
    def checkpoint(context, pipes: dg.PipesSubprocessClient) -> dg.MaterializeResult:
        return pipes.run(command=list(plan.command), context=context, env=env).get_materialize_result()

    instance = dg.DagsterInstance.ephemeral()
    client = dg.PipesSubprocessClient(cwd=str(REPO))
    result = dg.materialize([checkpoint], instance=instance, resources={"pipes": client})
    assert nodes.wait(RUN_TIMEOUT_S) == [0], nodes.output(0)[-3000:]
    if "[rank 0] checkpoint" not in nodes.output(0):
        pytest.skip("the rendezvous put global rank 0 on the Dagster node (pids out of order): nothing to show")
    meta = result.asset_materializations_for_node("checkpoint")[0].metadata
    assert meta["checkpoint"].value == str(plan.run_dir / "checkpoints" / "step-000000004.pt")
    assert meta["step"].value == 4 and meta["non_finite_losses"].value == 0
    lines = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any(line.startswith("step 4/4 (100%") for line in lines), lines  # the loss windows, live, from rank 1
