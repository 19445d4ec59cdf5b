"""The compiled build (ops/stack/native.py) runs when built, and never when older than a source."""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import cast

from pipeline import compiled

ROOT = Path(__file__).resolve().parents[2]


def _files(tmp_path: Path, *names: str) -> list[Path]:
    paths = []
    for name in names:
        path = tmp_path / name
        path.write_text("")
        paths.append(path)
    return paths


def test_a_build_newer_than_every_source_is_kept(tmp_path: Path) -> None:
    source, shim, library = _files(tmp_path, "fold.py", f"fold{compiled.SUFFIX}", f"_native__mypyc{compiled.SUFFIX}")
    os.utime(source, (1_000, 1_000))
    assert not compiled.stale([shim, library], library)


def test_an_edited_source_makes_the_whole_build_stale(tmp_path: Path) -> None:
    fold, rollup, *built = _files(
        tmp_path, "fold.py", "rollup.py", f"fold{compiled.SUFFIX}", f"rollup{compiled.SUFFIX}", f"lib{compiled.SUFFIX}"
    )
    for path in built:
        os.utime(path, (2_000, 2_000))
    os.utime(fold, (1_000, 1_000))
    os.utime(rollup, (3_000, 3_000))  # edited after the build: fold's module goes too
    assert compiled.stale(built, built[-1])


def test_a_build_without_its_library_or_a_source_is_stale(tmp_path: Path) -> None:
    source, shim = _files(tmp_path, "fold.py", f"fold{compiled.SUFFIX}")
    os.utime(source, (1_000, 1_000))
    assert compiled.stale([shim], tmp_path / f"lib{compiled.SUFFIX}")
    orphan = _files(tmp_path, f"gone{compiled.SUFFIX}")[0]
    library = _files(tmp_path, f"lib{compiled.SUFFIX}")[0]
    assert compiled.stale([orphan, library], library)


def test_the_modules_run_as_the_build_says() -> None:
    """After `make up` the hot modules are the extensions, or, where the build failed (no C
    compiler), none is: never a mix, never a stale build."""
    stamp = json.loads((ROOT / ".stack" / "native.json").read_text())
    assert compiled.active() is stamp["compiled"], stamp.get("error")
    for path in stamp.get("modules", []):
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert str(module.__file__).endswith(compiled.SUFFIX), module.__file__
    if not stamp["compiled"]:
        assert compiled.extensions() == []


def test_the_build_succeeds_where_a_compiler_is_at_hand() -> None:
    """A failed build with a C compiler present is a defect (a type error, an import mypyc's
    own mypy settings cannot see), not the fallback for machines without one: the stages then
    run about twice as slow as Python, and nothing else fails."""
    stamp = json.loads((ROOT / ".stack" / "native.json").read_text())
    if shutil.which("cc") or shutil.which("gcc"):
        assert stamp["compiled"], stamp.get("error")


def _compiled_sources() -> list[str]:
    """ops/stack/native.py's MODULES, read from its source (it is a script, not a module)."""
    tree = ast.parse((ROOT / "ops" / "stack" / "native.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "MODULES" for t in node.targets):
            return [str(ast.literal_eval(item)) for item in cast(ast.List, node.value).elts]
    raise AssertionError("no MODULES in ops/stack/native.py")


def _final(annotation: ast.expr | None) -> bool:
    target = annotation.value if isinstance(annotation, ast.Subscript) else annotation
    return isinstance(target, ast.Name) and target.id == "Final"


def test_compiled_modules_read_their_constants_as_statics() -> None:
    """Compiled, a module-level name that is not Final is looked up in the module's dict each
    time it is read: shape.py's scan took 25.8 ns a byte for its three byte constants, 1.8 with
    them Final, and the Postgres stage spent 4.6% of its time looking up OBSERVATION_TYPES."""
    constant = re.compile(r"_?[A-Z][A-Z0-9_]*")
    loose = []
    for source in _compiled_sources():
        for node in ast.parse((ROOT / source).read_text()).body:
            if isinstance(node, ast.Assign):
                names = [n for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
                loose += [f"{source}: {n.id}" for n in names if constant.fullmatch(n.id)]
            elif (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and constant.fullmatch(node.target.id)
                and not _final(node.annotation)
            ):
                loose.append(f"{source}: {node.target.id}")
    assert loose == [], "annotate these Final (or rename them, if they change)"
