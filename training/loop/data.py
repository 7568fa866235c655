"""Training pairs and evaluation frames, read from a dataset's published shards.

(Over 400 lines: the training pairs and the evaluation frames read the same split index and shard reader.)

Where things are:
- `catalog/chunks.parquet` says which chunks belong to a split (and their video id, size, sha256);
- `shards/manifest.json` lists the split's shards; each shard's Parquet sidecar gives every sample's byte `offset`
  and length, so a sample is reached with one seek, never a scan of the tar;
- inside a sample only the tar headers are read (to find the two wanted frames), and only those two frames are
  decoded. Member positions are cached per chunk, so the next visit costs two reads.

Sampling (FOMM/MRAA/TPSMM, model_anchors.md §2, §5): with `id_sampling` an epoch is one item per video id, repeated
`num_repeats` times (`DatasetRepeater`: item i is unit i mod n_units); an item takes a random chunk of its id and two
random frames with replacement, sorted, so the source is never later than the driving frame before augmentation
(a time flip then swaps them).

Why map-style and not an IterableDataset: an item's randomness is derived from (seed, epoch, item index) alone, and
the epoch order from (seed, epoch); the sampler gives each DDP rank a strided share and the DataLoader hands
whole batches to workers. So every (rank, worker) sees a disjoint share, the epoch's content does not depend on the
number of workers or ranks, and resuming mid-epoch skips batches without decoding them. The sampler yields
(epoch, index) pairs, so persistent workers need no epoch state.
"""
from __future__ import annotations

import bisect
import io
import random
import tarfile
from dataclasses import dataclass, field
from typing import IO, Iterator, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from storage import paths
from storage.catalog import CHUNKS_SCHEMA, SPLITS, read_table
from storage.frames import decode_frame
from storage.root import DataRoot
from storage.shards import FRAME_ENTRY, MANIFEST_NAME, SIDECAR_SCHEMA, read_shard_manifest
from training.config import AugmentationParams, Config
from training.loop.augment import PairAugmentation

_ORDER_STREAM = 0  # SeedSequence tags: the epoch permutation and per-item draws never share a stream
_ITEM_STREAM = 1


class DataError(ValueError):
    """Catalog, manifest and shards disagree, or a sample is not where its sidecar says; names the file."""


# ---- the split index: catalog x manifest x sidecars ------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkRef:
    """Where one chunk's sample lives: its shard and byte range, and what the catalog says about it."""

    key: str
    video_id: str
    shard: str  # full path of the shard tar
    offset: int  # first header of the sample in the shard
    nbytes: int
    n_frames: int
    height: int
    width: int


@dataclass(frozen=True)
class SplitIndex:
    root: DataRoot
    dataset: str
    split: str
    chunks: tuple[ChunkRef, ...]  # sorted by key (video id, then start frame)
    content_hash: str  # the shards' data version (manifest.json)

    @property
    def video_ids(self) -> tuple[str, ...]:
        return tuple(sorted({c.video_id for c in self.chunks}))

    @property
    def n_frames(self) -> int:
        return sum(c.n_frames for c in self.chunks)


