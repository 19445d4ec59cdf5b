"""The read API through the Langfuse SDKs' own clients and models, unchanged.

The test seeds one project through the batch API (every score type, nested model parameters)
and waits until ClickHouse has it; a script in the SDK's venv then reads it back, parsing with
that SDK's models, and prints what it got.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sinks.postgres.keys import NewKey
from tests.sdk.conftest import sdk_runner
from tests.support import API, basic_auth, eventually

pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]

T0 = "2026-11-25T09:00:00Z"


def _event(etype: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "type": etype, "timestamp": T0, "body": body}


async def seed(key: NewKey, run: str) -> None:
    trace, span, gen = f"trace-{run}", f"span-{run}", f"gen-{run}"
    common = {"traceId": trace, "startTime": T0}
    batch = [
        _event(
            "trace-create",
            {"id": trace, "name": "sdk-read", "userId": f"user-{run}", "sessionId": f"session-{run}",
             "tags": ["a", "b"], "metadata": {"k": "v"}, "input": {"q": 1}, "timestamp": T0},
        ),
        _event("span-create", {"id": span, "name": "plan", "endTime": "2026-11-25T09:00:02Z", **common}),
        _event(
            "generation-create",
            {"id": gen, "parentObservationId": span, "name": "llm", "model": "gpt-4o",
             "modelParameters": {"temperature": 0.2, "response_format": {"type": "json"}},
             "usage": {"input": 12, "output": 3}, "costDetails": {"total": 0.002},
             "endTime": "2026-11-25T09:00:01Z", **common},
        ),
        _event("score-create", {"id": f"score-num-{run}", "traceId": trace, "name": "quality", "value": 0.9}),
        _event("score-create", {"id": f"score-bool-{run}", "traceId": trace, "name": "ok", "value": 1,
                                "dataType": "BOOLEAN"}),
        _event("score-create", {"id": f"score-cat-{run}", "traceId": trace, "name": "tone", "value": "calm",
                                "dataType": "CATEGORICAL"}),
        _event("score-create", {"id": f"score-text-{run}", "traceId": trace, "name": "note", "value": "fine",
                                "dataType": "TEXT"}),
    ]  # fmt: skip
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.post(f"{API}/api/public/ingestion", json={"batch": batch}, headers=basic_auth(key)) as r:
            assert r.status == 207 and (await r.json())["errors"] == []

        async def counts() -> tuple[int, int]:
            async with http.get(f"{API}/api/public/traces/{trace}", headers=basic_auth(key)) as r:
                doc = await r.json() if r.status == 200 else {"observations": [], "scores": []}
            async with http.get(f"{API}/api/public/v3/scores", headers=basic_auth(key)) as r:
                return len(doc["observations"]), len((await r.json())["data"])

        await eventually(counts, lambda c: c == (2, 4), timeout_s=60)


async def test_langfuse_v2_reads(langfuse_v2_python: Path, project: NewKey) -> None:
    run = uuid.uuid4().hex[:12]
    await seed(project, run)
    got = await sdk_runner(langfuse_v2_python, "langfuse_v2_reads.py", project)(run)
    assert got["sdk_version"].startswith("2.60"), got
    assert got["trace"] == {
        "id": f"trace-{run}",
        "name": "sdk-read",
        "tags": ["a", "b"],
        "session": f"session-{run}",
        "observations": sorted([f"gen-{run}", f"span-{run}"]),
        "scores": ["ok", "quality", "tone"],  # TEXT is not a v1 score: 2.60 would fail the whole trace
        "latency": 2.0,
        "total_cost": 0.002,
    }
    # Nested parameters travel as JSON text: 2.60 types them as a flat map.
    assert got["generation"] == {
        "model": "gpt-4o",
        "model_parameters": {"temperature": "0.2", "response_format": '{"type":"json"}'},
        "usage": [12, 3, 15],
        "level": "DEFAULT",
    }
    assert got["legacy_id"] == f"trace-{run}"
    assert got["traces"] == [f"trace-{run}"] and got["none"] == 0
    assert got["traces_observations"] == [sorted([f"gen-{run}", f"span-{run}"])]
    assert got["observations"] == [f"gen-{run}"] and got["observation"] == f"gen-{run}"
    assert (got["sessions"], got["sessions_total"]) == ([f"session-{run}"], 1)
    assert got["scores"] == [["quality", 0.9, f"user-{run}"]]
    assert got["daily"] == [["2026-11-25", 1, [None, "gpt-4o"]]]  # the span counts under no model


async def test_langfuse_v4_reads(langfuse_v4_python: Path, project: NewKey) -> None:
    run = uuid.uuid4().hex[:12]
    await seed(project, run)
    got = await sdk_runner(langfuse_v4_python, "langfuse_v4_reads.py", project)(run)
    assert got["sdk_version"].startswith("4."), got
    trace, span, gen = f"trace-{run}", f"span-{run}", f"gen-{run}"
    assert got["trace"]["id"] == trace and got["trace"]["observations"] == sorted([gen, span])
    assert got["trace"]["scores"] == ["ok", "quality", "tone"]
    assert sorted(got["trace"]["usage"]) == [[0, 0, 0], [12, 3, 15]]
    assert got["traces"] == [trace] and got["traces_meta"] == [1, 10, 1, 1]
    # Newest start first; both started together, so by id descending within the trace.
    assert got["v2_pages"] == [[span], [gen], None]
    assert got["v1"] == sorted([gen, span]) and got["one"] == gen
    assert got["sessions"] == [f"session-{run}"] and got["session_traces"] == [trace]
    assert got["scores"] == sorted(
        [["note", "TEXT"], ["ok", "BOOLEAN"], ["quality", "NUMERIC"], ["tone", "CATEGORICAL"]]
    )
    assert got["score"] == ["quality", 0.9]
    assert got["v3"] == sorted([["note", "TEXT", "fine"], ["ok", "BOOLEAN", True], ["quality", "NUMERIC", 0.9],
                                ["tone", "CATEGORICAL", "calm"]])  # fmt: skip


async def test_langfuse_js_v3_reads(langfuse_js_v3: Path, project: NewKey) -> None:
    run = uuid.uuid4().hex[:12]
    await seed(project, run)
    node = Path(shutil.which("node") or "node")
    got = await sdk_runner(node, "langfuse_js3_reads.cjs", project, str(langfuse_js_v3))(run)
    trace, span, gen = f"trace-{run}", f"span-{run}", f"gen-{run}"
    assert got["trace"] == {"id": trace, "observations": sorted([gen, span]), "latency": 2.0}
    assert got["traces"] == [trace] and got["none"] == 0  # tags arrive comma-joined: all must match
    assert got["meta"] == {"page": 1, "limit": 50, "totalItems": 1, "totalPages": 1}
    assert got["observations"] == [gen]
    assert got["observation"] == [gen, "gpt-4o", {"input": 12, "output": 3, "total": 15, "unit": "TOKENS"}]
    assert got["sessions"] == [f"session-{run}"]
    # fetch* does not throw on a JSON error: it hands the body back, so errors must be JSON.
    assert got["missing"]["error"] == "not_found"
