"""Frames, clip tars and packed shards: exact bytes, atomic publishing, and plain `webdataset` as the reader."""
from __future__ import annotations

import hashlib
import json
import os
import warnings

import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from storage.frames import decode_frame, encode_frame, frame_entry_name
from storage.ids import InvalidIdError
from storage.root import DataRoot
from storage.shards import (
    ClipTarWriter,
    ShardError,
    iter_chunks,
    iter_tar_samples,
    pack_shards,
    read_shard_manifest,
    verify_shards,
)

VIDEOS = ("abcdefghijk", "-a_b-c_d-e_", "Zz9_Zz9_Zz9")


@pytest.fixture
def root(tmp_path) -> DataRoot:
    return DataRoot(str(tmp_path))


def frames_for(key: str, n: int, size: int = 8) -> list[np.ndarray]:
    """Deterministic per-key noise frames, so each sample's content is its own."""
    seed = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def smooth_frame(h: int = 32, w: int = 48) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 5, y * 7, (x + y) * 3], axis=-1).astype(np.uint8)


def write_clips(root: DataRoot, video_id: str, spans: list[tuple[int, int]], fmt: str = "png") -> tuple[str, list]:
    path = root.path("videos", video_id, "clips.tar")
    ext = "png" if fmt == "png" else "jpg"
    with ClipTarWriter(root, path) as writer:
        for start, end in spans:
            key = f"{video_id}#{start:06d}#{end:06d}"
            frames = (encode_frame(f, fmt) for f in frames_for(key, end - start))
            writer.add_sample(key, frames, ext, {"chunk_id": key, "fps": 25.0, "start": start, "end": end})
    return path, writer.samples


def listing(directory) -> list[str]:
    return sorted(os.listdir(directory))


# ---- frames ----------------------------------------------------------------------------------------------------


def test_png_round_trip_is_exact():
    rgb = frames_for("png", 1, size=17)[0]
    data = encode_frame(rgb, "png")
    assert data[:4] == b"\x89PNG"
    np.testing.assert_array_equal(decode_frame(data), rgb)


def test_jpeg_round_trip_is_close_and_keeps_channel_order():
    rgb = smooth_frame()
    rgb[..., 0] = 200  # a strong red channel: a BGR/RGB swap would show as a large error
    out = decode_frame(encode_frame(rgb, "jpeg", quality=95))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 2.0


def test_jpeg_is_444_and_quality_matters():
    rgb = smooth_frame()
    data = encode_frame(rgb, "jpeg", quality=95)
    sof = data.index(b"\xff\xc0")  # baseline frame header: per component (id, sampling HV, table)
    n_components = data[sof + 9]
    sampling = [data[sof + 10 + 3 * i + 1] for i in range(n_components)]
    assert sampling == [0x11, 0x11, 0x11]
    assert len(encode_frame(rgb, "jpeg", quality=30)) < len(data)


def test_frame_helpers_reject_bad_input():
    assert frame_entry_name(123, "jpeg") == "000123.jpg"
    assert frame_entry_name(0, "png") == "000000.png"
    with pytest.raises(ValueError, match="unknown frame format"):
        frame_entry_name(0, "gif")
    with pytest.raises(ValueError, match="RGB uint8"):
        encode_frame(np.zeros((4, 4), np.uint8), "png")
    with pytest.raises(ValueError, match="cannot decode frame"):
        decode_frame(b"not an image")


# ---- clip tars -------------------------------------------------------------------------------------------------


def test_clip_tar_round_trip_and_determinism(root):
    path, infos = write_clips(root, VIDEOS[0], [(0, 3), (3, 5)])
    first = root.sha256(path)
    samples = list(iter_tar_samples(root, path))
    assert [s.key for s in samples] == [f"{VIDEOS[0]}#000000#000003", f"{VIDEOS[0]}#000003#000005"]
    assert [n for n, _ in samples[0].entries] == ["000000.png", "000001.png", "000002.png", "json"]
    assert samples[0].meta() == {"chunk_id": samples[0].key, "fps": 25.0, "start": 0, "end": 3,
                                 "frame_format": "png", "n_frames": 3}
    for got, want in zip(samples[1].frames(), frames_for(samples[1].key, 2)):
        np.testing.assert_array_equal(decode_frame(got), want)
    assert [(i.key, i.n_frames) for i in infos] == [(s.key, len(s.frames())) for s in samples]

    root.rm(path)
    write_clips(root, VIDEOS[0], [(0, 3), (3, 5)])
    assert root.sha256(path) == first
    # Headers carry nothing of the machine or the moment.
    import tarfile
    with tarfile.open(path) as tar:
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in tar} == {(0, 0, 0, "", "", 0o644)}


