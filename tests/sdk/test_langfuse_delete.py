"""The current Langfuse Python SDK deletes traces (api.trace.delete, delete_multiple) and scores
(api.scores.delete) unchanged."""

from __future__ import annotations

import uuid
from pathlib import Path

import aiohttp
import pytest

from sinks.postgres.keys import NewKey
from tests.sdk.conftest import sdk_runner
from tests.stack.test_trace_deletion import batch, gone, ingest, visible, whole
from tests.support import eventually

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]


async def test_the_langfuse_sdk_deletes_traces_and_scores(
    langfuse_v5_python: Path, http: aiohttp.ClientSession, project: NewKey
) -> None:
    traces = [f"t-{uuid.uuid4()}" for _ in range(3)]
    scored = f"t-{uuid.uuid4()}"  # keeps its trace and generation, loses its score
    for trace in (*traces, scored):
        await ingest(http, project, batch(trace, session="s", user="u", tokens=1))
    for trace in (*traces, scored):
        await eventually(lambda t=trace: visible(http, project, t), whole, timeout_s=30)
    run = sdk_runner(langfuse_v5_python, "langfuse_v5_delete.py", project, f"{scored}-score", *traces)
    answered = await run(uuid.uuid4().hex)
    assert answered["sdk_version"].startswith("5."), answered
    assert answered["one"] == "Trace deleted successfully"
    assert answered["many"] == "Traces deleted successfully"
    assert answered["score"] is None
    for trace in traces:
        # Within seconds; on a loaded shared machine the deletion batch alone took ~6 s once.
        await eventually(lambda t=trace: visible(http, project, t), gone, timeout_s=20)
    after = await eventually(lambda: visible(http, project, scored), lambda v: not v["scores"], timeout_s=20)
    assert after["trace"] and after["observations"] == [f"{scored}-gen"]
