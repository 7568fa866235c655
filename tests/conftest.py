"""Shared fixtures: the offline sample videos, rendered once per test session."""
from __future__ import annotations

import os

import pytest

# Keep every test off the user's data root, Dagster instance and download cache.
os.environ.pop("MOTIONPIPE_DATA_ROOT", None)


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