def test_clip_tar_streams_frames_to_disk(root, tmp_path):
    """Each frame is in the temporary file before the next one is asked for."""
    key = f"{VIDEOS[0]}#000000#000006"
    frames = [encode_frame(f, "png") for f in frames_for(key, 6, size=64)]  # ~12 KB each, above I/O buffers
    sizes = []

    def produce():
        for data in frames:
            temps = [p for p in (tmp_path / "v").iterdir() if p.name.startswith(".clips.tar.tmp-")]
            sizes.append(temps[0].stat().st_size)
            yield data

    with ClipTarWriter(root, root.path("v", "clips.tar")) as writer:
        writer.add_sample(key, produce(), "png", {})
    assert all(later > earlier for earlier, later in zip(sizes[1:], sizes[2:]))
    assert sizes[-1] >= sum(len(d) for d in frames[:4])


def test_exception_in_writer_leaves_nothing_and_keeps_old_file(root, tmp_path):
    path = root.path("v", "clips.tar")
    one = [encode_frame(f, "png") for f in frames_for("a", 2)]
    with pytest.raises(RuntimeError, match="boom"):
        with ClipTarWriter(root, path) as writer:
            writer.add_sample(f"{VIDEOS[0]}#000000#000002", one, "png", {})
            raise RuntimeError("boom")
    assert listing(tmp_path / "v") == []

    old_path, _ = write_clips(root, VIDEOS[0], [(0, 2)])
    before = root.read_bytes(old_path)
    with pytest.raises(RuntimeError, match="boom"):
        with ClipTarWriter(root, old_path) as writer:
            writer.add_sample(f"{VIDEOS[0]}#000005#000007", one, "png", {})
            raise RuntimeError("boom")
    assert root.read_bytes(old_path) == before
    assert listing(tmp_path / "videos" / VIDEOS[0]) == ["clips.tar"]


def test_broken_writer_refuses_to_publish(root, tmp_path):
    path, _ = write_clips(root, VIDEOS[0], [(0, 2)])
    before = root.read_bytes(path)

    def failing_frames():
        yield encode_frame(frames_for("b", 1)[0], "png")
        raise OSError("decoder died")

    with pytest.raises(RuntimeError, match="not published"):
        with ClipTarWriter(root, path) as writer:
            with pytest.raises(OSError, match="decoder died"):
                writer.add_sample(f"{VIDEOS[0]}#000000#000002", failing_frames(), "png", {})
            with pytest.raises(RuntimeError, match="earlier sample failed"):
                writer.add_sample(f"{VIDEOS[0]}#000002#000004", [b"x"], "png", {})
    assert root.read_bytes(path) == before
    assert listing(tmp_path / "videos" / VIDEOS[0]) == ["clips.tar"]


def test_writer_rejects_bad_samples(root):
    with ClipTarWriter(root, root.path("v", "clips.tar")) as writer:
        with pytest.raises(InvalidIdError):
            writer.add_sample("abc.def#000000#000001", [b"x"], "png", {})
        with pytest.raises(InvalidIdError):
            writer.add_sample(f"{VIDEOS[0]}#0#1", [b"x"], "png", {})  # not the canonical 6-digit form
        with pytest.raises(ValueError, match="frame extension"):
            writer.add_sample(f"{VIDEOS[0]}#000000#000001", [b"x"], "jpeg", {})
        with pytest.raises(ValueError, match="not plain JSON"):
            writer.add_sample(f"{VIDEOS[0]}#000000#000001", [b"x"], "png", {"fps": np.float32(25)})
        writer.add_sample(f"{VIDEOS[0]}#000000#000001", [encode_frame(frames_for("c", 1)[0], "png")], "png", {})
        with pytest.raises(ShardError, match="duplicate sample key"):
            writer.add_sample(f"{VIDEOS[0]}#000000#000001", [b"x"], "png", {})


@pytest.mark.parametrize("cut", ["boundary", "middle", "trailer"])
def test_truncated_tar_is_named(root, cut):
    path, infos = write_clips(root, VIDEOS[0], [(0, 3), (3, 5)])
    data = root.read_bytes(path)
    end = {"boundary": infos[0].bytes, "middle": infos[0].bytes + 700, "trailer": len(data) - 9000}[cut]
    root.write_bytes(path, data[:end])
    with pytest.raises(ShardError, match=r"clips\.tar: truncated or corrupt tar"):
        list(iter_tar_samples(root, path))
    with pytest.raises(ShardError, match=r"clips\.tar: truncated or corrupt tar"):
        pack_shards(root, root.path("shards"), [("train", path, infos[0].key)])


