"""A real S3 endpoint for the tests: moto's server in its own process on 127.0.0.1, on a port the OS picks.

Its own process, so that the test process (training, Dagster) never starves it of the GIL and so that nothing of it
outlives the tests: the fixture terminates it, and the child also stops when its stdin closes, which happens when the
test process dies. `python -m tests.s3_server` is that child.
"""
from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 10


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    empty_file: str  # stands in for ~/.aws/config and credentials (DVC refuses /dev/null: "could not be found")

    def env(self) -> dict[str, str]:
        """What a client of this server needs (s3fs, DVC, boto3 all read them): the endpoint and fake credentials.
        AWS_ENDPOINT_URL is botocore's own variable, so child processes (Dagster steps, torchrun) see it too."""
        return {"AWS_ENDPOINT_URL": self.endpoint_url, "AWS_ACCESS_KEY_ID": "motionpipe-test",
                "AWS_SECRET_ACCESS_KEY": "motionpipe-test", "AWS_DEFAULT_REGION": "us-east-1",
                # no ~/.aws of the machine's user, no instance metadata lookups
                "AWS_CONFIG_FILE": self.empty_file, "AWS_SHARED_CREDENTIALS_FILE": self.empty_file,
                "AWS_EC2_METADATA_DISABLED": "true"}

    def create_bucket(self) -> str:
        """A new, empty bucket with a unique name."""
        import boto3

        name = f"motionpipe-{uuid.uuid4().hex[:12]}"
        env = self.env()
        client = boto3.client("s3", endpoint_url=self.endpoint_url, region_name=env["AWS_DEFAULT_REGION"],
                              aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
        client.create_bucket(Bucket=name)
        return name


@contextlib.contextmanager
def running_s3_server() -> Iterator[S3Server]:
    """Start the child, read the port it bound, and stop it on the way out (killed if it does not exit)."""
    with tempfile.TemporaryDirectory(prefix="motionpipe-s3-") as scratch:
        empty, log = Path(scratch) / "empty", Path(scratch) / "server.log"
        empty.touch()
        with log.open("w") as stderr:
            child = subprocess.Popen([sys.executable, "-m", "tests.s3_server"], cwd=REPO, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            yield S3Server(f"http://127.0.0.1:{_read_port(child, log)}", str(empty))
        finally:
            # SIGTERM, not only EOF: a process forked from this one (a DataLoader worker) may hold the pipe open
            with contextlib.suppress(OSError):
                child.stdin.close()
            child.terminate()
            try:
                child.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _read_port(child: subprocess.Popen, log: Path) -> int:
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(child.stdout.readline()), daemon=True)
    reader.start()
    reader.join(START_TIMEOUT_S)
    if not line or not line[0].strip().isdigit():
        raise RuntimeError(f"moto S3 server did not start within {START_TIMEOUT_S} s (exit code {child.poll()}): "
                           f"{log.read_text()[-2000:]}")
    return int(line[0])


def _serve() -> None:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    sys.stdin.read()  # EOF: the parent stopped us or died
    server.stop()


if __name__ == "__main__":
    _serve()
