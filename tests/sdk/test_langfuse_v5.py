"""The current Langfuse Python SDK (OTLP/HTTP spans, scores via /api/public/scores), unchanged,
into ClickHouse."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest

from sinks.clickhouse.client import ClickHouse
from sinks.postgres.keys import NewKey
from tests.sdk.conftest import sdk_runner
from tests.sdk.expected import assert_agent_run_trace
from tests.sdk.test_langfuse_v2 import micros
from tests.support import eventually, rows

pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]

OBS = (
    "id, type, name, trace_id, parent_observation_id, provided_model_name, input_tokens, output_tokens, "
    "total_tokens, total_cost, cost_details, model_parameters, input, output, metadata, environment, "
    "version, completion_start_time"
)


async def test_langfuse_v5_trace_generation_and_scores(
    langfuse_v5_python: Path, ch: ClickHouse, project: NewKey
) -> None:
    run_id = uuid.uuid4().hex[:12]
    sent = await sdk_runner(langfuse_v5_python, "langfuse_v5.py", project)(run_id)
    assert sent["sdk_version"].startswith("5."), sent
    assert sent["auth_check"] is True
    assert sent["errors"] == [], "the SDK or its exporter logged failures: the edge rejected something"
    pid, trace_id = project.project_id, sent["trace_id"]

    found = await eventually(
        lambda: rows(ch, f"SELECT {OBS} FROM observations FINAL WHERE project_id = '{pid}' ORDER BY id"),
        lambda r: len(r) == 3,
        timeout_s=60,
    )
    by_id = {o["id"]: o for o in found}
    gen = by_id[sent["generation_id"]]
    assert gen["type"] == "GENERATION"
    assert gen["name"] == "llm"
    assert gen["trace_id"] == trace_id
    assert gen["parent_observation_id"] == sent["root_id"]
    assert gen["provided_model_name"] == "gpt-4o"
    assert (gen["input_tokens"], gen["output_tokens"], gen["total_tokens"]) == (12, 3, 15)
    assert orjson.loads(gen["cost_details"]) == pytest.approx({"input": 0.0012, "output": 0.0009, "total": 0.0021})
    assert gen["total_cost"] == pytest.approx(0.0021)
    assert orjson.loads(gen["model_parameters"]) == {"temperature": 0.2, "max_tokens": 128}
    assert orjson.loads(gen["input"]) == [{"role": "user", "content": "what is 2+2?"}]
    assert orjson.loads(gen["output"]) == {"role": "assistant", "content": "4"}
    # 5.x JSON-encodes every metadata value (1 arrives as "1", "core" as '"core"').
    metadata = orjson.loads(gen["metadata"])
    assert metadata["attempt"] == 1  # sent as the number 1, read back as Langfuse reads it
    assert metadata["scope"]["name"] == "langfuse-sdk"
    assert (gen["environment"], gen["version"]) == ("sdk-test", "v7")
    assert micros(gen["completion_start_time"]) == 1_795_773_600_423_456  # 2026-11-27T10:00:00.423456Z

    root = by_id[sent["root_id"]]
    assert (root["type"], root["name"], root["parent_observation_id"]) == ("SPAN", "agent-run", "")
    tool = by_id[sent["tool_id"]]
    assert (tool["type"], tool["name"], tool["parent_observation_id"]) == ("TOOL", "calc", sent["root_id"])
    assert orjson.loads(tool["output"]) == 4  # update(output=4): the SDK sends "4", JSON of the number

    traces = await eventually(
        lambda: rows(
            ch,
            f"SELECT id, name, user_id, session_id, release, version, environment, tags, metadata, "
            f"input, output FROM traces FINAL WHERE project_id = '{pid}'",
        ),
        lambda r: len(r) == 1 and r[0]["output"] is not None and r[0]["user_id"] != "",
        timeout_s=60,
    )
    assert_agent_run_trace(traces[0], trace_id, run_id, "v5")

    scores = await eventually(
        lambda: rows(
            ch,
            f"SELECT trace_id, observation_id, name, value, string_value, data_type, comment "
            f"FROM scores FINAL WHERE project_id = '{pid}' ORDER BY name",
        ),
        lambda r: len(r) == 2,
        timeout_s=60,
    )
    assert scores == [
        {
            "trace_id": trace_id,
            "observation_id": "",
            "name": "quality",
            "value": 0.9,
            "string_value": "",
            "data_type": "NUMERIC",
            "comment": "good",
        },
        {
            "trace_id": trace_id,
            "observation_id": sent["root_id"],
            "name": "verdict",
            "value": 0.0,
            "string_value": "correct",
            "data_type": "CATEGORICAL",
            "comment": "",
        },
    ]
