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
    for path in ("training/models/__pycache__/grids.cpython-311.pyc", "storage/__pycache__", ".pytest_cache/v",
                 # the extractor cache sits inside data/evaluations, the leaderboard's dependency, and no clone has it
                 "data/evaluations/sample/extractor-cache/mobilenetv2-imagenet/ab.npz",
                 "storage/.paths.py.tmp-1a2b", "training/.mypy_cache/x", "storage/paths.py.swp"):
        assert ignore.is_ignored(LocalFileSystem(), str(root / path)), path
    for path in ("training/models/grids.py", "data/evaluations/sample/fomm/metrics.json"):
        assert not ignore.is_ignored(LocalFileSystem(), str(root / path)), path


def test_git_tracks_exactly_the_uncached_outputs_of_dvc_yaml():
    """A clone gets its scores from git and the rest from the DVC remote: every `cache: false` output of dvc.yaml
    (metrics, curves, coverage, leaderboard.json) must pass .gitignore, every cached one must not (DVC pushes it),
    for each dataset's stages."""
    from dvc.repo import Repo

    root = Path(__file__).resolve().parents[1]
    with Repo(str(root)) as repo:
        outs = {out.def_path: out.use_cache for out in repo.index.outs}
    assert any(not cached for cached in outs.values()) and any(outs.values())
    expected = {path.replace("/sample/", f"/{dataset}/").replace("/sample", f"/{dataset}"): cached
                for path, cached in outs.items() for dataset in ("sample", "taichi", "ted")}
    check = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=root, input="\n".join(expected),
                           capture_output=True, text=True)
    ignored = set(check.stdout.split())
    assert {path: path in ignored for path in expected} == expected
