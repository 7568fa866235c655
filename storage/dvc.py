"""DVC for data and checkpoints: a repository, a default remote (a local folder in the embedded setup; S3 or any
DVC remote otherwise), and add / push / pull. Runs the `dvc` command of this environment so DVC's own state,
locks and config handling apply unchanged."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml


class DvcError(RuntimeError):
    """A dvc command failed; the message carries the command and DVC's own explanation."""


@dataclass(frozen=True)
class DvcProject:
    path: Path

    def run(self, *args: str, timeout: float = 600) -> str:
        cmd = [sys.executable, "-m", "dvc", *args]
        env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
        try:
            done = subprocess.run(cmd, cwd=self.path, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired as exc:
            raise DvcError(f"dvc {' '.join(args)} timed out after {timeout:.0f} s in {self.path}") from exc
        if done.returncode != 0:
            reason = (done.stderr.strip() or done.stdout.strip()).splitlines()
            raise DvcError(f"dvc {' '.join(args)} failed in {self.path}: {' | '.join(reason[-4:])}")
        return done.stdout

    def init(self, remote_url: str, remote_name: str = "storage") -> None:
        """`dvc init` (once) and make `remote_url` the default remote (a local path, s3://..., gs://...)."""
        if not (self.path / ".dvc").is_dir():
            self.run("init", *([] if (self.path / ".git").exists() else ["--no-scm"]))
        self.run("remote", "add", "--default", "--force", remote_name, remote_url)

    def add(self, *targets: str) -> dict[str, str]:
        """Track files or folders; returns target -> DVC hash (md5, `.dir` for folders) from their .dvc files."""
        self.run("add", *targets)
        return {t: self.hash_of(t) for t in targets}

    def hash_of(self, target: str) -> str:
        meta = yaml.safe_load((self.path / f"{target}.dvc").read_text())
        return meta["outs"][0]["md5"]

    def push(self, *targets: str) -> None:
        self.run("push", *targets)

    def pull(self, *targets: str) -> None:
        self.run("pull", *targets)

    def default_remote(self) -> str:
        """The default remote's URL, '?' when there is none."""
        for line in self.run("remote", "list").splitlines():
            if "(default)" in line:
                return line.split()[1]
        return "?"

    def stage_in_git(self, *paths: str) -> list[str]:
        """`git add` the paths (what .gitignore lets through: dvc.lock, the `cache: false` metrics and plots
        under data/) and return those that now differ from HEAD; [] outside a git repository."""
        if subprocess.run(["git", "rev-parse", "--git-dir"], cwd=self.path, capture_output=True).returncode != 0:
            return []
        present = [p for p in paths if (self.path / p).exists()]
        if not present:
            return []
        git = ["git", "-C", str(self.path)]
        added = subprocess.run([*git, "add", "--", *present], capture_output=True, text=True)
        if added.returncode != 0:
            raise DvcError(f"git add {' '.join(present)} failed in {self.path}: {added.stderr.strip()}")
        staged = subprocess.run([*git, "diff", "--cached", "--name-only", "--", *present], check=True,
                                capture_output=True, text=True)
        return staged.stdout.split()
