"""The packages stand in floors (ARCHITECTURE.md): each imports only packages on floors below."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLOORS = {"health": 1, "pipeline": 2, "sinks": 3, "ingest": 4, "agenttrace": 5}


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in a file, lazy ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def upward_imports() -> list[str]:
    bad = []
    for package, floor in FLOORS.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, imported in imported_packages(path):
                if FLOORS.get(imported, 0) > floor:
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {imported} (floor {FLOORS[imported]})")
    return bad


def test_no_package_imports_a_package_on_a_higher_floor() -> None:
    assert upward_imports() == []


def test_only_the_shell_reads_the_environment() -> None:
    readers = []
    for package in FLOORS.keys() - {"agenttrace"}:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "os.environ" in path.read_text() or "getenv" in path.read_text():
                readers.append(str(path.relative_to(ROOT)))
    assert readers == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text("import os\nfrom ingest.app import build_app\n\ndef f():\n    from agenttrace import cli\n")
    assert imported_packages(source) == [(1, "os"), (2, "ingest"), (5, "agenttrace")]
