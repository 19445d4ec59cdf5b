"""/api/public/v2/prompts against the running api and Postgres: versions, labels, tags,
references, paging and filters, deletion, isolation between projects, and bad input."""

from __future__ import annotations

import asyncio
import io
import uuid
from typing import Any

import aiohttp
import orjson
import pytest

from sinks.postgres.client import Postgres
from sinks.postgres.keys import NewKey, create_key
from tests.support import API, basic_auth, eventually

pytestmark = pytest.mark.stack

URL = f"{API}/api/public/v2/prompts"


def _nested(depth: int) -> Any:
    doc: Any = 1
    for _ in range(depth):
        doc = [doc]
    return doc


async def call(http: aiohttp.ClientSession, key: NewKey, method: str, path: str = "", **kwargs: Any) -> tuple[int, Any]:
    async with http.request(method, f"{URL}{path}", headers=basic_auth(key), **kwargs) as r:
        return r.status, (await r.json() if r.status != 204 else None)


async def create(http: aiohttp.ClientSession, key: NewKey, **doc: Any) -> dict[str, Any]:
    status, body = await call(http, key, "POST", json=doc)
    assert status == 201, body
    return body  # type: ignore[no-any-return]


async def test_versions_labels_and_tags(http: aiohttp.ClientSession, project: NewKey) -> None:
    name = f"p-{uuid.uuid4().hex[:8]}"
    v1 = await create(http, project, name=name, prompt="one {{x}}", labels=["production"], tags=["a"])
    assert {k: v1[k] for k in ("name", "version", "type", "labels", "tags", "config", "resolutionGraph")} == {
        "name": name,
        "version": 1,
        "type": "text",
        "labels": ["latest", "production"],
        "tags": ["a"],
        "config": {},
        "resolutionGraph": None,
    }
    v2 = await create(http, project, name=name, prompt="two", labels=["staging"], tags=["b", "c"])
    assert (v2["version"], v2["labels"], v2["tags"]) == (2, ["latest", "staging"], ["b", "c"])
    # Tags are the prompt's: version 1 has the new ones; `latest` left it.
    status, got = await call(http, project, "GET", f"/{name}", params={"version": "1"})
    assert status == 200 and got["tags"] == ["b", "c"] and got["labels"] == ["production"]
    assert (await call(http, project, "GET", f"/{name}"))[1]["version"] == 1  # production by default
    assert (await call(http, project, "GET", f"/{name}", params={"label": "latest"}))[1]["prompt"] == "two"
    status, moved = await call(http, project, "PATCH", f"/{name}/versions/2", json={"newLabels": ["production"]})
    assert status == 200 and moved["labels"] == ["latest", "production", "staging"]
    assert (await call(http, project, "GET", f"/{name}"))[1]["version"] == 2
    assert (await call(http, project, "GET", f"/{name}", params={"version": "1"}))[1]["labels"] == []
    # A chat prompt cannot become a text prompt's next version.
    status, body = await call(http, project, "POST", json={"name": name, "type": "chat", "prompt": []})
    assert status == 400 and "text prompt" in body["message"]


async def test_concurrent_creates_number_their_versions(http: aiohttp.ClientSession, project: NewKey) -> None:
    name = f"race-{uuid.uuid4().hex[:8]}"
    made = await asyncio.gather(*(create(http, project, name=name, prompt=f"v{i}") for i in range(8)))
    assert sorted(m["version"] for m in made) == list(range(1, 9))
    latest = [
        m["version"]
        for m in made
        if "latest"
        in (await call(http, project, "GET", f"/{name}", params={"version": str(m["version"])}))[1]["labels"]
    ]
    assert latest == [8]