def load_split_index(root: DataRoot, dataset: str, split: str) -> SplitIndex:
    """Join the chunk catalog with the shard sidecars for one split, checking that they describe the same samples."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {list(SPLITS)}")
    catalog = paths.catalog_path(root, dataset, "chunks")
    if not root.exists(catalog):
        raise FileNotFoundError(f"chunk catalog not found: {catalog} (is dataset {dataset!r} built under {root.url}?)")
    columns = ["chunk_id", "video_id", "split", "n_frames", "width", "height", "sha256", "shard", "bytes"]
    rows = [r for r in read_table(root, catalog, CHUNKS_SCHEMA).select(columns).to_pylist() if r["split"] == split]
    if not rows:
        raise DataError(f"{catalog}: no chunks in split {split!r}")

    shards_dir = paths.shards_dir(root, dataset)
    manifest_path = f"{shards_dir}/{MANIFEST_NAME}"
    manifest = read_shard_manifest(root, shards_dir)
    located: dict[str, tuple[str, dict, str]] = {}  # key -> (shard name, sidecar row, sidecar path)
    for shard in manifest.for_split(split):
        tar_path, sidecar = f"{shards_dir}/{shard.name}", f"{shards_dir}/{shard.sidecar}"
        if not root.exists(tar_path):
            raise FileNotFoundError(f"shard missing: {tar_path} (listed in {manifest_path})")
        if not root.exists(sidecar):
            raise FileNotFoundError(f"shard sidecar missing: {sidecar} (listed in {manifest_path})")
        for row in read_table(root, sidecar, SIDECAR_SCHEMA).to_pylist():
            located[row["key"]] = (shard.name, row, sidecar)

    chunks = []
    for i, r in enumerate(sorted(rows, key=lambda r: r["chunk_id"])):
        key = r["chunk_id"]
        if key not in located:
            if r["shard"] and not root.exists(f"{shards_dir}/{r['shard']}"):
                raise FileNotFoundError(f"shard missing: {shards_dir}/{r['shard']} (holds chunk {key} per {catalog})")
            raise DataError(f"{catalog}: chunk {key} (split {split}) is in no shard that {manifest_path} lists "
                            f"(catalog says shard {r['shard']!r}); catalog and shards are from different builds")
        shard_name, side, sidecar = located.pop(key)
        if r["shard"] is not None and r["shard"] != shard_name:
            raise DataError(f"{catalog}: chunk {key} says shard {r['shard']}, but {sidecar} holds it")
        if (side["n_frames"], side["bytes"], side["sha256"]) != (r["n_frames"], r["bytes"], r["sha256"]):
            raise DataError(f"{sidecar}: sample {key} (n_frames {side['n_frames']}, {side['bytes']} bytes, sha256 "
                            f"{side['sha256'][:12]}) does not match {catalog} (n_frames {r['n_frames']}, "
                            f"{r['bytes']} bytes, sha256 {r['sha256'][:12]})")
        chunks.append(ChunkRef(key, r["video_id"], f"{shards_dir}/{shard_name}", side["offset"], side["bytes"],
                               r["n_frames"], r["height"], r["width"]))
    if located:
        extra = sorted(located)
        raise DataError(f"{manifest_path}: {len(extra)} {split} samples are not in {catalog} (e.g. {extra[0]}); "
                        f"the catalog and the shards are from different builds")
    return SplitIndex(root, dataset, split, tuple(chunks), manifest.content_hash)


# ---- reading frames of one sample ------------------------------------------------------------------------------------


class _Window:
    """Bytes of [base, base + len) of a file, addressed by absolute file positions (what tarfile expects)."""

    def __init__(self, data: bytes, base: int) -> None:
        self._buf, self._base = io.BytesIO(data), base

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 0:
            pos -= self._base
        return self._buf.seek(pos, whence) + self._base

    def tell(self) -> int:
        return self._buf.tell() + self._base

    def read(self, n: int = -1) -> bytes:
        return self._buf.read(n)


def _scan_sample(f: IO[bytes], ref: ChunkRef) -> np.ndarray:
    """(n_frames, 2) [data offset, size] of each frame member, reading only the sample's tar headers."""
    where = f"{ref.shard}: sample {ref.key} at byte {ref.offset}"
    end = ref.offset + ref.nbytes
    spans = np.full((ref.n_frames, 2), -1, dtype=np.int64)
    try:
        f.seek(ref.offset)
        tar = tarfile.TarFile(fileobj=f, mode="r")
        info = tar.firstmember
        if info is None:
            raise DataError(f"{where}: no tar header there (the sidecar offset is stale or wrong)")
        while info is not None:
            key, _, suffix = info.name.partition(".")
            if key != ref.key:
                raise DataError(f"{where}: found member {info.name!r} (the sidecar offset is stale or wrong)")
            m = FRAME_ENTRY.match(suffix)
            if m and int(m["index"]) < ref.n_frames:
                spans[int(m["index"])] = (info.offset_data, info.size)
            if info.offset_data + info.size + (-info.size) % tarfile.BLOCKSIZE >= end:
                break
            info = tar.next()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{where}: unreadable tar headers: {exc}") from exc
    if (spans[:, 0] < 0).any():
        raise DataError(f"{where}: frame {int(np.argmax(spans[:, 0] < 0)):06d} not found in the sample")
    if (spans[:, 0] + spans[:, 1]).max() > end:
        raise DataError(f"{where}: members run past the sidecar's {ref.nbytes} bytes")
    return spans


