"""Training pairs and evaluation frames from real shards: sampling, seeding, sharing out, augmentation, bad input.

The dataset is built with the storage API on tmp_path: 3 train videos × 2 chunks and 1 test video × 2 chunks, 8
frames of 64×64 each. Every frame carries its identity in flat colour planes (R: frame number, G: video and chunk)
and a horizontal ramp in B (to see flips), so an item can be checked against what it claims to be.
"""
from __future__ import annotations

import dataclasses
import json
import uuid

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance
from torch.utils.data import DataLoader, get_worker_info

from storage import paths
from storage.catalog import CHUNKS_SCHEMA, ChunkRow, write_rows
from storage.frames import encode_frame
from storage.root import DataRoot
from storage.shards import ClipTarWriter, pack_shards
from training.config import AugmentationParams, JitterParams, load_config
from training.loop.augment import (Jitter, PairAugmentation, adjust_brightness, adjust_contrast, adjust_hue,
                                   adjust_saturation, hsv_to_rgb, rgb_to_hsv)
from training.loop.data import (DataError, EvalFrames, PairDataset, PairSampler, build_loader, iter_eval_chunks,
                                load_split_index, make_loader, to_float)

DATASET = "sample"  # the name the *-sample-64 configs train on
TRAIN = ("vidAAAAAAAA", "vidBBBBBBBB", "vidCCCCCCCC")
TEST = ("vidTTTTTTTT",)
STARTS = (0, 100)
N_FRAMES, SIZE = 8, 64
JITTER = JitterParams(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.1)


def painted(video: int, chunk: int, frame: int) -> np.ndarray:
    rgb = np.empty((SIZE, SIZE, 3), np.uint8)
    rgb[..., 0] = 20 + 25 * frame
    rgb[..., 1] = 20 + 60 * video + 30 * chunk
    rgb[..., 2] = np.arange(SIZE, dtype=np.uint8)[None, :] * 4
    return rgb


def identify(img: torch.Tensor) -> tuple[int, int, int]:
    """(video, chunk, frame) read back from a decoded (3, H, W) frame."""
    r, g = (float(img[c].mean()) * 255 for c in (0, 1))
    frame = round((r - 20) / 25)
    video, rest = divmod(round((g - 20) / 30), 2)
    return video, rest, frame


def build_dataset(root: DataRoot, max_samples: int = 2) -> None:
    rows, samples, metas = [], [], {}
    for v, vid in enumerate(TRAIN + TEST):
        fmt, ext = ("jpeg", "jpg") if v == 2 else ("png", "png")
        tar = paths.clips_path(root, DATASET, vid)
        with ClipTarWriter(root, tar) as writer:
            for c, start in enumerate(STARTS):
                key = f"{vid}#{start:06d}#{start + N_FRAMES:06d}"
                frames = (encode_frame(painted(v, c, f), fmt, 95) for f in range(N_FRAMES))
                info = writer.add_sample(key, frames, ext, {"chunk_id": key})
                split = "test" if vid in TEST else "train"
                samples.append((split, tar, key))
                metas[key] = (vid, split, start, fmt, info)
    index = pack_shards(root, paths.shards_dir(root, DATASET), samples, max_samples_per_shard=max_samples)
    for key, (vid, split, start, fmt, info) in metas.items():
        rows.append(ChunkRow(
            chunk_id=key, video_id=vid, dataset=DATASET, split=split, start=start, end=start + N_FRAMES,
            src_start=start, src_end=start + N_FRAMES, box=(0, 0, 128, 128), fps=25.0, n_frames=N_FRAMES,
            width=SIZE, height=SIZE, frame_format=fmt, jpeg_quality=95 if fmt == "jpeg" else None,
            out_of_frame="pad", sha256=info.sha256, shard=index.shard_of[key], bytes=info.bytes,
            provenance=json.dumps({"source": "test"}),
        ))
    write_rows(root, paths.catalog_path(root, DATASET, "chunks"), rows, CHUNKS_SCHEMA)


@pytest.fixture
def root(tmp_path) -> DataRoot:
    r = DataRoot(str(tmp_path / "data"))
    build_dataset(r)
    return r


def dataset(root, **kw) -> PairDataset:
    return PairDataset(load_split_index(root, DATASET, "train"), frame_shape=(SIZE, SIZE, 3), **kw)


