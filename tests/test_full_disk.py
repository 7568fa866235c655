"""A write that runs out of space fails with an error naming the file, and leaves the previous version intact."""
import multiprocessing as mp
import resource
import signal

from storage.root import DataRoot


def _write_big(root_dir: str, queue) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed, like ENOSPC
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))  # the "disk" holds 64 KiB per file
    root = DataRoot(root_dir)
    try:
        root.write_bytes(root.path("catalog", "chunks.parquet"), b"x" * (1 << 20))
        queue.put("no error")
    except OSError as exc:
        queue.put(str(exc))


def test_out_of_space_names_the_file_and_keeps_the_old_one(tmp_path):
    root = DataRoot(str(tmp_path))
    target = root.path("catalog", "chunks.parquet")
    root.write_bytes(target, b"previous good version")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_write_big, args=(str(tmp_path), queue))
    proc.start()
    proc.join(60)
    message = queue.get(timeout=5)
    assert "catalog/chunks.parquet" in message and "nothing was replaced" in message
    assert root.read_bytes(target) == b"previous good version"
    assert [p.name for p in (tmp_path / "catalog").iterdir()] == ["chunks.parquet"]  # no temp file left