# ---- shards ----------------------------------------------------------------------------------------------------


def make_dataset(root: DataRoot, extra: bool = False) -> tuple[list, dict]:
    """Three videos: two in train, one in test; returns pack input and the writers' SampleInfo by key."""
    spans = {VIDEOS[0]: [(0, 3), (3, 5), (5, 9)], VIDEOS[1]: [(10, 12), (12, 15)], VIDEOS[2]: [(0, 2), (2, 6)]}
    if extra:
        spans[VIDEOS[0]].append((9, 11))
    split = {VIDEOS[0]: "train", VIDEOS[1]: "test", VIDEOS[2]: "train"}
    samples, infos = [], {}
    for video_id, video_spans in spans.items():
        path, written = write_clips(root, video_id, video_spans, fmt="jpeg" if video_id == VIDEOS[2] else "png")
        for info in written:
            samples.append((split[video_id], path, info.key))
            infos[info.key] = info
    return samples, infos


def sidecar_rows(shards_dir) -> dict[str, dict]:
    rows = {}
    for name in listing(shards_dir):
        if name.endswith(".parquet"):
            for row in pq.read_table(shards_dir / name).to_pylist():
                rows[row["key"]] = row | {"shard": name.replace(".parquet", ".tar")}
    return rows


def test_plain_webdataset_reads_packed_shards(root, tmp_path):
    samples, infos = make_dataset(root)
    index = pack_shards(root, root.path("shards"), samples, max_samples_per_shard=2)
    shards_dir = tmp_path / "shards"
    assert listing(shards_dir) == ["manifest.json"] + [
        f"{stem}.{ext}" for stem in ("test-000000", "train-000000", "train-000001", "train-000002")
        for ext in ("parquet", "tar")
    ]
    seen = {}
    for shard in index.manifest.shards:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = wds.WebDataset(str(shards_dir / shard.name), shardshuffle=False).decode("rgb8")
            for sample in ds:
                key = sample["__key__"]
                frames = sorted(k for k in sample if k[0].isdigit())
                ext = "jpg" if key.startswith(VIDEOS[2]) else "png"
                assert frames == [f"{i:06d}.{ext}" for i in range(len(frames))]
                assert sample["json"]["n_frames"] == len(frames) == infos[key].n_frames
                if key.startswith(VIDEOS[0]):  # lossless: the exact pixels
                    for name, want in zip(frames, frames_for(key, len(frames))):
                        np.testing.assert_array_equal(sample[name], want)
                seen[key] = shard.name
    assert seen == index.shard_of
    assert set(seen) == set(infos)
    assert {k for k, v in seen.items() if v.startswith("test")} == {k for k in infos if k.startswith(VIDEOS[1])}
    # Sorted by split then key (byte order: upper case first), two per shard.
    assert index.shard_of[f"{VIDEOS[2]}#000000#000002"] == "train-000000.tar"
    assert index.shard_of[f"{VIDEOS[0]}#000005#000009"] == "train-000002.tar"
    assert verify_shards(root, root.path("shards")) == []


def test_sidecar_and_manifest_agree_with_the_bytes(root, tmp_path):
    samples, infos = make_dataset(root)
    index = pack_shards(root, root.path("shards"), samples, max_samples_per_shard=3)
    shards_dir = tmp_path / "shards"
    rows = sidecar_rows(shards_dir)
    assert {k: (r["n_frames"], r["bytes"], r["sha256"]) for k, r in rows.items()} == {
        k: (i.n_frames, i.bytes, i.sha256) for k, i in infos.items()
    }
    for key, row in rows.items():  # the sidecar's offset and size locate exactly the sample's bytes
        data = (shards_dir / row["shard"]).read_bytes()[row["offset"]: row["offset"] + row["bytes"]]
        assert hashlib.sha256(data).hexdigest() == infos[key].sha256

    doc = json.loads((shards_dir / "manifest.json").read_text())
    assert doc["n_samples"] == len(infos)
    assert doc["splits"]["test"]["n_samples"] == 2 and doc["splits"]["train"]["n_samples"] == 5
    for shard in doc["shards"]:
        assert hashlib.sha256((shards_dir / shard["name"]).read_bytes()).hexdigest() == shard["sha256"]
        assert pq.read_table(shards_dir / shard["sidecar"]).num_rows == shard["n_samples"]
    lines = sorted(f"{s['name']} {s['sha256']}\n" for s in doc["shards"])
    assert doc["content_hash"] == hashlib.sha256("".join(lines).encode()).hexdigest() == index.content_hash
    assert read_shard_manifest(root, root.path("shards")) == index.manifest


