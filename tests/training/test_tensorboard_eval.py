"""Scoring a model writes its scores (at the checkpoint's step) and the run's hyperparameters into the training run's
TensorBoard, read back here with TensorBoard's own EventAccumulator.

The data root is test_data's tiny one; the checkpoint an untrained fomm-sample-64 from the real trainer, saved as the
run's step-3 checkpoint and published as a copy, as `motionpipe train` does; the scorer is the real one."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from storage import paths
from storage.root import DataRoot
from tests.training.test_data import DATASET, build_dataset
from training.checkpoint import load_checkpoint, save_checkpoint, step_checkpoint_name
from training.config import load_config
from training.evaluation.scoring import score_model
from training.loop.trainer import Trainer, TrainOptions
from training.run_params import RunParams

STEP = 3


@pytest.fixture
def run(tmp_path) -> tuple[DataRoot, Path]:
    root = DataRoot(str(tmp_path / "data"))
    build_dataset(root)
    run = Path(paths.training_run_dir(root, DATASET, "fomm", "main", "test"))
    trainer = Trainer(load_config("fomm-sample-64"), TrainOptions(
        out_dir=run, max_steps=0, progress=False, allow_random_vgg=True, vgg_weights=str(tmp_path / "no-vgg.pth")))
    state = load_checkpoint(trainer.save())
    state["step"] = STEP
    step_ckpt = save_checkpoint(state, paths.run_checkpoints_dir(run) / step_checkpoint_name(STEP))
    published = Path(paths.published_checkpoint(root, DATASET, "fomm"))
    published.parent.mkdir(parents=True)
    shutil.copy(step_ckpt, published)
    return root, run


def _events(run: Path) -> EventAccumulator:
    acc = EventAccumulator(str(paths.run_evaluation_tensorboard_dir(run)), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_scores_and_hparams_land_in_the_runs_tensorboard(run):
    root, run_dir = run
    scores = score_model(root, "fomm", DATASET, RunParams(extractors=("mediapipe-pose33",), eval_batch_size=8))
    metrics = json.loads((Path(scores.out_dir) / "metrics.json").read_text())
    acc = _events(run_dir)

    l1 = acc.Scalars("eval/L1")
    assert [(e.step, round(e.value, 6)) for e in l1] == [(STEP, round(metrics["L1"], 6))]
    # no frame with a person: AKD/MKR are null in metrics.json, so they are not plotted as a number
    assert metrics["AKD[mediapipe-pose33]"] is None
    assert "eval/AKD[mediapipe-pose33]" not in acc.Tags()["scalars"]

    content = acc.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert [m.name.tag for m in experiment.metric_infos] == ["eval/L1"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    hp = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    assert hp["model"] == "fomm" and hp["config"] == "fomm-sample-64" and hp["dataset"] == DATASET
    cfg = load_config("fomm-sample-64").train
    assert hp["train/batch_size"] == cfg.batch_size and hp["train/num_epochs"] == cfg.num_epochs
    assert hp["train/lr/generator"] == pytest.approx(cfg.lr["generator"])
    assert hp["train/scales"] == str(list(cfg.scales))

    # the training curves (curves.csv) read the folder above: the scores are not among them
    assert paths.run_evaluation_tensorboard_dir(run_dir).parent == paths.run_tensorboard_dir(run_dir)
    assert not list(paths.run_tensorboard_dir(run_dir).glob("events.out.tfevents.*"))

    # scores reused (same checkpoint, data, extractors): nothing written twice
    assert score_model(root, "fomm", DATASET, RunParams(extractors=("mediapipe-pose33",), eval_batch_size=8)).reused
    assert len(_events(run_dir).Scalars("eval/L1")) == 1


def test_a_checkpoint_of_no_run_writes_no_events(run, tmp_path):
    root, run_dir = run
    loose = tmp_path / "loose.pt"
    shutil.copy(Path(paths.published_checkpoint(root, DATASET, "fomm")), loose)
    state = load_checkpoint(loose)
    state["step"] = STEP + 1  # no run checkpoint of this step holds these bytes
    save_checkpoint(state, loose)
    score_model(root, "fomm", DATASET, RunParams(extractors=(), eval_batch_size=8), checkpoint=loose,
                out_dir=tmp_path / "eval")
    assert not paths.run_tensorboard_dir(run_dir).exists()