def epoch_items(ds: PairDataset, epoch: int) -> list[dict]:
    return [ds[(epoch, i)] for i in range(len(ds))]


def signature(item: dict) -> tuple:
    return item["key"], tuple(item["frames"].tolist())


# ---- index and sampling ------------------------------------------------------------------------------------------


def test_index_locates_every_chunk_of_the_split(root):
    index = load_split_index(root, DATASET, "train")
    assert [c.key for c in index.chunks] == sorted(f"{v}#{s:06d}#{s + 8:06d}" for v in TRAIN for s in STARTS)
    assert index.video_ids == TRAIN and index.n_frames == 48
    assert len({c.shard for c in index.chunks}) == 3  # 2 samples per shard: offsets inside shards are used
    assert any(c.offset > 0 for c in index.chunks)
    assert [c.video_id for c in load_split_index(root, DATASET, "test").chunks] == list(TEST) * 2


def test_one_item_per_video_id_per_repeat_with_sorted_frames_of_one_chunk(root):
    ds = dataset(root, num_repeats=3)
    assert len(ds) == 9
    items = epoch_items(ds, 0)
    per_video = {v: sum(it["key"].startswith(v) for it in items) for v in TRAIN}
    assert per_video == {v: 3 for v in TRAIN}
    for it in items:
        video, chunk = TRAIN.index(it["key"].split("#")[0]), STARTS.index(int(it["key"].split("#")[1]))
        src, drv = identify(it["source"]), identify(it["driving"])
        assert src[:2] == drv[:2] == (video, chunk)  # both frames from the chunk the item names
        assert (src[2], drv[2]) == tuple(it["frames"].tolist())
        assert src[2] <= drv[2]  # sorted: the source is never later than the driving frame
        assert it["source"].shape == (3, SIZE, SIZE) and it["source"].dtype == torch.float32
        assert 0 <= float(it["source"].min()) and float(it["source"].max()) <= 1
    chosen = {it["key"] for e in range(4) for it in epoch_items(ds, e)}
    assert len(chosen) == 6  # a random chunk of the id: over a few epochs every chunk comes up
    frames = [tuple(it["frames"].tolist()) for e in range(4) for it in epoch_items(ds, e)]
    assert len(set(frames)) > 10 and any(a == b for a, b in frames)  # random pairs, drawn with replacement


def test_without_id_sampling_every_chunk_is_an_item(root):
    ds = dataset(root, id_sampling=False)
    assert len(ds) == 6
    assert sorted(it["key"] for it in epoch_items(ds, 0)) == [c.key for c in ds.index.chunks]


def test_same_seed_same_items_other_seed_or_epoch_differs(root):
    a = epoch_items(dataset(root, num_repeats=2, seed=7, augmentation=AugmentationParams(jitter=JITTER)), 3)
    b = epoch_items(dataset(root, num_repeats=2, seed=7, augmentation=AugmentationParams(jitter=JITTER)), 3)
    for x, y in zip(a, b):
        assert signature(x) == signature(y)
        assert torch.equal(x["source"], y["source"]) and torch.equal(x["driving"], y["driving"])
    other_seed = epoch_items(dataset(root, num_repeats=2, seed=8, augmentation=AugmentationParams(jitter=JITTER)), 3)
    other_epoch = epoch_items(dataset(root, num_repeats=2, seed=7, augmentation=AugmentationParams(jitter=JITTER)), 4)
    for other in (other_seed, other_epoch):
        assert [signature(x) for x in a] != [signature(x) for x in other]
        assert any(not torch.equal(x["source"], y["source"]) for x, y in zip(a, other))


def test_sampler_gives_ranks_equal_disjoint_shares_and_resumes_mid_epoch():
    shares = []
    for rank in range(3):
        s = PairSampler(10, seed=1, rank=rank, world_size=3)
        s.set_epoch(2)
        shares.append([i for _, i in s])
        assert all(e == 2 for e, _ in s) and len(s) == 3
    flat = [i for share in shares for i in share]
    assert len(flat) == len(set(flat)) == 9  # 10 // 3 each; the one left over is dropped this epoch
    s = PairSampler(10, seed=1, rank=1, world_size=3)
    s.set_epoch(2, start=2)
    assert [i for _, i in s] == shares[1][2:] and len(s) == 1
    s.set_epoch(3)
    assert [i for _, i in s] != shares[1]
    with pytest.raises(ValueError, match="rank 3"):
        PairSampler(10, rank=3, world_size=3)


