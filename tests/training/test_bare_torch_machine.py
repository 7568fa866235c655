"""The scripts that run on a bare GPU machine (torch, numpy, yaml and pydantic only: no Dagster, no fsspec, no video
or Parquet stack) still import: the training loop, the models and their conversion must not pull those in."""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ABSENT = ("dagster", "dagster_pipes", "fsspec", "pyarrow", "pandas", "cv2", "mediapipe", "webdataset", "imageio_ffmpeg",
          "ffmpeg", "dvc", "PIL")
BLOCKER = f"""
import importlib.abc, runpy, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {ABSENT!r}:
            raise ImportError("not on a bare torch machine: " + name)
sys.meta_path.insert(0, Absent())
sys.argv = [sys.argv[1], "--help"]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("script", ["learning.py", "train_step.py", "official_parity.py"])
def test_bare_machine_benchmark_imports_without_the_pipeline_stack(script):
    done = subprocess.run([sys.executable, "-c", BLOCKER, str(REPO / "benchmarks" / script)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr[-2000:]
