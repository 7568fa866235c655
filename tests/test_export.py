"""`motionpipe export`: published shards back to the official repositories' train/ and test/ folders, read back
as the official `frames_dataset.py` reads them (folder listing, id-sampling glob, sorted PNG frames or an mp4)."""
from __future__ import annotations

import fcntl
import glob
import os
from pathlib import Path

import cv2
import imageio.v2 as imageio
import imageio.v3 as iio
import numpy as np
import pytest

from storage.export import STATE_DIR, ExportError, export_official_layout
from storage.frames import decode_frame, encode_frame
from storage.root import DataRoot
from storage.shards import ClipTarWriter, iter_tar_samples, pack_shards
from storage.video import iter_frames, probe

SHARDS = "datasets/mine/shards"


def moving(key: str, n: int, size: int = 32) -> list[np.ndarray]:
    """Smooth frames (a gradient that shifts per frame and per key): close after H.264, distinct per frame."""
    shift = sum(key.encode()) % 50
    y, x = np.mgrid[0:size, 0:size]
    return [np.stack([(x * 6 + 4 * i + shift) % 256, (y * 5 + 3 * i) % 256, (x + y + 2 * i) % 256],
                     axis=-1).astype(np.uint8) for i in range(n)]


def build(root: DataRoot, chunks: dict[str, tuple[str, int]], fmt: str = "png", size: int = 32,
          variant: dict[str, int] | None = None) -> dict[str, list[np.ndarray]]:
    """Clip tars and packed shards for {key: (split, n_frames)}; returns the frames each sample was made from.
    `variant` shifts a chunk's frames, so its sample changes while the others stay byte for byte the same."""
    made, samples = {}, []
    by_video: dict[str, list[str]] = {}
    for key in chunks:
        by_video.setdefault(key.split("#")[0], []).append(key)
    for vid, keys in by_video.items():
        path = root.path("datasets", "mine", "videos", vid, "clips.tar")
        with ClipTarWriter(root, path) as writer:
            for key in keys:
                frames = [np.roll(f, (variant or {}).get(key, 0), axis=1) for f in moving(key, chunks[key][1], size)]
                made[key] = frames
                ext = "png" if fmt == "png" else "jpg"
                writer.add_sample(key, [encode_frame(f, fmt) for f in frames], ext,
                                  {"chunk_id": key, "fps": 25.0, "n_frames": len(frames)})
                samples.append((chunks[key][0], path, key))
    pack_shards(root, root.path(*SHARDS.split("/")), samples, max_samples_per_shard=2)
    return made


def official_listing(dest: Path, split: str) -> dict[str, list[str]]:
    """What FOMM/TPSMM's FramesDataset finds: the entries of `split`, and per video id (id sampling) the chunks
    `glob(<root>/<split>/<id>*.mp4)` returns."""
    names = os.listdir(dest / split)
    ids = {n.split("#")[0] for n in names}
    return {vid: sorted(os.path.basename(p) for p in glob.glob(str(dest / split / (vid + "*.mp4")))) for vid in ids}


def png_folder(path: Path) -> list[np.ndarray]:
    """As `read_video` reads a folder: its files sorted by name."""
    return [iio.imread(path / name) for name in sorted(os.listdir(path))]


CHUNKS = {"vidA#000000#000005": ("train", 5), "vidA#000010#000013": ("train", 3),
          "vidB#000000#000004": ("test", 4), "vid-C_1#000002#000008": ("train", 6)}


@pytest.fixture
def root(tmp_path) -> DataRoot:
    return DataRoot(str(tmp_path / "data"))


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_png_export_is_the_official_layout_and_frame_exact(root, tmp_path, fmt):
    made = build(root, CHUNKS, fmt=fmt)
    dest = tmp_path / "official"
    summary = export_official_layout(root, "mine", dest, fmt="png", progress=lambda s: None)
    assert summary.written == {"train": 3, "test": 1} and summary.n_chunks == 4
    assert sorted(os.listdir(dest)) == [STATE_DIR, "test", "train"]
    assert official_listing(dest, "train") == {
        "vidA": ["vidA#000000#000005.mp4", "vidA#000010#000013.mp4"], "vid-C_1": ["vid-C_1#000002#000008.mp4"]}
    assert official_listing(dest, "test") == {"vidB": ["vidB#000000#000004.mp4"]}
    stored = {s.key: s.frames() for shard in sorted(os.listdir(root.path(*SHARDS.split("/"))))
              if shard.endswith(".tar") for s in iter_tar_samples(root, root.path(*SHARDS.split("/"), shard))}
    for key, (split, n) in CHUNKS.items():
        folder = dest / split / f"{key}.mp4"
        assert sorted(os.listdir(folder)) == [f"{i:07d}.png" for i in range(n)]
        frames = png_folder(folder)
        # Exactly the pixels training decodes from the shard (lossless copies of PNG, decoded JPEG otherwise).
        for got, data in zip(frames, stored[key]):
            np.testing.assert_array_equal(got, decode_frame(data))
        if fmt == "png":
            np.testing.assert_array_equal(np.stack(frames), np.stack(made[key]))
            assert [(folder / f"{i:07d}.png").read_bytes() for i in range(n)] == stored[key]
        np.testing.assert_array_equal(cv2.imread(str(folder / "0000000.png"))[:, :, ::-1], frames[0])


