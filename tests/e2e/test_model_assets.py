"""The model assets for real, in-process on a Dagster instance: the whole `sample` graph (training through Pipes as
its own process, AVD, evaluation, samples, leaderboard), staleness after a config or dataset change and the
automation that retrains exactly that, torchrun with two CPU processes, the multiprocess executor, DVC over the
project's own dvc.yaml, and bad checkpoints.

One module fixture trains everything once (a step or two per model, two of the four models, one extractor) so the
file stays within a couple of minutes on 2 cores; `make demo` runs all four with the full settings.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
import yaml

from assets.keys import checkpoint_key, evaluation_key, no_motion_key
from assets.resources import TrainingResource
from pipelines.definitions import make_definitions
from storage.root import sha256_file
from storage.settings import Settings, resolve_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]
REPO = Path(__file__).resolve().parents[2]
MODELS = ("fomm", "mraa")  # mraa brings the AVD stage


def _params(tmp: Path) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["models"], raw["avd_models"] = list(MODELS), ["mraa"]
    raw["datasets"]["sample"].update(max_steps=2, avd_max_steps=1, checkpoint_every=1, log_every=1,
                                     image_every=0, extractors=["mobilenetv2-imagenet"], sample_pairs=1,
                                     sample_max_frames=6)
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


class Env:
    def __init__(self, tmp: Path, videos: dict[str, str]):
        self.tmp, self.root = tmp, tmp / "data"
        self.params = _params(tmp)
        self.config_dir = tmp / "configs"
        self.config_dir.mkdir()
        self.videos = videos
        self.instance = dg.DagsterInstance.get()

    def manifest(self, ids: tuple[str, ...]) -> str:
        path = self.tmp / f"videos-{len(ids)}.csv"
        path.write_text("video_id,url\n" + "".join(f"{v},{Path(self.videos[v]).as_uri()}\n" for v in ids))
        return str(path)

    def defs(self, **training) -> dg.Definitions:
        resource = TrainingResource(device="cpu", params_file=str(self.params), config_dir=str(self.config_dir),
                                    **training)
        settings = Settings(data_root=str(self.root), params_file=str(self.params), config_dir=str(self.config_dir))
        return make_definitions(settings, training=resource)

    def materialize(self, keys, defs: dg.Definitions | None = None) -> dg.ExecuteInProcessResult:
        defs = defs or self.defs()
        job = dg.define_asset_job("t", selection=dg.AssetSelection.assets(*keys))
        merged = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
        return merged.resolve_job_def("t").execute_in_process(instance=self.instance, raise_on_error=False)


def _error(result: dg.ExecuteInProcessResult) -> str:
    from pipelines.rebuild import _failure_detail
    return _failure_detail(result)


@pytest.fixture(scope="module")
def env(sample_videos, tmp_path_factory):
    from pipelines.rebuild import rebuild

    tmp = tmp_path_factory.mktemp("models")
    old = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(tmp / "dagster_home")
    (tmp / "dagster_home").mkdir()
    try:
        e = Env(tmp, sample_videos)
        assert rebuild("sample", data_root=str(e.root), source=e.manifest(("sample-cuts", "sample-astro-b")),
                       progress=lambda s: None).dataset_run_ok
        sample_graph = [checkpoint_key("sample", m) for m in MODELS] + [checkpoint_key("sample", "mraa", "avd")] \
            + [evaluation_key("sample", m) for m in MODELS] + [no_motion_key("sample"),
                                                                dg.AssetKey(["sample", "animation_samples"]),
                                                                dg.AssetKey("leaderboard")]
        e.first = e.materialize(sample_graph)
        yield e
    finally:
        if old is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = old


def _stale(env: Env, defs: dg.Definitions) -> dict[str, str]:
    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
    from dagster._core.definitions.data_version import CachingStaleStatusResolver
    from dagster._time import get_current_datetime

    graph = defs.resolve_asset_graph()
    view = AssetGraphView(temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
                          instance=env.instance, asset_graph=graph)
    resolver = CachingStaleStatusResolver(instance=env.instance, asset_graph=graph, loading_context=view)
    keys = [checkpoint_key(d, m) for d in ("sample", "taichi") for m in MODELS] + \
        [evaluation_key("sample", m) for m in MODELS]
    return {k.to_user_string(): resolver.get_status(k).value for k in keys} | {
        f"{k.to_user_string()} causes": [str(c) for c in resolver.get_stale_causes(k)] for k in keys}


def test_the_whole_sample_graph_materializes_with_checks_and_lineage(env):
    assert env.first.success, _error(env.first)
    checks = {(c.asset_key.to_user_string(), c.check_name): c.passed for c in env.first.get_asset_check_evaluations()}
    assert checks[("sample/fomm/checkpoint", "losses_finite")] and checks[("sample/mraa/avd", "checkpoint_loads")]
    assert checks[("sample/mraa/evaluation", "metrics_in_range")] and all(checks.values())

    root = env.root
    for m in MODELS:
        assert (root / f"models/sample/{m}/main.pt").is_file() and (root / f"models/sample/{m}/curves.csv").is_file()
    assert (root / "models/sample/mraa/avd.pt").is_file() and not (root / "models/sample/fomm/avd.pt").exists()
    board = json.loads((root / "leaderboard/leaderboard.json").read_text())
    assert set(board["sample"]) == {"fomm-sample-64", "mraa-sample-64", "no motion (source frame)"}
    assert 0 < board["sample"]["fomm-sample-64"]["L1"]["ours"] < 1
    baseline = board["sample"]["no motion (source frame)"]["L1"]["ours"]  # the same chunks: the ratio is theirs
    assert board["sample"]["fomm-sample-64"]["L1"]["ratio_to_no_motion"] == pytest.approx(
        board["sample"]["fomm-sample-64"]["L1"]["ours"] / baseline)
    assert checks[("sample/no_motion/evaluation", "metrics_in_range")]
    assert list((root / "samples/sample").glob("*.mp4")) and list((root / "samples/sample").glob("*.gif"))

    # Lineage, in the checkpoint and in the Dagster metadata: the exact train chunks, the dataset version, the code.
    from pipelines.lineage import lineage_of
    train_chunks = sorted(c["chunk_id"] for c in pq.read_table(root / "datasets/sample/catalog/chunks.parquet")
                          .to_pylist() if c["split"] == "train")
    trail = lineage_of(str(root / "models/sample/fomm/main.pt"))
    assert trail["chunks"] == train_chunks and trail["config_hash"] and trail["git_commit"]
    version = trail["dataset"]["version"]
    assert version["shards_dvc_md5"].endswith(".dir") and version["chunks"] == len(
        pq.read_table(root / "datasets/sample/catalog/chunks.parquet"))
    mat = env.instance.get_latest_materialization_event(checkpoint_key("sample", "fomm")).asset_materialization
    assert mat.metadata["train_chunks"].value == len(train_chunks)
    assert mat.metadata["sha256"].value == sha256_file(root / "models/sample/fomm/main.pt")
    evaluation = json.loads((root / "evaluations/sample/fomm/evaluation.json").read_text())["provenance"]
    assert evaluation["checkpoint_lineage"]["config_hash"] == trail["config_hash"]
    assert evaluation["dataset_version"]["shards_content_hash"] == version["shards_content_hash"]


def _inline_image(markdown: str):
    """The one image a Markdown metadata entry embeds, decoded, and its encoded size."""
    import base64
    import io
    import re

    from PIL import Image

    found = re.findall(r"!\[[^\]]*\]\(data:image/(?:png|jpeg);base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert found, markdown[:300]
    return [(Image.open(io.BytesIO(base64.b64decode(b))), len(b)) for b in found]


def test_the_pages_show_numeric_losses_and_metrics_and_inline_images(env):
    """Issue 13, item 4: each loss term and metric is its own float (the Plots tab charts them across
    materializations), and the curves and contact sheets are images in the page, small enough for the event log."""
    from storage import paths
    from training.reporting.curves import load_scalars

    assert env.first.success, _error(env.first)
    for key in (checkpoint_key("sample", "fomm"), checkpoint_key("sample", "mraa", "avd")):
        meta = env.instance.get_latest_materialization_event(key).asset_materialization.metadata
        scalars = load_scalars(paths.run_tensorboard_dir(meta["run_dir"].path))
        terms = {tag: points[-1][1] for tag, points in scalars.items() if tag.startswith("loss/")}
        assert "loss/total" in terms and len(terms) > 1, terms
        for tag, last in terms.items():
            assert isinstance(meta[tag], dg.FloatMetadataValue) and meta[tag].value == pytest.approx(last), tag

    meta = env.instance.get_latest_materialization_event(checkpoint_key("sample", "fomm")).asset_materialization.metadata
    assert isinstance(meta["curves"], dg.MarkdownMetadataValue) and meta["curves_png"].path.endswith(".png")
    [(image, size)] = _inline_image(meta["curves"].value)
    assert image.width <= 480 and size <= 150_000

    metrics = json.loads((env.root / "evaluations/sample/fomm/metrics.json").read_text())
    meta = env.instance.get_latest_materialization_event(evaluation_key("sample", "fomm")).asset_materialization.metadata
    assert metrics["L1"] > 0 and any(k.startswith("AED") for k in metrics)
    for name, value in metrics.items():
        if isinstance(value, (int, float)) or value is None:
            assert isinstance(meta[name], dg.FloatMetadataValue), name
            if value is not None:
                assert meta[name].value == pytest.approx(value), name

    meta = env.instance.get_latest_materialization_event(
        dg.AssetKey(["sample", "animation_samples"])).asset_materialization.metadata
    sheets = _inline_image(meta["contact_sheets"].value)
    assert len(sheets) == meta["pairs"].value and all(i.width <= 480 for i, _ in sheets)
    assert sum(size for _, size in sheets) <= 150_000


def test_a_changed_config_or_dataset_marks_exactly_its_models_stale_and_automation_retrains_them(env):
    defs = env.defs()
    before = _stale(env, defs)
    assert before["sample/fomm/checkpoint"] == "FRESH" and before["sample/mraa/checkpoint"] == "FRESH"
    assert before["taichi/fomm/checkpoint"] == "MISSING"

    # A config change (a user's config folder overrides the shipped one): only that model and what follows it.
    cfg = yaml.safe_load((REPO / "training/configs/fomm-sample-64.yaml").read_text())
    cfg["train"]["lr"]["generator"] = 1e-4
    (env.config_dir / "fomm-sample-64.yaml").write_text(yaml.safe_dump(cfg))
    changed = env.defs()
    status = _stale(env, changed)
    assert status["sample/fomm/checkpoint"] == "STALE"  # its evaluation follows when it is retrained
    assert status["sample/mraa/checkpoint"] == "FRESH" and status["sample/mraa/evaluation"] == "FRESH"
    (env.config_dir / "fomm-sample-64.yaml").unlink()

    # A dataset change: one more video. The automation condition, evaluated as its sensor does, asks for exactly the
    # sample models (never another dataset's), and running what it asks for retrains them on the new chunks.
    baseline = dg.evaluate_automation_conditions(defs=defs, instance=env.instance)
    from pipelines.rebuild import rebuild
    assert rebuild("sample", data_root=str(env.root), progress=lambda s: None,
                   source=env.manifest(("sample-cuts", "sample-astro-b", "sample-astro-a"))).dataset_run_ok
    status = _stale(env, defs)
    assert status["sample/fomm/checkpoint"] == "STALE" and status["sample/mraa/checkpoint"] == "STALE"
    assert status["taichi/fomm/checkpoint"] == "MISSING"
    tick = dg.evaluate_automation_conditions(defs=defs, instance=env.instance, cursor=baseline.cursor)
    requested = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()
                 if tick.get_num_requested(k)}
    assert {"sample/fomm/checkpoint", "sample/mraa/checkpoint"} <= requested
    assert all(k.startswith("sample/") or k == "leaderboard" for k in requested), requested

    old_sha = sha256_file(env.root / "models/sample/fomm/main.pt")
    result = env.materialize([dg.AssetKey.from_user_string(k) for k in sorted(requested)])
    assert result.success, _error(result)
    assert sha256_file(env.root / "models/sample/fomm/main.pt") != old_sha
    after = _stale(env, defs)
    assert after["sample/fomm/checkpoint"] == "FRESH" and after["sample/mraa/evaluation"] == "FRESH"
    from pipelines.lineage import lineage_of
    trail = lineage_of(str(env.root / "models/sample/fomm/main.pt"))
    chunks = pq.read_table(env.root / "datasets/sample/catalog/chunks.parquet").to_pylist()
    assert trail["chunks"] == sorted(c["chunk_id"] for c in chunks if c["split"] == "train")
    assert trail["shards_now"]["matches_checkpoint"] and "sample-astro-a" in {c["video_id"] for c in chunks}


def test_rematerializing_resumes_the_run_and_torchrun_two_cpu_processes_train_through_pipes(env):
    from training.checkpoint import list_checkpoints, load_checkpoint

    runs = sorted((env.root / "runs/fomm-sample").glob("main-*"))
    # Resume: the same data and config → the same run folder, nothing retrained, the same published weights.
    sha = sha256_file(env.root / "models/sample/fomm/main.pt")
    again = env.materialize([checkpoint_key("sample", "fomm")])
    assert again.success, _error(again)
    assert sorted((env.root / "runs/fomm-sample").glob("main-*")) == runs
    # nothing was left to train, yet the check still sees the whole run's loss windows
    assert {c.check_name: c.passed for c in again.get_asset_check_evaluations()}["losses_finite"]
    assert sha256_file(env.root / "models/sample/fomm/main.pt") == sha

    # Two gloo processes under torchrun, launched by the same asset through Pipes (batch 2 per process).
    result = env.materialize([checkpoint_key("sample", "fomm")], defs=env.defs(nproc_per_node=2))
    assert result.success, _error(result)
    state = load_checkpoint(env.root / "models/sample/fomm/main.pt")
    assert state["meta"]["world_size"] == 2 and state["step"] == 2
    logs = [e.message for e in env.instance.all_logs(result.run_id) if e.message]
    # the run's losses reached Dagster live, with the step's place in the run and the time left
    assert any(re.match(r"step 2/\d+ \(\d+%, ETA \d+:\d\d\): ", m) and "loss/total" in m for m in logs), logs
    assert list_checkpoints(Path(state["meta"]["argv"][state["meta"]["argv"].index("--out") + 1]) / "checkpoints")


def test_multiprocess_executor_runs_the_model_assets(env):
    from dagster import execute_job, reconstructable

    result = execute_job(reconstructable(_multiprocess_job), instance=env.instance,
                         run_config={"resources": {"data_root": {"config": {"url": str(env.root)}}}})
    assert result.success
    done = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
    assert done == {"sample/fomm/evaluation", "sample/mraa/evaluation", "leaderboard"}


def _multiprocess_job():
    """Module-level, so the executor's child processes can rebuild the job from this file."""
    params = os.environ["MOTIONPIPE_TEST_PARAMS"]
    defs = make_definitions(resolve_settings(params_file=params), training=TrainingResource(device="cpu"))
    job = dg.define_asset_job("mp", selection=dg.AssetSelection.assets(
        evaluation_key("sample", "fomm"), evaluation_key("sample", "mraa"), "leaderboard"),
        executor_def=dg.multiprocess_executor.configured({"max_concurrent": 2}))
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[job])).resolve_job_def("mp")


