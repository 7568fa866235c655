"""DVC round trip on a real repository and a local remote: push, delete, pull restores identical hashes; an
unreachable remote fails clearly and loses nothing."""
import hashlib
import subprocess
from pathlib import Path

import pytest

from storage.dvc import DvcError, DvcProject

pytestmark = pytest.mark.slow


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def project(tmp_path):
    repo = tmp_path / "repo"
    (repo / "data" / "shards").mkdir(parents=True)
    for i in range(3):
        (repo / "data" / "shards" / f"train-{i:06d}.tar").write_bytes(bytes([i]) * (1000 + i))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    p = DvcProject(repo)
    p.init(str(tmp_path / "remote"))
    return p


def test_push_delete_pull_restores_identical_files(project, tmp_path):
    shards = project.path / "data" / "shards"
    before = _digest(shards)
    hashes = project.add("data/shards")
    assert hashes["data/shards"].endswith(".dir")
    project.push()
    subprocess.run(["rm", "-rf", str(shards), str(project.path / ".dvc" / "cache")], check=True)
    project.pull()
    assert _digest(shards) == before
    assert project.hash_of("data/shards") == hashes["data/shards"]


def test_unreachable_remote_is_a_clear_error_and_nothing_is_lost(project, tmp_path):
    shards = project.path / "data" / "shards"
    before = _digest(shards)
    project.add("data/shards")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the remote folder should be")
    project.run("remote", "add", "--default", "--force", "broken", str(blocker / "remote"))
    with pytest.raises(DvcError, match="dvc push failed"):
        project.push()
    assert _digest(shards) == before


def test_dvc_and_dagster_parse_with_one_antlr_runtime():
    """The known clash: DVC's hydra once pinned antlr 4.9, Dagster's selection grammar needs 4.13. Both parsers run
    in one process on the one installed runtime."""
    import importlib.metadata

    import dagster as dg
    from hydra.core.override_parser.overrides_parser import OverridesParser

    assert importlib.metadata.version("antlr4-python3-runtime").startswith("4.13")
    override = OverridesParser.create().parse_overrides(["datasets.sample.max_steps=8"])[0]
    assert override.key_or_group == "datasets.sample.max_steps" and override.value() == 8
    selection = dg.AssetSelection.from_string('key:"sample/shards"')
    from pipelines.definitions import defs
    keys = selection.resolve(defs.resolve_asset_graph())
    assert keys == {dg.AssetKey(["sample", "shards"])}


def test_dvcignore_keeps_bytecode_out_of_code_dependencies():
    """Importing the project writes __pycache__ into training/, assets/ and storage/, which dvc.yaml lists as
    dependencies: DVC must ignore them, or any import would mark every stage changed and `dvc repro` would
    retrain everything."""
    from dvc.ignore import DvcIgnoreFilter
    from dvc.fs import LocalFileSystem

    root = Path(__file__).resolve().parents[1]
    ignore = DvcIgnoreFilter(LocalFileSystem(), str(root))
    for path in ("training/__pycache__/grids.cpython-311.pyc", "storage/__pycache__", ".pytest_cache/v"):
        assert ignore.is_ignored(LocalFileSystem(), str(root / path)), path
    assert not ignore.is_ignored(LocalFileSystem(), str(root / "training/models/grids.py"))
