"""Fixtures for the SDK compatibility tests: real client libraries, unchanged, against the
API that `make up` started.

Two major versions of the Langfuse SDK cannot share a virtualenv, so each gets its own under
.stack/sdk-venvs/, created on first use and kept across runs (a stamp records the pinned
requirement; changing the pin rebuilds the venv). The scripts in clients/ run there, print the
ids they created as JSON, and the tests read the rows back from ClickHouse. Go clients are
modules of their own under clients/, their versions pinned by go.mod and go.sum, built into
.stack/sdk-go/ with the modules and Go's build cache beside them.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sinks.postgres.keys import NewKey
from tests.support import API

ROOT = Path(__file__).resolve().parents[2]
VENVS = ROOT / ".stack" / "sdk-venvs"
CLIENTS = Path(__file__).resolve().parent / "clients"

# The SDK releases under test; bump deliberately, the venvs follow.
LANGFUSE_V2 = "langfuse==2.60.10"  # the last 2.x: batch ingestion API
# 2.x with its OpenAI and LangChain integrations (the LangChain 0.3 line it supports).
LANGFUSE_V2_INTEGRATIONS = "langfuse==2.60.10 openai==1.109.1 langchain==0.3.30 langchain-openai==0.3.35"
LANGFUSE_V4 = "langfuse==4.18.0"  # the last 4.x: the read clients 5.x dropped (trace, sessions, scores)
LANGFUSE_V5 = "langfuse==5.2.0"  # current: OTLP/HTTP spans, scores via /api/public/scores
# The last 3.x (OTLP), with the integrations most of its users trace through: OpenAI and LangChain.
LANGFUSE_V3 = "langfuse==3.15.0 openai==3.63.0 langchain==1.5.2 langchain-openai==1.8.1"

LANGFUSE_JS_V3 = "langfuse@3.39.2"  # the last JS 3.x: fetchTrace(s), fetchObservations, fetchSessions
# Current JS (5.x, OTel based), in an HTTP server traced by OTel's own instrumentation, and its
# API client (prompts, scores). The OTel
# packages are the 2.x line (API 1.9) that @langfuse/otel's peer dependencies ask for; 0.223.0 is
# the instrumentation release that goes with sdk-trace-node 2.12.
LANGFUSE_JS_V5 = " ".join(
    [
        "@langfuse/tracing@5.11.1",
        "@langfuse/otel@5.11.1",
        "@langfuse/client@5.11.1",
        "@opentelemetry/api@1.9.1",
        "@opentelemetry/sdk-trace-node@2.12.1",
        "@opentelemetry/exporter-trace-otlp-http@0.223.0",
        "@opentelemetry/instrumentation@0.223.0",
        "@opentelemetry/instrumentation-http@0.223.0",
    ]
)
NPM_DIRS = ROOT / ".stack" / "sdk-npm"
GO_DIR = ROOT / ".stack" / "sdk-go"

SdkRun = Callable[[str], Awaitable[dict[str, Any]]]


def sdk_npm(name: str, requirement: str) -> Path:
    """A directory whose node_modules holds `requirement` (packages separated by spaces),
    installed once (under a lock)."""
    NPM_DIRS.mkdir(parents=True, exist_ok=True)
    where = NPM_DIRS / name
    stamp = where / ".requirement"
    with open(NPM_DIRS / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == requirement:
            return where
        shutil.rmtree(where, ignore_errors=True)
        where.mkdir()
        (where / "package.json").write_text('{"private": true}')
        cmd = ["npm", "install", "--no-audit", "--no-fund", "--silent", *requirement.split()]
        done = subprocess.run(cmd, cwd=where, capture_output=True, text=True, timeout=600)
        if done.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
        stamp.write_text(requirement)
    return where


def sdk_venv(name: str, requirement: str) -> Path:
    """The python of a venv holding `requirement` (packages separated by spaces), built once
    (under a lock: parallel sessions)."""
    VENVS.mkdir(parents=True, exist_ok=True)
    venv = VENVS / name
    python = venv / "bin" / "python"
    stamp = venv / ".requirement"
    with open(VENVS / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists() and stamp.exists() and stamp.read_text() == requirement:
            return python
        shutil.rmtree(venv, ignore_errors=True)
        base = getattr(sys, "_base_executable", sys.executable)
        for cmd in (
            [base, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirement.split()],
        ):
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            if done.returncode:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
        stamp.write_text(requirement)
    return python


def sdk_go(module: str) -> Path:
    """The binary of the Go module clients/<module>, built (under a lock) into .stack/sdk-go/.

    Built every session: Go's build cache, kept there with the module cache, makes that a
    no-op for unchanged sources and rebuilds on any change, the pins' included. `-mod=readonly`
    holds the build to go.sum and leaves the tree's files as they are."""
    go = shutil.which("go")
    if go is None:
        pytest.fail(f"`go` is not on PATH: the Go SDK tests build clients/{module} with it", pytrace=False)
    GO_DIR.mkdir(parents=True, exist_ok=True)
    binary = GO_DIR / "bin" / module
    env = {
        **os.environ,
        "GOPATH": str(GO_DIR / "gopath"),
        "GOCACHE": str(GO_DIR / "cache"),
        # -modcacherw: Go writes its module cache read-only, which `make clean` could not delete.
        "GOFLAGS": "-mod=readonly -modcacherw -buildvcs=false",
        "GOTOOLCHAIN": "local",
        "GOWORK": "off",
        "CGO_ENABLED": "0",
    }
    cmd = [go, "build", "-trimpath", "-o", str(binary), "."]
    with open(GO_DIR / f"{module}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = subprocess.run(cmd, cwd=CLIENTS / module, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return binary


def sdk_runner(python: Path, script: str, project: NewKey, *extra: str) -> SdkRun:
    """Runs clients/<script> with the project's key (and `extra` arguments after it); returns
    what it printed, parsed. `python` may be any interpreter, node included."""
    return command_runner([str(python), str(CLIENTS / script)], project, *extra)


def command_runner(command: list[str], project: NewKey, *extra: str) -> SdkRun:
    """Runs `command` with the project's key and the run's id as one JSON argument (then
    `extra`); returns the last line it printed, parsed."""

    async def run(run_id: str) -> dict[str, Any]:
        args = json.dumps(
            {"host": API, "public_key": project.public_key, "secret_key": project.secret_key, "run": run_id}
        )
        proc = await asyncio.create_subprocess_exec(
            *command,
            args,
            *extra,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        assert proc.returncode == 0, err.decode()
        return json.loads(out.decode().strip().splitlines()[-1])

    return run


@pytest.fixture(scope="session")
def langfuse_v2_python() -> Path:
    return sdk_venv("langfuse2", LANGFUSE_V2)


@pytest.fixture(scope="session")
def langfuse_v2_integrations_python() -> Path:
    return sdk_venv("langfuse2-integrations", LANGFUSE_V2_INTEGRATIONS)


@pytest.fixture(scope="session")
def langfuse_v3_python() -> Path:
    return sdk_venv("langfuse3", LANGFUSE_V3)


@pytest.fixture(scope="session")
def langfuse_v4_python() -> Path:
    return sdk_venv("langfuse4", LANGFUSE_V4)


@pytest.fixture(scope="session")
def langfuse_js_v3() -> Path:
    return sdk_npm("langfuse-js3", LANGFUSE_JS_V3)


@pytest.fixture(scope="session")
def langfuse_js_v5() -> Path:
    return sdk_npm("langfuse-js5", LANGFUSE_JS_V5)


@pytest.fixture(scope="session")
def langfuse_v5_python() -> Path:
    return sdk_venv("langfuse5", LANGFUSE_V5)


@pytest.fixture(scope="session")
def otel_go() -> Path:
    return sdk_go("otel_go")