async def test_references_resolve_unless_asked_not_to(http: aiohttp.ClientSession, project: NewKey) -> None:
    base = f"base-{uuid.uuid4().hex[:8]}"
    inner = await create(http, project, name=base, prompt="be {{tone}}", labels=["production"])
    outer = f"outer-{uuid.uuid4().hex[:8]}"
    text = f"Rules: @@@langfusePrompt:name={base}|version=1@@@. Go."
    await create(http, project, name=outer, prompt=text, labels=["production"])
    status, got = await call(http, project, "GET", f"/{outer}")
    assert status == 200 and got["prompt"] == "Rules: be {{tone}}. Go."
    assert got["resolutionGraph"]["dependencies"] == {got["id"]: [{"id": inner["id"], "name": base, "version": 1}]}
    assert (await call(http, project, "GET", f"/{outer}", params={"resolve": "false"}))[1]["prompt"] == text
    chat = f"chat-{uuid.uuid4().hex[:8]}"
    await create(
        http,
        project,
        name=chat,
        type="chat",
        prompt=[{"role": "system", "content": f"@@@langfusePrompt:name={base}|label=production@@@"}],
        labels=["production"],
    )
    assert (await call(http, project, "GET", f"/{chat}"))[1]["prompt"] == [{"role": "system", "content": "be {{tone}}"}]
    # A cycle, and a reference to a missing prompt: 400 naming the problem, not a 500.
    loop = f"loop-{uuid.uuid4().hex[:8]}"
    await create(
        http, project, name=loop, prompt=f"@@@langfusePrompt:name={loop}|label=production@@@", labels=["production"]
    )
    status, body = await call(http, project, "GET", f"/{loop}")
    assert status == 400 and "cycle" in body["message"]
    # A large prompt named many times would resolve to gigabytes: refused past the size limit.
    big = f"big-{uuid.uuid4().hex[:8]}"
    await create(http, project, name=big, prompt="x" * 600_000, labels=["production"])
    bomb = f"bomb-{uuid.uuid4().hex[:8]}"
    await create(
        http, project, name=bomb, prompt=f"@@@langfusePrompt:name={big}|version=1@@@" * 50, labels=["production"]
    )
    status, body = await call(http, project, "GET", f"/{bomb}")
    assert status == 400 and "exceeds" in body["message"]
    too_large = orjson.dumps({"name": big, "prompt": "y" * (1024 * 1024 + 1)})
    headers = basic_auth(project) | {"Content-Type": "application/json"}
    async with http.post(URL, data=io.BytesIO(too_large), headers=headers) as r:
        assert r.status == 413, await r.text()
    dangling = f"dangling-{uuid.uuid4().hex[:8]}"
    await create(
        http, project, name=dangling, prompt="@@@langfusePrompt:name=nowhere|label=production@@@", labels=["production"]
    )
    status, body = await call(http, project, "GET", f"/{dangling}")
    assert status == 400 and "missing" in body["message"]


async def test_listing_paging_filters_and_deletion(http: aiohttp.ClientSession, project: NewKey) -> None:
    folder = f"f{uuid.uuid4().hex[:8]}"
    for i in range(3):
        await create(
            http, project, name=f"{folder}/p{i}", prompt="x", labels=["production"] if i else [], tags=[f"t{i}"]
        )
    await create(http, project, name=f"{folder}/p0", prompt="y", labels=["staging"])
    status, page = await call(http, project, "GET", params={"limit": "2", "page": "1"})
    assert status == 200 and page["meta"] == {"page": 1, "limit": 2, "totalItems": 3, "totalPages": 2}
    assert [m["name"] for m in page["data"]] == [f"{folder}/p0", f"{folder}/p1"]
    p0 = page["data"][0]
    assert (p0["versions"], p0["labels"], p0["type"]) == ([1, 2], ["latest", "staging"], "text")
    assert [m["name"] for m in (await call(http, project, "GET", params={"page": "2", "limit": "2"}))[1]["data"]] == [
        f"{folder}/p2"
    ]
    labelled = (await call(http, project, "GET", params={"label": "production"}))[1]
    assert [m["name"] for m in labelled["data"]] == [f"{folder}/p1", f"{folder}/p2"]
    assert [m["name"] for m in (await call(http, project, "GET", params={"tag": "t2"}))[1]["data"]] == [f"{folder}/p2"]
    # A folder's name, percent-encoded as the SDKs send it.
    status, got = await call(http, project, "GET", f"/{folder}%2Fp0", params={"label": "latest"})
    assert status == 200 and got["version"] == 2
    # Deleting the newest version moves `latest` back; deleting by label, then all.
    assert (await call(http, project, "DELETE", f"/{folder}%2Fp0", params={"version": "2"}))[0] == 204
    assert (await call(http, project, "GET", f"/{folder}%2Fp0", params={"label": "latest"}))[1]["version"] == 1
    assert (await call(http, project, "DELETE", f"/{folder}/p1", params={"label": "production"}))[0] == 204
    assert (await call(http, project, "GET", f"/{folder}/p1", params={"version": "1"}))[0] == 404
    assert (await call(http, project, "DELETE", f"/{folder}/p2"))[0] == 204
    assert (await call(http, project, "DELETE", f"/{folder}/p2"))[0] == 404
    assert [m["name"] for m in (await call(http, project, "GET"))[1]["data"]] == [f"{folder}/p0"]


