"""DataRoot on a real S3 endpoint (moto on loopback): atomic writes, ranged reads, and a forked child (a DataLoader
worker) that reads through its own connection."""
import os

import pytest

from storage.root import DataRoot


@pytest.fixture()
def root(s3_bucket) -> DataRoot:
    return DataRoot(f"s3://{s3_bucket}/motionpipe")


def test_an_s3_url_is_a_remote_root_that_writes_atomically(root, s3_bucket):
    assert not root.is_local and root.base == f"{s3_bucket}/motionpipe"
    path = root.path("datasets", "sample", "shards", "manifest.json")
    digest = root.write_bytes(path, b'{"shards": []}')
    assert root.read_bytes(path) == b'{"shards": []}' and root.sha256(path) == digest and root.size(path) == 14
    with pytest.raises(RuntimeError, match="half"), root.open_atomic(path) as f:
        f.write(b"half")
        raise RuntimeError("half written")
    assert root.read_bytes(path) == b'{"shards": []}'  # the failed write replaced nothing and left no temporary
    assert root.ls(root.path("datasets", "sample", "shards")) == [path]
    with root.local_path(path) as local:
        assert open(local, "rb").read() == b'{"shards": []}'


def test_read_range_reads_exactly_the_bytes_asked_for(root):
    """s3fs's cat_file takes a version id second: a positional range read the wrong bytes (fixed in read_range)."""
    path = root.path("blob")
    data = bytes(range(256)) * 8
    root.write_bytes(path, data)
    for start, end in ((0, 10), (17, 300), (2000, 2048)):
        assert root.read_range(path, start, end) == data[start:end]


def test_a_forked_child_reads_through_its_own_connection(root):
    """s3fs runs an event-loop thread that a fork does not copy; the child must not reuse the parent's client."""
    path = root.path("blob")
    root.write_bytes(path, b"0123456789")
    assert root.read_range(path, 2, 5) == b"234"  # the parent's client exists before the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child reports through the pipe)
        try:
            os.write(write, root.read_range(path, 5, 9))
        except BaseException as exc:
            os.write(write, f"error: {exc}".encode()[:200])
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        got = pipe.read()
    os.waitpid(pid, 0)
    assert got == b"5678"
    assert root.read_range(path, 0, 2) == b"01"  # and the parent's still works


def test_a_missing_bucket_is_named_and_never_created(s3_bucket):
    """s3fs's makedirs would create the bucket: a typo in the data root would make a new bucket in the account."""
    root = DataRoot(f"s3://{s3_bucket}-typo/motionpipe")
    with pytest.raises(FileNotFoundError, match=f"bucket '{s3_bucket}-typo' of the data root s3://{s3_bucket}-typo"):
        root.write_bytes(root.path("catalog", "chunks.parquet"), b"rows")
    with pytest.raises(FileNotFoundError, match="creates no buckets"):
        root.put_file(__file__, root.path("code.py"))
    assert not root.fs.exists(f"{s3_bucket}-typo")