def _planar(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 (as decoded) -> contiguous 3xHxW uint8 (the layout of the tensors and of `training.loop.augment`)."""
    return np.stack(cv2.split(rgb))  # a strided numpy transpose is several times slower


def _to_tensor(planar: np.ndarray, as_float: bool = True) -> torch.Tensor:
    """3xHxW uint8 -> 3xHxW float32 in [0, 1] (or the uint8 tensor itself, see `PairDataset`)."""
    t = torch.from_numpy(np.ascontiguousarray(planar))
    return t.float().div_(255) if as_float else t


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 frames (from `as_float=False` loaders) -> float32 in [0, 1]; identity on float input."""
    return images.float().div_(255) if images.dtype == torch.uint8 else images


class FrameReader:
    """Decodes chosen frames of a chunk. Member positions are cached per chunk (each worker has its own copy)."""

    def __init__(self, root: DataRoot) -> None:
        self.root = root
        self._spans: dict[str, np.ndarray] = {}

    def _decode(self, ref: ChunkRef, i: int, data: bytes) -> np.ndarray:
        try:
            rgb = decode_frame(data)
        except ValueError as exc:
            raise DataError(f"{ref.shard}: sample {ref.key} frame {i:06d}: {exc}") from exc
        if rgb.shape[:2] != (ref.height, ref.width):
            raise DataError(f"{ref.shard}: sample {ref.key} frame {i:06d} is {rgb.shape[0]}x{rgb.shape[1]}, "
                            f"the catalog says {ref.height}x{ref.width}")
        return rgb

    def read(self, ref: ChunkRef, indices: Sequence[int]) -> list[np.ndarray]:
        """RGB uint8 frames `indices` of the chunk, decoding nothing else."""
        if self.root.is_local:
            with self.root.fs.open(ref.shard, "rb") as f:
                spans = self._spans.get(ref.key)
                if spans is None:
                    spans = self._spans[ref.key] = _scan_sample(f, ref)
                blobs = []
                for i in indices:
                    f.seek(spans[i, 0])
                    blobs.append(f.read(spans[i, 1]))
        else:  # object store: one ranged request per sample scan (first visit) and per frame
            spans = self._spans.get(ref.key)
            if spans is None:
                data = self.root.read_range(ref.shard, ref.offset, ref.offset + ref.nbytes)
                spans = self._spans[ref.key] = _scan_sample(_Window(data, ref.offset), ref)
            blobs = [self.root.read_range(ref.shard, spans[i, 0], spans[i, 0] + spans[i, 1])
                     for i in indices]
        return [self._decode(ref, int(i), b) for i, b in zip(indices, blobs)]

    def iter_all(self, ref: ChunkRef) -> Iterator[np.ndarray]:
        """Every frame of the chunk in order, from one read of the sample's byte range."""
        data = self.root.read_range(ref.shard, ref.offset, ref.offset + ref.nbytes)
        if len(data) != ref.nbytes:
            raise DataError(f"{ref.shard}: sample {ref.key}: shard ends {ref.nbytes - len(data)} bytes early")
        spans = _scan_sample(_Window(data, ref.offset), ref)
        for i, (start, size) in enumerate(spans - [ref.offset, 0]):
            yield self._decode(ref, i, data[start:start + size])


# ---- training pairs --------------------------------------------------------------------------------------------------


def _check_frame_shape(index: SplitIndex, frame_shape: Sequence[int] | None, crop: int | None) -> None:
    if frame_shape is None:
        return
    want = (int(frame_shape[0]), int(frame_shape[1]))
    for c in index.chunks:
        got = (crop, crop) if crop is not None else (c.height, c.width)
        if crop is not None and crop > min(c.height, c.width):
            raise DataError(f"{c.shard}: chunk {c.key} is {c.height}x{c.width}, smaller than the crop {crop}")
        if got != want:
            what = f"crop {crop}" if crop is not None else f"chunk {c.key} in {c.shard} is {c.height}x{c.width}"
            raise DataError(f"{what}, but the config's frame_shape is {want[0]}x{want[1]}")


class PairDataset(Dataset):
    """(source, driving) pairs with the papers' sampling. Index with an `(epoch, index)` pair, or an int (current
    epoch, see `set_epoch`). Items: source, driving (3xHxW float in [0, 1]), key (chunk id), frames (source and
    driving frame numbers after augmentation), index, epoch.

    `as_float=False` returns the frames as uint8 (same values x 255): a quarter of the bytes through worker queues,
    pinned memory and the host-to-device copy; convert on the device with `to_float`.
    """

    def __init__(self, index: SplitIndex, *, num_repeats: int = 1, id_sampling: bool = True,
                 augmentation: AugmentationParams | None = None, frame_shape: Sequence[int] | None = None,
                 seed: int = 0, as_float: bool = True) -> None:
        if num_repeats < 1:
            raise ValueError(f"num_repeats must be >= 1, got {num_repeats}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        _check_frame_shape(index, frame_shape, augmentation.crop if augmentation else None)
        self.index, self.num_repeats, self.augmentation, self.seed = index, num_repeats, augmentation, seed
        self.as_float = as_float
        if id_sampling:
            by_id: dict[str, list[int]] = {}
            for i, c in enumerate(index.chunks):
                by_id.setdefault(c.video_id, []).append(i)
            self.units = [tuple(by_id[v]) for v in sorted(by_id)]
        else:
            self.units = [(i,) for i in range(len(index.chunks))]
        self.reader = FrameReader(index.root)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.units) * self.num_repeats

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, item: int | tuple[int, int]) -> dict:
        epoch, index = item if isinstance(item, tuple) else (self.epoch, item)
        return self.sample(int(epoch), int(index))

    def sample(self, epoch: int, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} out of range for {len(self)} items")
        rng = np.random.default_rng([self.seed, epoch, _ITEM_STREAM, index])
        unit = self.units[index % len(self.units)]
        ref = self.index.chunks[unit[int(rng.integers(len(unit)))]]
        pair = np.sort(rng.integers(0, ref.n_frames, size=2))  # np.sort(np.random.choice(n, 2, replace=True))
        source, driving = (_planar(f) for f in self.reader.read(ref, pair))
        if self.augmentation is not None:  # on the decoded uint8 frames, as the official code does
            aug = PairAugmentation.sample(self.augmentation, rng, (ref.height, ref.width))
            source, driving = aug.apply(source, driving)
            if aug.time_flip:
                pair = pair[::-1]
        return {"source": _to_tensor(source, self.as_float), "driving": _to_tensor(driving, self.as_float),
                "key": ref.key, "frames": torch.as_tensor(pair.copy()), "index": index, "epoch": epoch}