class _Tagged(PairDataset):
    """Records which DataLoader worker produced each item."""

    def __getitem__(self, item):
        out = super().__getitem__(item)
        info = get_worker_info()
        out["worker"] = -1 if info is None else info.id
        return out


def test_two_ranks_two_workers_see_disjoint_shares_of_the_same_items(root):
    index = load_split_index(root, DATASET, "train")
    reference = _Tagged(index, num_repeats=4, seed=3)  # 12 items
    expected = {i: signature(reference[(5, i)]) for i in range(len(reference))}
    seen: dict[tuple[int, int], list[int]] = {}
    for rank in range(2):
        loader = make_loader(_Tagged(index, num_repeats=4, seed=3), batch_size=1, num_workers=2, rank=rank,
                             world_size=2, seed=3)
        loader.set_epoch(5)
        for batch in loader:
            i = int(batch["index"][0])
            assert (batch["key"][0], tuple(batch["frames"][0].tolist())) == expected[i]  # worker-independent
            seen.setdefault((rank, int(batch["worker"][0])), []).append(i)
        del loader
    assert sorted(seen) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    flat = [i for share in seen.values() for i in share]
    assert sorted(flat) == list(range(12))  # disjoint, and together the whole epoch


def test_build_loader_batches_a_sample_config(root):
    cfg = load_config("fomm-sample-64")
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"num_repeats": 2})})  # the demo's is longer
    loader = build_loader(cfg, root, "train", batch_size=2, num_workers=0, seed=0)
    assert len(loader) == 3 * cfg.train.num_repeats // 2
    loader.set_epoch(1)
    batches = list(loader)
    assert len(batches) == len(loader)
    assert batches[0]["source"].shape == (2, 3, SIZE, SIZE) and batches[0]["driving"].dtype == torch.float32
    loader.set_epoch(1, skip_batches=1)  # mid-epoch resume: the same batches, minus the first
    rest = list(loader)
    assert [b["index"].tolist() for b in rest] == [b["index"].tolist() for b in batches[1:]]
    assert torch.equal(rest[0]["source"], batches[1]["source"])
    raw = build_loader(cfg, root, "train", batch_size=2, as_float=False)  # uint8 batches, converted on the device
    raw.set_epoch(1)
    first = next(iter(raw))
    assert first["source"].dtype == torch.uint8
    assert torch.equal(to_float(first["source"]), batches[0]["source"])
    with pytest.raises(DataError, match="fewer than one batch"):
        build_loader(cfg, root, "train", batch_size=4, world_size=2, rank=1)


# ---- augmentation ----------------------------------------------------------------------------------------------------


def _pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return tuple(rng.integers(0, 256, (3, 16, 24), dtype=np.uint8) for _ in range(2))


def test_flips_are_symmetric_and_follow_the_official_probabilities():
    s, d = _pair()
    hs, hd = PairAugmentation(horizontal_flip=True).apply(s, d)
    np.testing.assert_array_equal(hs, s[..., ::-1])
    np.testing.assert_array_equal(hd, d[..., ::-1])
    for a, b in zip(PairAugmentation(horizontal_flip=True).apply(hs, hd), (s, d)):
        np.testing.assert_array_equal(a, b)  # a flip is its own inverse
    ts, td = PairAugmentation(time_flip=True).apply(s, d)
    np.testing.assert_array_equal(ts, d)
    np.testing.assert_array_equal(td, s)
    rng = np.random.default_rng(0)
    draws = [PairAugmentation.sample(AugmentationParams(), rng, (16, 24)) for _ in range(4000)]
    p_time = np.mean([a.time_flip for a in draws])
    p_h = np.mean([a.horizontal_flip for a in draws])
    assert abs(p_time - 0.5) < 0.03 and abs(p_h - 0.25) < 0.03  # h-flip only when no time flip (§5 quirk)
    assert not any(a.time_flip and a.horizontal_flip for a in draws)
    only_h = [PairAugmentation.sample(AugmentationParams(time_flip=False), rng, (16, 24)) for _ in range(2000)]
    assert abs(np.mean([a.horizontal_flip for a in only_h]) - 0.5) < 0.04


