"""The Langfuse Python SDKs 2.x and 3.x with their OpenAI and LangChain integrations, unchanged:
what they send is accepted whole and priced as Langfuse prices it (the usage keys each
integration names, OpenAI's usage object as it is)."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest

from sinks.clickhouse.client import ClickHouse
from sinks.postgres.keys import NewKey
from tests.sdk.conftest import sdk_runner
from tests.support import eventually, rows

pytestmark = [pytest.mark.stack, pytest.mark.timeout(900)]

# Named by the clients: the wrapped OpenAI client's calls, a manual generation, LangChain's model.
NAMES = ("plain", "streamed", "embedding", "claude", "ChatOpenAI")
GENERATION = (
    "SELECT name, type, trace_id, parent_observation_id, provided_model_name, usage_details, cost_details,"
    " usage_pricing_model_id, output FROM observations FINAL WHERE project_id = '{pid}'"
)
# gpt-4o-mini's prices for OpenAI's usage of fake_openai.py: 9 input, 16 cached, 3 output tokens.
OPENAI_COST = {"input": 1.35e-6, "output": 1.8e-6, "input_cached_tokens": 1.2e-6, "total": 4.35e-6}


def assert_openai_call(o: dict) -> None:
    """A call through `langfuse.openai`: OpenAI's usage object flattened, its cached part apart and
    priced at the cached rate."""
    assert (o["type"], o["provided_model_name"]) == ("GENERATION", "gpt-4o-mini-2024-07-18"), o
    assert o["usage_pricing_model_id"] == "at-openai-gpt-4o-mini"
    usage = orjson.loads(o["usage_details"])
    assert {k: usage[k] for k in ("input", "output", "input_cached_tokens", "total")} == {
        "input": 9, "output": 3, "input_cached_tokens": 16, "total": 28,
    }  # fmt: skip
    assert orjson.loads(o["cost_details"]) == pytest.approx(OPENAI_COST)


def assert_langchain_call(o: dict) -> None:
    """LangChain's handler names the cached part input_cache_read; Langfuse prices it as cached."""
    usage, cost = orjson.loads(o["usage_details"]), orjson.loads(o["cost_details"])
    assert usage["input"] == 9 and usage["input_cache_read"] == 16
    assert cost["input_cache_read"] == pytest.approx(1.2e-6) and cost["total"] == pytest.approx(4.35e-6)


async def test_langfuse_v3_openai_and_langchain_integrations(
    langfuse_v3_python: Path, ch: ClickHouse, project: NewKey
) -> None:
    run_id = uuid.uuid4().hex[:12]
    sent = await sdk_runner(langfuse_v3_python, "langfuse_v3_integrations.py", project)(run_id)
    assert sent["sdk_version"].startswith("3."), sent
    assert sent["errors"] == [], "the SDK or its exporter logged failures: the edge rejected something"
    pid, trace_id = project.project_id, sent["trace_id"]

    found = await eventually(
        lambda: rows(ch, GENERATION.format(pid=pid)),
        lambda r: {o["name"] for o in r} >= set(NAMES),
        timeout_s=60,
    )
    by_name = {o["name"]: o for o in found}
    assert {o["trace_id"] for o in found} == {trace_id}
    assert all(o["parent_observation_id"] for o in found if o["name"] != "agent-run")

    def usage_and_cost(name: str) -> tuple[dict[str, int], dict[str, float]]:
        o = by_name[name]
        return orjson.loads(o["usage_details"]), orjson.loads(o["cost_details"])

    for name in ("plain", "streamed"):
        assert_openai_call(by_name[name])
    assert orjson.loads(by_name["streamed"]["output"]) in ("Paris.", {"role": "assistant", "content": "Paris."})
    usage, cost = usage_and_cost("embedding")
    assert by_name["embedding"]["type"] == "EMBEDDING" and usage["input"] == 4 and cost["total"] == pytest.approx(8e-8)
    # Anthropic's usage keys as the user passed them, priced at Claude's cache-read rate.
    usage, cost = usage_and_cost("claude")
    assert usage == {"input": 100, "output": 50, "cache_read_input_tokens": 1000, "total": 1150}
    assert cost == pytest.approx({"input": 3e-4, "output": 7.5e-4, "cache_read_input_tokens": 3e-4, "total": 1.35e-3})
    assert_langchain_call(by_name["ChatOpenAI"])

    # LangChain's metadata keys set the trace's user, session and tags.
    traces = await eventually(
        lambda: rows(ch, f"SELECT id, name, user_id, session_id, tags FROM traces FINAL WHERE project_id = '{pid}'"),
        lambda r: len(r) == 1 and r[0]["session_id"] != "",
        timeout_s=60,
    )
    trace = traces[0]
    assert (trace["id"], trace["name"]) == (trace_id, "agent-run")
    assert (trace["user_id"], trace["session_id"]) == (f"user-{run_id}", f"session-{run_id}")
    assert list(trace["tags"]) == ["lc"]


async def test_langfuse_v2_openai_and_langchain_integrations(
    langfuse_v2_integrations_python: Path, ch: ClickHouse, project: NewKey
) -> None:
    run_id = uuid.uuid4().hex[:12]
    sent = await sdk_runner(langfuse_v2_integrations_python, "langfuse_v2_integrations.py", project)(run_id)
    assert sent["sdk_version"].startswith("2."), sent
    # 2.x's OpenAI integration sends OpenAI's usage object, details nested, as usageDetails: once
    # refused (a 207 with a 400 the SDK logged), the whole generation's update lost.
    assert sent["errors"] == [], "the SDK logged failures: the edge rejected something"
    pid, trace_id, chain_trace_id = project.project_id, sent["trace_id"], sent["chain_trace_id"]

    found = await eventually(
        lambda: rows(ch, GENERATION.format(pid=pid)),
        lambda r: sum(o["name"] == "ChatOpenAI" for o in r) == 2 and {"plain", "streamed"} <= {o["name"] for o in r},
        timeout_s=60,
    )
    by_name = {(o["trace_id"], o["name"]): o for o in found}
    for name in ("plain", "streamed"):
        assert_openai_call(by_name[(trace_id, name)])
    for trace in (trace_id, chain_trace_id):
        assert_langchain_call(by_name[(trace, "ChatOpenAI")])

    # (The patched OpenAI module also traces LangChain's own call to it: outside the decorator, a
    # trace of its own, as with Langfuse; not asserted.)
    query = (
        "SELECT id, name, user_id, session_id, tags FROM traces FINAL"
        f" WHERE project_id = '{pid}' AND id IN ('{trace_id}', '{chain_trace_id}')"
    )
    traces = await eventually(
        lambda: rows(ch, query), lambda r: len(r) == 2 and all(t["session_id"] for t in r), timeout_s=60
    )
    by_id = {t["id"]: t for t in traces}
    assert (by_id[trace_id]["name"], list(by_id[trace_id]["tags"])) == ("agent-run", ["v2"])
    assert {(t["user_id"], t["session_id"]) for t in traces} == {(f"user-{run_id}", f"session-{run_id}")}
