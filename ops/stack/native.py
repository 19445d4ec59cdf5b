"""Compile the per-event code paths with mypyc (issue 16: a compiled fold).

    .venv/bin/python ops/stack/native.py [--force]      # make up runs it; prints one line

The stages and the edge spend most of their CPU in a few pure modules (decoding, the folds,
row building, the OTLP mapping): mypyc, mypy's compiler of typed Python (it builds mypy and
black), turns those very sources into C extensions, which the import system prefers to the
`.py` beside them. Nothing changes in the code or in what it does; a machine without a C
compiler or Python's headers runs the same modules as Python (the build says so and `make up`
carries on). `pipeline/compiled.py` drops every compiled module once a source is newer than its
build, so an edit never runs stale code; `/version` says which kind runs.

Rebuilt only when a source, this script, mypy or Python changed (a stamp in .stack/); the C and
objects of the last build stay in .stack/native/ for the next.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# Importing it drops a stale build, which this script replaces anyway.
from pipeline.compiled import GROUP, LIBRARY, SUFFIX, extensions  # noqa: E402

STATE = ROOT / ".stack" / "native"
STAMP = ROOT / ".stack" / "native.json"

# What every event goes through, by process: pure code, and the writers whose coroutines hold the
# per-event loops. Request handlers and drivers' callers stay Python: a compiled coroutine buys
# little there.
MODULES = [
    # edge: validation, envelopes, records and partitions, OTLP decoding and mapping
    "pipeline/events.py",
    "pipeline/envelope.py",
    "pipeline/times.py",
    "ingest/partitioner.py",
    "ingest/records.py",
    "ingest/shape.py",
    "ingest/otlp/attributes.py",
    "ingest/otlp/conventions.py",
    "ingest/otlp/mapping.py",
    "ingest/otlp/router.py",
    "ingest/otlp/wire.py",
    "ingest/otlp/json_split.py",
    # stages: the fold, prices, tombstones; ClickHouse rows and blocks; the Postgres rollup
    "pipeline/fold.py",
    "pipeline/prices.py",
    "pipeline/tombstones.py",
    "sinks/clickhouse/writer.py",
    "sinks/clickhouse/native.py",
    "sinks/clickhouse/versions.py",
    "sinks/postgres/rollup.py",
    "sinks/postgres/writer.py",
]


def built() -> list[Path]:
    """The extension modules a build leaves in the tree (the shims and the group's library)."""
    return [*(ROOT / (m.removesuffix(".py") + SUFFIX) for m in MODULES), LIBRARY]


def fingerprint() -> str:
    import mypy.version

    h = hashlib.sha256()
    for part in (mypy.version.__version__, sys.version, platform.machine(), Path(__file__).read_bytes()):
        h.update(part if isinstance(part, bytes) else part.encode())
    for module in MODULES:
        h.update(module.encode())
        h.update((ROOT / module).read_bytes())
    return h.hexdigest()


def remove() -> None:
    """Every extension module in the packages: a module dropped from MODULES goes too."""
    for path in extensions():
        path.unlink()


def build() -> None:
    # Both caches (mypy's and the compiler's objects) under .stack/native; nothing in the tree
    # but the extension modules. A child process: setuptools and mypy stay out of this one.
    env = {**os.environ, "MYPY_CACHE_DIR": str(STATE / "mypy_cache")}
    with (STATE / "build.log").open("w") as out:
        subprocess.run(
            [sys.executable, __file__, "--setup"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, check=True
        )


def setup() -> None:
    from mypyc.build import mypycify
    from setuptools import setup

    # mypyc reads mypy's options: its own, not the project's (whose checks, e.g. of unused
    # sections, are `make lint`'s).
    config = STATE / "mypy.ini"
    config.write_text(
        "[mypy]\npython_version = 3.11\n"
        "[mypy-aiokafka.*,aiopg.*,psycopg2.*,asynch.*,zstandard.*,cramjam.*,lz4.*,google.protobuf.*,opentelemetry.proto.*]\n"
        "ignore_missing_imports = True\n"
    )
    modules = mypycify(
        ["--config-file", str(config), *MODULES], opt_level="3", group_name=GROUP, target_dir=str(STATE / "c")
    )
    args = ["-q", "build_ext", "--inplace", "--build-temp", str(STATE / "obj"), "--build-lib", str(STATE / "lib")]
    setup(name="agenttrace-native", ext_modules=modules, script_args=args)


def main() -> int:
    if sys.argv[1:] == ["--setup"]:
        setup()
        return 0
    force = "--force" in sys.argv[1:]
    STATE.mkdir(parents=True, exist_ok=True)
    try:
        want = fingerprint()
    except ImportError:  # a venv without the test extras: no mypyc
        remove()
        STAMP.write_text(json.dumps({"fingerprint": None, "compiled": False, "error": "mypy is not installed"}))
        print("native: mypy (mypyc) is not installed: running the modules as Python")
        return 0
    try:
        stamp = json.loads(STAMP.read_text())
    except (OSError, ValueError):
        stamp = {}
    if (
        not force
        and stamp.get("fingerprint") == want
        and (stamp.get("compiled") is False or all(p.exists() for p in built()))
    ):
        print(f"native: {'compiled' if stamp.get('compiled') else 'pure Python (the build failed before)'}, up to date")
        return 0
    remove()
    try:
        build()
    except (OSError, subprocess.CalledProcessError) as exc:
        remove()  # half a build would mix compiled and Python modules of one group
        STAMP.write_text(json.dumps({"fingerprint": want, "compiled": False, "error": str(exc)}))
        print(f"native: build failed ({exc}; see {STATE / 'build.log'}): running the modules as Python")
        return 0
    for path in built():
        # setuptools copies an unchanged module's extension with its old time, which would be
        # older than an edited source of the same build: pipeline/compiled.py would drop it all.
        os.utime(path)
    STAMP.write_text(json.dumps({"fingerprint": want, "compiled": True, "modules": MODULES}))
    print(f"native: compiled {len(MODULES)} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
