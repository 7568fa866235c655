"""Evaluation of a checkpoint on a tiny test split: artifact, metric files, L1 by hand, extractor cache, bad inputs.

The dataset is test_data's (1 test video x 2 chunks x 8 frames, 64x64, painted frames); the checkpoint is an
untrained fomm-sample-64 written by the real trainer. The frames hold no person, so mediapipe finds no joint:
AKD/MKR count no frame (null), which is itself the protocol's rule for frames with no joint.
"""
from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from pipelines.commands.evaluate import add_evaluate_parser
from storage import paths
from storage.frames import decode_frame
from storage.root import DataRoot, sha256_file
from storage.shards import iter_tar_samples
from tests.training.test_data import DATASET, N_FRAMES, STARTS, TEST, TRAIN, build_dataset, painted
from training.checkpoint import load_checkpoint, save_checkpoint
from training.config import load_config
from training.evaluation.evaluate import CACHE, evaluate_checkpoint, evaluate_videos
from training.extractors.mediapipe_pose import MediapipePose33
from training.loop.data import load_split_index
from training.loop.trainer import Trainer, TrainOptions
from training.metrics import FrameCountMismatch

KEYS = [f"{TEST[0]}#{s:06d}#{s + N_FRAMES:06d}" for s in STARTS]
MP = "mediapipe-pose33"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(data root, checkpoint path) shared by the tests: building them is the slow part."""
    tmp = tmp_path_factory.mktemp("eval")
    root = DataRoot(str(tmp / "data"))
    build_dataset(root)
    cfg = load_config("fomm-sample-64")
    run = tmp / "data" / "runs" / "fomm-sample" / "main-test"
    trainer = Trainer(cfg, TrainOptions(out_dir=run, max_steps=0, progress=False, allow_random_vgg=True,
                                        vgg_weights=str(tmp / "no-such-vgg19.pth")))  # random VGG, as configured
    ckpt = Path(paths.published_checkpoint(root, DATASET, "fomm"))  # where `motionpipe train` publishes it
    ckpt.parent.mkdir(parents=True)
    shutil.copy(trainer.save(), ckpt)
    return root, ckpt


def _count_extract(monkeypatch) -> list:
    """Spy on the real mediapipe extractor: records the size of every video it is asked to score."""
    calls, real = [], MediapipePose33.extract

    def spy(self, frames):
        calls.append(len(frames))
        return real(self, frames)

    monkeypatch.setattr(MediapipePose33, "extract", spy)
    return calls


def test_evaluation_outputs_and_cache(world, tmp_path, monkeypatch):
    root, ckpt = world
    calls = _count_extract(monkeypatch)
    cache = tmp_path / "cache"
    res = evaluate_checkpoint(ckpt, root, DATASET, tmp_path / "a", batch_size=3, cache_dir=cache,
                              extractors=(MP, "mobilenetv2-imagenet", "openpose-coco18"),
                              extractor_weights={"openpose-coco18": tmp_path / "no-such-openpose.pth"})
    assert calls == [N_FRAMES] * 4  # real and generated of each chunk

    # the artifact: one PNG sample per chunk, every frame, at the chunk's fps
    samples = list(iter_tar_samples(DataRoot(str(tmp_path / "a")), str(tmp_path / "a" / "generated.tar")))
    assert [s.key for s in samples] == KEYS
    assert all(len(s.frames()) == N_FRAMES and s.meta()["fps"] == 25.0 for s in samples)

    # metrics.json: numbers keyed by label; the missing-weights extractor is skipped with its reason
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    labels = {"L1", f"AKD[{MP}]", f"MKR[{MP}]", "AED[mobilenetv2-imagenet]"}
    assert set(metrics) == labels  # one `dvc metrics show` column each, nothing nested
    assert all(v is None or isinstance(v, float) for v in metrics.values())
    assert metrics["AED[mobilenetv2-imagenet]"] >= 0 and metrics[f"AKD[{MP}]"] is None  # no person, no joint
    assert "openpose-coco18" in res.skipped and "no-such-openpose" in res.skipped["openpose-coco18"]

    report = json.loads((tmp_path / "a" / "evaluation.json").read_text())
    prov = report["provenance"]
    assert prov["checkpoint_sha256"] == sha256_file(ckpt) and prov["config"] == "fomm-sample-64"
    assert prov["dataset_content_hash"] == load_split_index(root, DATASET, "test").content_hash
    assert set(prov["extractors"]) == {MP, "mobilenetv2-imagenet"} and "openpose-coco18" in prov["skipped_extractors"]
    assert prov["motionpipe_version"]

    # per-frame rows, and L1 by hand from the written frames: they are the float output truncated to uint8,
    # so the float L1 lies within 1/255 of it
    table = pq.read_table(tmp_path / "a" / "per_frame.parquet").to_pydict()
    assert len(table["frame"]) == 2 * N_FRAMES and set(labels) <= set(table)
    per_chunk = []
    for c, s in enumerate(samples):
        gen = np.stack([decode_frame(b) for b in s.frames()]).astype(np.float64)
        real = np.stack([painted(len(TRAIN), c, f) for f in range(N_FRAMES)]).astype(np.float64)
        per_chunk.append(np.abs(gen - real).mean(axis=(1, 2, 3)) / 255)
    hand = np.concatenate(per_chunk)
    assert abs(res.values["L1"] - hand.mean()) < 1 / 255
    assert np.abs(np.array(table["L1"]) - hand).max() < 1 / 255
    assert report["metrics"]["L1"]["per_video_mean"] == pytest.approx(np.mean([table_l1.mean() for table_l1 in
                                                                      np.split(np.array(table["L1"]), 2)]))

    # a second model's evaluation reuses the real frames' keypoints: only generated frames are extracted
    calls.clear()
    again = evaluate_checkpoint(ckpt, root, DATASET, tmp_path / "b", batch_size=8, cache_dir=cache, extractors=(MP,))
    assert calls == [N_FRAMES] * 2
    assert again.values["L1"] == pytest.approx(res.values["L1"], abs=1e-6)  # batching does not change it
    assert sorted(p.name for p in (cache / MP).iterdir()) == sorted(f"{s.meta()['source_sha256']}.npz"
                                                                    for s in samples)


def test_checkpoint_for_another_resolution_is_refused(world, tmp_path):
    root, ckpt = world
    state = load_checkpoint(ckpt)
    state["config"]["dataset"]["frame_shape"] = [128, 128, 3]
    other = save_checkpoint(state, tmp_path / "step-000000128.pt")
    with pytest.raises(ValueError, match=r"128x128 frames.*chunk vidTTTTTTTT#000000#000008.* is 64x64"):
        evaluate_checkpoint(other, root, DATASET, tmp_path / "out", extractors=(MP,))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change", [-1, +1])
def test_generated_video_with_another_frame_count_is_an_error(world, tmp_path, change):
    root, _ = world

    def generate(chunk, real):
        frames = torch.from_numpy(real).permute(0, 3, 1, 2).float() / 255
        if change < 0:
            return [frames[:-1]]
        return [frames, frames[:1]]

    index = load_split_index(root, DATASET, "test")
    with pytest.raises(FrameCountMismatch, match=rf"vidTTTTTTTT#000000#000008.*generated has {N_FRAMES + change} "
                                                 rf"frames but the real chunk has {N_FRAMES}"):
        evaluate_videos(index, generate, tmp_path / "out", extractors=(MP,))
    assert not (tmp_path / "out" / "generated.tar").exists()  # nothing half-written is published


def test_videos_identical_to_the_real_ones_score_zero(world, tmp_path):
    root, _ = world
    index = load_split_index(root, DATASET, "test")
    res = evaluate_videos(index, lambda chunk, real: [torch.from_numpy(real).permute(0, 3, 1, 2)], tmp_path / "o",
                          extractors=("mobilenetv2-imagenet",), max_chunks=1)
    assert res.n_chunks == 1 and res.n_frames == N_FRAMES
    assert res.values["L1"] == 0.0 and res.values["AED[mobilenetv2-imagenet]"] == pytest.approx(0.0, abs=1e-9)


def test_no_motion_baseline_is_scored_like_a_model_through_the_cli(world, tmp_path, capsys):
    """`motionpipe evaluate no-motion`: frame 0 of each chunk as every prediction, the same outputs as a model's;
    its L1 is the mean distance of every frame to its chunk's first, by hand."""
    root, _ = world
    out = tmp_path / "baseline"
    assert _cli(["no-motion", "--dataset", DATASET, "--data-root", root.base, "--out", str(out),
                 "--extractors", "mobilenetv2-imagenet"]) == 0
    assert "L1" in capsys.readouterr().out
    prov = json.loads((out / "evaluation.json").read_text())["provenance"]
    assert (prov["model"], prov["config"]) == ("no-motion", "no motion (source frame)") and prov["chunks"] == 2
    samples = list(iter_tar_samples(DataRoot(str(out)), str(out / "generated.tar")))
    for c, s in enumerate(samples):  # the artifact repeats each chunk's stored frame 0
        assert all(np.array_equal(decode_frame(b), painted(len(TRAIN), c, 0)) for b in s.frames())
    real = [np.stack([painted(len(TRAIN), c, f) for f in range(N_FRAMES)]).astype(np.float64) for c in range(2)]
    hand = np.mean([np.abs(r - r[:1]).mean() / 255 for r in real])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["L1"] == pytest.approx(hand) and metrics["L1"] > 0