@pytest.fixture(autouse=True)
def _params_env(env, monkeypatch):
    monkeypatch.setenv("MOTIONPIPE_TEST_PARAMS", str(env.params))


def test_demo_steps_are_runs_of_the_projects_own_job(env):
    """Issue 13: the demo's runs belong to `sample_models_job`, which the UI finds and can re-execute, with the run
    config (the terminal logger) that job accepts."""
    from pipelines.demo import run_step

    result = run_step(env.defs(), env.instance, evaluation_key("sample", "fomm"))
    assert result.success, _error(result)
    run = env.instance.get_run_by_id(result.run_id)
    assert run.job_name == "sample_models_job" and run.run_config["loggers"] == {"terminal": {}}
    assert run.job_name in {j.name for j in make_definitions().resolve_all_job_defs()}  # the workspace's job
    assert {m.asset_key for m in result.get_asset_materialization_events()} == {evaluation_key("sample", "fomm")}


def _latest(env: Env, key: dg.AssetKey):
    entry = env.instance.get_latest_materialization_event(key)
    return entry, entry.asset_materialization


def test_the_commands_record_their_work_in_the_instance_and_leave_the_graph_fresh(env, monkeypatch, capsys):
    """Issue 13: `motionpipe train/evaluate/leaderboard` (what `dvc repro` runs) report a materialization with the
    asset's own metadata and checks, and Dagster's version tags, so the UI is current and nothing looks stale."""
    from pipelines.cli import main as motionpipe
    from pipelines.instance_reports import SOURCE_TAG

    for name, value in (("MOTIONPIPE_PARAMS", env.params), ("MOTIONPIPE_CONFIG_DIR", env.config_dir),
                        ("MOTIONPIPE_DEVICE", "cpu")):
        monkeypatch.setenv(name, str(value))
    root = str(env.root)
    assert motionpipe(["train", "mraa", "--dataset", "sample", "--data-root", root]) == 0
    assert motionpipe(["evaluate", "mraa", "--dataset", "sample", "--data-root", root, "--params",
                       str(env.params)]) == 0
    assert motionpipe(["leaderboard", "--data-root", root]) == 0
    out = capsys.readouterr().out
    for key in ("sample/mraa/checkpoint", "sample/mraa/evaluation", "leaderboard"):
        assert f"recorded {key} in the Dagster instance" in out, out[-2000:]

    entry, checkpoint = _latest(env, checkpoint_key("sample", "mraa"))
    assert entry.run_id == "" and checkpoint.tags[SOURCE_TAG] == "train"  # runless, from the command
    assert checkpoint.metadata["sha256"].value == sha256_file(env.root / "models/sample/mraa/main.pt")
    assert isinstance(checkpoint.metadata["loss/total"], dg.FloatMetadataValue) and "curves" in checkpoint.metadata
    entry, evaluation = _latest(env, evaluation_key("sample", "mraa"))
    metrics = json.loads((env.root / "evaluations/sample/mraa/metrics.json").read_text())
    assert entry.run_id == "" and evaluation.tags[SOURCE_TAG] == "evaluate"
    assert evaluation.metadata["L1"].value == pytest.approx(metrics["L1"])
    entry, board = _latest(env, dg.AssetKey("leaderboard"))
    assert entry.run_id == "" and "mraa" in board.metadata["table"].value
    check = env.instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(evaluation_key("sample", "mraa"), "metrics_in_range")])
    assert list(check.values())[0].status.value == "SUCCEEDED"

    status = _stale(env, env.defs())  # the same data versions as the runs recorded: nothing to retrain
    assert status["sample/mraa/checkpoint"] == "FRESH" and status["sample/mraa/evaluation"] == "FRESH", str(status)


