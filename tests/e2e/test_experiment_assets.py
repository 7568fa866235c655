"""One experiment (a variant of training/experiments/variants.yaml) through the same assets as the models, for real
on a Dagster instance: opted in by params.yaml's `experiments`, it is `sample/<experiment>/checkpoint` and
`.../evaluation` in the `sample_ablations` group, trained through Pipes by the same trainer, scored by the same scorer,
ranked on the leaderboard under its own config name, and its paper's table written by the `ablations` asset."""
from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest
import yaml

from assets.keys import ablations_group, checkpoint_key, evaluation_key, no_motion_key
from assets.resources import TrainingResource
from pipelines.definitions import make_definitions
from storage.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
REPO = Path(__file__).resolve().parents[2]
EXPERIMENT = "mraa-no-bg"  # MRAA Table 3: no background motion model


def test_an_experiment_trains_scores_and_ranks_through_the_model_assets(sample_videos, tmp_path, monkeypatch):
    from pipelines.rebuild import rebuild
    from pipelines.rebuild import _failure_detail

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["experiments"] = [EXPERIMENT]
    raw["datasets"]["sample"].update(max_steps=2, checkpoint_every=1, log_every=1, image_every=0,
                                     extractors=["mobilenetv2-imagenet"])
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    root = tmp_path / "data"
    manifest = tmp_path / "videos.csv"
    manifest.write_text("video_id,url\n" + "".join(f"{v},{Path(sample_videos[v]).as_uri()}\n"
                                                   for v in ("sample-cuts", "sample-astro-b")))
    assert rebuild("sample", data_root=str(root), source=str(manifest), progress=lambda s: None).dataset_run_ok

    settings = Settings(data_root=str(root), params_file=str(params))
    defs = make_definitions(settings, training=TrainingResource(device="cpu", params_file=str(params)))
    graph = defs.resolve_asset_graph()
    ckpt, evaluation = checkpoint_key("sample", EXPERIMENT), evaluation_key("sample", EXPERIMENT)
    assert graph.get(ckpt).group_name == graph.get(evaluation).group_name == ablations_group("sample")
    assert "mraa" in graph.get(ckpt).kinds and not graph.has(checkpoint_key("sample", EXPERIMENT, "avd"))
    assert evaluation in graph.get(dg.AssetKey("leaderboard")).parent_keys

    assert evaluation in graph.get(dg.AssetKey("ablations")).parent_keys
    job = dg.define_asset_job("t", selection=dg.AssetSelection.assets(ckpt, evaluation, no_motion_key("sample"),
                                                                        dg.AssetKey("leaderboard"),
                                                                        dg.AssetKey("ablations")))
    result = dg.Definitions.merge(defs, dg.Definitions(jobs=[job])).resolve_job_def("t").execute_in_process(
        instance=dg.DagsterInstance.get(), raise_on_error=False)
    assert result.success, _failure_detail(result)
    checks = {(c.asset_key.to_user_string(), c.check_name): c.passed for c in result.get_asset_check_evaluations()}
    assert checks[(f"sample/{EXPERIMENT}/checkpoint", "checkpoint_loads")]
    assert checks[(f"sample/{EXPERIMENT}/evaluation", "metrics_in_range")]

    from training.checkpoint import load_checkpoint
    state = load_checkpoint(root / f"models/sample/{EXPERIMENT}/main.pt")
    assert state["model"] == "mraa" and state["config"]["name"] == f"{EXPERIMENT}-sample-64"
    assert state["config"]["model_params"]["bg_predictor"]["bg_type"] == "zero"
    assert (root / f"models/sample/{EXPERIMENT}/curves.png").is_file()  # its figure, beside the checkpoint
    board = json.loads((root / "leaderboard/leaderboard.json").read_text())
    assert 0 < board["sample"][f"{EXPERIMENT}-sample-64"]["L1"]["ours"] < 1
    assert "ratio_to_no_motion" in board["sample"][f"{EXPERIMENT}-sample-64"]["L1"]
    assert os.path.isdir(root / f"evaluations/sample/{EXPERIMENT}")
    tables = (root / "ablations/ablations.md").read_text()  # the paper's table, kept as an artifact
    assert "## MRAA Table 3 on sample" in tables and f"| No bg model | {EXPERIMENT}-sample-64 |" in tables
