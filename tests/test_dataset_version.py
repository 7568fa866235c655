"""The dataset version: DVC's md5 without a repository equals what a real `dvc add` writes; the version read from
real sample shards (built by `rebuild`) matches the catalog, the manifest and the shards on disk."""
from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path

import fsspec
import pyarrow.parquet as pq
import pytest

from storage import paths
from storage.dataset_version import DatasetVersion, dataset_version, dvc_md5
from storage.dvc import DvcProject
from storage.root import DataRoot
from storage.shards import read_shard_manifest

pytestmark = pytest.mark.slow


def _dvc_repo(path: Path) -> DvcProject:
    path.mkdir(parents=True, exist_ok=True)
    project = DvcProject(path)
    project.run("init", "--no-scm")
    return project


def _tree(folder: Path) -> None:
    """Nested files of all sorts DVC treats specially: a CRLF text file, an empty file, a hidden file, a file over
    DVC's 2 MiB threaded-hashing threshold, and a `.git` folder (which `dvc add` leaves out)."""
    (folder / "a" / "b").mkdir(parents=True)
    (folder / "top.txt").write_text("top\n")
    (folder / "a" / "crlf.txt").write_bytes(b"one\r\ntwo\r\n")
    (folder / "a" / "empty").write_bytes(b"")
    (folder / "a" / "b" / ".hidden").write_bytes(b"h")
    (folder / "a" / "b" / "big.bin").write_bytes(bytes(range(256)) * (3 * 4096))  # 3 MiB
    (folder / "a" / "b" / "big2.bin").write_bytes(bytes(range(255, -1, -1)) * (3 * 4096))
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")


def test_dvc_md5_equals_dvc_add_for_a_folder_and_a_file(tmp_path):
    project = _dvc_repo(tmp_path / "repo")
    _tree(project.path / "data")
    (project.path / "single.bin").write_bytes(b"\x00\x01" * 5000 + b"\r\n")
    ours = {"data": dvc_md5(project.path / "data"), "single.bin": dvc_md5(project.path / "single.bin")}
    theirs = project.add("data", "single.bin")
    assert ours == theirs
    assert ours["data"].endswith(".dir") and not ours["single.bin"].endswith(".dir")
    # The file's hash is the plain md5 of its bytes (DVC 3: no dos2unix); the folder's is not a file md5.
    assert ours["single.bin"] == hashlib.md5((project.path / "single.bin").read_bytes()).hexdigest()


def test_state_cache_gives_the_same_hash_and_sees_changes(tmp_path):
    folder = tmp_path / "data"
    _tree(folder)
    state = tmp_path / "state"
    plain = dvc_md5(folder)
    assert dvc_md5(folder, state_dir=state) == plain
    assert state.is_dir() and any(state.rglob("*"))  # DVC wrote its state there
    assert dvc_md5(folder, state_dir=state) == plain  # from the state cache
    big = folder / "a" / "b" / "big.bin"
    data = bytearray(big.read_bytes())
    data[12345] ^= 0xFF
    big.write_bytes(bytes(data))  # same size, same inode
    os.utime(big, ns=(10**18, 10**18))  # a distinct mtime, whatever the filesystem's timestamp resolution
    changed = dvc_md5(folder, state_dir=state)
    assert changed != plain and changed == dvc_md5(folder)


def test_dvc_md5_rejects_missing_and_remote_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
        dvc_md5(tmp_path / "nope")
    with pytest.raises(ValueError, match="local paths only"):
        dvc_md5("s3://bucket/shards")


# ---- on the real sample dataset -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_root(sample_videos, tmp_path_factory) -> tuple[Path, bytes]:
    """One sample video rebuilt end to end into a data root; returns (root folder, the manifest csv's bytes)."""
    from pipelines.rebuild import rebuild

    tmp = tmp_path_factory.mktemp("dataset-version")
    (tmp / "dagster_home").mkdir()
    csv = f"video_id,url\nsample-astro-b,{Path(sample_videos['sample-astro-b']).as_uri()}\n".encode()
    (tmp / "videos.csv").write_bytes(csv)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(tmp / "dagster_home"))
        mp.setenv("MOTIONPIPE_CACHE", str(tmp / "cache"))
        result = rebuild("sample", data_root=str(tmp / "data"), source=str(tmp / "videos.csv"), progress=lambda s: None)
    assert result.dataset_run_ok
    return tmp / "data", csv