def test_bad_checkpoints_fail_clearly_and_keep_the_good_one(env):
    published = env.root / "models/sample/fomm/main.pt"
    good = sha256_file(published)
    run = sorted((env.root / "runs/fomm-sample").glob("main-*"), key=lambda p: p.stat().st_mtime)[-1]
    newest = sorted((run / "checkpoints").glob("step-*.pt"))[-1]
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated, as a dying disk or a killed copy leaves it
    result = env.materialize([checkpoint_key("sample", "fomm")], defs=env.defs(nproc_per_node=2))
    assert not result.success and newest.name in _error(result) + "".join(
        e.message for e in env.instance.all_logs(result.run_id) if e.message)
    assert sha256_file(published) == good  # the previous good checkpoint is still the published one

    # A corrupted published checkpoint: the check fails and evaluation refuses it, naming the file.
    (env.tmp / "good.pt").write_bytes(published.read_bytes())
    published.write_bytes(b"not a checkpoint")
    result = env.materialize([evaluation_key("sample", "fomm")])
    assert not result.success and "main.pt" in _error(result)
    published.write_bytes((env.tmp / "good.pt").read_bytes())
    missing = env.root / "models/sample/mraa/main.pt"
    missing.rename(env.tmp / "mraa.pt")
    result = env.materialize([evaluation_key("sample", "mraa")])
    assert not result.success and "materialize sample/mraa/checkpoint first" in _error(result)
    (env.tmp / "mraa.pt").rename(missing)