class PairSampler(Sampler):
    """This rank's share of an epoch: a (seed, epoch) permutation, cut to a multiple of world_size, strided by rank.

    Yields (epoch, index). `set_epoch(epoch, start)` skips the first `start` items of the share (mid-epoch resume).
    """

    def __init__(self, n_items: int, *, seed: int = 0, rank: int = 0, world_size: int = 1, shuffle: bool = True):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        self.n_items, self.seed, self.rank, self.world_size, self.shuffle = n_items, seed, rank, world_size, shuffle
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        self.epoch, self.start = int(epoch), int(start)

    @property
    def share(self) -> int:
        return self.n_items // self.world_size  # the tail (< world_size items) is dropped so ranks stay in step

    def indices(self) -> np.ndarray:
        order = (np.random.default_rng([self.seed, self.epoch, _ORDER_STREAM]).permutation(self.n_items)
                 if self.shuffle else np.arange(self.n_items))
        return order[: self.share * self.world_size][self.rank::self.world_size][self.start:]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(self.epoch, int(i)) for i in self.indices()])

    def __len__(self) -> int:
        return max(0, self.share - self.start)


class PairLoader(DataLoader):
    """A DataLoader over a PairSampler; `set_epoch(epoch, skip_batches)` before iterating each epoch."""

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.sampler.set_epoch(epoch, start=skip_batches * self.batch_size)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


def _seed_worker(worker_id: int) -> None:
    """Global RNGs of a worker, from the loader's (seed, rank)-seeded generator; one torch thread per worker.

    Pair sampling and augmentation do not use them (their draws come from the item seed); this keeps any library
    code that does deterministic too, and stops workers oversubscribing the cores. (OpenCV's thread count is left
    alone: `cv2.setNumThreads` in a forked child of a process whose OpenCV pool ran can deadlock.)
    """
    seed = torch.initial_seed()  # base_seed + worker_id, set by the DataLoader
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.set_num_threads(1)