def _cli(argv):
    parser = argparse.ArgumentParser(prog="motionpipe")
    add_evaluate_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["evaluate", *argv])
    return args.func(args)


def test_cli_scores_the_published_checkpoint_and_refuses_bad_ones(world, tmp_path, capsys, monkeypatch):
    root, ckpt = world
    data = root.base
    monkeypatch.setenv("MOTIONPIPE_OPENPOSE_WEIGHTS", str(tmp_path / "no-such-openpose.pth"))  # read by the CLI
    assert _cli(["fomm", "--dataset", DATASET, "--data-root", data, "--max-chunks", "1", "--extractors", MP,
                 "openpose-coco18"]) == 0
    out = f"{data}/evaluations/{DATASET}/fomm"
    recorded = json.loads(open(f"{out}/evaluation.json").read())["provenance"]["checkpoint"]
    assert recorded == f"models/{DATASET}/fomm/main.pt"  # relative to the data root: the same in every clone
    assert len(pq.read_table(f"{out}/per_frame.parquet")) == N_FRAMES
    assert len(list(Path(data, "evaluations", DATASET, CACHE, MP).glob("*.npz"))) == 1  # shared by all models
    printed = capsys.readouterr().out
    assert "L1" in printed and "skipped openpose-coco18: weights not found" in printed and "no-such-openpose" in printed

    with pytest.raises(FileNotFoundError, match=r"no published checkpoint of mraa on sample at .*models/sample/mraa/"
                                                 r"main.pt: motionpipe train mraa --dataset sample"):
        _cli(["mraa", "--dataset", DATASET, "--data-root", data])
    with pytest.raises(ValueError, match=r"holds a fomm model \(config 'fomm-sample-64'\), not 'mraa'"):
        _cli(["mraa", "--dataset", DATASET, "--data-root", data, "--checkpoint", str(ckpt)])


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, as an interactive shell's is."""

    def isatty(self) -> bool:
        return True