async def test_projects_are_isolated_and_bad_input_is_a_400(
    http: aiohttp.ClientSession, pg: Postgres, project: NewKey
) -> None:
    name = f"mine-{uuid.uuid4().hex[:8]}"
    await create(http, project, name=name, prompt="secret", labels=["production"])
    other = await create_key(pg, f"test-{uuid.uuid4().hex[:12]}")
    status, body = await call(http, other, "GET", f"/{name}")
    assert status == 404 and name in body["message"]
    assert (await call(http, other, "GET"))[1]["data"] == []
    async with http.get(f"{URL}/{name}") as r:
        assert r.status == 401
    for doc in (
        [],
        {"prompt": "no name"},
        {"name": "", "prompt": "x"},
        {"name": "a|b", "prompt": "x"},
        {"name": "/lead", "prompt": "x"},
        {"name": "x" * 256, "prompt": "x"},
        {"name": "n", "prompt": 1},
        {"name": "n", "type": "chat", "prompt": "not a list"},
        {"name": "n", "type": "chat", "prompt": [{"role": "user"}]},
        {"name": "n", "type": "image", "prompt": "x"},
        {"name": "n", "prompt": "x", "labels": ["Upper"]},
        {"name": "n", "prompt": "x", "labels": "production"},
        {"name": "n", "prompt": "x", "tags": [1]},
        {"name": "n", "prompt": "x\ud800"},
        {"name": "n", "prompt": "a\x00b"},
        {"name": "n", "prompt": "x", "config": {"deep": _nested(300)}},
    ):
        async with http.post(URL, json=doc, headers=basic_auth(project)) as r:
            assert r.status == 400, (doc, await r.text())
            assert "message" in await r.json()
    for params in ({"version": "x"}, {"version": "0"}, {"version": "1", "label": "production"}, {"resolve": "maybe"}):
        assert (await call(http, project, "GET", f"/{name}", params=params))[0] == 400, params
    assert (await call(http, project, "PATCH", f"/{name}/versions/1", json={"newLabels": ["latest"]}))[0] == 400
    assert (await call(http, project, "PATCH", f"/{name}/versions/1", json={"labels": []}))[0] == 400
    assert (await call(http, project, "PATCH", f"/{name}/versions/9", json={"newLabels": ["x"]}))[0] == 404
    for version in ("x", "0", "99999999999"):
        assert (await call(http, project, "PATCH", f"/{name}/versions/{version}", json={"newLabels": []}))[0] == 400
    assert (await call(http, project, "GET", f"/{name}", params={"label": "nope"}))[0] == 404


async def test_generations_link_the_prompt_version_they_name(
    http: aiohttp.ClientSession, project: NewKey, pg: Postgres
) -> None:
    """promptId: the id of the version a generation names (batch promptName/promptVersion, or
    the OTLP attributes the current SDKs set), in every read; null when no such version exists,
    and another project's prompt of the same name is not linked."""
    name = f"linked-{uuid.uuid4().hex[:8]}"
    v1 = await create(http, project, name=name, prompt="one")
    v2 = await create(http, project, name=name, prompt="two")
    other = await create_key(pg, f"test-{uuid.uuid4().hex[:12]}")
    await create(http, other, name=name, prompt="elsewhere")
    await create(http, other, name=name, prompt="elsewhere 2")
    await create(http, other, name=name, prompt="elsewhere 3")
    trace = str(uuid.uuid4())
    gens = {str(uuid.uuid4()): version for version in (2, 1, 3)}  # 3: no such version here
    batch = [
        {"id": str(uuid.uuid4()), "type": "trace-create", "timestamp": "2026-12-06T10:00:00Z", "body": {"id": trace}}
    ]
    for gen, version in gens.items():
        body = {"id": gen, "traceId": trace, "name": "g", "promptName": name, "promptVersion": version}
        batch.append(
            {"id": str(uuid.uuid4()), "type": "generation-create", "timestamp": "2026-12-06T10:00:01Z", "body": body}
        )
    async with http.post(f"{API}/api/public/ingestion", json={"batch": batch}, headers=basic_auth(project)) as r:
        assert r.status == 207 and (await r.json())["errors"] == []
    expected = {gen: {2: v2["id"], 1: v1["id"]}.get(version) for gen, version in gens.items()}

    async def read(path: str, **params: str) -> Any:
        async with http.get(f"{API}{path}", headers=basic_auth(project), params=params) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def trace_doc() -> Any:
        async with http.get(f"{API}/api/public/traces/{trace}", headers=basic_auth(project)) as r:
            return await r.json() if r.status == 200 else None

    doc = await eventually(trace_doc, lambda d: d is not None and len(d["observations"]) == 3, timeout_s=30)
    assert {o["id"]: o["promptId"] for o in doc["observations"]} == expected
    listed = await read("/api/public/observations", traceId=trace)
    assert {o["id"]: o["promptId"] for o in listed["data"]} == expected
    for gen, prompt_id in expected.items():
        assert (await read(f"/api/public/observations/{gen}"))["promptId"] == prompt_id
    v2_list = await read("/api/public/v2/observations", traceId=trace, fields="core,prompt")
    assert {o["id"]: (o["promptId"], o["promptName"]) for o in v2_list["data"]} == {
        gen: (prompt_id, name) for gen, prompt_id in expected.items()
    }
