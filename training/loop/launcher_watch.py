"""A torchrun worker ends when its node's torchrun does.

torchrun starts every worker in a session of its own, so a SIGKILL of the launcher (a scheduler killing the node's
job, ``kill -9`` of its process group) leaves its workers running. They keep training with the other nodes, whose
collectives still succeed: the node looks dead while its ranks go on (global rank 0 among them, writing
checkpoints), and the surviving launchers wait out their exit barrier for the one that is gone. A daemon thread
notices the re-parenting and ends the worker at once, so the other nodes' next collective fails instead.
"""
from __future__ import annotations

import os
import sys
import threading
import time

ORPHANED_EXIT = 70  # the worker's exit status when its launcher vanished (EX_SOFTWARE)


def _end_orphan(launcher_pid: int) -> None:
    print(f"training.train: torchrun (pid {launcher_pid}) is gone; this worker stops so that the other nodes "
          f"fail over instead of training on with it", file=sys.stderr, flush=True)
    os._exit(ORPHANED_EXIT)  # no cleanup: a checkpoint half written is a hidden temporary, removed on resume


def watch_launcher(launcher_pid: int, interval_s: float = 0.5, on_gone=_end_orphan) -> threading.Thread:
    """Call ``on_gone(launcher_pid)`` once this process is no longer ``launcher_pid``'s child."""
    def watch() -> None:
        while os.getppid() == launcher_pid:
            time.sleep(interval_s)
        on_gone(launcher_pid)

    thread = threading.Thread(target=watch, name="launcher-watch", daemon=True)
    thread.start()
    return thread
