"""`motionpipe demo` (the README's first command): the whole chain on the embedded default, offline, on CPU.

rebuild `sample` → train every model → AVD → evaluate, and score the no-motion baseline on the same test chunks →
animation samples → leaderboard (printed) → DVC commit and push to the local remote. Every step is a run of the
project's own jobs in the instance under DAGSTER_HOME (`sample_manifest_job`, `sample_video_job` per video, `sample_dataset_job`, then
`sample_models_job` with one asset selected), so the UI shows them afterwards and can re-execute them; the terminal
gets one line per step as it goes, and the training steps' losses live.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg

from assets.keys import (ANIMATION_SAMPLES, checkpoint_key, dataset_key, evaluation_key, leaderboard_key,
                         models_job_name, no_motion_key)
from pipelines.definitions import make_definitions
from pipelines.instance import open_instance
from pipelines.rebuild import rebuild
from pipelines.terminal_logger import TERMINAL_LOGGER
from storage import paths
from storage.root import DataRoot
from storage.settings import resolve_settings
from training.run_params import PARAMS_FILE, load_params

DATASET = "sample"
REPO = Path(__file__).resolve().parents[1]


def plan_steps(models: tuple[str, ...], avd_models: tuple[str, ...]) -> list[dg.AssetKey]:
    steps = []
    for model in models:
        steps.append(checkpoint_key(DATASET, model))
        if model in avd_models:
            steps.append(checkpoint_key(DATASET, model, "avd"))
        steps.append(evaluation_key(DATASET, model))
    return steps + [no_motion_key(DATASET), dataset_key(DATASET, ANIMATION_SAMPLES), leaderboard_key()]


def run_step(defs: dg.Definitions, instance: dg.DagsterInstance, key: dg.AssetKey) -> dg.ExecuteInProcessResult:
    """One step of the demo as a run of the project's own job for its dataset's models (``<dataset>_models_job``,
    this one asset selected), so the UI finds the job and can re-execute it; the terminal gets the step's own
    messages (training losses, checkpoints) through the job's `terminal` logger."""
    job = defs.resolve_job_def(models_job_name(DATASET))
    return job.execute_in_process(instance=instance, raise_on_error=False, asset_selection=[key],
                                  run_config={"loggers": {TERMINAL_LOGGER: {}}})


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
    defs = make_definitions(settings)
    failed_checks: list[str] = []
    for n, key in enumerate(steps, 1):
        started = time.perf_counter()
        print(f"[{n}/{len(steps)}] {key.to_user_string()} ...", flush=True)
        result = run_step(defs, instance, key)
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
