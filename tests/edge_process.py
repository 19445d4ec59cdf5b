"""An `agenttrace api` started by a test, on its own port and with its own settings.

For limits that the shared API of `make up` does not enable (rate limit, small in-flight bound,
short publish timeout) or a Kafka path that a test may cut. The process talks to the same
stores as the shared one; its log is kept in a temp file and shown when it fails to start.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
AGENTTRACE = ROOT / ".venv" / "bin" / "agenttrace"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EdgeProcess:
    def __init__(self, port: int, grpc_port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.grpc = f"127.0.0.1:{grpc_port}"  # its OTLP/gRPC listener
        self.proc = proc
        self.log = log

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@asynccontextmanager
async def edge_process(env: dict[str, str], *, ready_timeout_s: float = 30.0) -> AsyncIterator[EdgeProcess]:
    """Start `agenttrace api` with AGENTTRACE_* overrides; yield once /readyz answers 200."""
    port, grpc_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="agenttrace-edge-") as tmp:
        log = Path(tmp) / "api.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(AGENTTRACE), "api", "--port", str(port), "--grpc-port", str(grpc_port)],
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        edge = EdgeProcess(port, grpc_port, proc, log)
        try:
            await _wait_ready(edge, ready_timeout_s)
            yield edge
        finally:
            _stop(proc)


async def _wait_ready(edge: EdgeProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while True:
            if edge.proc.poll() is not None:
                raise AssertionError(
                    f"api on :{edge.port} exited with {edge.proc.returncode}:\n{edge.log_text()[-3000:]}"
                )
            try:
                async with http.get(f"{edge.url}/readyz") as r:
                    if r.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"api on :{edge.port} not ready within {timeout_s}s:\n{edge.log_text()[-3000:]}")
            await asyncio.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
