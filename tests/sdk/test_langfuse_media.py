"""Media through the Langfuse Python SDK 3.x, unchanged: an inline image and a `LangfuseMedia`
file are uploaded by the SDK, referenced from the span, and resolved back byte for byte."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from sinks.postgres.keys import NewKey
from tests.sdk.conftest import sdk_runner

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
