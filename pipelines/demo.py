"""`motionpipe demo` (the README's first command): the whole chain on the embedded default, offline, on CPU.

rebuild `sample` → train every model → AVD → evaluate, and score the no-motion baseline on the same test chunks →
animation samples → leaderboard (printed) → DVC commit and push to the local remote. Every step is a real Dagster
run in the instance under DAGSTER_HOME (the UI shows them afterwards); the terminal gets one line per step as it
goes, and the training steps' losses live.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import dagster as dg

from assets.keys import ANIMATION_SAMPLES, checkpoint_key, dataset_key, evaluation_key, leaderboard_key, no_motion_key
from pipelines.definitions import make_definitions
from pipelines.instance import open_instance
from pipelines.rebuild import rebuild
from storage import paths
from storage.root import DataRoot
from storage.settings import resolve_settings
from training.run_params import PARAMS_FILE, load_params

DATASET = "sample"
REPO = Path(__file__).resolve().parents[1]


@dg.logger
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    """Only what the step's own code says (training losses, checkpoints), not Dagster's event stream."""
    log = logging.Logger("motionpipe.demo", logging.INFO)

    class UserMessages(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            meta = getattr(record, "dagster_meta", {}) or {}
            if meta.get("dagster_event") is None:
                print(f"    {meta.get('step_key') or ''}: {meta.get('orig_message', record.getMessage())}",
                      flush=True)

    log.addHandler(UserMessages())
    return log


def plan_steps(models: tuple[str, ...], avd_models: tuple[str, ...]) -> list[dg.AssetKey]:
    steps = []
    for model in models:
        steps.append(checkpoint_key(DATASET, model))
        if model in avd_models:
            steps.append(checkpoint_key(DATASET, model, "avd"))
        steps.append(evaluation_key(DATASET, model))
    return steps + [no_motion_key(DATASET), dataset_key(DATASET, ANIMATION_SAMPLES), leaderboard_key()]


def _summary(result: dg.ExecuteInProcessResult) -> str:
    parts = []
    for event in result.get_asset_materialization_events():
        md = event.materialization.metadata
        if "step" in md:
            parts.append(f"step {md['step'].value}")
        if "L1" in md:
            parts.append(f"L1 {md['L1'].value:.4f}")
        if "pairs" in md:
            parts.append(f"{md['pairs'].value} pairs")
    checks = result.get_asset_check_evaluations()
    if checks:
        failed = [c.check_name for c in checks if not c.passed]
        parts.append(f"checks: {'FAILED ' + ', '.join(failed) if failed else f'{len(checks)} passed'}")
    return ", ".join(parts)


def run_demo(data_root: str | None = None, push: bool = True) -> int:
    from pipelines.rebuild import _failure_detail

    t0 = time.perf_counter()
    os.environ.setdefault("GLOG_minloglevel", "2")  # mediapipe's native INFO/WARNING chatter
    instance = open_instance()
    settings = resolve_settings(data_root=data_root or None)
    root = DataRoot(settings.data_root)
    print(f"motionpipe demo: data root {root.url}, Dagster instance {Path(instance.root_directory)}")
    if not rebuild(DATASET, data_root=root.url).dataset_run_ok:
        print("the sample dataset could not be built; stopping")
        return 1

    params = load_params(settings.params_file or PARAMS_FILE)
    steps = plan_steps(params.models, params.avd_models)
    jobs = [dg.define_asset_job(f"demo_{'_'.join(k.path)}", selection=dg.AssetSelection.assets(k)) for k in steps]
    defs = dg.Definitions.merge(make_definitions(settings),
                                dg.Definitions(jobs=jobs, loggers={"progress": progress_logger}))
    run_config = {"loggers": {"progress": {}}}
    failed_checks: list[str] = []
    for n, (key, job) in enumerate(zip(steps, jobs), 1):
        started = time.perf_counter()
        print(f"[{n}/{len(steps)}] {key.to_user_string()} ...", flush=True)
        result = defs.resolve_job_def(job.name).execute_in_process(instance=instance, raise_on_error=False, run_config=run_config)
        took = time.perf_counter() - started
        if not result.success:
            print(f"[{n}/{len(steps)}] {key.to_user_string()}: FAILED after {took:.0f} s: {_failure_detail(result)}")
            return 1
        print(f"[{n}/{len(steps)}] {key.to_user_string()}: ok ({took:.0f} s) {_summary(result)}", flush=True)
        failed_checks += [f"{c.asset_key.to_user_string()}:{c.check_name}"
                          for c in result.get_asset_check_evaluations() if not c.passed]

    board = Path(paths.leaderboard_dir(root)) / "leaderboard.md" if root.is_local else None
    if board is not None and board.is_file():
        print("\n" + board.read_text())
    if push:
        _dvc_commit_and_push(root, dvc_stages(params.models, params.avd_models))
    print(f"motionpipe demo: done in {time.perf_counter() - t0:.0f} s")
    if failed_checks:
        print(f"motionpipe demo: {len(failed_checks)} asset checks failed: {', '.join(failed_checks)}")
        return 1
    return 0


def dvc_stages(models: tuple[str, ...], avd_models: tuple[str, ...]) -> list[str]:
    """The sample chain's stages of dvc.yaml, in the order the demo runs them."""
    return [f"rebuild@{DATASET}", *(f"train@{m}-{DATASET}" for m in models),
            *(f"avd@{m}-{DATASET}" for m in avd_models), *(f"evaluate@{m}-{DATASET}" for m in models),
            f"no_motion@{DATASET}", f"samples@{DATASET}", "leaderboard"]


def record_in_dvc(repo: Path, stages: list[str]) -> list[str]:
    """`dvc commit` the stages (dvc.lock and the DVC cache), `dvc push` their cached outputs to the default remote,
    and `git add` what git versions: dvc.lock and the metrics and curves (the `cache: false` outputs). Returns the
    paths staged for git (none outside a git repository). Raises DvcError."""
    from storage.dvc import DvcProject

    project = DvcProject(repo)
    project.run("commit", "--force", *stages)
    project.push(*stages)
    return project.stage_in_git("dvc.lock", "data")


def _dvc_commit_and_push(root: DataRoot, stages: list[str]) -> None:
    """The demo's DVC step (`stages`: the steps it ran), when its data root is the data/ that dvc.yaml tracks; says
    what to commit with git."""
    from storage.dvc import DvcError, DvcProject

    if not root.is_local or Path(root.base).resolve() != (REPO / "data").resolve():
        print(f"DVC: skipped (dvc.yaml tracks {REPO / 'data'}; this run's data root is {root.url})")
        return
    try:
        staged = record_in_dvc(REPO, stages)
    except DvcError as exc:
        print(f"DVC: {exc}\n(the outputs are intact under {root.url}; fix the remote and run `dvc push`)")
        return
    print(f"DVC: committed {len(stages)} stages to dvc.lock and pushed them to the default remote "
          f"({DvcProject(REPO).default_remote()})")
    if staged:
        print(f"git: staged {len(staged)} changed files (dvc.lock, metrics, curves); record this version with\n"
              f"    git commit -m 'demo results' -- dvc.lock data")
