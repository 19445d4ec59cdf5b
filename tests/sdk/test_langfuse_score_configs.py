"""Score configs and annotation queues through the current Langfuse Python SDK, unchanged: its
API client creates, lists, reads and archives configs, and the scores it creates naming one are
kept when they hold to it (with the config's number for a category) and refused when they do
not; it runs a queue's items through review and assigns a user."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sinks.postgres.keys import NewKey
from tests.sdk.conftest import sdk_runner
from tests.support import API, basic_auth, eventually

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]


async def test_the_current_python_sdk_uses_score_configs(
    langfuse_v5_python: Path, project: NewKey, http: aiohttp.ClientSession
) -> None:
    got = await sdk_runner(langfuse_v5_python, "langfuse_v5_score_configs.py", project)(uuid.uuid4().hex[:12])
    assert got["sdk_version"].startswith("5."), got
    assert got["listed"] == [["accuracy", "NUMERIC", 0.0, 1.0], ["tone", "CATEGORICAL", None, None]]
    assert got["total"] == 2
    assert got["tone"] == {"categories": [["rude", 0.0], ["polite", 1.0]], "description": "how it speaks"}
    assert got["archived"] is True

    async def scores() -> list[dict[str, Any]]:
        url = f"{API}/api/public/v2/scores?traceId={got['trace_id']}"
        async with http.get(url, headers=basic_auth(project)) as r:
            assert r.status == 200
            return (await r.json())["data"]  # type: ignore[no-any-return]

    found = await eventually(scores, lambda s: len(s) >= 2, timeout_s=30)
    by_name = {s["name"]: s for s in found}
    assert len(found) == 2, found  # the third, outside the config's range, was refused
    accuracy, tone = by_name["accuracy"], by_name["tone"]
    assert (accuracy["value"], accuracy["dataType"], accuracy["configId"]) == (
        0.9,
        "NUMERIC",
        got["configs"]["accuracy"],
    )
    assert (tone["value"], tone["stringValue"], tone["dataType"]) == (1.0, "polite", "CATEGORICAL")
    assert tone["configId"] == got["configs"]["tone"]


async def test_the_current_python_sdk_runs_an_annotation_queue(langfuse_v5_python: Path, project: NewKey) -> None:
    run = uuid.uuid4().hex[:12]
    got = await sdk_runner(langfuse_v5_python, "langfuse_v5_annotation_queues.py", project)(run)
    assert got["sdk_version"].startswith("5."), got
    assert got["queue"] == {"name": f"{run}-review", "configs": True, "description": "daily"}
    assert got["listed"] == [f"{run}-review"]
    assert got["done"] == {"status": "COMPLETED", "completed": True}
    assert got["pending"] == [["SESSION", "session-1"]]
    assert (got["removed"], got["assigned"], got["unassigned"]) == (True, "ada", True)
