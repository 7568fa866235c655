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
