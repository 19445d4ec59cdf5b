"""Hostile or broken clients at the socket level: malformed headers carrying a secret never put
it in a log line, and a client that hangs up mid-body is counted as 499, not as a 500."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets

import aiohttp
import pytest

from sinks.postgres.keys import NewKey
from tests.edge_process import EdgeProcess, edge_process
from tests.support import basic_auth, sample, scrape

pytestmark = [pytest.mark.stack, pytest.mark.slow]


async def _raw(edge: EdgeProcess, data: bytes, *, read: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    try:
        writer.write(data)
        await writer.drain()
        if not read:
            return b""
        with contextlib.suppress(TimeoutError, ConnectionError):
            return await asyncio.wait_for(reader.read(65536), 5)
        return b""
    finally:
        writer.transport.abort()


def _requests_carrying(secret: str) -> list[bytes]:
    cred = base64.b64encode(f"pk-at-public:{secret}".encode())
    head = b"POST /api/public/ingestion HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    tail = b"Content-Length: 2\r\n\r\n{}"
    s = secret.encode()
    return [
        head + b"Authorization: Basic " + cred + b"\x01\r\n" + tail,  # a control byte
        head + b"Authorization: Basic \x00" + cred + b"\r\n" + tail,
        head + b"Authorization: Basic " + cred + b"\xff\xfe\r\n" + tail,  # not ASCII
        head + b"Authorization: Bearer " + s + b"\x7f\r\n" + tail,
        head + b"Authorization: " + s + b"\r" + b"X-Injected: 1\r\n" + tail,  # a bare CR
        head + b"Authorization: " + s + b"\n" + b" folded\r\n" + tail,  # obsolete line folding
        head + b"Authorization: Basic " + cred + b"A" * 70000 + b"\r\n" + tail,  # overlong field
        head + b"Authorization " + s + b"\r\n" + tail,  # no colon
        head + b"X-Debug: " + s + b"\x01\r\n" + tail,  # a secret in another header
        b"POST /api/public/ingestion?key=" + s + b" HTTP/1.1\x01\r\nHost: x\r\n" + tail,  # bad request line
        b"GET /api/public/projects HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + cred + b"\r\n\r\n",  # unknown key
    ]


async def test_no_secret_reaches_the_log(http: aiohttp.ClientSession) -> None:
    secret = f"sk-at-{secrets.token_hex(16)}"
    async with edge_process({"AGENTTRACE_LOG_LEVEL": "DEBUG"}) as edge:
        for request in _requests_carrying(secret):
            await _raw(edge, request)
        async with http.get(f"{edge.url}/readyz") as r:
            assert r.status == 200  # still serving
        await asyncio.sleep(0.5)
        log = edge.log_text()
    assert log.strip(), "the edge logged nothing; the test would prove nothing"
    encoded = base64.b64encode(f"pk-at-public:{secret}".encode()).decode()
    for needle in (secret, secret[6:], encoded[:24]):
        assert needle not in log, f"{needle!r} leaked:\n" + "\n".join(
            line for line in log.splitlines() if needle in line
        )


async def test_client_gone_mid_body_is_499_not_500(http: aiohttp.ClientSession, project: NewKey) -> None:
    auth = basic_auth(project)["Authorization"]
    async with edge_process({}) as edge:
        for path in ("/api/public/ingestion", "/v1/traces", "/api/public/scores"):
            head = (
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Authorization: {auth}\r\nContent-Length: 100000\r\n\r\n"
            ).encode()
            await _raw(edge, head + b'{"batch": [' + b" " * 5000, read=False)
        await asyncio.sleep(1.0)
        metrics = await scrape(http, edge.url)
        log = edge.log_text()
    assert "unhandled error" not in log, log[-3000:]
    gone = sum(
        v for (name, labels), v in metrics.items() if name == "http_requests_total" and ("status", "499") in labels
    )
    fives = sum(
        v
        for (name, labels), v in metrics.items()
        if name == "http_requests_total" and any(k == "status" and x.startswith("5") for k, x in labels)
    )
    assert fives == 0, metrics
    assert gone >= 1, {k: v for k, v in metrics.items() if k[0] == "http_requests_total"}
    assert sample(metrics, "http_requests_total", method="POST", path="/api/public/ingestion", status="499") <= 1


async def test_connections_are_capped_and_a_stalled_head_is_closed(http: aiohttp.ClientSession) -> None:
    env = {"AGENTTRACE_MAX_CONNECTIONS": "20", "AGENTTRACE_HEADER_TIMEOUT_S": "1"}
    async with edge_process(env) as edge:
        held = [await asyncio.open_connection("127.0.0.1", edge.port) for _ in range(20)]
        for _, writer in held:
            writer.write(b"POST /api/public/ingestion HTTP/1.1\r\nHost: x\r\n")  # never finished
        # Past the cap: an answer of 503 and a closed socket, not a queue.
        reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 503"), answer
        # The stalled heads are closed after the header timeout, which frees the slots.
        for reader, _ in held:
            assert await asyncio.wait_for(reader.read(), 5) == b""
        async with http.get(f"{edge.url}/readyz") as r:
            assert r.status == 200
        metrics = await scrape(http, edge.url)
        for _, writer in held:
            writer.close()
    assert sample(metrics, "http_connections_refused_total", reason="limit") >= 1
    assert sample(metrics, "http_connections_refused_total", reason="header_timeout") >= 20
