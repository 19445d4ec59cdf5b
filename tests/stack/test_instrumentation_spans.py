"""Spans recorded from the Vercel AI SDK, OpenLLMetry, MLflow and Google ADK (tests/fixtures/otlp), posted to
/v1/traces as the exporters send them and read back from ClickHouse, field by field; and every
recorded export read back whole through the public API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from sinks.clickhouse.client import ClickHouse
from sinks.postgres.keys import NewKey
from tests.support import API, basic_auth, eventually, rows

pytestmark = pytest.mark.stack

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "otlp"
TIMEOUT_S = 60.0
GENERATE_TRACE, STREAM_TRACE = "ac6df801669f66d25c14db2d433a9af3", "35bdf3421306152f9111b554e93fd829"
OPENLLMETRY_TRACE = "0a39cb74285ccf0a53a0fac8322dae2d"
OBSERVATION_COLUMNS = (
    "id, type, name, trace_id, parent_observation_id, provided_model_name, model_parameters, input, output, "
    "usage_details, input_tokens, output_tokens, total_tokens, completion_start_time, level, metadata"
)


async def export(http: aiohttp.ClientSession, key: NewKey, fixture: str) -> None:
    body = (FIXTURES / fixture).read_bytes()
    headers = {**basic_auth(key), "Content-Type": "application/json"}
    async with http.post(f"{API}/v1/traces", data=body, headers=headers) as r:
        assert r.status == 200, await r.text()
        assert await r.json() == {}  # no partial success: every span mapped


async def observations(ch: ClickHouse, key: NewKey, count: int) -> dict[str, dict[str, Any]]:
    found = await eventually(
        lambda: rows(
            ch,
            f"SELECT {OBSERVATION_COLUMNS} FROM observations FINAL WHERE project_id = '{key.project_id}'",
        ),
        lambda r: len(r) == count,
        timeout_s=TIMEOUT_S,
    )
    return {o["id"]: o for o in found}


async def one_trace(ch: ClickHouse, key: NewKey) -> dict[str, Any]:
    [trace] = await eventually(
        lambda: rows(
            ch,
            "SELECT id, name, user_id, session_id, tags, input, output FROM traces FINAL "
            f"WHERE project_id = '{key.project_id}'",
        ),
        lambda r: len(r) == 1 and r[0]["name"] != "",
        timeout_s=TIMEOUT_S,
    )
    return trace


def loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


async def test_vercel_ai_sdk_5_stream_text(ch: ClickHouse, http: aiohttp.ClientSession, project: NewKey) -> None:
    await export(http, project, "vercel_ai_v5.json")
    by_id = await observations(ch, project, 6)

    stream = by_id["fad70d053adc9c52"]  # ai.streamText.doStream
    assert (stream["type"], stream["name"]) == ("GENERATION", "answer-stream:ai.streamText.doStream")
    assert (stream["trace_id"], stream["parent_observation_id"]) == (STREAM_TRACE, "259e7683b16af7a4")
    assert stream["provided_model_name"] == "o4-mini-2025-04-16"
    assert loads(stream["model_parameters"]) == {"maxRetries": 2}
    assert loads(stream["input"]) == [{"role": "user", "content": [{"type": "text", "text": "The answer?"}]}]
    assert loads(stream["output"]) == "Forty-two."
    assert loads(stream["usage_details"]) == {
        "input": 20,  # 120 less the 100 cached, priced apart
        "output": 45,
        "total": 165,
        "input_cached_tokens": 100,
        "output_reasoning_tokens": 30,
    }
    assert (stream["input_tokens"], stream["output_tokens"], stream["total_tokens"]) == (20, 45, 165)
    assert stream["completion_start_time"] is not None
    assert stream["level"] == "DEFAULT"
    assert loads(stream["metadata"])["ai.telemetry.functionId"] == "answer-stream"

    wrapper = by_id["259e7683b16af7a4"]  # ai.streamText: sums up its step, counted once below it
    assert (wrapper["type"], wrapper["provided_model_name"], wrapper["total_tokens"]) == ("SPAN", "", 0)
    assert loads(wrapper["metadata"])["aggregate"]["usageDetails"]["total"] == 165

    step = by_id["d470119688129a3e"]  # ai.generateText.doGenerate: the step that called the tool
    assert (step["type"], step["provided_model_name"]) == ("GENERATION", "claude-sonnet-4")
    assert loads(step["output"]) == [{"toolCallId": "call-1", "toolName": "weather", "input": '{"city":"Oslo"}'}]
    assert (step["input_tokens"], step["output_tokens"], step["total_tokens"]) == (50, 20, 70)
    assert loads(step["metadata"])["plan"] == "pro"
    tool = by_id["ff1e75d1f1fff775"]
    assert (tool["type"], loads(tool["input"]), loads(tool["output"])) == (
        "TOOL",
        {"city": "Oslo"},
        {"city": "Oslo", "sky": "snow"},
    )

    traces = await eventually(
        lambda: rows(
            ch,
            "SELECT id, name, user_id, session_id, tags, input, output FROM traces FINAL "
            f"WHERE project_id = '{project.project_id}' ORDER BY name",
        ),
        lambda r: len(r) == 2 and all(t["name"] for t in r),
        timeout_s=TIMEOUT_S,
    )
    stream_trace, generate = traces  # named after their functions (ai.telemetry.functionId)
    assert (generate["id"], stream_trace["id"]) == (GENERATE_TRACE, STREAM_TRACE)
    assert (generate["name"], generate["user_id"], generate["session_id"], list(generate["tags"])) == (
        "weather-agent-v5:ai.generateText",
        "user-v5",
        "session-v5",
        ["vercel", "v5"],
    )
    assert loads(generate["input"]) == {"system": "You answer weather questions.", "prompt": "Weather in Oslo?"}
    assert loads(generate["output"]) == "Snow in Oslo."
    assert (stream_trace["name"], stream_trace["user_id"], stream_trace["session_id"]) == (
        "answer-stream:ai.streamText",
        "user-v5",
        "",
    )


async def test_openllmetry_workflow(ch: ClickHouse, http: aiohttp.ClientSession, project: NewKey) -> None:
    await export(http, project, "openllmetry.json")
    by_id = await observations(ch, project, 5)

    chat = by_id["63426f3034eb04a5"]  # openai.chat
    assert (chat["type"], chat["name"], chat["parent_observation_id"]) == (
        "GENERATION",
        "openai.chat",
        "6ad451c25dde8a69",
    )
    assert chat["provided_model_name"] == "gpt-4o-2024-08-06"
    assert loads(chat["model_parameters"]) == {"max_tokens": 50, "temperature": 0.7}
    assert loads(chat["input"]) == [
        {"role": "system", "parts": [{"content": "You write haiku.", "type": "text"}]},
        {"role": "user", "parts": [{"content": "A haiku about autumn", "type": "text"}]},
    ]
    assert loads(chat["output"]) == [
        {"role": "assistant", "parts": [{"content": "A haiku.", "type": "text"}], "finish_reason": "stop"}
    ]
    assert loads(chat["usage_details"]) == {
        "input": 9,  # 21 less the 12 cached
        "output": 7,
        "total": 28,
        "input_cached_tokens": 12,
        "output_reasoning_tokens": 2,
    }
    assert (chat["input_tokens"], chat["output_tokens"], chat["total_tokens"]) == (9, 7, 28)
    metadata = loads(chat["metadata"])
    assert metadata["tenant"] == "acme" and metadata["traceloop.workflow.name"] == "haiku_workflow"
    assert "traceloop.association.properties.session_id" not in metadata

    kinds = {by_id[i]["name"]: (by_id[i]["type"], loads(by_id[i]["input"]), loads(by_id[i]["output"])) for i in by_id}
    assert kinds["haiku_workflow.workflow"] == ("CHAIN", {"args": ["autumn"], "kwargs": {}}, "A haiku.")
    assert kinds["poet.agent"] == ("AGENT", {"args": ["autumn"], "kwargs": {}}, "A haiku.")
    assert kinds["write_haiku.task"] == ("SPAN", {"args": ["autumn"], "kwargs": {}}, "A haiku.")
    assert kinds["count_syllables"] == ("TOOL", {"args": ["A haiku."], "kwargs": {}}, 17)

    trace = await one_trace(ch, project)
    assert trace["id"] == chat["trace_id"] == OPENLLMETRY_TRACE
    assert (trace["name"], trace["user_id"], trace["session_id"], list(trace["tags"])) == (
        "haiku_workflow.workflow",
        "user-ol",
        "session-ol",
        [],
    )
    assert loads(trace["input"]) == {"args": ["autumn"], "kwargs": {}}
    assert loads(trace["output"]) == "A haiku."


async def test_openinference_embedding(ch: ClickHouse, http: aiohttp.ClientSession, project: NewKey) -> None:
    await export(http, project, "openinference_openai.json")
    by_id = await observations(ch, project, 2)
    embed = by_id["e0c0f79360ed1817"]  # CreateEmbeddings
    assert (embed["type"], embed["name"]) == ("EMBEDDING", "CreateEmbeddings")
    assert embed["provided_model_name"] == "text-embedding-3-small"  # embedding.model_name
    assert loads(embed["input"]) == [{"text": "capital of France"}, {"text": "capital of Peru"}]
    assert loads(embed["usage_details"]) == {"input": 9, "total": 9}
    assert (embed["input_tokens"], embed["output_tokens"], embed["total_tokens"]) == (9, 0, 9)
    assert loads(embed["model_parameters"]) == {"model": "text-embedding-3-small", "encoding_format": "base64"}
    assert loads(embed["metadata"])["embedding.embeddings.1.embedding.vector"] == [0.25, -0.5, 0.125]


async def test_mlflow_autolog_span_is_stored_priced(
    ch: ClickHouse, http: aiohttp.ClientSession, project: NewKey
) -> None:
    await export(http, project, "mlflow.json")
    by_id = await observations(ch, project, 3)
    chat = by_id["5e190ae89bceb920"]
    assert (chat["type"], chat["provided_model_name"]) == ("GENERATION", "gpt-4o-mini-2024-07-18")
    assert loads(chat["input"])["messages"][0] == {"role": "user", "content": "Weather in Lima?"}
    assert (chat["input_tokens"], chat["output_tokens"], chat["total_tokens"]) == (21, 6, 27)
    [(cost, total)] = await ch.fetch(
        "SELECT cost_details, total_cost FROM observations FINAL WHERE project_id = %(p)s AND id = %(id)s",
        {"p": project.project_id, "id": chat["id"]},
    )
    # gpt-4o-mini's shipped prices: $0.15 and $0.60 per million input and output tokens
    assert total == pytest.approx(21 * 0.15e-6 + 6 * 0.6e-6)
    assert loads(cost)["input"] == pytest.approx(21 * 0.15e-6)
    assert (by_id["581be8c52fca14e9"]["type"], by_id["7708bdacce4b81a3"]["type"]) == ("TOOL", "AGENT")


async def test_google_adk_legacy_spans(ch: ClickHouse, http: aiohttp.ClientSession, project: NewKey) -> None:
    await export(http, project, "google_adk_legacy.json")
    by_id = await observations(ch, project, 7)
    call = by_id["b6f27765b70b1ed0"]
    assert (call["type"], call["name"]) == ("SPAN", "call_llm")  # its generate_content child is the call
    assert by_id["175120b2bfe57c23"]["type"] == "GENERATION"
    assert loads(call["input"])["contents"] == [{"parts": [{"text": "Weather in Lima?"}], "role": "user"}]
    assert loads(call["output"])["content"]["role"] == "model"
    tool = by_id["faac73da51cfb559"]
    assert (tool["type"], loads(tool["input"]), loads(tool["output"])) == (
        "TOOL",
        {"city": "Lima"},
        {"city": "Lima", "weather": "cloudy"},
    )


def _recorded(fixture: Path) -> tuple[set[str], set[str]]:
    """The span and trace ids of a recorded export."""
    doc = orjson.loads(fixture.read_bytes())
    spans = [s for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    return {s["spanId"] for s in spans}, {s["traceId"] for s in spans}


EXPORTS = sorted(p.name for p in FIXTURES.glob("*.json") if not p.name.endswith(".logs.json"))


@pytest.mark.parametrize("fixture", EXPORTS, ids=[name.removesuffix(".json") for name in EXPORTS])
async def test_every_recorded_export_is_read_back_whole(
    ch: ClickHouse, http: aiohttp.ClientSession, project: NewKey, fixture: str
) -> None:
    """Each instrumentation's export (and its content log records, where it sends them) through
    the edge: every span an observation, every trace readable with all of them through the
    public API, as users read them."""
    logs = FIXTURES / fixture.replace(".json", ".logs.json")
    if logs.exists():
        headers = {**basic_auth(project), "Content-Type": "application/json"}
        async with http.post(f"{API}/v1/logs", data=logs.read_bytes(), headers=headers) as r:
            assert r.status == 200, await r.text()
            partial = (await r.json()).get("partialSuccess", {})
            # Semantic Kernel logs other records beside the messages: those alone are left out.
            assert "errorMessage" not in partial or partial["errorMessage"].endswith(
                "only those are kept, on their spans"
            )
    await export(http, project, fixture)
    span_ids, trace_ids = _recorded(FIXTURES / fixture)
    stored = await observations(ch, project, len(span_ids))
    assert set(stored) == span_ids
    auth = basic_auth(project)
    for trace_id in trace_ids:

        async def read(trace_id: str = trace_id) -> dict[str, Any] | None:
            async with http.get(f"{API}/api/public/traces/{trace_id}", headers=auth) as r:
                return await r.json() if r.status == 200 else None

        trace = await eventually(read, lambda t: t is not None, timeout_s=TIMEOUT_S)
        assert trace["id"] == trace_id
        assert {o["id"] for o in trace["observations"]} == {i for i, o in stored.items() if o["trace_id"] == trace_id}
