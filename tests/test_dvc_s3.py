"""DVC with an S3 remote on a real endpoint (moto on loopback), configured exactly as the README says: `dvc remote add`
with an s3:// URL and `dvc remote modify ... endpointurl`. Push from one clone, pull into a second one."""
import hashlib
import subprocess
from pathlib import Path

import pytest

from storage.dvc import DvcError, DvcProject

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

GIT_USER = ["-c", "user.name=motionpipe-test", "-c", "user.email=test@motionpipe.invalid"]


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _s3_remote(repo: Path, url: str, endpoint: str | None = None) -> DvcProject:
    project = DvcProject(repo)
    project.init(url)
    if endpoint:
        project.run("remote", "modify", "storage", "endpointurl", endpoint)
    return project


@pytest.fixture()
def s3_env(s3_server, s3_bucket, monkeypatch) -> str:
    """The bucket, with the endpoint left to DVC's own config: only the credentials come from the environment."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    return s3_bucket


def test_push_to_s3_then_pull_into_a_second_clone_gives_identical_files(s3_server, s3_env, tmp_path):
    first = tmp_path / "first"
    shards = first / "data" / "shards"
    shards.mkdir(parents=True)
    for i in range(3):
        (shards / f"train-{i:06d}.tar").write_bytes(bytes([i]) * (100_000 + i))
    subprocess.run(["git", "init", "-q"], cwd=first, check=True)
    project = _s3_remote(first, f"s3://{s3_env}/dvc", s3_server.endpoint_url)
    assert project.default_remote() == f"s3://{s3_env}/dvc"
    digest = project.add("data/shards")["data/shards"]
    project.push()
    subprocess.run(["git", "add", "-A"], cwd=first, check=True)
    subprocess.run(["git", *GIT_USER, "commit", "-q", "-m", "shards"], cwd=first, check=True)

    import boto3
    stored = boto3.client("s3", endpoint_url=s3_server.endpoint_url).list_objects_v2(Bucket=s3_env, Prefix="dvc/")
    assert len(stored["Contents"]) == 4  # three files and the folder's .dir listing, content-addressed

    second = tmp_path / "second"
    subprocess.run(["git", "clone", "-q", str(first), str(second)], check=True)
    assert not (second / "data" / "shards").exists()
    clone = DvcProject(second)
    clone.pull()
    assert _digest(second / "data" / "shards") == _digest(shards)
    assert clone.hash_of("data/shards") == digest
    assert "up to date" in clone.run("status")


def test_a_missing_bucket_is_a_clear_error_and_nothing_is_lost(s3_bucket, tmp_path):
    """With the endpoint from AWS_ENDPOINT_URL alone (no endpointurl): the server's own answer reaches the user."""
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "data" / "x.bin").write_bytes(b"x" * 1000)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    project = _s3_remote(repo, f"s3://{s3_bucket}-typo/dvc")
    project.add("data/x.bin")
    with pytest.raises(DvcError, match="dvc push failed.*bucket does not exist"):
        project.push()
    assert (repo / "data" / "x.bin").read_bytes() == b"x" * 1000
