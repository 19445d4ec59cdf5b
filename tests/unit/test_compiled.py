"""The compiled build (ops/stack/native.py) runs when built, and never when older than a source."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

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
