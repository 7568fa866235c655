"""Wall time of the README's first command, stage by stage, against its budget (issue 5: 15 minutes on 2 cores).

    .venv/bin/python benchmarks/demo_chain.py            # a fresh data root and Dagster instance in a temp folder

Runs `motionpipe demo` as a user would (a child process, the same settings), in a scratch data root so nothing of
the project's ./data is touched (DVC is then skipped: dvc.yaml tracks ./data). Prints each step's seconds as the
demo reports them, the total, and the ratio total / budget (below 1.0 meets it).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_S = 15 * 60
STEP = re.compile(r"^\[(\d+)/(\d+)\] (\S+): ok \((\d+) s\)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder and print its path")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="motionpipe-demo-bench-"))
    env = {**os.environ, "DAGSTER_HOME": str(scratch / "dagster_home"), "MOTIONPIPE_DATA_ROOT": str(scratch / "data")}
    cli = [sys.executable, "-m", "pipelines.cli", "demo", "--data-root", str(scratch / "data"), "--no-dvc"]
    t0 = time.perf_counter()
    steps: list[tuple[str, int]] = []
    rebuild_done = None
    with subprocess.Popen(cli, cwd=Path(__file__).resolve().parents[1], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            if rebuild_done is None and line.startswith("[1/"):
                rebuild_done = time.perf_counter() - t0
            match = STEP.match(line)
            if match:
                steps.append((match.group(3), int(match.group(4))))
                print(f"  {match.group(3):32s} {match.group(4):>5s} s", flush=True)
    total = time.perf_counter() - t0
    if proc.returncode != 0:
        print(f"demo failed (exit {proc.returncode}); scratch folder kept: {scratch}")
        return 1
    print(f"  {'rebuild sample (manifest → shards)':32s} {rebuild_done or 0:5.0f} s")
    print(f"total {total:.0f} s; budget {BUDGET_S} s; ratio total/budget {total / BUDGET_S:.2f} "
          f"({'meets' if total <= BUDGET_S else 'misses'} the 15-minute target)")
    if args.keep:
        print(f"scratch folder: {scratch}")
    else:
        import shutil
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