def make_loader(dataset: Dataset, batch_size: int, num_workers: int = 0, rank: int = 0, world_size: int = 1,
                seed: int = 0, *, shuffle: bool = True, drop_last: bool = True,
                prefetch_factor: int | None = None) -> PairLoader:
    """Batches of `dataset` for one rank: pinned memory when CUDA is available, persistent seeded workers."""
    if batch_size < 1 or num_workers < 0:
        raise ValueError(f"need batch_size >= 1 and num_workers >= 0, got {batch_size} and {num_workers}")
    sampler = PairSampler(len(dataset), seed=seed, rank=rank, world_size=world_size, shuffle=shuffle)
    if drop_last and sampler.share < batch_size:
        raise DataError(f"{len(dataset)} items per epoch give rank {rank} of {world_size} only {sampler.share}, "
                        f"fewer than one batch of {batch_size}")
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, rank]).generate_state(1)[0]))
    return PairLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=drop_last,
        pin_memory=torch.cuda.is_available(), worker_init_fn=_seed_worker if num_workers else None,
        generator=generator, persistent_workers=num_workers > 0,
        prefetch_factor=prefetch_factor if num_workers else None,
    )


def build_loader(cfg: Config, root: DataRoot, split: str, batch_size: int, num_workers: int = 0, rank: int = 0,
                 world_size: int = 1, seed: int = 0, *, num_repeats: int | None = None, augment: bool = True,
                 shuffle: bool = True, drop_last: bool = True, as_float: bool = True) -> PairLoader:
    """The training loader of `cfg` (dataset name, id sampling, augmentation, frame shape, train.num_repeats).

    Call `loader.set_epoch(epoch)` before each epoch (`skip_batches` to resume mid-epoch). `as_float=False` gives
    uint8 batches (4x less host traffic; `to_float` on the device), measured faster with workers.
    """
    index = load_split_index(root, cfg.dataset.name, split)
    dataset = PairDataset(
        index, num_repeats=cfg.train.num_repeats if num_repeats is None else num_repeats,
        id_sampling=cfg.dataset.id_sampling, augmentation=cfg.dataset.augmentation if augment else None,
        frame_shape=cfg.dataset.frame_shape, seed=seed, as_float=as_float,
    )
    return make_loader(dataset, batch_size, num_workers, rank, world_size, seed, shuffle=shuffle, drop_last=drop_last)


# ---- evaluation: every frame, in order -------------------------------------------------------------------------------


class EvalFrames(Dataset):
    """Every frame of every chunk of a split, ordered by (chunk key, frame). Items: image (3xHxW float in [0, 1]),
    key, chunk (position in `index.chunks`), frame. With `DataLoader(shuffle=False)` batches keep this order."""

    def __init__(self, index: SplitIndex) -> None:
        self.index = index
        self.starts = np.cumsum([0] + [c.n_frames for c in index.chunks])
        self.reader = FrameReader(index.root)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(f"frame {i} out of range for {len(self)} frames")
        chunk = bisect.bisect_right(self.starts, i) - 1
        ref = self.index.chunks[chunk]
        frame = i - int(self.starts[chunk])
        (rgb,) = self.reader.read(ref, [frame])
        return {"image": _to_tensor(_planar(rgb)), "key": ref.key, "chunk": chunk, "frame": frame}


@dataclass
class EvalChunk:
    """One chunk of the evaluation split; `frames(batch)` decodes it in order, reading its bytes once."""

    ref: ChunkRef
    reader: FrameReader = field(repr=False)

    @property
    def key(self) -> str:
        return self.ref.key

    @property
    def n_frames(self) -> int:
        return self.ref.n_frames

    def frames(self, batch_size: int = 1) -> Iterator[torch.Tensor]:
        """(b, 3, H, W) float tensors in [0, 1], frame 0 first; the last batch may be shorter."""
        batch = []
        for rgb in self.reader.iter_all(self.ref):
            batch.append(_to_tensor(_planar(rgb)))
            if len(batch) == batch_size:
                yield torch.stack(batch)
                batch = []
        if batch:
            yield torch.stack(batch)


def iter_eval_chunks(index: SplitIndex) -> Iterator[EvalChunk]:
    """The split's chunks in key order (for video reconstruction: source = frame 0 of each)."""
    reader = FrameReader(index.root)
    for ref in index.chunks:
        yield EvalChunk(ref, reader)

