"""Media through the Langfuse SDKs, unchanged: the Python SDK 3.x uploads an inline image and a
`LangfuseMedia` file and resolves both back byte for byte; the JS SDK 5.x uploads an inline
image, which reads back through the media API."""

from __future__ import annotations

import base64
import re
import shutil
import uuid
from pathlib import Path

import aiohttp
import orjson
import pytest

from sinks.clickhouse.client import ClickHouse
from sinks.postgres.keys import NewKey
from tests.sdk.conftest import sdk_runner
from tests.support import API, basic_auth, eventually, rows

pytestmark = [pytest.mark.stack, pytest.mark.timeout(900)]


async def test_langfuse_v3_media_round_trip(langfuse_v3_python: Path, project: NewKey) -> None:
    sent = await sdk_runner(langfuse_v3_python, "langfuse_v3_media.py", project)(uuid.uuid4().hex[:12])
    # An upload refused (a 404 for the whole media API, once) is an error the SDK logs.
    assert sent["errors"] == [], "the SDK logged failures: an upload was refused"
    # What the trace stores is the SDK's reference, not the bytes ...
    stored = sent["stored_input"]["messages"][0]["content"][0]["image_url"]["url"]
    assert stored.startswith("@@@langfuseMedia:type=image/png|id=") and stored.endswith("@@@")
    # ... and the reference resolves to exactly what was sent.
    resolved = sent["resolved"]
    assert resolved["input"]["messages"][0]["content"][0]["image_url"]["url"] == sent["image"]
    assert resolved["output"]["report"] == sent["pdf"]


async def test_langfuse_js5_media_upload(
    langfuse_js_v5: Path, ch: ClickHouse, project: NewKey, http: aiohttp.ClientSession
) -> None:
    node = Path(shutil.which("node") or "node")
    sent = await sdk_runner(node, "langfuse_js5_media.cjs", project, str(langfuse_js_v5))(uuid.uuid4().hex[:12])
    assert sent["errors"] == [], "the exporter logged failures"
    pid, obs_id = project.project_id, sent["observation_id"]
    stored = await eventually(
        lambda: rows(ch, f"SELECT input FROM observations FINAL WHERE project_id = '{pid}' AND id = '{obs_id}'"),
        lambda r: len(r) == 1,
        timeout_s=60,
    )
    url = orjson.loads(stored[0]["input"])["messages"][0]["content"][0]["image_url"]["url"]
    found = re.fullmatch(r"@@@langfuseMedia:type=image/png\|id=([\w-]+)\|source=base64_data_uri@@@", url)
    assert found, url
    media_url = f"{API}/api/public/media/{found.group(1)}"

    async def medium() -> tuple[int, dict]:
        async with http.get(media_url, headers=basic_auth(project)) as r:
            return r.status, await r.json()

    # The upload runs beside the export: it is there once the SDK has flushed, or soon after.
    _, doc = await eventually(medium, lambda r: r[0] == 200, timeout_s=30)
    async with http.get(doc["url"]) as r:
        body = await r.read()
    assert "data:image/png;base64," + base64.b64encode(body).decode() == sent["image"]