def test_progress_bar_counts_frames_with_a_total_only_when_asked_and_on_a_terminal(world, tmp_path, monkeypatch,
                                                                                    capsys):
    from training.evaluation.progress import show_progress

    root, _ = world
    index = load_split_index(root, DATASET, "test")

    def same(chunk, real):
        return [torch.from_numpy(real).permute(0, 3, 1, 2)]

    evaluate_videos(index, same, tmp_path / "quiet", extractors=())  # the assets' and tests' default: no bar
    with show_progress():  # asked for, but stderr is captured, i.e. not a terminal (a log): no bar either
        evaluate_videos(index, same, tmp_path / "log", extractors=())
    assert capsys.readouterr().err == ""

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with show_progress():
        evaluate_videos(index, same, tmp_path / "tty", extractors=())
    with show_progress(False):  # --no-progress
        evaluate_videos(index, same, tmp_path / "off", extractors=())
    drawn = terminal.getvalue().split("\r")[-1]
    total = 2 * N_FRAMES
    assert f"evaluate {DATASET}" in drawn and f"{total}/{total}" in drawn and "frame" in drawn
    assert "chunk 2/2" in drawn and "<00:00" in drawn  # the ETA, done
    assert terminal.getvalue().count(f"{total}/{total}") == 1  # the second, --no-progress run drew nothing


def test_evaluate_command_takes_no_progress():
    parser = argparse.ArgumentParser(prog="motionpipe")
    add_evaluate_parser(parser.add_subparsers(dest="command"))
    assert parser.parse_args(["evaluate", "fomm", "--dataset", DATASET, "--no-progress"]).no_progress is True
    assert parser.parse_args(["evaluate", "fomm", "--dataset", DATASET]).no_progress is False