def test_crop_takes_one_window_for_both_frames():
    s, d = _pair(2)
    aug = PairAugmentation.sample(AugmentationParams(time_flip=False, horizontal_flip=False, crop=8),
                                  np.random.default_rng(1), (16, 24))
    top, left, size = aug.crop
    cs, cd = aug.apply(s, d)
    np.testing.assert_array_equal(cs, s[:, top:top + 8, left:left + 8])
    np.testing.assert_array_equal(cd, d[:, top:top + 8, left:left + 8])
    with pytest.raises(ValueError, match="crop 32"):
        PairAugmentation.sample(AugmentationParams(crop=32), np.random.default_rng(0), (16, 24))


def test_one_jitter_for_both_frames():
    s, d = _pair(1)
    jitter = Jitter.sample(JITTER, np.random.default_rng(4))
    assert sorted(n for n, _ in jitter.factors) == ["brightness", "contrast", "hue", "saturation"]
    js, jd = PairAugmentation(jitter=jitter).apply(s, s.copy())
    np.testing.assert_array_equal(js, jd)
    assert not np.array_equal(js, s)
    js, jd = PairAugmentation(jitter=jitter).apply(s, d)
    np.testing.assert_array_equal(js, jitter(s))  # same factors, same order; contrast uses each frame's own mean
    np.testing.assert_array_equal(jd, jitter(d))
    orders = {tuple(n for n, _ in Jitter.sample(JITTER, np.random.default_rng(k)).factors) for k in range(40)}
    assert len(orders) > 5  # the order is drawn too
    only = Jitter.sample(JitterParams(brightness=0.2, contrast=0, saturation=0, hue=0), np.random.default_rng(0))
    assert [n for n, _ in only.factors] == ["brightness"] and 0.8 <= only.factors[0][1] <= 1.2


def test_colour_ops_match_pil_bit_for_bit():
    rng = np.random.default_rng(5)
    hwc = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
    hwc[:4, :4] = [0, 200, 0]  # pure hues and greys hit PIL's rounding edge cases
    hwc[4:8, :4] = 128
    hwc[8:12, :4] = [255, 255, 0]
    img = np.ascontiguousarray(hwc.transpose(2, 0, 1))
    pil = Image.fromarray(hwc)

    def hw(planar):
        return planar.transpose(1, 2, 0)

    for factor in (0.0, 0.9, 1.07, 1.1, 1.6):
        for op, enhancer in ((adjust_brightness, ImageEnhance.Brightness), (adjust_contrast, ImageEnhance.Contrast),
                             (adjust_saturation, ImageEnhance.Color)):
            np.testing.assert_array_equal(hw(op(img, factor)), np.array(enhancer(pil).enhance(factor)))
    np.testing.assert_array_equal(hw(rgb_to_hsv(img)), np.array(pil.convert("HSV")))
    np.testing.assert_array_equal(hw(hsv_to_rgb(img)), np.array(Image.fromarray(hwc, "HSV").convert("RGB")))
    for factor in (0.1, -0.1, 0.033, -0.5):
        h, s, v = pil.convert("HSV").split()
        shifted = (np.array(h, np.int64) + int(np.trunc(factor * 255))) % 256  # torchvision's uint8 shift
        ref = Image.merge("HSV", (Image.fromarray(shifted.astype(np.uint8), "L"), s, v)).convert("RGB")
        np.testing.assert_array_equal(hw(adjust_hue(img, factor)), np.array(ref))


def test_dataset_augmentation_time_flip_swaps_source_and_driving(root):
    ds = dataset(root, num_repeats=4, augmentation=AugmentationParams(horizontal_flip=True, time_flip=True))
    items = epoch_items(ds, 0)
    flipped = [it for it in items if it["frames"][0] > it["frames"][1]]
    assert flipped  # some time flips among 12 items (fixed seed)
    for it in items:
        assert (identify(it["source"])[2], identify(it["driving"])[2]) == tuple(it["frames"].tolist())
    ramp_reversed = [it for it in items if float(it["source"][2, :, 0].mean()) > float(it["source"][2, :, -1].mean())]
    assert ramp_reversed  # and some horizontal flips


