"""``training/`` is a library: it parses no command line and reads no environment variable, except the one module
that torchrun and Dagster Pipes launch (``python -m training.train``). Paths and settings come in as arguments, read
from the environment by the entry points (``pipelines/``, the assets, the benchmarks)."""
import ast
from pathlib import Path

import pytest

TRAINING = Path(__file__).resolve().parents[2] / "training"
ENTRY_POINT = TRAINING / "train.py"
LIBRARY = sorted(p for p in TRAINING.rglob("*.py") if p != ENTRY_POINT)


def _offences(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names):
            found.append(f"line {node.lineno}: imports argparse")
        elif isinstance(node, ast.ImportFrom) and node.module == "argparse":
            found.append(f"line {node.lineno}: imports from argparse")
        elif isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") \
                and isinstance(node.value, ast.Name) and node.value.id == "os":
            found.append(f"line {node.lineno}: reads os.{node.attr}")
    return found


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(TRAINING)))
def test_library_module_parses_no_command_line_and_reads_no_environment(path):
    assert not _offences(path), f"{path}: {_offences(path)}"


def test_the_entry_point_is_where_the_environment_is_read():
    assert _offences(ENTRY_POINT)  # the check sees what it looks for