def test_dvc_commit_push_pull_over_the_projects_dvc_yaml(env, tmp_path, monkeypatch):
    from storage.dvc import DvcError, DvcProject

    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")

    repo = tmp_path / "repo"
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split()
    for rel in tracked + ["dvc.yaml", "params.yaml", ".dvc/config", ".dvcignore"]:
        if (REPO / rel).is_file() and not rel.startswith("data/"):
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, repo / rel)
    shutil.copy2(env.params, repo / "params.yaml")
    shutil.copytree(env.root, repo / "data", ignore=shutil.ignore_patterns("runs", "cache", "videos", "upstream"))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    project = DvcProject(repo)
    project.init(str(tmp_path / "remote"))
    stages = ["rebuild@sample", "train@fomm-sample", "train@mraa-sample", "avd@mraa-sample", "evaluate@fomm-sample",
              "evaluate@mraa-sample", "leaderboard"]
    project.run("commit", "--force", *stages)
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert lock["stages"]["train@fomm-sample"]["outs"][0]["md5"] and "datasets.sample" in json.dumps(
        lock["stages"]["train@fomm-sample"]["params"])
    project.push(*stages)

    hashes = {p: sha256_file(repo / p) for p in ("data/models/sample/fomm/main.pt", "data/models/sample/mraa/avd.pt",
                                                 "data/evaluations/sample/fomm/generated.tar")}
    shutil.rmtree(repo / ".dvc" / "cache")
    for p in hashes:
        (repo / p).unlink()
    shutil.rmtree(repo / "data/datasets/sample/shards")
    project.pull(*stages)
    assert {p: sha256_file(repo / p) for p in hashes} == hashes
    assert "up to date" in project.run("status", *stages)

    # `dvc repro` reruns a stage through the same `motionpipe` command.
    (repo / "data/leaderboard/leaderboard.md").unlink()
    project.run("repro", "--single-item", "leaderboard", timeout=600)
    assert "fomm-sample-64" in (repo / "data/leaderboard/leaderboard.md").read_text()

    # An unreachable remote: a clear error, and nothing local is lost.
    project.run("remote", "add", "--force", "--default", "gone", "http://127.0.0.1:9/dvc")  # nothing listens
    (repo / "data/models/sample/fomm/main.pt").write_bytes(b"changed")
    project.run("commit", "--force", "train@fomm-sample")
    with pytest.raises(DvcError, match="push"):
        project.push("train@fomm-sample")
    assert (repo / "data/models/sample/fomm/main.pt").read_bytes() == b"changed"


