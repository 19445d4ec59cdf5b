"""Modules compiled by mypyc (ops/stack/native.py), and a guard against running a stale build.

A compiled module is an extension beside its source, which Python imports instead of the
source, and the modules of one build call each other directly, not through imports. So when any
source is newer than the build, every compiled module goes, and all run as Python until the next
`make up` compiles them again: an edit always runs. The packages with compiled modules call
`drop_stale()` before anything of theirs is imported.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "sinks", "ingest")
SUFFIX: str = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
# The build's group: its shared library (no source of its own), which every module's shim
# loads, sits inside a package, as the editable install puts only the packages on the path.
GROUP = "pipeline._native"
LIBRARY = ROOT / (GROUP.replace(".", "/") + f"__mypyc{SUFFIX}")


def extensions() -> list[Path]:
    """Every extension module in the packages: what a build left, current or not."""
    return [path for package in PACKAGES for path in (ROOT / package).rglob(f"*{SUFFIX}")]


def drop_stale() -> None:
    """Remove every compiled module when a source changed after the build (pipeline/__init__.py
    calls it, once per process)."""
    built = extensions()
    if not built or not stale(built, LIBRARY):
        return
    try:
        for path in built:
            path.unlink(missing_ok=True)
    except OSError as exc:  # a read-only tree: refuse to run code older than its source
        raise ImportError(f"compiled modules older than their sources and not removable: {exc}") from exc


def stale(built: list[Path], library: Path) -> bool:
    """Whether any source is newer than the oldest module of the build, or missing, or the
    build's library is."""
    try:
        oldest = min(path.stat().st_mtime for path in built)
        return not library.exists() or any(
            not (source := path.with_name(path.name.removesuffix(SUFFIX) + ".py")).exists()
            or source.stat().st_mtime > oldest
            for path in built
            if path != library
        )
    except FileNotFoundError:  # another process is removing them right now
        return True


def active() -> bool:
    """Whether this tree's modules run compiled (after drop_stale)."""
    return LIBRARY.exists()
