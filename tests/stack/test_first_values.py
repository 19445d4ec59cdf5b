"""A trace's and a score's timestamp and an observation's start time keep their first value, as
Langfuse keeps them once written, whatever later events of the same entity send.

langfuse-langchain (JS 3.x) sends a second trace-create at the end of a run, carrying only the
output and the time it was sent as `timestamp`: read back as the trace's time, the trace began
after its own observations. Checked in one batch and across batches (the second batch merges
into the stored row), through the read API.
"""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest

from sinks.postgres.keys import NewKey
from tests.stack.test_read_api import event, get_trace, ingest
from tests.support import API, basic_auth, eventually

pytestmark = pytest.mark.stack

# As the read API writes times back.
T0, T4, T5 = "2026-11-20T10:00:00.000000Z", "2026-11-20T10:00:04.000000Z", "2026-11-20T10:00:05.000000Z"


def run(trace: str, span: str, score: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The events at a run's start, and those an SDK sends at its end."""
    start = [
        event("trace-create", T0, {"id": trace, "timestamp": T0, "name": "chain"}),
        event("span-create", T0, {"id": span, "traceId": trace, "startTime": T0, "name": "step"}),
        event(
            "score-create",
            T0,
            {"id": score, "traceId": trace, "name": "s", "value": 1, "timestamp": T0, "comment": "first"},
        ),
    ]
    end = [
        event("trace-create", T5, {"id": trace, "timestamp": T5, "output": {"answer": 4}}),
        event("span-update", T5, {"id": span, "traceId": trace, "startTime": T4, "endTime": T5}),
        event("score-create", T5, {"id": score, "traceId": trace, "name": "s", "value": 2, "timestamp": T5}),
    ]
    return start, end


@pytest.mark.parametrize("batches", ["one", "two", "end first"])
async def test_later_events_do_not_move_the_first_times(
    http: aiohttp.ClientSession, project: NewKey, batches: str
) -> None:
    trace, span, score = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    start, end = run(trace, span, score)

    async def stored() -> dict[str, Any]:
        status, doc = await get_trace(http, project, trace)
        return doc if status == 200 else {}

    def complete(doc: dict[str, Any]) -> bool:
        # Every event folded in: each entity has a field only its start and one only its end sets.
        [obs] = doc.get("observations") or [{}]
        [score] = doc.get("scores") or [{}]
        return (
            doc.get("name") is not None
            and doc.get("output") is not None
            and (obs.get("name"), score.get("comment")) == ("step", "first")
            and obs.get("endTime") is not None
            and score.get("value") == 2
        )

    if batches == "one":
        await ingest(http, project, *start, *end)
    else:
        first, second = (start, end) if batches == "two" else (end, start)
        await ingest(http, project, *first)
        # The first batch stored before the second is folded into its rows.
        await eventually(stored, lambda doc: bool(doc) and doc.get("observations"), timeout_s=30)
        await ingest(http, project, *second)
    doc = await eventually(stored, complete, timeout_s=30)

    assert doc["timestamp"] == T0 and doc["name"] == "chain" and doc["output"] == {"answer": 4}
    [obs] = doc["observations"]
    assert (obs["startTime"], obs["endTime"]) == (T0, T5)
    [got] = doc["scores"]
    assert (got["timestamp"], got["value"]) == (T0, 2)

    # The list reads the same row.
    async with http.get(f"{API}/api/public/traces", params={"limit": "10"}, headers=basic_auth(project)) as r:
        assert [t["timestamp"] for t in (await r.json())["data"]] == [T0]
