"""The AVD stage's TensorBoard grid shows its prediction: the source driven by the AVD's reconstructed motion, rendered
by the frozen main generator (read back with TensorBoard's EventAccumulator).

Real trainer, real main checkpoints of the tiny sample configs (untrained), synthetic pairs; two AVD steps."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from training.config import load_config
from training.loop.setup import build_avd_stage
from training.loop.synthetic import SyntheticPairs
from training.loop.trainer import Trainer, TrainOptions
from training.reporting.visualize import HEADER_PX, make_grid, to_uint8

SIZE = 64


@pytest.mark.parametrize("model", ["mraa", "tpsmm"])
def test_the_avd_grid_has_a_prediction_column(model, tmp_path):
    cfg = load_config(f"{model}-sample-64")
    main = Trainer(cfg, TrainOptions(out_dir=tmp_path / "main", max_steps=0, progress=False, allow_random_vgg=True,
                                     vgg_weights=str(tmp_path / "no-vgg.pth"))).save()
    stage = build_avd_stage(cfg, main)
    options = TrainOptions(out_dir=tmp_path / "avd", max_steps=2, log_every=1, image_every=2, progress=False)
    Trainer(cfg, options, stage="avd", model=stage).fit(SyntheticPairs(num_videos=2, batch_size=2, size=SIZE))

    acc = EventAccumulator(str(tmp_path / "avd" / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    [event] = acc.Images("train/grid")
    grid = cv2.imdecode(np.frombuffer(event.encoded_image_string, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    assert event.step == 2 and grid.shape == (HEADER_PX + 2 * SIZE, 3 * SIZE, 3)  # source, driving, prediction
    prediction = grid[HEADER_PX:, 2 * SIZE:]
    assert prediction.std() > 0 and not np.array_equal(prediction, grid[HEADER_PX:, :SIZE])


@pytest.mark.parametrize("model", ["mraa", "tpsmm"])
def test_the_preview_is_the_source_driven_by_the_avd_motion(model, tmp_path):
    cfg = load_config(f"{model}-sample-64")
    main = Trainer(cfg, TrainOptions(out_dir=tmp_path / "main", max_steps=0, progress=False, allow_random_vgg=True,
                                     vgg_weights=str(tmp_path / "no-vgg.pth"))).save()
    stage = build_avd_stage(cfg, main).train()
    torch.manual_seed(0)
    source, driving = torch.rand(2, 3, SIZE, SIZE), torch.rand(2, 3, SIZE, SIZE)
    _, generated = stage(source, driving)
    assert "prediction" not in generated  # the training step renders nothing
    pred = stage.preview(source, driving, generated)
    assert pred.shape == source.shape and stage.training  # evaluated in eval mode, left as it was
    if model == "mraa":  # what the official AVD animation renders: generator(source, AVD regions, source regions)
        stage.generator.eval()
        expected = stage.generator(source, generated["avd_region_params"], generated["source_region_params"])
        assert torch.allclose(pred, expected["prediction"])
    grid = make_grid(source, driving, {**generated, "prediction": pred}, header=False)
    assert grid.shape == (2 * SIZE, 3 * SIZE, 3)
    assert not np.array_equal(grid[:SIZE, 2 * SIZE:], to_uint8(pred[0]))  # the AVD's keypoints drawn on it