def _code_copy(repo: Path, env: Env) -> None:
    """This checkout's files as git sees them (no data/), with the module's params.yaml."""
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split()
    for rel in tracked:
        if (REPO / rel).is_file() and not rel.startswith("data/"):
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, repo / rel)
    shutil.copy2(env.params, repo / "params.yaml")


def _git(repo: Path, *args: str) -> str:
    ident = ["-c", "user.name=t", "-c", "user.email=t@example.org"]
    return subprocess.run(["git", *ident, *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def _what_a_teammate_sees(repo: Path, monkeypatch, capsys) -> dict[str, object]:
    """dvc status / metrics / plots, `motionpipe leaderboard` and `motionpipe lineage` in one clone, with the
    clone's own path taken out so that two clones compare."""
    from pipelines.cli import main as motionpipe
    from storage.dvc import DvcProject

    project = DvcProject(repo)
    seen: dict[str, object] = {
        "status": project.run("status").strip(),
        "metrics": json.loads(project.run("metrics", "show", "--json")),
        "plots": json.loads(project.run("plots", "show", "--json", "-o", str(repo.parent / "plots"))
                            .replace(str(repo.parent / "plots"), "<plots>")),
    }
    table = project.run("metrics", "show")
    assert "failed" not in table and max(map(len, table.splitlines())) <= 160, table  # one column per metric
    html_dir = repo.parent / "plots-html"
    project.run("plots", "show", "-o", str(html_dir))
    page = (html_dir / "index.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert images and all((html_dir / src).is_file() for src in images), page[:2000]
    assert "<script" not in page  # nothing to fetch from a CDN: the page is whole offline
    seen["html_images"] = sorted(images)
    monkeypatch.chdir(repo)
    capsys.readouterr()
    for name, argv in (("leaderboard", ["leaderboard", "--data-root", "data"]),
                       ("lineage", ["lineage", "data/models/sample/mraa/main.pt", "--data-root", "data"]),
                       ("lineage_json", ["lineage", "data/models/sample/fomm/main.pt", "--data-root", "data",
                                         "--json"])):
        assert motionpipe(argv) == 0, name
        seen[name] = capsys.readouterr().out.replace(str(repo.resolve()), "<clone>")
    seen["leaderboard.json"] = json.loads((repo / "data/leaderboard/leaderboard.json").read_text())
    seen["status_after"] = project.run("status").strip()  # rewriting the leaderboard changed nothing
    return seen


def test_a_second_clone_after_dvc_pull_shows_the_same_scores_curves_leaderboard_and_lineage(env, tmp_path,
                                                                                           monkeypatch, capsys):
    """Issue 13's round trip: the demo's DVC step in one clone, `git push`-equivalent (a bare origin) and `dvc push`;
    then `git clone` into another path + plain `dvc pull` brings back everything the first clone shows."""
    from pipelines.demo import dvc_stages, record_in_dvc
    from storage.dvc import DvcProject
    from training.run_params import load_params

    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    first = tmp_path / "alice" / "motionpipe"
    first.mkdir(parents=True)
    _code_copy(first, env)
    _git(first, "init", "-q", "-b", "main")
    DvcProject(first).init(str(tmp_path / "shared-remote"))
    _git(first, "add", "-A")
    _git(first, "commit", "-q", "-m", "code")
    shutil.copytree(env.root, first / "data")  # the demo's chain has run: its data root as the run left it

    params = load_params(first / "params.yaml")
    staged = record_in_dvc(first, dvc_stages(params.models, params.avd_models))
    assert "dvc.lock" in staged and "data/leaderboard/leaderboard.json" in staged
    assert {"data/evaluations/sample/fomm/metrics.json", "data/models/sample/mraa/curves.csv",
            "data/datasets/sample/coverage/coverage.json", "data/leaderboard/plots/sample/training_losses.png"} \
        <= set(staged)
    assert not [p for p in staged if p.endswith((".pt", ".tar", ".parquet"))]  # big outputs go to the remote only
    _git(first, "commit", "-q", "-m", "demo results", "--", "dvc.lock", "data")
    assert _git(first, "status", "--porcelain") == ""  # the demo leaves nothing untracked
    _git(tmp_path, "clone", "-q", "--bare", str(first), "origin.git")

    second = tmp_path / "bob" / "elsewhere" / "motionpipe"
    _git(tmp_path, "clone", "-q", str(tmp_path / "origin.git"), str(second))
    pull = subprocess.run([sys.executable, "-m", "dvc", "pull"], cwd=second, capture_output=True, text=True)
    assert pull.returncode == 0 and "WARNING" not in pull.stdout + pull.stderr, pull.stdout + pull.stderr  # plain
    files = {clone: {p.relative_to(clone): sha256_file(p) for p in (clone / "data").rglob("*") if p.is_file()}
             for clone in (first, second)}
    not_versioned = ("data/runs/", "data/cache/", "data/datasets/sample/videos/", "data/datasets/sample/upstream/",
                     "data/evaluations/sample/extractor-cache/", "data/datasets/sample/last_rebuild.json")
    assert all(str(p).startswith(not_versioned) for p in set(files[first]) - set(files[second]))
    assert files[second] == {p: files[first][p] for p in files[second]}  # byte for byte

    alice = _what_a_teammate_sees(first, monkeypatch, capsys)
    bob = _what_a_teammate_sees(second, monkeypatch, capsys)
    assert alice["status"] == "Data and pipelines are up to date." == alice["status_after"]
    assert alice["metrics"][""]["data"]["data/evaluations/sample/fomm/metrics.json"]["data"]["L1"] > 0
    assert {"data/leaderboard/plots/sample/training_losses.png", "data/leaderboard/plots/sample/scores.png",
            "data/models/sample/fomm/curves.png"} <= set(alice["plots"]["data"])  # every model overlaid, offline
    assert "fomm-sample-64" in alice["leaderboard"] and "scored in" in alice["lineage"]
    assert bob == alice


def test_the_ui_shows_the_model_group_a_checkpoints_plots_and_the_leaderboard(env, tmp_path):
    """Issue 13: screenshots (kept in test-artifacts/) of what a researcher reads after the chain has run, taken by
    Debian's headless Chromium on the real webserver over this instance: the model group's nodes named by model and
    materialized, a checkpoint's losses charted across its materializations, the leaderboard's table and plots."""
    from PIL import Image, ImageStat

    from tests.e2e.dagster_ui import (ARTIFACTS, LOCATION_PATH, browser_page, chromium_path, running_webserver,
                                      wait_location_loaded, wait_stable)

    chromium = chromium_path()
    shots = {name: ARTIFACTS / f"dagster-{name}.png" for name in ("model-group", "checkpoint-plots", "leaderboard")}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for shot in shots.values():
        shot.unlink(missing_ok=True)
    if len(env.instance.fetch_materializations(checkpoint_key("sample", "fomm"), limit=2).records) < 2:
        assert env.materialize([checkpoint_key("sample", "fomm")]).success  # a second point on each chart
    errors: list[str] = []
    code_env = {"MOTIONPIPE_PARAMS": str(env.params), "MOTIONPIPE_CONFIG_DIR": str(env.config_dir),
                "MOTIONPIPE_DATA_ROOT": str(env.root)}
    with running_webserver(os.environ["DAGSTER_HOME"], tmp_path / "webserver.log", code_env) as base:
        wait_location_loaded(base)
        with browser_page(chromium, tmp_path / "profile", errors) as page:
            page.goto(f"{base}{LOCATION_PATH}/asset-groups/sample_models", wait_until="load", timeout=60_000)
            nodes = page.locator("svg foreignObject")
            node = nodes.filter(has=page.get_by_text("checkpoint", exact=True)).first
            node.wait_for(state="visible", timeout=90_000)
            wait_stable(node)
            materialized = nodes.filter(has=page.get_by_text("Materialized", exact=True))
            materialized.first.wait_for(state="visible", timeout=60_000)  # the nodes' live status loads after them
            page.wait_for_timeout(1000)
            assert materialized.count() >= 3
            assert page.get_by_text("fomm", exact=True).count() >= 1 and page.get_by_text("mraa", exact=True).count() >= 1
            page.screenshot(path=str(shots["model-group"]))

            page.goto(f"{base}/assets/sample/fomm/checkpoint", wait_until="load", timeout=60_000)
            page.get_by_role("button", name="Plots").click()
            chart = page.get_by_text("loss/total", exact=True)
            chart.wait_for(state="visible", timeout=60_000)
            assert page.get_by_text("loss/perceptual", exact=True).count() == 1
            chart.scroll_into_view_if_needed()
            page.wait_for_timeout(1500)  # the charts animate in
            page.screenshot(path=str(shots["checkpoint-plots"]), full_page=True)

            page.goto(f"{base}/assets/leaderboard", wait_until="load", timeout=60_000)
            page.get_by_text("[Show Markdown]").first.click()
            dialog = page.get_by_role("dialog")
            dialog.get_by_text("no motion (source frame)").first.wait_for(state="visible", timeout=30_000)
            assert dialog.get_by_text("fomm-sample-64").count() >= 1 and dialog.get_by_text("L1 (0–1)").count() >= 1
            page.wait_for_timeout(1000)  # the dialog fades in
            page.screenshot(path=str(shots["leaderboard"]))
    assert not errors, f"uncaught errors in the Dagster UI: {errors}"
    for name, shot in shots.items():
        with Image.open(shot) as img:
            assert img.width >= 1600 and ImageStat.Stat(img.convert("L")).stddev[0] > 10, name
