"""Comments through the current Langfuse Python SDK, unchanged: its API client comments on a
trace the SDK sent and reads the comment back by object and by id."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from sinks.postgres.keys import NewKey
from tests.sdk.conftest import sdk_runner

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]


async def test_the_current_python_sdk_comments_on_a_trace(langfuse_v5_python: Path, project: NewKey) -> None:
    got = await sdk_runner(langfuse_v5_python, "langfuse_v5_comments.py", project)(uuid.uuid4().hex[:12])
    assert got["sdk_version"].startswith("5."), got
    assert got["listed"] == [["TRACE", got["trace_id"], "needs a retry", "ada"]]
    assert got["total"] == 1
    assert got["one"] == {"id": got["created"], "content": "needs a retry", "project_id": project.project_id}