def test_byte_limit_splits_shards(root, tmp_path):
    samples, infos = make_dataset(root)
    smallest = min(i.bytes for i in infos.values())
    index = pack_shards(root, root.path("shards"), samples, max_shard_bytes=smallest)
    assert [s.n_samples for s in index.manifest.shards] == [1] * len(infos)

    largest = max(i.bytes for i in infos.values())
    index = pack_shards(root, root.path("shards"), samples, max_shard_bytes=largest + smallest)
    assert len(index.manifest.shards) < len(infos)
    for shard in index.manifest.shards:
        rows = pq.read_table(tmp_path / "shards" / shard.sidecar).to_pylist()
        assert sum(r["bytes"] for r in rows) <= largest + smallest
    assert verify_shards(root, root.path("shards")) == []


def test_repack_is_deterministic_and_idempotent(root, tmp_path):
    samples, _ = make_dataset(root)
    first = pack_shards(root, root.path("shards"), samples, max_samples_per_shard=2)
    stats = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (tmp_path / "shards").iterdir()}
    again = pack_shards(root, root.path("shards"), list(reversed(samples)), max_samples_per_shard=2)
    assert again == first
    # Nothing was replaced: unchanged shards and manifest keep their files.
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (tmp_path / "shards").iterdir()} == stats


def test_repack_after_adding_a_chunk(root, tmp_path):
    samples, infos = make_dataset(root)
    first = pack_shards(root, root.path("shards"), samples, max_samples_per_shard=2)
    before = sidecar_rows(tmp_path / "shards")

    samples2, infos2 = make_dataset(root, extra=True)
    second = pack_shards(root, root.path("shards"), samples2, max_samples_per_shard=2)
    after = sidecar_rows(tmp_path / "shards")

    new_key = f"{VIDEOS[0]}#000009#000011"
    assert set(after) == set(before) | {new_key}
    for key, row in before.items():  # every other sample's bytes are unchanged
        assert after[key]["sha256"] == row["sha256"]
    old = {s.name: s.sha256 for s in first.manifest.shards}
    new = {s.name: s.sha256 for s in second.manifest.shards}
    assert new["test-000000.tar"] == old["test-000000.tar"]  # shards before the insertion point are identical
    assert new["train-000000.tar"] == old["train-000000.tar"]
    assert second.content_hash != first.content_hash
    assert verify_shards(root, root.path("shards")) == []
    assert not [n for n in listing(tmp_path / "shards") if n.startswith(".")]
    got = {key: len(frames) for key, _, frames in iter_chunks(root, root.path("shards"), "train")}
    assert got == {k: i.n_frames for k, i in infos2.items() if not k.startswith(VIDEOS[1])}


def test_repack_with_fewer_chunks_removes_stale_shards(root, tmp_path):
    samples, _ = make_dataset(root)
    pack_shards(root, root.path("shards"), samples, max_samples_per_shard=2)
    assert "train-000002.tar" in listing(tmp_path / "shards")
    kept = [s for s in samples if s[0] == "test"]
    index = pack_shards(root, root.path("shards"), kept, max_samples_per_shard=2)
    assert listing(tmp_path / "shards") == ["manifest.json", "test-000000.parquet", "test-000000.tar"]
    assert set(index.shard_of) == {s[2] for s in kept}
    assert list(iter_chunks(root, root.path("shards"), "train")) == []


def test_verify_catches_corruption_and_missing_shards(root, tmp_path):
    samples, _ = make_dataset(root)
    pack_shards(root, root.path("shards"), samples, max_samples_per_shard=2)
    shards_dir = tmp_path / "shards"

    shard = shards_dir / "train-000001.tar"
    data = bytearray(shard.read_bytes())
    data[700] ^= 0x01  # one bit inside a frame
    shard.write_bytes(bytes(data))
    (shards_dir / "train-000002.tar").unlink()
    side = shards_dir / "test-000000.parquet"
    table = pq.read_table(side)
    pq.write_table(table.slice(0, 1), side)

    problems = verify_shards(root, root.path("shards"))
    assert any("train-000001.tar: sha256 mismatch" in p for p in problems)
    assert any("train-000002.tar: missing shard" in p for p in problems)
    assert any("test-000000.parquet: 1 rows, manifest says 2 samples" in p for p in problems)
    assert not any("train-000000" in p for p in problems)

    (shards_dir / "manifest.json").unlink()
    assert verify_shards(root, root.path("shards"))[0].startswith("no shard manifest")


