"""Shared fixtures: the offline sample videos, rendered once per test session."""
from __future__ import annotations

import os

import pytest

# Keep every test off the user's data root, Dagster instance and download cache.
os.environ.pop("MOTIONPIPE_DATA_ROOT", None)


@pytest.fixture(scope="session", autouse=True)
def _session_dagster_home(tmp_path_factory):
    """The commands record their work in DAGSTER_HOME: a test that sets none writes to this session's instance,
    never to the user's (./.dagster_home or their own DAGSTER_HOME)."""
    old = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(tmp_path_factory.mktemp("session_dagster_home"))
    yield
    if old is None:
        os.environ.pop("DAGSTER_HOME", None)
    else:
        os.environ["DAGSTER_HOME"] = old


@pytest.fixture(scope="session")
def sample_videos(tmp_path_factory) -> dict[str, str]:
    from assets.ingest.sample_source import write_sample_videos

    return write_sample_videos(tmp_path_factory.mktemp("sample-upstream"))


@pytest.fixture()
def dagster_home(tmp_path, monkeypatch) -> str:
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("MOTIONPIPE_CACHE", str(tmp_path / "cache"))
    return str(home)


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on 127.0.0.1 (tests/s3_server.py), one per session, stopped at its end."""
    pytest.importorskip("moto", reason="moto[server] is not installed (requirements.txt)")
    pytest.importorskip("s3fs", reason="s3fs is not installed (requirements.txt)")
    from tests.s3_server import running_s3_server

    with running_s3_server() as server:
        yield server


@pytest.fixture()
def s3_bucket(s3_server, monkeypatch) -> str:
    """A fresh bucket on the session's S3 server, with this test's environment pointed at the server (endpoint and
    fake credentials through the AWS_* variables botocore reads, so child processes see them too)."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server.create_bucket()