# ---- evaluation ----------------------------------------------------------------------------------------------------


def test_eval_iterates_every_frame_of_every_test_chunk_in_order(root):
    index = load_split_index(root, DATASET, "test")
    seen, tensors = [], []
    for chunk in iter_eval_chunks(index):
        frames = torch.cat(list(chunk.frames(batch_size=3)))  # batches of 3, 3, 2
        assert frames.shape == (N_FRAMES, 3, SIZE, SIZE)
        seen.append((chunk.key, [identify(f) for f in frames]))
        tensors.append(frames)
    assert [k for k, _ in seen] == [f"{TEST[0]}#{s:06d}#{s + 8:06d}" for s in STARTS]
    for c, (_, ids) in enumerate(seen):
        assert ids == [(3, c, f) for f in range(N_FRAMES)]

    frames = EvalFrames(index)  # the same frames by random access, for parallel decoding
    assert len(frames) == 16
    batches = list(DataLoader(frames, batch_size=5, shuffle=False))
    order = [(k, int(f)) for b in batches for k, f in zip(b["key"], b["frame"])]
    assert order == [(k, f) for k, _ in seen for f in range(N_FRAMES)]
    assert torch.equal(torch.cat([b["image"] for b in batches]), torch.cat(tensors))


def test_object_store_root_reads_through_ranged_requests(tmp_path):
    """A non-local root (fsspec memory://) takes the ranged-read path; items and frames match the local root's."""
    local = DataRoot(str(tmp_path / "data"))
    build_dataset(local)
    remote = DataRoot(f"memory://motionpipe-test-{uuid.uuid4().hex}")
    try:
        build_dataset(remote)
        assert not remote.is_local
        a, b = (epoch_items(dataset(r, num_repeats=2, augmentation=AugmentationParams(jitter=JITTER)), 1)
                for r in (local, remote))
        for x, y in zip(a, b):
            assert signature(x) == signature(y) and torch.equal(x["source"], y["source"])
        frames = [torch.cat(list(c.frames(4))) for c in iter_eval_chunks(load_split_index(remote, DATASET, "test"))]
        assert [identify(f)[2] for f in frames[1]] == list(range(N_FRAMES))
    finally:
        remote.rm(remote.base, recursive=True)


# ---- bad input -----------------------------------------------------------------------------------------------------


def test_missing_catalog_names_the_file(tmp_path):
    root = DataRoot(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"catalog/chunks\.parquet"):
        load_split_index(root, DATASET, "train")


def test_missing_shard_names_the_file(root):
    index = load_split_index(root, DATASET, "train")
    gone = index.chunks[0].shard
    root.rm(gone)
    with pytest.raises(FileNotFoundError, match=gone.rpartition("/")[2]) as err:
        load_split_index(root, DATASET, "train")
    assert gone in str(err.value)


def test_catalog_from_another_build_is_refused(root):
    catalog = paths.catalog_path(root, DATASET, "chunks")
    import pyarrow.parquet as pq

    rows = pq.read_table(catalog).to_pylist()
    rows[0]["sha256"] = "0" * 64
    write_rows(root, catalog, rows, CHUNKS_SCHEMA)
    with pytest.raises(DataError, match=r"does not match .*chunks\.parquet"):
        load_split_index(root, DATASET, "train")
    write_rows(root, catalog, rows[1:], CHUNKS_SCHEMA)  # the shards hold a sample the catalog does not list
    with pytest.raises(DataError, match="not in .*chunks.parquet"):
        load_split_index(root, DATASET, "train")


def test_wrong_offset_and_wrong_frame_shape_are_named(root):
    index = load_split_index(root, DATASET, "train")
    ref = next(c for c in index.chunks if c.offset > 0)
    stale = dataclasses.replace(index, chunks=(dataclasses.replace(ref, offset=ref.offset - 512),))
    with pytest.raises(DataError, match=f"{ref.shard.rpartition('/')[2]}: sample {ref.key} at byte"):
        PairDataset(stale)[0]
    with pytest.raises(DataError, match="frame_shape is 256x256"):
        PairDataset(index, frame_shape=(256, 256, 3))
    with pytest.raises(ValueError, match="split 'val'"):
        load_split_index(root, DATASET, "val")