def crash_on_mv(monkeypatch, root, when):
    """Make the n-th rename matching `when(src, dst)` fail, as a crash at that point would."""
    real_mv = root.fs.mv

    def mv(src, dst, **kw):
        if when(src, dst):
            raise OSError("power cut")
        return real_mv(src, dst, **kw)

    monkeypatch.setattr(root.fs, "mv", mv)


def test_crash_while_staging_keeps_the_old_dataset(root, tmp_path, monkeypatch):
    samples, infos = make_dataset(root)
    first = pack_shards(root, root.path("shards"), samples, max_samples_per_shard=2)
    samples2, _ = make_dataset(root, extra=True)
    staged = []
    crash_on_mv(monkeypatch, root, lambda src, dst: "/.staging-" in dst and len(staged.append(dst) or staged) > 3)
    with pytest.raises(OSError, match="power cut"):
        pack_shards(root, root.path("shards"), samples2, max_samples_per_shard=2)
    monkeypatch.undo()
    assert read_shard_manifest(root, root.path("shards")) == first.manifest
    assert verify_shards(root, root.path("shards")) == []
    assert {k for k, _, _ in iter_chunks(root, root.path("shards"), "train")} == {
        k for k in infos if not k.startswith(VIDEOS[1])
    }


def test_crash_while_swapping_in_never_shows_a_mix(root, tmp_path, monkeypatch):
    """A crash while renaming new shards over old ones leaves no manifest (readers refuse); a rerun repairs it."""
    samples, _ = make_dataset(root)
    pack_shards(root, root.path("shards"), samples, max_samples_per_shard=2)
    samples2, infos2 = make_dataset(root, extra=True)
    moved = []
    crash_on_mv(monkeypatch, root,
                lambda src, dst: "/.staging-" not in dst and "/.staging-" in src
                and len(moved.append(dst) or moved) > 1)
    with pytest.raises(OSError, match="power cut"):
        pack_shards(root, root.path("shards"), samples2, max_samples_per_shard=2)
    monkeypatch.undo()

    assert len(moved) == 2  # one new shard file was already in place when the crash came
    assert not (tmp_path / "shards" / "manifest.json").exists()
    with pytest.raises(FileNotFoundError, match="no shard manifest"):
        list(iter_chunks(root, root.path("shards"), "train"))
    assert any(n.startswith(".staging-") for n in listing(tmp_path / "shards"))

    index = pack_shards(root, root.path("shards"), samples2, max_samples_per_shard=2)
    assert verify_shards(root, root.path("shards")) == []
    assert set(index.shard_of) == set(infos2)
    assert not any(n.startswith(".") for n in listing(tmp_path / "shards"))


def test_pack_rejects_bad_input(root):
    samples, _ = make_dataset(root)
    split, path, key = samples[0]
    with pytest.raises(ValueError, match="split 'val'"):
        pack_shards(root, root.path("shards"), [("val", path, key)])
    with pytest.raises(ShardError, match="given twice"):
        pack_shards(root, root.path("shards"), [samples[0], ("test", path, key)])
    with pytest.raises(ShardError, match=r"clips\.tar: no sample"):
        pack_shards(root, root.path("shards"), [(split, path, f"{VIDEOS[0]}#000100#000200")])
    with pytest.raises(FileNotFoundError, match="clip tar not found"):
        pack_shards(root, root.path("shards"), [(split, root.path("nowhere.tar"), key)])
    assert not root.exists(root.path("shards", "manifest.json"))


def test_iter_chunks_yields_rgb_frames(root):
    samples, infos = make_dataset(root)
    pack_shards(root, root.path("shards"), samples)
    got = list(iter_chunks(root, root.path("shards"), "test"))
    assert [k for k, _, _ in got] == sorted(k for k in infos if k.startswith(VIDEOS[1]))
    key, meta, frames = got[0]
    assert meta["chunk_id"] == key and meta["n_frames"] == len(frames) == 2
    for got_frame, want in zip(frames, frames_for(key, 2)):
        np.testing.assert_array_equal(got_frame, want)
