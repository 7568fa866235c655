"""A torchrun worker ends when its launcher dies (``training.loop.launcher_watch``), and the ranks of a run refuse to
start from different checkpoints (``training.train.agree_on_resume``). Real processes: a launcher that starts a
worker in a session of its own, as torchrun does, then is SIGKILLed; two gloo ranks on loopback."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from training.loop.launcher_watch import ORPHANED_EXIT

REPO = Path(__file__).resolve().parents[2]

LAUNCHER = textwrap.dedent("""
    import subprocess, sys, time
    worker = subprocess.Popen([sys.executable, "-c", sys.argv[1]], start_new_session=True,
                              stderr=open(sys.argv[2], "w"))
    print(worker.pid, flush=True)
    time.sleep(120)
""")
WORKER = textwrap.dedent("""
    import os, sys, time
    from training.loop.launcher_watch import watch_launcher
    watch_launcher(os.getppid(), interval_s=0.05)
    time.sleep(120)
    sys.exit(0)
""")


def gone_or_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_a_worker_ends_itself_when_its_launcher_is_killed(tmp_path):
    stderr = tmp_path / "worker.err"
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, WORKER, str(stderr)], cwd=REPO, text=True,
                                stdout=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(REPO)))
    worker = int(launcher.stdout.readline())
    try:
        time.sleep(1.0)  # the worker imported and watches
        assert not gone_or_zombie(worker), stderr.read_text()
        launcher.kill()  # SIGKILL: the launcher cannot pass anything on to its worker
        launcher.wait()
        deadline = time.monotonic() + 15
        while not gone_or_zombie(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone_or_zombie(worker), "the worker outlived its launcher"
        assert "is gone; this worker stops" in stderr.read_text()
    finally:
        if not gone_or_zombie(worker):
            os.kill(worker, signal.SIGKILL)
        launcher.stdout.close()
    assert ORPHANED_EXIT != 0


RANK = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from training.loop.distributed import init_distributed, shutdown_distributed
    from training.train import agree_on_resume
    ctx = init_distributed("cpu", os.environ)
    mine = sys.argv[1] or None
    try:
        agree_on_resume(Path(mine) if mine else None, Path("runs/x"), ctx)
    except SystemExit as exc:
        print(exc, flush=True)
        sys.exit(3)
    finally:
        shutdown_distributed()  # as training.train.run does: gloo aborts a process that exits with its group open
""")


def run_ranks(checkpoints: list[str], port: int) -> list[tuple[int, str]]:
    env = dict(os.environ, PYTHONPATH=str(REPO), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
               WORLD_SIZE="2", OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", RANK, ckpt], cwd=REPO, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env=dict(env, RANK=str(r), LOCAL_RANK=str(r)))
             for r, ckpt in enumerate(checkpoints)]
    try:
        return [(p.wait(timeout=60), p.stdout.read()) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()


def test_ranks_that_see_different_newest_checkpoints_refuse_to_start():
    from pipelines.local_celery import free_port

    assert [code for code, _ in run_ranks(["runs/x/checkpoints/step-000000004.pt"] * 2, free_port())] == [0, 0]
    results = run_ranks(["runs/x/checkpoints/step-000000004.pt", ""], free_port())
    assert [code for code, _ in results] == [3, 3], results
    assert "every node must see the same run folder" in results[0][1]
    assert "['step-000000004.pt', None]" in results[1][1]