def _copy_root(src: Path, dst: Path) -> DataRoot:
    shutil.copytree(src, dst)
    return DataRoot(str(dst))


def test_dataset_version_of_real_sample_shards(sample_root, tmp_path):
    folder, csv = sample_root
    root = DataRoot(str(folder))
    version = dataset_version(root, "sample")
    shards = Path(paths.shards_dir(root, "sample"))

    manifest = read_shard_manifest(root, str(shards))
    assert version.dataset == "sample" and version.n_shards == len(manifest.shards) > 0
    assert version.shards_content_hash == manifest.content_hash
    assert version.manifest_sha256 == hashlib.sha256(csv).hexdigest()
    assert version.manifest_source and version.manifest_source.endswith("videos.csv")

    videos = pq.read_table(folder / "datasets/sample/catalog/videos.parquet").to_pylist()
    chunks = pq.read_table(folder / "datasets/sample/catalog/chunks.parquet").to_pylist()
    assert version.videos == len(videos) == 1
    assert version.videos_ok == sum(v["status"] == "ok" for v in videos) == 1
    assert version.chunks == len(chunks) > 0
    assert version.chunks_per_split == {"test": sum(c["split"] == "test" for c in chunks),
                                        "train": sum(c["split"] == "train" for c in chunks)}

    # The recorded DVC hash is what `dvc add` gives the same shards in a repository.
    project = _dvc_repo(tmp_path / "repo")
    shutil.copytree(shards, project.path / "shards")
    assert project.add("shards")["shards"] == version.shards_dvc_md5
    assert version.shards_dvc_md5.endswith(".dir")

    record = version.to_dict()
    assert record["chunks_per_split"] == version.chunks_per_split and DatasetVersion.from_dict(record) == version
    assert hash(version) == hash(DatasetVersion.from_dict(record))
    assert dataset_version(root, "sample", dvc=False).shards_dvc_md5 is None


def test_one_changed_shard_byte_changes_the_dvc_md5_only(sample_root, tmp_path):
    root = _copy_root(sample_root[0], tmp_path / "data")
    before = dataset_version(root, "sample")
    shard = Path(paths.shards_dir(root, "sample")) / read_shard_manifest(root, paths.shards_dir(root, "sample")).shards[0].name
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    after = dataset_version(root, "sample")
    assert after.shards_dvc_md5 != before.shards_dvc_md5
    # The manifest still lists the old sha256: its content hash cannot see the edit, DVC's md5 can.
    assert after.shards_content_hash == before.shards_content_hash


def test_missing_shards_or_catalog_is_an_error_naming_the_file(sample_root, tmp_path):
    root = _copy_root(sample_root[0], tmp_path / "data")
    catalog = paths.catalog_path(root, "sample", "chunks")
    os.remove(catalog)
    with pytest.raises(FileNotFoundError, match=catalog):
        dataset_version(root, "sample")
    shards = paths.shards_dir(root, "sample")
    shutil.rmtree(shards)
    with pytest.raises(FileNotFoundError, match=f"{shards}/manifest.json"):
        dataset_version(root, "sample")


def test_object_store_root_has_no_dvc_md5_but_the_rest(sample_root):
    local = dataset_version(DataRoot(str(sample_root[0])), "sample")
    fs = fsspec.filesystem("memory")
    base = f"/dataset-version-{uuid.uuid4().hex[:8]}"
    try:
        fs.put(str(sample_root[0] / "datasets"), f"{base}/datasets", recursive=True)
        remote = dataset_version(DataRoot(f"memory://{base}"), "sample")
    finally:
        fs.rm(base, recursive=True)
    assert remote.shards_dvc_md5 is None
    assert _without(remote, "shards_dvc_md5") == _without(local, "shards_dvc_md5")


def _without(version: DatasetVersion, name: str) -> dict:
    record = version.to_dict()
    record.pop(name)
    return record


def test_manifest_metadata_absent_gives_none(sample_root, tmp_path):
    root = _copy_root(sample_root[0], tmp_path / "data")
    for table in ("videos", "clips", "errors"):
        os.remove(paths.manifest_path(root, "sample", table))
    version = dataset_version(root, "sample", dvc=False)
    assert version.manifest_sha256 is None and version.manifest_source is None and version.videos == 1

