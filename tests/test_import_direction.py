"""Imports run one way: pipelines → assets → training/storage, training → storage (ARCHITECTURE.md).

Every module of the four packages is parsed (nothing is imported or run), and every import in it counts, the ones
inside functions too: a lazy import is an arrow all the same.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("storage", "training", "assets", "pipelines")

# package -> {top-level module it must not import: why}
FORBIDDEN: dict[str, dict[str, str]] = {
    "storage": {p: "storage is the floor every other package stands on" for p in ("assets", "pipelines", "training")},
    "training": {"assets": "training knows nothing of the Dagster assets",
                 "pipelines": "training knows nothing of the wiring",
                 "dagster": "training runs without Dagster (DVC, torchrun, by hand)",
                 "dagster_pipes": "training runs without Dagster; assets/models/pipes_train.py adds Pipes"},
    "assets": {"pipelines": "pipelines/ chooses and wires the assets, never the other way"},
}

# (file, imported module) pairs allowed for now, each with its reason and who removes it. Exact cases only.
EXCEPTIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Violation:
    file: str
    line: int
    module: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: imports {self.module} ({self.reason})"


def _package_of(path: Path) -> str:
    return path.relative_to(REPO).parts[0]


def _module_of(file: str) -> tuple[str, bool]:
    """`assets/clips/defs.py` -> ("assets.clips.defs", False); a package's `__init__.py` -> (package, True)."""
    name = file.removesuffix(".py").replace("/", ".")
    return name.removesuffix(".__init__"), name.endswith(".__init__")


def _imported(tree: ast.AST, file: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in `tree`, relative ones resolved against `file`'s package."""
    module, is_package = _module_of(file)
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def violations_in(source: str, file: str) -> list[Violation]:
    """The imports of `source` (the text of `file`, a path relative to the repository) that run the wrong way."""
    package = Path(file).parts[0]
    rules = FORBIDDEN.get(package, {})
    out = []
    for line, name in _imported(ast.parse(source, filename=file), file):
        top = name.split(".")[0]
        if top in rules and (file, name) not in EXCEPTIONS:
            out.append(Violation(file, line, name, f"{package} → {top}: {rules[top]}"))
    return out


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def test_no_import_runs_the_wrong_way():
    found = [v for path in _modules()
             for v in violations_in(path.read_text(), path.relative_to(REPO).as_posix())]
    assert not found, "imports against the direction pipelines → assets → training/storage:\n" + "\n".join(
        map(str, found))


def test_every_exception_is_still_needed_and_says_why():
    for (file, module), reason in EXCEPTIONS.items():
        assert reason.strip(), f"{file}: the exception for {module} gives no reason"
        imported = {name for _, name in _imported(ast.parse((REPO / file).read_text()), file)}
        assert module in imported, f"{file} no longer imports {module}: remove its exception"


def test_the_checker_names_file_line_and_import():
    source = "import os\n\ndef load():\n    from pipelines.resources import default_resources\n"
    (v,) = violations_in(source, "assets/example.py")
    assert str(v).startswith("assets/example.py:4: imports pipelines.resources (assets → pipelines")
    relative = ast.parse("from ..assets import keys\nfrom . import paths\n")
    assert _imported(relative, "storage/sub/example.py") == [(1, "storage.assets"), (2, "storage.sub")]
    assert _imported(relative, "storage/sub/__init__.py") == [(1, "storage.assets"), (2, "storage.sub")]
    assert [x.module for x in violations_in("from dagster import asset\n", "training/x.py")] == ["dagster"]
    assert violations_in("import dagster\nfrom storage import paths\n", "assets/x.py") == []
    assert all(_package_of(p) in PACKAGES for p in _modules())
