"""The Dagster code location loads, with the asset graph, jobs and checks every dataset needs."""
import subprocess
import sys

import dagster as dg

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