def test_mp4_export_reads_back_with_every_frame(root, tmp_path):
    made = build(root, CHUNKS)
    dest = tmp_path / "official-mp4"
    export_official_layout(root, "mine", dest, fmt="mp4", crf=10, progress=lambda s: None)
    for key, (split, n) in CHUNKS.items():
        path = dest / split / f"{key}.mp4"
        assert path.is_file()
        info = probe(path)
        assert (info.width, info.height, round(info.fps, 3)) == (32, 32, 25.0)
        ours = np.stack(list(iter_frames(path)))
        theirs = np.array(imageio.mimread(path, memtest=False))  # what the official read_video calls
        assert ours.shape == theirs.shape == (n, 32, 32, 3)
        assert np.abs(ours.astype(int) - np.stack(made[key]).astype(int)).mean() < 6


def test_rerun_skips_finished_chunks_and_follows_the_shards(root, tmp_path):
    build(root, CHUNKS)
    dest = tmp_path / "official"
    export_official_layout(root, "mine", dest, progress=lambda s: None)
    first = {p: p.stat().st_mtime_ns for p in dest.glob("*/*.mp4/*.png")}
    again = export_official_layout(root, "mine", dest, progress=lambda s: None)
    assert again.written == {} and again.skipped == {"train": 3, "test": 1}
    assert {p: p.stat().st_mtime_ns for p in dest.glob("*/*.mp4/*.png")} == first

    # A rebuild: one chunk changed, one gone, one moved to test, one new, one as it was. Only the first four are
    # touched.
    changed = {"vidA#000000#000005": ("train", 5), "vidB#000000#000004": ("test", 4),
               "vid-C_1#000002#000008": ("test", 6), "vidD#000000#000003": ("train", 3)}
    made = build(root, changed, variant={"vidA#000000#000005": 3})
    unchanged = {p: m for p, m in first.items() if "vidB" in str(p)}
    summary = export_official_layout(root, "mine", dest, progress=lambda s: None)
    assert (summary.written, summary.skipped, summary.removed) == ({"train": 2, "test": 1}, {"test": 1},
                                                                   {"train": 2})
    assert sorted(os.listdir(dest / "train")) == ["vidA#000000#000005.mp4", "vidD#000000#000003.mp4"]
    assert sorted(os.listdir(dest / "test")) == ["vid-C_1#000002#000008.mp4", "vidB#000000#000004.mp4"]
    assert {p: p.stat().st_mtime_ns for p in unchanged} == unchanged
    for key, (split, _) in changed.items():
        np.testing.assert_array_equal(np.stack(png_folder(dest / split / f"{key}.mp4")), np.stack(made[key]))
    assert not (dest / STATE_DIR / "tmp").exists()


def test_a_failed_export_leaves_nothing_half_written_in_view(root, tmp_path):
    """An odd frame size cannot be H.264 yuv420p: the export stops at that chunk with its name; what finished is
    in place, the failing chunk is absent (no temporary file in train/ or test/, where the readers would take it
    for a video), and a rerun picks up the leftovers."""
    root_ok = {"good#000000#000004": ("train", 4)}
    build(root, root_ok)
    odd = DataRoot(str(tmp_path / "odd"))
    path = odd.path("datasets", "mine", "videos", "zodd", "clips.tar")
    with ClipTarWriter(odd, path) as writer:
        writer.add_sample("zodd#000000#000003", [encode_frame(f, "png") for f in moving("z", 3, size=33)], "png",
                          {"chunk_id": "zodd#000000#000003", "fps": 25.0})
    good = root.path("datasets", "mine", "videos", "good", "clips.tar")
    pack_shards(root, root.path(*SHARDS.split("/")), [("train", good, "good#000000#000004"),
                                                      ("train", path, "zodd#000000#000003")])
    dest = tmp_path / "official"
    with pytest.raises(ValueError, match="33x33 has an odd side"):
        export_official_layout(root, "mine", dest, fmt="mp4", progress=lambda s: None)
    assert os.listdir(dest / "train") == ["good#000000#000004.mp4"] and os.listdir(dest / "test") == []
    assert probe(dest / "train" / "good#000000#000004.mp4", count_frames=True).n_frames == 4
    (dest / STATE_DIR / "tmp" / "half-written.mp4").write_bytes(b"\0" * 100)  # as a killed run leaves it
    with pytest.raises(ValueError, match="odd side"):
        export_official_layout(root, "mine", dest, fmt="mp4", progress=lambda s: None)
    assert not (dest / STATE_DIR / "tmp" / "half-written.mp4").exists()


def test_refusals_name_the_folder_or_the_shard(root, tmp_path):
    with pytest.raises(ExportError, match="no shard manifest"):
        export_official_layout(root, "mine", tmp_path / "x", progress=lambda s: None)
    build(root, CHUNKS)
    foreign = tmp_path / "someone-elses"
    (foreign / "train").mkdir(parents=True)
    with pytest.raises(ExportError, match=f"{foreign}: not empty and not a motionpipe export"):
        export_official_layout(root, "mine", foreign, progress=lambda s: None)
    dest = tmp_path / "official"
    export_official_layout(root, "mine", dest, fmt="png", progress=lambda s: None)
    with pytest.raises(ExportError, match="holds the png export of 'mine'; export mp4"):
        export_official_layout(root, "mine", dest, fmt="mp4", progress=lambda s: None)
    with open(dest / STATE_DIR / "lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ExportError, match="another export into this folder is running"):
            export_official_layout(root, "mine", dest, progress=lambda s: None)
    shard = next(Path(root.path(*SHARDS.split("/"))).glob("train-*.tar"))
    data = bytearray(shard.read_bytes())
    data[700] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ExportError, match=f"{shard.name}: sha256 mismatch"):
        export_official_layout(root, "mine", tmp_path / "fresh", progress=lambda s: None)
    assert not (tmp_path / "fresh").exists()
