"""The Dagster code location loads, with the asset graph, jobs and checks every dataset needs."""
import subprocess
import sys

import dagster as dg
import pytest

from pipelines.definitions import defs


def test_every_dataset_has_the_whole_graph():
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    for d in ("taichi", "ted", "sample"):
        assert {f"{d}/{s}" for s in ("manifest", "raw_video", "detections", "chunks", "clips", "catalog",
                                     "shards", "coverage")} <= keys
        assert defs.resolve_job_def(f"{d}_video_job").partitions_def == dg.DynamicPartitionsDefinition(
            name=f"{d}_videos")
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey(["sample", "clips"])).parent_keys == {dg.AssetKey(["sample", "chunks"])}
    checks = {k.name for k in graph.asset_check_keys if k.asset_key == dg.AssetKey(["taichi", "shards"])}
    assert checks == {"videos_disjoint_splits", "chunk_rules", "catalog_matches_shards"}


def test_workspace_loads_with_the_dagster_cli(tmp_path):
    out = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
                         capture_output=True, text=True, env={"DAGSTER_HOME": str(tmp_path), "PATH": ""}, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]


def test_every_model_on_every_dataset_from_one_factory_with_checks_schedule_and_sensor():
    from training.run_params import config_path
    from training.config import config_hash, load_config

    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    for d in ("taichi", "ted", "sample"):
        for m in ("monkeynet", "fomm", "mraa", "tpsmm"):
            assert {f"{d}/{m}/checkpoint", f"{d}/{m}/evaluation"} <= keys
            assert (f"{d}/{m}/avd" in keys) == (m in ("mraa", "tpsmm"))
            node = graph.get(dg.AssetKey([d, m, "checkpoint"]))
            assert node.code_version.endswith(config_hash(load_config(config_path(m, d))))  # a config edit → stale
            assert dg.AssetKey([d, "shards"]) in node.parent_keys
        assert f"{d}/animation_samples" in keys
    # TaiChiHD-512 has the two models MRAA published at 512 (params.yaml datasets.taichi512.models)
    assert {f"taichi512/{m}/{s}" for m in ("fomm", "mraa") for s in ("checkpoint", "evaluation")} <= keys
    assert not {k for k in keys if k.startswith(("taichi512/tpsmm/", "taichi512/monkeynet/"))}
    assert graph.get(dg.AssetKey("leaderboard")).parent_keys == {
        dg.AssetKey([d, m, "evaluation"]) for d in ("taichi", "ted", "sample")
        for m in ("monkeynet", "fomm", "mraa", "tpsmm", "no_motion")} | {
        dg.AssetKey(["taichi512", m, "evaluation"]) for m in ("fomm", "mraa", "no_motion")}
    assert graph.get(dg.AssetKey(["sample", "no_motion", "evaluation"])).parent_keys == {
        dg.AssetKey(["sample", "shards"])}
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert {("sample/fomm/checkpoint", "losses_finite"), ("sample/fomm/checkpoint", "checkpoint_loads"),
            ("ted/tpsmm/avd", "checkpoint_loads"), ("taichi/mraa/evaluation", "metrics_in_range")} <= checks

    schedule = defs.resolve_schedule_def("retrain_schedule")
    assert schedule.cron_schedule == "0 3 * * 0" and schedule.job_name == "retrain_job"
    sensor = defs.resolve_sensor_def("retrain_stale_models")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert graph.get(dg.AssetKey(["ted", "fomm", "checkpoint"])).automation_condition is not None
    assert defs.resolve_job_def("sample_models_job") is not None


def test_the_retraining_cron_is_configurable(monkeypatch):
    from pipelines.definitions import make_definitions

    monkeypatch.setenv("MOTIONPIPE_RETRAIN_CRON", "30 1 * * *")
    assert make_definitions().resolve_schedule_def("retrain_schedule").cron_schedule == "30 1 * * *"


def test_one_settings_object_feeds_the_definitions_and_their_resources(tmp_path, monkeypatch):
    from assets.resources import TrainingResource
    from pipelines.definitions import make_definitions
    from storage import video
    from storage.settings import resolve_settings

    monkeypatch.setenv("MOTIONPIPE_FFMPEG", "/opt/custom/ffmpeg")
    monkeypatch.setenv("MOTIONPIPE_CONFIG_DIR", str(tmp_path))
    try:
        built = make_definitions(resolve_settings(data_root=str(tmp_path / "data")))
        assert video.ffmpeg_exe() == "/opt/custom/ffmpeg"
        assert built.resources["data_root"].url == str(tmp_path / "data")
        assert built.resources["training"].config_dir == str(tmp_path)  # the folder that versions the assets
        given = make_definitions(resolve_settings(), training=TrainingResource(device="cpu"))
        assert given.resources["training"].config_dir == str(tmp_path)
        with pytest.raises(ValueError, match="config_dir"):
            make_definitions(resolve_settings(), training=TrainingResource(config_dir=str(tmp_path / "other")))
    finally:
        video.use_ffmpeg(None)


def test_every_model_node_names_its_model():
    """The graph labels a node with its key's last part ("checkpoint"); Dagster 1.13 has no display name, so the model
    is one of the node's kinds (drawn on it) and the first words of its description."""
    graph = defs.resolve_asset_graph()
    for m in ("monkeynet", "fomm", "mraa", "tpsmm", "no_motion"):
        for stage in ("checkpoint", "avd", "evaluation"):
            key = dg.AssetKey(["sample", m, stage])
            if not graph.has(key):
                continue
            node = graph.get(key)
            assert m in node.kinds and len(node.kinds) <= 3, (key, node.kinds)
            assert node.description.startswith(f"**{m} {stage} on sample**"), node.description
            assert node.tags["model"] == m
