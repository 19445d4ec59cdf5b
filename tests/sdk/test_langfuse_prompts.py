"""Prompt management through the Langfuse SDKs, unchanged: the current Python SDK's
create_prompt, get_prompt, update_prompt and API client, the 2.x SDK's, the JS SDK 3.x's, and
the current JS client's (which deletes a score too)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from sinks.postgres.keys import NewKey
from tests.sdk.conftest import sdk_runner
from tests.stack.test_trace_deletion import batch, ingest, visible, whole
from tests.support import API, basic_auth, eventually

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]


async def test_the_current_python_sdk_manages_prompts(
    langfuse_v5_python: Path, project: NewKey, http: aiohttp.ClientSession
) -> None:
    run = uuid.uuid4().hex[:12]
    got = await sdk_runner(langfuse_v5_python, "langfuse_v5_prompts.py", project)(run)
    assert got["sdk_version"].startswith("5."), got
    assert got["created"] == [1, 2, "ask for a rating"]
    assert got["production"] == {
        "version": 1,
        "compiled": "As a expert critic, do you like Dune?",
        "config": {"model": "gpt-4o", "temperature": 0.2},
        "labels": ["production"],
        "tags": ["movies"],  # kept for the second version, which named none
        "fallback": False,
    }
    assert (got["staging"], got["latest"]) == (2, 2)
    assert got["version_1"] == "As a {{criticLevel}} critic, do you like {{movie}}?"
    # The label moved: version 2 has it now, version 1 lost it.
    assert got["promoted"] == {"version": 2, "labels": ["latest", "production", "staging"]}
    assert got["chat"] == [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "And now?"},
    ]
    assert got["composed"] == "Hello Ada! How are you?"
    assert got["listed"] == [
        {
            "name": f"{run}-movie-critic",
            "versions": [1, 2],
            "labels": ["latest", "production", "staging"],
            "tags": ["movies"],
        }
    ]
    assert got["after_delete"] == [2]
    assert got["missing"] == {"fallback": True, "compiled": "Fallback used"}
    # The generation made with version 2 links to it.
    name = quote(f"{run}-movie-critic", safe="")
    async with http.get(f"{API}/api/public/v2/prompts/{name}?version=2", headers=basic_auth(project)) as r:
        version_2 = (await r.json())["id"]

    async def generation() -> dict[str, Any] | None:
        url = f"{API}/api/public/observations/{got['generation']['id']}"
        async with http.get(url, headers=basic_auth(project)) as r:
            return await r.json() if r.status == 200 else None  # type: ignore[no-any-return]

    doc = await eventually(generation, lambda d: d is not None, timeout_s=30)
    assert (doc["promptName"], doc["promptVersion"], doc["promptId"]) == (f"{run}-movie-critic", 2, version_2)


async def test_the_2x_python_sdk_reads_and_writes_prompts(langfuse_v2_python: Path, project: NewKey) -> None:
    run = uuid.uuid4().hex[:12]
    got = await sdk_runner(langfuse_v2_python, "langfuse_v2_prompts.py", project)(run)
    assert got["sdk_version"].startswith("2."), got
    assert got["production"] == [1, "Summarize this", {"max_tokens": 50}]
    assert got["latest"] == 2
    assert got["promoted"] == "Summarize {{text}} briefly"
    assert got["version_1"] == "Summarize {{text}}"
    assert got["chat"] == [{"role": "system", "content": "You are terse."}]


async def test_the_js_3x_sdk_reads_and_writes_prompts(langfuse_js_v3: Path, project: NewKey) -> None:
    node = Path(shutil.which("node") or "node")
    got = await sdk_runner(node, "langfuse_js3_prompts.cjs", project, str(langfuse_js_v3))(uuid.uuid4().hex[:12])
    assert got["production"] == [1, "Hi Ada", {"temperature": 0}]
    assert got["staging"] == 2
    assert got["first"] == "Hi {{who}}"
    assert got["chat"] == [{"role": "system", "content": "Be brief."}]
    assert got["missing"] == [True, "fb"]


async def test_the_current_js_client_manages_prompts_and_deletes_a_score(
    langfuse_js_v5: Path, http: aiohttp.ClientSession, project: NewKey
) -> None:
    trace = f"t-{uuid.uuid4()}"
    await ingest(http, project, batch(trace, session="s", user="u", tokens=1))
    await eventually(lambda: visible(http, project, trace), whole, timeout_s=30)
    node = Path(shutil.which("node") or "node")
    run = sdk_runner(node, "langfuse_js5_prompts.cjs", project, str(langfuse_js_v5), f"{trace}-score")
    got = await run(uuid.uuid4().hex[:12])
    assert got["production"] == [1, "Reply to Ada", {"temperature": 0.1}]
    assert got["staging"] == [2, "kinder"]
    assert got["promoted"] == [2, ["latest", "production", "staging"]]
    assert got["first"] == [True, "gone"]  # version 1 was deleted
    assert got["chat"] == [
        {"role": "system", "content": "You answer in French."},
        {"role": "user", "content": "Bonjour"},
    ]
    after = await eventually(lambda: visible(http, project, trace), lambda v: not v["scores"], timeout_s=20)
    assert after["trace"] and after["observations"] == [f"{trace}-gen"]
