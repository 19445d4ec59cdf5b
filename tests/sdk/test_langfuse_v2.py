"""The Langfuse Python SDK 2.x (batch ingestion API), unchanged, into ClickHouse."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from sinks.clickhouse.client import ClickHouse
from sinks.postgres.keys import NewKey
from tests.sdk.conftest import sdk_runner
from tests.sdk.expected import assert_agent_run_trace
from tests.support import eventually, rows

pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]

# The SDK converts a float model parameter to a string itself (its MapValue type).
OBS = (
    "id, type, name, trace_id, parent_observation_id, provided_model_name, input_tokens, output_tokens, "
    "total_tokens, total_cost, usage_details, cost_details, model_parameters, input, output, metadata, "
    "environment, start_time, end_time, completion_start_time"
)


def micros(value: Any) -> int | None:
    """A stored time as µs: UInt64 on ClickHouse 18.16, DateTime64(6) on current servers."""
    if value is None or isinstance(value, int):
        return value
    assert isinstance(value, datetime)
    return int(value.timestamp()) * 1_000_000 + value.microsecond


async def test_langfuse_v2_trace_generation_and_score(
    langfuse_v2_python: Path, ch: ClickHouse, project: NewKey
) -> None:
    run_id = uuid.uuid4().hex[:12]
    sent = await sdk_runner(langfuse_v2_python, "langfuse_v2.py", project)(run_id)
    assert sent["sdk_version"].startswith("2."), sent
    assert sent["auth_check"] is True
    assert sent["errors"] == [], "the SDK logged failures: the edge rejected something"
    pid = project.project_id

    found = await eventually(
        lambda: rows(ch, f"SELECT {OBS} FROM observations FINAL WHERE project_id = '{pid}' ORDER BY id"),
        lambda r: len(r) == 3,
        timeout_s=60,
    )
    by_id = {o["id"]: o for o in found}
    gen = by_id[sent["generation_id"]]
    assert gen["type"] == "GENERATION"
    assert gen["name"] == "llm"
    assert gen["trace_id"] == sent["trace_id"]
    assert gen["parent_observation_id"] == sent["span_id"]
    assert gen["provided_model_name"] == "gpt-4o"
    assert (gen["input_tokens"], gen["output_tokens"], gen["total_tokens"]) == (12, 3, 15)
    assert orjson.loads(gen["cost_details"]) == pytest.approx({"input": 0.0012, "output": 0.0009, "total": 0.0021})
    assert gen["total_cost"] == pytest.approx(0.0021)
    assert orjson.loads(gen["model_parameters"]) == {"temperature": "0.2", "max_tokens": 128}
    assert orjson.loads(gen["input"]) == [{"role": "user", "content": "what is 2+2?"}]
    assert orjson.loads(gen["output"]) == {"role": "assistant", "content": "4"}
    assert orjson.loads(gen["metadata"]) == {"attempt": 1}
    assert gen["environment"] == "sdk-test"
    # The create and the update (end) were folded into one row, microseconds intact.
    start = 1_795_773_600_123_456  # 2026-11-27T10:00:00.123456Z
    assert micros(gen["start_time"]) == start
    assert micros(gen["end_time"]) == start + 1_000_000
    assert micros(gen["completion_start_time"]) == start + 300_000

    span = by_id[sent["span_id"]]
    assert (span["type"], span["name"], span["parent_observation_id"]) == ("SPAN", "plan", "")
    assert orjson.loads(span["input"]) == {"step": 1}
    assert orjson.loads(span["output"]) == {"plan": "answer"}
    assert micros(span["end_time"]) == start + 2_000_000
    event = by_id[sent["event_id"]]
    assert (event["type"], event["name"], event["parent_observation_id"]) == ("EVENT", "tool-called", sent["span_id"])

    traces = await eventually(
        lambda: rows(
            ch,
            f"SELECT id, name, user_id, session_id, release, version, environment, tags, metadata, "
            f"input, output FROM traces FINAL WHERE project_id = '{pid}'",
        ),
        lambda r: len(r) == 1 and r[0]["output"] is not None,
        timeout_s=60,
    )
    assert_agent_run_trace(traces[0], sent["trace_id"], run_id, "v2")

    scores = await eventually(
        lambda: rows(
            ch, f"SELECT id, trace_id, name, value, data_type, comment FROM scores FINAL WHERE project_id = '{pid}'"
        ),
        lambda r: len(r) == 1,
        timeout_s=60,
    )
    assert scores[0] == {
        "id": sent["score_id"],
        "trace_id": sent["trace_id"],
        "name": "quality",
        "value": 0.9,
        "data_type": "NUMERIC",
        "comment": "good",
    }
