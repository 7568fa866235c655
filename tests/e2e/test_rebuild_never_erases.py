"""A rebuild never erases the published dataset by accident.

A manifest that yields nothing (a ``;``-delimited file whose rows are all rejected, an empty file, a header-only
file) is an error naming the file, before anything is written; a rebuild whose videos give fewer samples than are
published (here: every video's link is dead) keeps the published shards and catalog unless ``--allow-shrink``.
Real CLI, Dagster instance, yt-dlp and detector; the published dataset is one real sample video.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from pipelines.cli import main as motionpipe
from pipelines.rebuild import rebuild

pytestmark = pytest.mark.slow
VIDEO = "sample-walkoff"


@pytest.fixture(scope="module")
def published(sample_videos, tmp_path_factory) -> Path:
    """A data root with a published sample dataset of one video."""
    tmp = tmp_path_factory.mktemp("published")
    mp = pytest.MonkeyPatch()
    mp.setenv("DAGSTER_HOME", str(tmp / "dagster_home"))
    mp.setenv("MOTIONPIPE_CACHE", str(tmp / "cache"))
    manifest = tmp / "videos.csv"
    manifest.write_text(f"video_id,url\n{VIDEO},{Path(sample_videos[VIDEO]).resolve().as_uri()}\n")
    try:
        result = rebuild("sample", data_root=str(tmp / "data"), source=str(manifest), progress=lambda s: None)
    finally:
        mp.undo()
    assert result.dataset_run_ok and _state(tmp / "data")["samples"] > 0
    return tmp / "data"


def _state(root: Path) -> dict:
    """What a user relies on: the shard files and their bytes, the shard manifest's count, catalog and manifest."""
    ds = root / "datasets" / "sample"
    files = sorted(p for p in (ds / "shards").iterdir() if not p.name.startswith("."))
    return {
        "files": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files},
        "samples": json.loads((ds / "shards" / "manifest.json").read_text())["n_samples"],
        "catalog": {n: hashlib.sha256((ds / "catalog" / f"{n}.parquet").read_bytes()).hexdigest()
                    for n in ("videos", "chunks")},
        "manifest": hashlib.sha256((ds / "manifest" / "videos.parquet").read_bytes()).hexdigest(),
    }


@pytest.fixture
def root(published, tmp_path, dagster_home) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(published, copy)
    return copy


@pytest.mark.parametrize("name, text, reason", [
    ("semicolons.csv", f"video_id;url\n{VIDEO};file:///x.mp4\nother;file:///y.mp4\n",
     "none of its 3 rows could be used"),
    ("empty.csv", "", "no data rows"),
    ("header-only.csv", "video_id,url\n", "no data rows"),
])
def test_a_manifest_that_yields_nothing_is_an_error_and_changes_nothing(root, tmp_path, capsys, name, text,
                                                                        reason):
    before = _state(root)
    bad = tmp_path / name
    bad.write_text(text)
    rc = motionpipe(["rebuild", "sample", "--manifest", str(bad), "--data-root", str(root)])
    err = capsys.readouterr().err
    assert rc != 0
    assert str(bad) in err and reason in err and "nothing was changed" in err and "Traceback" not in err
    assert _state(root) == before  # shard tars, shards/manifest.json, catalog and manifest all untouched


def test_fewer_samples_than_published_needs_allow_shrink(root, tmp_path, capsys):
    before = _state(root)
    dead = tmp_path / "dead.csv"
    dead.write_text(f"video_id,url\ngone,{(tmp_path / 'gone.mp4').as_uri()}\n")  # a typo'd list, an outage...
    rc = motionpipe(["rebuild", "sample", "--manifest", str(dead), "--data-root", str(root)])
    out = capsys.readouterr().out
    assert rc != 0
    assert f"this rebuild has 0 samples (0 of 1 manifest videos usable), fewer than the {before['samples']}" in out
    assert "--allow-shrink" in out
    assert {k: v for k, v in _state(root).items() if k != "manifest"} == \
        {k: v for k, v in before.items() if k != "manifest"}

    rc = motionpipe(["rebuild", "sample", "--manifest", str(dead), "--data-root", str(root), "--allow-shrink"])
    out = capsys.readouterr().out
    assert _state(root)["samples"] == 0  # asked for: the smaller dataset is published
    assert rc == 1 and "exit 1: nothing rebuilt" in out  # ... and the exit code still says nothing was rebuilt
