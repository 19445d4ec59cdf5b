"""OTLP spans to Langfuse-style ingestion events: each convention, precedence, validation."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from ingest.otlp import map_request as _map_request
from ingest.otlp import parse_request
from ingest.otlp.conventions import EXACT, INDEXED, PREFIXED
from ingest.otlp.mapping import MappingResult, Slices
from ingest.otlp.wire import Request, WireError, parse
from pipeline.envelope import Envelope
from pipeline.fold import TRACE as TRACES
from pipeline.fold import EntityState, apply, usage_and_cost
from pipeline.prices import ModelPrice, priced

TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
ROOT = bytes.fromhex("eee19b7ec3c1b174")
CHILD = bytes.fromhex("eee19b7ec3c1b175")
T0 = 1_700_000_000_123_456_789  # 2023-11-14T22:13:20.123456789Z

OBSERVATION_EVENT_TYPES = {
    f"{t}-create"
    for t in (
        "span",
        "generation",
        "event",
        "agent",
        "tool",
        "chain",
        "retriever",
        "embedding",
        "guardrail",
        "evaluator",
    )
}


def map_request(req: ExportTraceServiceRequest | Request) -> MappingResult:
    """The mapping of `req` read as the edge reads protobuf (ingest/otlp/wire.py), held to the
    mapping of upb's message (the OTLP/JSON path) in every test here."""
    direct = _map_request(req)
    if not isinstance(req, ExportTraceServiceRequest):
        return direct  # read by wire already
    data = req.SerializeToString()
    try:
        ExportTraceServiceRequest().ParseFromString(data)
    except DecodeError:  # deeper than upb reads (built from OTLP/JSON): refused alike
        with pytest.raises(WireError):
            parse(data)
        return direct
    via_wire = _map_request(parse(data))
    assert repr(via_wire.events) == repr(direct.events)
    assert (via_wire.rejected, via_wire.errors) == (direct.rejected, direct.errors)
    return via_wire


def value(v: Any) -> AnyValue:
    if isinstance(v, AnyValue):
        return v
    if v is None:
        return AnyValue()
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, bytes):
        return AnyValue(bytes_value=v)
    if isinstance(v, (list, tuple)):
        return AnyValue(array_value=ArrayValue(values=[value(x) for x in v]))
    if isinstance(v, dict):
        return AnyValue(kvlist_value=KeyValueList(values=[kv(k, x) for k, x in v.items()]))
    return AnyValue(string_value=str(v))


def kv(key: str, v: Any) -> KeyValue:
    return KeyValue(key=key, value=value(v))


def span(
    attrs: dict[str, Any] | None = None,
    *,
    name: str = "op",
    trace: bytes = TRACE,
    span_id: bytes = CHILD,
    parent: bytes = ROOT,
    start: int = T0,
    end: int = T0 + 10**9,
    status: Status | None = None,
    events: list[Span.Event] | None = None,
) -> Span:
    s = Span(
        trace_id=trace,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=[kv(k, v) for k, v in (attrs or {}).items()],
        events=events or [],
    )
    if status is not None:
        s.status.CopyFrom(status)
    return s


def request(
    *spans: Span, resource: dict[str, Any] | None = None, scope: tuple[str, str] = ("my.scope", "1.2")
) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(kv(k, v) for k, v in (resource or {}).items())
    ss = rs.scope_spans.add()
    ss.scope.name, ss.scope.version = scope
    ss.spans.extend(spans)
    return req


def observations(result: MappingResult) -> list[dict[str, Any]]:
    return [e for e in result.events if e["type"] != "trace-create"]


def traces(result: MappingResult) -> list[dict[str, Any]]:
    return [e for e in result.events if e["type"] == "trace-create"]


def one(attrs: dict[str, Any] | None = None, *, resource: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    """The observation event of a single child span with these attributes."""
    result = map_request(request(span(attrs, **kw), resource=resource))
    assert result.rejected == 0, result.errors
    [event] = observations(result)
    return event


# --- event shape -------------------------------------------------------------------------


def test_root_span_gives_a_trace_and_an_observation_with_deterministic_ids() -> None:
    req = request(
        span({"http.method": "GET"}, name="handle", span_id=ROOT, parent=b""), resource={"service.name": "svc"}
    )
    result = map_request(req)
    assert [e["type"] for e in result.events] == ["trace-create", "span-create"]
    trace, obs = result.events
    assert trace == {
        "id": f"{TRACE.hex()}-{ROOT.hex()}-trace",
        "type": "trace-create",
        "timestamp": T0 // 1000,  # the span's start: see test_a_child_s_trace_update_wins
        "body": {
            "id": TRACE.hex(),
            "timestamp": T0 // 1000,
            "name": "handle",
            # the root's metadata describes its trace too, as in Langfuse
            "metadata": {
                "http.method": "GET",
                "resourceAttributes": {"service.name": "svc"},
                "scope": {"name": "my.scope", "version": "1.2"},
            },
        },
    }
    assert obs == {
        "id": f"{ROOT.hex()}-obs",
        "type": "span-create",
        "timestamp": (T0 + 10**9) // 1000,
        "body": {
            "id": ROOT.hex(),
            "traceId": TRACE.hex(),
            "name": "handle",
            "startTime": T0 // 1000,
            "endTime": (T0 + 10**9) // 1000,
            "metadata": {
                "http.method": "GET",
                "resourceAttributes": {"service.name": "svc"},
                "scope": {"name": "my.scope", "version": "1.2"},
            },
        },
    }
    assert map_request(req).events == result.events  # a retried export maps identically


def test_child_span_without_trace_attributes_emits_no_trace_event() -> None:
    result = map_request(request(span()))
    assert [e["type"] for e in result.events] == ["span-create"]
    assert result.events[0]["body"]["parentObservationId"] == ROOT.hex()


def test_all_zero_parent_id_means_root() -> None:
    result = map_request(request(span(parent=bytes(8))))
    assert [e["type"] for e in result.events] == ["trace-create", "span-create"]
    assert "parentObservationId" not in result.events[1]["body"]


def test_missing_time_edge_takes_the_other() -> None:
    body = one(start=0, end=T0)["body"]
    assert body["startTime"] == body["endTime"] == T0 // 1000


def test_events_serialize_with_orjson() -> None:
    result = map_request(request(span({"b": b"\x01\xff", "nested": {"l": [1, 2.5, None, True]}})))
    assert orjson.loads(orjson.dumps(result.events))[0]["body"]["metadata"]["b"] == "01ff"


def test_events_pass_the_batch_event_validator() -> None:
    events = pytest.importorskip("pipeline.events")
    req = request(
        span(
            {
                "langfuse.trace.tags": ["a"],
                "langfuse.trace.public": True,
                "user.id": "u",
                "langfuse.observation.prompt.version": 3,
                "gen_ai.request.model": "m",
                "gen_ai.usage.input_tokens": 3,
                "langfuse.observation.cost_details": '{"total": 1}',
                "langfuse.observation.completion_start_time": '"2024-01-01T00:00:00.5Z"',
            },
            span_id=ROOT,
            parent=b"",
        ),
        span({"openinference.span.kind": "TOOL"}),
    )
    for event in map_request(req).events:
        events.normalize(event)


# --- OpenTelemetry GenAI semantic conventions ----------------------------------------------


def test_genai_chat_span_is_a_generation() -> None:
    event = one(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.request.temperature": 0.2,
            "gen_ai.request.max_tokens": 512,
            "gen_ai.request.top_p": 0.9,
            "gen_ai.request.stop_sequences": ["\n"],
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 20,
            "gen_ai.usage.cache_read.input_tokens": 60,
            "gen_ai.usage.cache_creation.input_tokens": 5,
            "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]',
            "gen_ai.output.messages": '[{"role": "assistant", "parts": []}]',
        }
    )
    body = event["body"]
    assert event["type"] == "generation-create"
    assert body["model"] == "gpt-4o-2024-08-06"  # the response model is what actually ran
    assert body["modelParameters"] == {"temperature": 0.2, "max_tokens": 512, "top_p": 0.9, "stop_sequences": ["\n"]}
    assert body["usageDetails"] == {
        "input": 35,  # the cached 60 and the 5 written to the cache are priced apart
        "output": 20,
        "total": 120,
        "input_cached_tokens": 60,
        "input_cache_creation": 5,
    }
    assert body["input"] == [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
    assert body["output"] == [{"role": "assistant", "parts": []}]
    assert body["metadata"]["gen_ai.provider.name"] == "openai"
    assert "gen_ai.request.model" not in body["metadata"]


def test_genai_legacy_names_and_prompt_completion_json() -> None:
    body = one(
        {
            "gen_ai.system": "anthropic",
            "gen_ai.request.model": "claude",
            "gen_ai.usage.prompt_tokens": 7,
            "gen_ai.usage.completion_tokens": "3",
            "gen_ai.usage.total_tokens": 11,
            "gen_ai.prompt": '{"q": 1}',
            "gen_ai.completion": "plain",
        }
    )["body"]
    assert body["model"] == "claude"
    assert body["usageDetails"] == {"input": 7, "output": 3, "total": 11}
    assert body["input"] == {"q": 1} and body["output"] == "plain"
    assert body["metadata"]["gen_ai.system"] == "anthropic"


def test_genai_indexed_prompt_attributes_become_message_lists() -> None:
    body = one(
        {
            "gen_ai.prompt.1.role": "user",
            "gen_ai.prompt.1.content": "second",
            "gen_ai.prompt.0.role": "system",
            "gen_ai.prompt.0.content": "first",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "ok",
            "gen_ai.prompt.notanindex": "kept",
        }
    )["body"]
    assert body["input"] == [{"role": "system", "content": "first"}, {"role": "user", "content": "second"}]
    assert body["output"] == [{"role": "assistant", "content": "ok"}]
    assert body["metadata"]["gen_ai.prompt.notanindex"] == "kept"


def test_indexed_items_nest_their_dotted_keys() -> None:
    body = one(
        {
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.tool_calls.1.name": "b",
            "gen_ai.completion.0.tool_calls.0.name": "a",
            "gen_ai.completion.0.tool_calls.0.arguments": "{}",
            "gen_ai.completion.0.x": 1,
            "gen_ai.completion.0.x.y": 2,  # would overwrite x: stays flat
        }
    )["body"]
    assert body["output"] == [
        {"role": "assistant", "tool_calls": [{"name": "a", "arguments": "{}"}, {"name": "b"}], "x": 1, "x.y": 2}
    ]


@pytest.mark.parametrize(
    ("operation", "event_type"),
    [
        ("chat", "generation-create"),
        ("text_completion", "generation-create"),
        ("generate_content", "generation-create"),
        ("generate", "generation-create"),
        ("completion", "generation-create"),
        ("embeddings", "embedding-create"),
        ("execute_tool", "tool-create"),
        ("invoke_agent", "agent-create"),
        ("create_agent", "agent-create"),
        ("something_new", "span-create"),
    ],
)
def test_genai_operation_name_sets_the_type(operation: str, event_type: str) -> None:
    assert one({"gen_ai.operation.name": operation})["type"] == event_type


def test_genai_tool_span() -> None:
    event = one(
        {"gen_ai.tool.name": "search", "gen_ai.tool.call.arguments": '{"q": "x"}', "gen_ai.tool.call.result": "found"}
    )
    assert event["type"] == "tool-create"
    assert event["body"]["input"] == {"q": "x"} and event["body"]["output"] == "found"
    assert event["body"]["metadata"]["gen_ai.tool.name"] == "search"


def test_a_tool_call_id_alone_makes_a_tool() -> None:
    # Pydantic AI's tool spans name no operation; Langfuse types them by the call id too.
    event = one({"gen_ai.tool.call.id": "call-1", "tool_arguments": '{"q": "x"}'})
    assert event["type"] == "tool-create"
    assert event["body"]["input"] == {"q": "x"}
    assert event["body"]["metadata"]["gen_ai.tool.call.id"] == "call-1"
    # an operation the span names still decides
    assert one({"gen_ai.tool.call.id": "call-1", "gen_ai.operation.name": "chat"})["type"] == "generation-create"


# --- frameworks whose payloads only Langfuse's processor names -----------------------------


GENKIT_INPUT = {
    "messages": [{"role": "user", "content": [{"text": "Weather in Lima?"}]}],
    "config": {"temperature": 0.3, "maxOutputTokens": 200},
}
GENKIT_OUTPUT = {
    "message": {"role": "model", "content": [{"text": "Cloudy."}]},
    "finishReason": "stop",
    "usage": {"inputTokens": 12, "outputTokens": 20, "totalTokens": 32, "thoughtsTokens": 5, "cachedContentTokens": 4},
}


def test_genkit_model_action_is_a_generation_with_its_messages_settings_and_usage() -> None:
    event = one(
        {
            "genkit:name": "googleai/gemini-2.5-flash",
            "genkit:type": "action",
            "genkit:metadata:subtype": "model",
            "genkit:input": orjson.dumps(GENKIT_INPUT).decode(),
            "genkit:output": orjson.dumps(GENKIT_OUTPUT).decode(),
        },
        name="googleai/gemini-2.5-flash",
    )
    body = event["body"]
    assert event["type"] == "generation-create"
    assert body["model"] == "googleai/gemini-2.5-flash"  # the action's name, on a model action
    assert body["input"] == GENKIT_INPUT["messages"]
    assert body["output"] == GENKIT_OUTPUT["message"]
    assert body["modelParameters"] == {"temperature": 0.3, "maxOutputTokens": 200}
    # the thoughts listed beside the output as reported (Langfuse takes them out of it); the
    # cached part of the prompt priced apart
    assert body["usageDetails"] == {
        "input": 8,
        "output": 20,
        "total": 32,
        "output_reasoning_tokens": 5,
        "input_cached_tokens": 4,
    }
    assert not {"genkit:input", "genkit:output"} & body["metadata"].keys()
    assert body["metadata"]["genkit:metadata:subtype"] == "model"


def test_genkit_settings_of_the_request_and_other_actions_whole() -> None:
    answer = {**GENKIT_OUTPUT, "request": {"config": {"temperature": 0.9}}}
    model = one(
        {"genkit:name": "m", "genkit:metadata:subtype": "model", "genkit:output": orjson.dumps(answer).decode()}
    )["body"]
    assert model["modelParameters"] == {"temperature": 0.9}
    tool = one(
        {"genkit:name": "getWeather", "genkit:metadata:subtype": "tool", "genkit:input": '{"city": "Lima"}',
         "genkit:output": '"cloudy"'}
    )  # fmt: skip
    assert tool["type"] == "tool-create"
    assert (tool["body"]["input"], tool["body"]["output"], tool["body"]["name"]) == (
        {"city": "Lima"},
        "cloudy",
        "getWeather",
    )
    assert "model" not in tool["body"]
    flow = one({"genkit:name": "weatherFlow", "genkit:type": "flow", "genkit:input": '"Lima"', "genkit:output": "{}"})
    assert flow["type"] == "span-create"
    assert (flow["body"]["input"], flow["body"]["output"]) == ("Lima", {})


def test_flue_tools_and_tasks() -> None:
    tool = one({"flue.tool.name": "search", "flue.tool.arguments": '{"q": "x"}', "flue.tool.result": "found"})
    assert tool["type"] == "tool-create"
    assert (tool["body"]["input"], tool["body"]["output"]) == ({"q": "x"}, "found")
    assert tool["body"]["metadata"]["flue.tool.name"] == "search"
    task = one({"flue.task.agent": "researcher", "flue.task.prompt": "Find it", "flue.task.result": "Found"})
    assert task["type"] == "agent-create"
    assert (task["body"]["input"], task["body"]["output"]) == ("Find it", "Found")
    # 2.x: the GenAI attributes, and its own names for arguments and results that are not objects
    raw = one({"gen_ai.tool.name": "echo", "flue.tool.call.arguments": "say hi", "flue.tool.call.result": "hi"})
    assert (raw["type"], raw["body"]["input"], raw["body"]["output"]) == ("tool-create", "say hi", "hi")
    turn = one({"gen_ai.operation.name": "chat", "flue.turn.input": "[1]", "flue.turn.output": '{"a": 1}'})
    assert (turn["type"], turn["body"]["input"], turn["body"]["output"]) == ("generation-create", [1], {"a": 1})


def test_livekit_spans_by_name_with_their_texts() -> None:
    def livekit(name: str, attrs: dict[str, Any]) -> dict[str, Any]:
        result = map_request(request(span(attrs, name=name), scope=("livekit-agents", "1.2")))
        [event] = observations(result)
        return event

    turn = livekit("agent_turn", {"lk.user_transcript": "What's the weather?", "lk.response.text": "Cloudy."})
    assert (turn["type"], turn["body"]["input"], turn["body"]["output"]) == (
        "agent-create",
        "What's the weather?",
        "Cloudy.",
    )
    tool = livekit("function_tool", {"lk.function_tool.output": "", "lk.response.text": "cloudy"})
    assert (tool["type"], tool["body"]["output"]) == ("tool-create", "cloudy")  # an empty output is none
    ctx = livekit("llm_node", {"lk.chat_ctx": '{"items": []}', "lk.input_text": "hi"})
    assert (ctx["type"], ctx["body"]["input"]) == ("span-create", "hi")
    # the names mean nothing outside LiveKit's scope
    assert one({}, name="function_tool")["type"] == "span-create"


def test_livekit_current_releases_content_attributes() -> None:
    # livekit-agents 1.8 names its content attributes lk.pii.* (telemetry/trace_types.py)
    tool = one({"lk.function_tool.name": "lookup", "lk.pii.function_tool.arguments": '{"id": 7}',
                "lk.pii.function_tool.output": "found"})  # fmt: skip
    assert (tool["body"]["input"], tool["body"]["output"]) == ({"id": 7}, "found")
    turn = one({"lk.pii.user_input": "hi", "lk.pii.response.text": "hello"})
    assert (turn["body"]["input"], turn["body"]["output"]) == ("hi", "hello")
    calls = one({"lk.pii.chat_ctx": '{"items": []}', "lk.pii.response.function_calls": '[{"name": "lookup"}]'})
    assert (calls["body"]["input"], calls["body"]["output"]) == ({"items": []}, [{"name": "lookup"}])


@pytest.mark.parametrize(
    ("version", "event_type"), [("1.23.0", "generation"), ("", "generation"), ("1.24.0", "span"), ("2.13.0", "span")]
)
def test_google_adk_call_llm_is_the_model_call_until_it_has_a_child(version: str, event_type: str) -> None:
    # ADK writes a generate_content span under call_llm from 1.24, with the same usage
    attrs = {
        "gen_ai.request.model": "gemini-2.5-flash",
        "gen_ai.usage.input_tokens": 40,
        "gen_ai.usage.output_tokens": 9,
    }
    result = map_request(request(span(attrs, name="call_llm"), scope=("gcp.vertex.agent", version)))
    [event] = observations(result)
    assert event["type"] == f"{event_type}-create"
    assert ("usageDetails" in event["body"]) == (event_type == "generation")
    # other spans of that scope, and call_llm spans of others, are as they were
    other = map_request(request(span(attrs, name="generate_content"), scope=("gcp.vertex.agent", version)))
    assert observations(other)[0]["type"] == "generation-create"
    foreign = map_request(request(span(attrs, name="call_llm"), scope=("my.scope", "2.0")))
    assert observations(foreign)[0]["type"] == "generation-create"


def test_google_adk_cached_tokens_from_the_recorded_response() -> None:
    # ADK before its GenAI-convention spans: the prompt count includes the cache, reported only
    # in the response it records; a cache attribute, where given, wins.
    response = '{"usage_metadata": {"cached_content_token_count": 12, "prompt_token_count": 40}}'
    attrs = {
        "gen_ai.usage.input_tokens": 40,
        "gen_ai.usage.output_tokens": 9,
        "gcp.vertex.agent.llm_response": response,
    }
    body = one(attrs)["body"]
    assert body["usageDetails"] == {"input": 28, "output": 9, "total": 49, "input_cached_tokens": 12}
    body = one({**attrs, "gen_ai.usage.cache_read.input_tokens": 5})["body"]
    assert body["usageDetails"]["input_cached_tokens"] == 5


@pytest.mark.parametrize(
    ("level", "expected"), [("40", "ERROR"), ("30", "WARNING"), ("20", "DEFAULT"), ("10", "DEBUG"), ("x", None)]
)
def test_mlflow_log_level(level: str, expected: str | None) -> None:
    body = one({"mlflow.spanLogLevel": level, "mlflow.spanType": '"PARSER"'})["body"]
    assert body.get("level") == expected
    assert body["metadata"]["mlflow.spanLogLevel"] == level  # kept as sent


def test_mlflow_usage_fills_what_the_attributes_left_out() -> None:
    body = one(
        {
            "mlflow.spanType": '"CHAT_MODEL"',
            "gen_ai.usage.input_tokens": 30,
            "mlflow.chat.tokenUsage": '{"input_tokens": 99, "output_tokens": 7, "cache_read_input_tokens": 10}',
        }
    )["body"]
    # the attribute's input wins; the cached part comes out of it, the total stays whole
    assert body["usageDetails"] == {"input": 20, "output": 7, "total": 37, "input_cached_tokens": 10}


# --- names: Langfuse's extractName -------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "name"),
    [
        ({}, "op"),
        ({"gen_ai.tool.name": "search"}, "search"),
        ({"logfire.msg": "Chat with 'gpt-4o'", "logfire.msg_template": "Chat with {m!r}"}, "Chat with 'gpt-4o'"),
        ({"genkit:name": "flow"}, "flow"),
        ({"ai.toolCall.name": "weather"}, "weather"),
        # their order: the tool's name over Genkit's over Logfire's message over the AI SDK's tool
        ({"logfire.msg": "running tool", "gen_ai.tool.name": "search"}, "search"),
        ({"logfire.msg": "m", "genkit:name": "flow"}, "flow"),
        ({"ai.toolCall.name": "weather", "logfire.msg": "m"}, "m"),
        # the AI SDK's operation, after the function id its app gave; after all of the above
        ({"ai.operationId": "ai.generateText", "ai.telemetry.functionId": "agent"}, "agent:ai.generateText"),
        ({"ai.operationId": "ai.generateText"}, "ai.generateText"),
        ({"ai.operationId": "ai.toolCall", "ai.telemetry.functionId": "agent", "ai.toolCall.name": "w"}, "w"),
        # empty values say nothing; other values are written as JSON
        ({"logfire.msg": "", "gen_ai.tool.name": ""}, "op"),
        ({"gen_ai.tool.name": ["a", 1]}, '["a",1]'),
        ({"gen_ai.tool.name": 7}, "7"),
    ],
)
def test_a_name_attribute_names_the_observation_as_langfuse_does(attrs: dict[str, Any], name: str) -> None:
    event = one(attrs, name="op")
    assert event["body"]["name"] == name
    for key in ("logfire.msg", "genkit:name", "ai.toolCall.name", "ai.telemetry.functionId", "gen_ai.tool.name"):
        if key in attrs:  # what named it is still shown as sent
            assert event["body"]["metadata"][key] == attrs[key]


def test_a_root_span_names_its_trace_as_its_observation() -> None:
    result = map_request(request(span({"logfire.msg": "weather_agent run"}, name="{agent_name} run", parent=b"")))
    [trace] = traces(result)
    [obs] = observations(result)
    assert trace["body"]["name"] == obs["body"]["name"] == "weather_agent run"
    explicit = {"logfire.msg": "weather_agent run", "langfuse.trace.name": "mine"}
    [trace] = traces(map_request(request(span(explicit, name="{agent_name} run", parent=b""))))
    assert trace["body"]["name"] == "mine"


@pytest.mark.parametrize(
    ("attrs", "event_type"),
    [
        ({"agent_name": "weather_agent", "model_name": "gpt-4o"}, "agent-create"),  # Pydantic AI's run
        ({"agent_name": "Weather agent", "name": "turn"}, "span-create"),  # an Agents SDK turn (Logfire)
        ({"name": "turn"}, "span-create"),
        ({"name": "Weather agent", "tools": '["get_weather"]'}, "span-create"),
    ],
)
def test_an_agent_name_makes_an_agent_but_of_a_turn(attrs: dict[str, Any], event_type: str) -> None:
    event = one(attrs)
    assert event["type"] == event_type
    assert all(event["body"]["metadata"][k] == v for k, v in attrs.items())


@pytest.mark.parametrize(
    ("sent", "read"),
    [
        ("21", 21),
        ("-0.25", -0.25),
        ("true", True),
        ("false", False),
        ('"21"', "21"),  # a JSON string stays a string
        ("null", "null"),  # not a value to lose the field to
        ("007", "007"),  # not JSON
        ("1e3", "1e3"),
        ("1234567890123", "1234567890123"),  # past what a double holds exactly, as Langfuse keeps it
        ("21 apples", "21 apples"),
    ],
)
def test_an_sdk_s_json_scalars_are_read_as_langfuse_reads_them(sent: str, read: Any) -> None:
    event = one(
        {
            "langfuse.observation.input": sent,
            "langfuse.observation.output": sent,
            "langfuse.observation.metadata.value": sent,
        }
    )
    body = event["body"]
    assert (body["input"], body["output"], body["metadata"]["value"]) == (read, read, read)
    assert type(body["input"]) is type(read)


def fold(events: list[dict[str, Any]]) -> EntityState:
    """The trace the events' trace-creates fold into, in the order given."""
    state = EntityState("p", TRACE.hex())
    for e in events:
        if e["type"] == "trace-create":
            apply(state, Envelope(e["id"], "p", e["type"], e["timestamp"], 1, e["body"]), TRACES)
    return state


def test_a_child_s_trace_update_wins_over_its_root_s() -> None:
    """Langfuse folds a trace's events in the order their spans started: an SDK's
    update_active_trace below the root (which ends last) sets the trace's fields."""
    root = span(
        {"langfuse.observation.input": "root in", "langfuse.release": "proc-release"},
        name="root-span",
        span_id=ROOT,
        parent=b"",
    )
    child = span(
        {"langfuse.trace.name": "child-set", "langfuse.trace.input": '{"q": 1}', "langfuse.release": "trace-release"},
        span_id=CHILD,
        parent=ROOT,
        start=T0 + 10**6,
        end=T0 + 2 * 10**6,
    )
    for spans in ((root, child), (child, root)):  # in either order, in one request or two
        state = fold(map_request(request(*spans)).events)
        assert (state.values["name"], state.values["input"], state.values["release"]) == (
            "child-set",
            '{"q":1}',
            "trace-release",
        )
        state = fold(map_request(request(spans[0])).events + map_request(request(spans[1])).events)
        assert (state.values["name"], state.values["release"]) == ("child-set", "trace-release")
        assert state.values["timestamp"] == T0 // 1000  # the root's start stays the trace's time


def test_a_root_span_s_events_and_links_stay_its_own_not_its_trace_s() -> None:
    root = span({"team": "core"}, span_id=ROOT, parent=b"", events=[Span.Event(name="retry", time_unix_nano=T0)])
    child = span({"step": 2}, span_id=CHILD, parent=ROOT)
    result = map_request(request(root, child, resource={"service.name": "svc"}))
    [trace] = traces(result)
    obs = {e["body"]["id"]: e["body"] for e in observations(result)}
    assert [e["name"] for e in obs[ROOT.hex()]["metadata"]["spanEvents"]] == ["retry"]
    assert trace["body"]["metadata"] == {
        "team": "core",
        "resourceAttributes": {"service.name": "svc"},
        "scope": {"name": "my.scope", "version": "1.2"},
    }  # and nothing of the child's


def test_logfire_model_config_gives_the_parameters_that_were_set() -> None:
    config = '{"temperature": 0.2, "top_p": null, "max_tokens": 100, "reasoning": null}'
    event = one({"model_config": config, "gen_ai.request.model": "gpt-4o"})
    assert event["body"]["modelParameters"] == {"temperature": 0.2, "max_tokens": 100}
    assert event["body"]["metadata"]["model_config"] == config
    unset = one({"model_config": '{"temperature": null}', "gen_ai.request.model": "gpt-4o"})
    assert "modelParameters" not in unset["body"]


# --- OpenInference -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "event_type"),
    [
        ("LLM", "generation-create"),
        ("EMBEDDING", "embedding-create"),
        ("TOOL", "tool-create"),
        ("AGENT", "agent-create"),
        ("CHAIN", "chain-create"),
        ("RETRIEVER", "retriever-create"),
        ("RERANKER", "retriever-create"),
        ("GUARDRAIL", "guardrail-create"),
        ("EVALUATOR", "evaluator-create"),
        ("llm", "generation-create"),
        ("UNKNOWN", "span-create"),
    ],
)
def test_openinference_span_kind_sets_the_type(kind: str, event_type: str) -> None:
    assert one({"openinference.span.kind": kind})["type"] == event_type


def test_openinference_llm_span() -> None:
    result = map_request(
        request(
            span(
                {
                    "openinference.span.kind": "LLM",
                    "llm.model_name": "gpt-4o-mini",
                    "llm.invocation_parameters": '{"temperature": 0, "max_tokens": 64}',
                    "llm.token_count.prompt": 30,
                    "llm.token_count.completion": 4,
                    "llm.token_count.total": 34,
                    "llm.token_count.prompt_details.cache_read": 10,
                    "llm.token_count.completion_details.reasoning": 2,
                    "llm.token_count.prompt_details.audio": 3,
                    "llm.token_count.completion_details.audio": 1,
                    "input.value": '{"messages": []}',
                    "input.mime_type": "application/json",
                    "output.value": "hello",
                    "output.mime_type": "text/plain",
                    "llm.input_messages.0.message.role": "user",
                    "llm.input_messages.0.message.content": "hi",
                    "session.id": "sess-1",
                    "user.id": "user-1",
                    "metadata": '{"team": "search"}',
                    "tag.tags": ["x", "y"],
                    "llm.cost.total": 0.003,
                }
            )
        )
    )
    [trace] = traces(result)
    [event] = observations(result)
    body = event["body"]
    assert event["type"] == "generation-create"
    assert body["model"] == "gpt-4o-mini"
    assert body["modelParameters"] == {"temperature": 0, "max_tokens": 64}
    assert body["usageDetails"] == {
        "input": 20,
        "output": 4,
        "total": 34,
        "input_cached_tokens": 10,
        "output_reasoning_tokens": 2,
        "input_audio_tokens": 3,
        "output_audio_tokens": 1,
    }
    assert body["costDetails"] == {"total": 0.003}
    # The message list wins over input.value, the raw request it was read from.
    assert body["input"] == [{"role": "user", "content": "hi"}]
    assert body["output"] == "hello"
    assert body["metadata"]["team"] == "search"
    assert body["metadata"]["input.mime_type"] == "application/json"
    # user, session and tags are trace-level, so this child span also updates its trace
    assert trace["body"] == {"id": TRACE.hex(), "userId": "user-1", "sessionId": "sess-1", "tags": ["x", "y"]}
    assert trace["id"] == f"{TRACE.hex()}-{CHILD.hex()}-trace"


def test_openinference_flattened_messages_without_input_value() -> None:
    body = one(
        {
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": "hi",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": "yo",
        }
    )["body"]
    assert body["input"] == [{"role": "user", "content": "hi"}]
    assert body["output"] == [{"role": "assistant", "content": "yo"}]


def test_openinference_tool_calls_and_content_parts_in_the_chat_shape() -> None:
    # As openinference-instrumentation-openai 0.1.66 records a second turn with an image.
    inp, out = "llm.input_messages.", "llm.output_messages."
    body = one(
        {
            f"{inp}0.message.role": "user",
            f"{inp}0.message.contents.0.message_content.type": "text",
            f"{inp}0.message.contents.0.message_content.text": "What is this?",
            f"{inp}0.message.contents.1.message_content.type": "image",
            f"{inp}0.message.contents.1.message_content.image.image.url": "https://example.com/cat.png",
            f"{inp}1.message.role": "assistant",
            f"{inp}1.message.tool_calls.0.tool_call.id": "call_1",
            f"{inp}1.message.tool_calls.0.tool_call.function.name": "get_weather",
            f"{inp}1.message.tool_calls.0.tool_call.function.arguments": '{"city": "Paris"}',
            f"{inp}2.message.role": "tool",
            f"{inp}2.message.tool_call_id": "call_1",
            f"{inp}2.message.content": "sunny",
            f"{out}0.message.role": "assistant",
            f"{out}0.message.function_call_name": "describe",
            f"{out}0.message.function_call_arguments_json": '{"subject": "cat"}',
        }
    )["body"]
    assert body["input"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ],
        },
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    assert body["output"] == [
        {"role": "assistant", "function_call": {"name": "describe", "arguments": '{"subject": "cat"}'}}
    ]
    # Other conventions' lists keep their own shape.
    legacy = one({"gen_ai.completion.0.tool_calls.0.name": "f", "gen_ai.completion.0.role": "assistant"})["body"]
    assert legacy["output"] == [{"tool_calls": [{"name": "f"}], "role": "assistant"}]


def test_openinference_model_of_a_failed_call_comes_from_its_invocation_parameters() -> None:
    params = '{"model": "gpt-4o-mini", "temperature": 0.2}'
    failed = one({"openinference.span.kind": "LLM", "llm.invocation_parameters": params})
    assert (failed["type"], failed["body"]["model"]) == ("generation-create", "gpt-4o-mini")
    assert failed["body"]["modelParameters"] == {"model": "gpt-4o-mini", "temperature": 0.2}
    # The model the response named wins.
    answered = one({"llm.invocation_parameters": params, "llm.model_name": "gpt-4o-mini-2024-07-18"})["body"]
    assert answered["model"] == "gpt-4o-mini-2024-07-18"
    assert "model" not in one({"llm.invocation_parameters": '{"temperature": 0}'})["body"]


def test_a_propagated_prompt_links_only_generation_like_observations() -> None:
    # propagate_attributes(prompt=...) of Langfuse's SDKs sets it on every span in its context.
    prompt = {"langfuse.observation.prompt.name": "qa", "langfuse.observation.prompt.version": 3}
    for kind, linked in (("span", False), ("event", False), ("generation", True), ("tool", True), ("agent", True)):
        body = one({**prompt, "langfuse.observation.type": kind})["body"]
        assert (body.get("promptName"), body.get("promptVersion")) == (("qa", 3) if linked else (None, None)), kind


def test_first_token_events_give_the_completion_start() -> None:
    def at(name: str, offset_us: int) -> Span.Event:
        return Span.Event(name=name, time_unix_nano=T0 + offset_us * 1000)

    # OpenInference: one event at the first token; OpenLLMetry: one per chunk, the first counts.
    assert one(events=[at("First Token Stream Event", 250)])["body"]["completionStartTime"] == T0 // 1000 + 250
    chunks = [at("gen_ai.content.completion.chunk", us) for us in (300, 120, 400)]
    assert one(events=chunks)["body"]["completionStartTime"] == T0 // 1000 + 120
    # An attribute that gives it wins; other events give none.
    given = one({"langfuse.observation.completion_start_time": "2023-11-14T22:13:20.5Z"}, events=chunks)["body"]
    assert given["completionStartTime"] == 1_700_000_000_500_000
    assert "completionStartTime" not in one(events=[at("exception", 100)])["body"]
    # A stream read after its span ended (the span's end is 1 s after its start here).
    assert "completionStartTime" not in one(events=[at("First Token Stream Event", 1_300_000)])["body"]
    assert one(events=[at("First Token Stream Event", 1_000_000)])["body"]["completionStartTime"] == T0 // 1000 + 10**6


# --- Vercel AI SDK, Pydantic AI, Logfire: the composed fields ------------------------------


def test_ai_sdk_text_and_tool_calls_of_one_step_are_one_message() -> None:
    calls = [{"toolCallId": "c", "toolName": "t", "input": "{}"}]
    body = one(
        {"ai.operationId": "ai.streamText.doStream", "ai.response.text": "Let me look.", "ai.response.toolCalls": calls}
    )["body"]
    assert body["output"] == {"role": "assistant", "content": "Let me look.", "tool_calls": calls}
    body = one({"ai.response.text": "", "ai.response.toolCalls": orjson.dumps(calls).decode()})["body"]
    assert body["output"] == calls  # an empty text is no text


@pytest.mark.parametrize(
    ("provider", "usage"),
    [
        (
            {"anthropic": {"usage": {"cache_read_input_tokens": 7, "cache_creation_input_tokens": 2}}},
            {"input_cached_tokens": 7, "input_cache_creation": 2},
        ),
        (
            {"bedrock": {"usage": {"cacheReadInputTokens": 4, "cacheWriteInputTokens": 1}}},
            {"input_cached_tokens": 4, "input_cache_creation": 1},
        ),
        ({"openai": {"cachedPromptTokens": 3, "reasoningTokens": "x"}}, {"input_cached_tokens": 3}),
        ({"other": {"cachedPromptTokens": 3}}, {}),
    ],
)
def test_ai_sdk_provider_metadata_fills_cache_counts(provider: dict[str, Any], usage: dict[str, int]) -> None:
    body = one(
        {
            "ai.operationId": "ai.generateText.doGenerate",
            "ai.usage.promptTokens": 10,
            "ai.usage.cachedInputTokens": 9 if "openai" in provider else None,
            "ai.response.providerMetadata": orjson.dumps(provider).decode(),
        }
    )["body"]
    expected = {"total": 10, **usage}
    if "openai" in provider:
        expected["input_cached_tokens"] = 9  # the SDK's own count wins over the provider's
    expected["input"] = 10 - expected.get("input_cached_tokens", 0) - expected.get("input_cache_creation", 0)
    assert body["usageDetails"] == expected
    assert body["metadata"]["ai.response.providerMetadata"] == provider


def test_ai_sdk_langfuse_prompt_links_the_generation() -> None:
    body = one(
        {
            "ai.operationId": "ai.generateText.doGenerate",
            "ai.telemetry.metadata.langfusePrompt": '{"name": "greeting", "version": 3, "isFallback": false}',
        }
    )["body"]
    assert (body["promptName"], body["promptVersion"]) == ("greeting", 3)
    assert "langfusePrompt" not in body["metadata"]


@pytest.mark.parametrize(
    ("num", "level"), [(1, "DEBUG"), (5, "DEBUG"), (9, "DEFAULT"), (13, "WARNING"), (17, "ERROR"), (21, "ERROR")]
)
def test_logfire_level_num_sets_the_level(num: int, level: str) -> None:
    body = one({"logfire.level_num": num})["body"]
    assert body["level"] == level
    assert body["metadata"]["logfire.level_num"] == num


def test_system_instructions_next_to_no_message_list_stay_metadata() -> None:
    body = one({"gen_ai.system_instructions": '[{"type": "text", "content": "Be brief."}]', "input.value": "hi"})[
        "body"
    ]
    assert body["input"] == "hi"
    assert body["metadata"]["gen_ai.system_instructions"] == [{"type": "text", "content": "Be brief."}]
    body = one(
        {
            "gen_ai.system_instructions": "Be brief.",
            "gen_ai.input.messages": '[{"role": "system", "content": "Own."}, {"role": "user", "content": "hi"}]',
        }
    )["body"]
    assert body["input"] == [{"role": "system", "content": "Own."}, {"role": "user", "content": "hi"}]


def test_system_instructions_join_messages_that_span_events_give() -> None:
    # Strands with the latest GenAI conventions: everything in the operation's details event,
    # or the instructions as an attribute and the messages in that event (its agent span).
    user = '[{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]'
    instructions = '[{"type": "text", "content": "Use tools."}]'
    details = {"gen_ai.input.messages": user, "gen_ai.output.messages": "[]"}
    expected = [{"role": "system", "content": "Use tools."}, *orjson.loads(user)]
    in_event = _event(
        "gen_ai.client.inference.operation.details", **details, **{"gen_ai.system_instructions": instructions}
    )
    assert one(events=[in_event])["body"]["input"] == expected
    apart = _event("gen_ai.client.inference.operation.details", **details)
    assert one({"gen_ai.system_instructions": instructions}, events=[apart])["body"]["input"] == expected


def test_langfuse_openai_drop_in_metadata_keys_set_the_trace_user_session_and_tags() -> None:
    # metadata={"langfuse_user_id": .., "langfuse_session_id": .., "langfuse_tags": [..]}: 3.x sends
    # the values as they are, 5.x as JSON text.
    prefix = "langfuse.observation.metadata."
    for user, session, tags in (("u-1", "s-1", '["t"]'), ('"u-1"', '"s-1"', '["t"]')):
        attrs = {f"{prefix}langfuse_user_id": user, f"{prefix}langfuse_session_id": session}
        result = map_request(request(span({**attrs, f"{prefix}langfuse_tags": tags, f"{prefix}team": "a"})))
        [trace] = traces(result)
        assert (trace["body"]["userId"], trace["body"]["sessionId"], trace["body"]["tags"]) == ("u-1", "s-1", ["t"])
        assert observations(result)[0]["body"]["metadata"]["team"] == "a"
    # An attribute made for it wins.
    [trace] = traces(map_request(request(span({"user.id": "real", f"{prefix}langfuse_user_id": "u-1"}))))
    assert trace["body"]["userId"] == "real"


def test_openai_usage_objects_as_usage_details_keep_their_cached_and_reasoning_counts() -> None:
    # langfuse 5.2's OpenAI drop-in sends the response's usage object as the usage details.
    sent = {
        "prompt_tokens": 110,
        "completion_tokens": 7,
        "total_tokens": 117,
        "prompt_tokens_details": {"cached_tokens": 100, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 3},
    }
    body = one({"langfuse.observation.usage_details": orjson.dumps(sent).decode()})["body"]
    usage, _ = usage_and_cost(body)
    assert usage == {
        "input": 10,  # the cached 100 are priced apart
        "output": 7,
        "total": 117,
        "input_cached_tokens": 100,
        "input_audio_tokens": 0,
        "output_reasoning_tokens": 3,
    }
    # The Responses API's object, through the batch API's usageDetails.
    responses = {"input_tokens": 50, "output_tokens": 5, "input_tokens_details": {"cached_tokens": 20}}
    assert usage_and_cost({"usageDetails": responses})[0] == {"input": 30, "output": 5, "input_cached_tokens": 20}


def test_strands_cache_write_count_is_a_cache_creation() -> None:
    attrs = {"gen_ai.usage.input_tokens": 100, "gen_ai.usage.cache_write_input_tokens": 30}
    usage = one(attrs)["body"]["usageDetails"]
    assert usage["input_cache_creation"] == 30 and usage["input"] == 70


def test_time_to_first_chunk_attributes_give_the_completion_start() -> None:
    start = T0 // 1000
    pydantic_ai = one({"gen_ai.client.operation.time_to_first_chunk": 0.3548})["body"]  # seconds
    assert pydantic_ai["completionStartTime"] == start + 354_800
    strands = one({"gen_ai.server.time_to_first_token": 379})["body"]  # its timeToFirstByteMs
    assert strands["completionStartTime"] == start + 379_000
    # OpenLIT's, under the same name, in seconds (the GenAI metric's unit).
    result = map_request(
        request(span({"gen_ai.server.time_to_first_token": 0.1478}), scope=("openlit.instrumentation.openai", "1.45"))
    )
    assert observations(result)[0]["body"]["completionStartTime"] == start + 147_800
    # An explicit time to the first chunk still wins.
    both = one({"ai.stream.msToFirstChunk": 12.0, "gen_ai.server.time_to_first_token": 379})["body"]
    assert both["completionStartTime"] == start + 12_000
    # A delay past any time (infinite in µs) sets none; the span is kept (it was refused).
    for seconds in (1.8e302, -1.8e302, 1e13):
        assert "completionStartTime" not in one({"gen_ai.client.operation.time_to_first_chunk": seconds})["body"]


def test_plain_input_and_output_attributes_are_the_payloads() -> None:
    # Logfire's OpenAI Agents spans and Pipecat's: after OpenInference's input.value.
    tool = one({"input": '{"city": "Paris"}', "output": "sunny, 21C in Paris"})["body"]
    assert (tool["input"], tool["output"]) == ({"city": "Paris"}, "sunny, 21C in Paris")
    assert "input" not in tool.get("metadata", {}) and "output" not in tool.get("metadata", {})
    both = one({"input": "plain", "input.value": "openinference"})["body"]
    assert both["input"] == "openinference"


def test_invoke_agent_keeps_its_model_and_usage_out_of_the_ledger() -> None:
    event = one(
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.cost": 0.5,
        }
    )
    body = event["body"]
    assert event["type"] == "agent-create"
    assert not {"model", "usageDetails", "costDetails"} & body.keys()
    assert body["metadata"]["aggregate"] == {
        "model": "gpt-4o",
        "usageDetails": {"input": 100, "total": 100},
        "costDetails": {"total": 0.5},
    }
    # agent_step has no type of its own: without model and usage it is a span
    assert one({"gen_ai.operation.name": "agent_step", "gen_ai.usage.input_tokens": 1})["type"] == "span-create"
    # a model call is never a sum, whatever else marks it
    event = one({"gen_ai.operation.name": "chat", "agent_name": "a", "gen_ai.usage.input_tokens": 7})
    assert event["type"] == "generation-create" and event["body"]["usageDetails"] == {"input": 7, "total": 7}


# --- Langfuse attributes -----------------------------------------------------------------


def test_langfuse_observation_attributes() -> None:
    event = one(
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.level": "warning",
            "langfuse.observation.status_message": "slow",
            "langfuse.observation.input": '"q"',
            "langfuse.observation.output": '{"a": 1}',
            "langfuse.observation.model.name": "m1",
            "langfuse.observation.model.parameters": '{"temperature": 1}',
            "langfuse.observation.usage_details": '{"input": 5, "output": 6, "bogus": "x"}',
            "langfuse.observation.cost_details": '{"input": 0.5, "total": 1.5}',
            "langfuse.observation.completion_start_time": '"2023-11-14T22:13:20.500000Z"',
            "langfuse.observation.prompt.name": "greeting",
            "langfuse.observation.prompt.version": 4,
            "langfuse.observation.metadata": '{"a": 1, "b": 2}',
            "langfuse.observation.metadata.b": "from key",
            "langfuse.observation.metadata.c": 3,
            "langfuse.version": "v7",
            "langfuse.environment": "staging",
        }
    )
    body = event["body"]
    assert event["type"] == "generation-create"
    assert body["level"] == "WARNING" and body["statusMessage"] == "slow"
    assert body["input"] == "q" and body["output"] == {"a": 1}
    assert body["model"] == "m1" and body["modelParameters"] == {"temperature": 1}
    assert body["usageDetails"] == {"input": 5, "output": 6}  # its total is made when it is priced
    assert body["costDetails"] == {"input": 0.5, "total": 1.5}
    assert body["completionStartTime"] == 1_700_000_000_500_000
    assert body["promptName"] == "greeting" and body["promptVersion"] == 4
    assert body["version"] == "v7" and body["environment"] == "staging"
    assert {k: body["metadata"][k] for k in "abc"} == {"a": 1, "b": 2, "c": 3}


def test_langfuse_trace_attributes_on_the_root() -> None:
    result = map_request(
        request(
            span(
                {
                    "langfuse.trace.name": "checkout",
                    "langfuse.trace.input": '{"cart": 3}',
                    "langfuse.trace.output": "paid",
                    "langfuse.trace.tags": '["a", "b"]',
                    "langfuse.trace.public": True,
                    "langfuse.trace.metadata.plan": "pro",
                    "langfuse.trace.metadata": '{"region": "eu"}',
                    "langfuse.user.id": "u-lf",
                    "user.id": "u-otel",
                    "langfuse.session.id": "s-lf",
                    "langfuse.release": "r1",
                    "langfuse.version": "v2",
                    "langfuse.observation.input": "obs in",
                },
                span_id=ROOT,
                parent=b"",
            ),
            resource={"deployment.environment.name": "prod"},
        )
    )
    [trace] = traces(result)
    assert trace["body"] == {
        "id": TRACE.hex(),
        "timestamp": T0 // 1000,
        "name": "checkout",
        "userId": "u-lf",
        "sessionId": "s-lf",
        "tags": ["a", "b"],
        "public": True,
        "input": {"cart": 3},
        "output": "paid",
        "release": "r1",
        "version": "v2",
        "environment": "prod",
        "metadata": {
            "region": "eu",
            "plan": "pro",
            "resourceAttributes": {"deployment.environment.name": "prod"},
            "scope": {"name": "my.scope", "version": "1.2"},
        },
    }
    assert observations(result)[0]["body"]["input"] == "obs in"


def test_metadata_values_json_encoded_by_langfuse_sdks_are_decoded() -> None:
    # The 5.x SDK JSON-encodes every metadata value, strings included; 3.x/4.x send strings
    # as they are and other values as JSON. Both must read the same.
    result = map_request(
        request(
            span(
                {
                    "langfuse.trace.metadata.team": '"core"',
                    "langfuse.trace.metadata.region": "eu",
                    "langfuse.observation.metadata.attempt": "1",
                    "langfuse.observation.metadata.tags": '["a"]',
                    "langfuse.observation.metadata.cfg": '{"k": true}',
                    "langfuse.metadata.note": '"n"',
                    "langfuse.observation.metadata.raw": '{"not json',
                },
                span_id=ROOT,
                parent=b"",
            )
        )
    )
    [trace] = traces(result)
    metadata = observations(result)[0]["body"]["metadata"]
    # the root's own metadata is its trace's too, under the trace's keys
    assert trace["body"]["metadata"] == {**metadata, "team": "core", "region": "eu"}
    assert {k: metadata[k] for k in ("attempt", "tags", "cfg", "note", "raw")} == {
        "attempt": 1,  # a JSON scalar, read as Langfuse reads it
        "tags": ["a"],
        "cfg": {"k": True},
        "note": "n",
        "raw": '{"not json',
    }


def test_root_trace_input_and_output_default_to_the_root_observation() -> None:
    result = map_request(request(span({"input.value": "in", "output.value": "out"}, span_id=ROOT, parent=b"")))
    [trace] = traces(result)
    assert (trace["body"]["input"], trace["body"]["output"]) == ("in", "out")


def test_langfuse_as_root_makes_a_child_span_name_the_trace() -> None:
    result = map_request(request(span({"langfuse.internal.as_root": True}, name="agent run")))
    [trace] = traces(result)
    assert trace["body"]["name"] == "agent run" and "timestamp" in trace["body"]


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ("a, b ,c", ["a", "b", "c"]),
        ("single", ["single"]),
        (["x", 1], ["x", "1"]),
        ('["j", "k"]', ["j", "k"]),
    ],
)
def test_tags_accept_arrays_json_and_comma_lists(tags: Any, expected: list[str]) -> None:
    [trace] = traces(map_request(request(span({"langfuse.trace.tags": tags}))))
    assert trace["body"]["tags"] == expected


def test_environment_and_release_precedence_between_span_and_resource() -> None:
    resource = {"deployment.environment": "old", "deployment.environment.name": "res-env", "service.version": "1.0.0"}
    body = one(resource=None)["body"]
    assert "environment" not in body
    result = map_request(request(span(span_id=ROOT, parent=b""), resource=resource))
    trace, obs = result.events
    assert obs["body"]["environment"] == trace["body"]["environment"] == "res-env"
    # service.version is the version's fallback (as Langfuse reads it), not a release.
    assert (trace["body"]["version"], obs["body"]["version"]) == ("1.0.0", "1.0.0")
    assert "release" not in trace["body"]
    result = map_request(
        request(
            span({"deployment.environment.name": "span-env", "langfuse.release": "rel"}, span_id=ROOT, parent=b""),
            resource=resource,
        )
    )
    trace, obs = result.events
    assert obs["body"]["environment"] == trace["body"]["environment"] == "span-env"
    assert trace["body"]["release"] == "rel"
    result = map_request(request(span({"langfuse.version": "v2"}, span_id=ROOT, parent=b""), resource=resource))
    trace, obs = result.events
    assert trace["body"]["version"] == obs["body"]["version"] == "v2"


# --- precedence and inference ------------------------------------------------------------


def test_type_precedence_langfuse_then_openinference_then_genai() -> None:
    attrs = {"langfuse.observation.type": "agent", "openinference.span.kind": "TOOL", "gen_ai.operation.name": "chat"}
    assert one(attrs)["type"] == "agent-create"
    del attrs["langfuse.observation.type"]
    assert one(attrs)["type"] == "tool-create"
    del attrs["openinference.span.kind"]
    assert one(attrs)["type"] == "generation-create"
    attrs["langfuse.observation.type"] = "not-a-type"  # unusable: the next source decides
    assert one(attrs)["type"] == "generation-create"


def test_model_precedence_is_independent_of_attribute_order() -> None:
    sources = [
        ("llm.model_name", "oi"),
        ("gen_ai.request.model", "req"),
        ("gen_ai.response.model", "resp"),
        ("langfuse.observation.model.name", "lf"),
    ]
    for order in itertools.permutations(sources):
        assert one(dict(order))["body"]["model"] == "lf"
    for order in itertools.permutations(sources[:3]):
        assert one(dict(order))["body"]["model"] == "resp"


@pytest.mark.parametrize(
    ("attrs", "event_type"),
    [
        ({"gen_ai.request.model": "m"}, "generation-create"),
        ({"gen_ai.usage.input_tokens": 3}, "generation-create"),
        ({"llm.token_count.total": 3}, "generation-create"),
        ({"db.system": "postgresql"}, "span-create"),
    ],
)
def test_model_or_usage_implies_a_generation(attrs: dict[str, Any], event_type: str) -> None:
    assert one(attrs)["type"] == event_type


def test_unusable_values_for_mapped_keys_stay_in_metadata() -> None:
    body = one(
        {
            "gen_ai.usage.input_tokens": "many",
            "langfuse.observation.level": "LOUD",
            "metadata": "not json",
            "gen_ai.usage.audio_tokens": 5,
        }
    )["body"]
    assert body["metadata"]["gen_ai.usage.input_tokens"] == "many"
    assert body["metadata"]["langfuse.observation.level"] == "LOUD"
    assert body["metadata"]["metadata"] == "not json"
    assert body["usageDetails"] == {"audio_tokens": 5}  # unknown gen_ai.usage.* kept
    assert "level" not in body


# --- status, events, attribute values ----------------------------------------------------


def test_error_status_sets_level_and_status_message() -> None:
    body = one(status=Status(code=Status.STATUS_CODE_ERROR, message="timeout"))["body"]
    assert (body["level"], body["statusMessage"]) == ("ERROR", "timeout")
    body = one({"langfuse.observation.level": "DEBUG"}, status=Status(code=Status.STATUS_CODE_ERROR))["body"]
    assert body["level"] == "DEBUG"
    assert "level" not in one(status=Status(code=Status.STATUS_CODE_OK))["body"]


def test_exception_event_goes_to_metadata_and_explains_an_error() -> None:
    event = Span.Event(
        name="exception",
        time_unix_nano=T0 + 5000,
        attributes=[kv("exception.type", "ValueError"), kv("exception.message", "bad input")],
    )
    body = one(status=Status(code=Status.STATUS_CODE_ERROR), events=[event])["body"]
    assert body["statusMessage"] == "bad input"
    assert body["metadata"]["spanEvents"] == [
        {
            "name": "exception",
            "time": "2023-11-14T22:13:20.123461Z",
            "attributes": {"exception.type": "ValueError", "exception.message": "bad input"},
        }
    ]


def _event(name: str, **attrs: Any) -> Span.Event:
    return Span.Event(name=name, time_unix_nano=T0, attributes=[kv(k, v) for k, v in attrs.items()])


def test_genai_span_events_give_input_and_output_when_no_attribute_does() -> None:
    prompt = _event("gen_ai.content.prompt", **{"gen_ai.prompt": '[{"role": "user", "content": "hi"}]'})
    completion = _event("gen_ai.content.completion", **{"gen_ai.completion": "hello"})
    body = one(events=[prompt, completion])["body"]
    assert (body["input"], body["output"]) == ([{"role": "user", "content": "hi"}], "hello")
    assert [e["name"] for e in body["metadata"]["spanEvents"]] == ["gen_ai.content.prompt", "gen_ai.content.completion"]
    # an attribute wins over an event
    assert one({"gen_ai.completion": "attr"}, events=[prompt, completion])["body"]["output"] == "attr"

    messages = [
        _event("gen_ai.system.message", content="be brief"),
        _event("gen_ai.user.message", content="hi"),
        _event("gen_ai.choice", index=0, finish_reason="stop", message='{"content": "yo"}'),
    ]
    body = one(events=messages)["body"]
    assert body["input"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    # a message written as JSON text is read as JSON, as the attributes' payloads are
    assert body["output"] == {"index": 0, "finish_reason": "stop", "message": {"content": "yo"}}
    blocks = [_event("gen_ai.user.message", content='[{"text": "hi"}]'), _event("gen_ai.choice", message="{not json")]
    body = one(events=blocks)["body"]
    assert (body["input"], body["output"]) == (
        [{"role": "user", "content": [{"text": "hi"}]}],
        {"message": "{not json"},
    )
    # the events in metadata stay as sent
    assert body["metadata"]["spanEvents"][0]["attributes"] == {"content": '[{"text": "hi"}]'}

    details = _event(
        "gen_ai.client.inference.operation.details",
        **{"gen_ai.input.messages": '[{"role": "user", "parts": []}]', "gen_ai.output.messages": "[]"},
    )
    body = one(events=[details])["body"]
    assert (body["input"], body["output"]) == ([{"role": "user", "parts": []}], [])


def test_any_values_convert_to_plain_python() -> None:
    metadata = one(
        {
            "s": "x",
            "i": -(2**63),
            "d": 1.5,
            "b": False,
            "bytes": b"\xde\xad",
            "unset": None,
            "arr": [1, "two", [3.0]],
            "kv": {"k": {"inner": True}},
        },
        resource={"host": "h", "list": ["a"]},
    )["body"]["metadata"]
    assert {k: metadata[k] for k in ("s", "i", "d", "b", "bytes", "unset", "arr", "kv")} == {
        "s": "x",
        "i": -(2**63),
        "d": 1.5,
        "b": False,
        "bytes": "dead",
        "unset": None,
        "arr": [1, "two", [3.0]],
        "kv": {"k": {"inner": True}},
    }
    assert metadata["resourceAttributes"] == {"host": "h", "list": ["a"]}


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"trace": bytes(16)}, "invalid trace id"),
        ({"trace": b"\x01" * 15}, "invalid trace id"),
        ({"trace": b""}, "invalid trace id"),
        ({"span_id": bytes(8)}, "invalid span id"),
        ({"span_id": b"\x01" * 9}, "invalid span id"),
        ({"parent": b"\x01" * 4}, "invalid parent span id"),
    ],
)
def test_invalid_ids_reject_the_span_and_keep_the_others(fields: dict[str, bytes], message: str) -> None:
    result = map_request(request(span(name="good"), span(name="bad", **fields), span(name="ok")))
    assert result.rejected == 1
    assert len(result.errors) == 1 and message in result.errors[0]
    assert [e["body"]["name"] for e in observations(result)] == ["good", "ok"]


def test_error_messages_are_bounded() -> None:
    result = map_request(request(*[span(trace=bytes(16)) for _ in range(100)]))
    assert result.rejected == 100 and len(result.errors) == 20 and result.events == []


# --- properties --------------------------------------------------------------------------

ids16 = st.binary(min_size=16, max_size=16).filter(any)
ids8 = st.binary(min_size=8, max_size=8).filter(any)
# What the stores hold (1970..2100); outside it a span is rejected, see below.
nanos = st.integers(min_value=1, max_value=4_102_444_800 * 10**9 - 1)

any_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.binary(max_size=8)
    | st.sampled_from(
        [
            "",
            "{",
            "[1,",
            '{"a": 1}',
            "[1, 2]",
            '"q"',
            "12",
            "1e400",
            "nan",
            "true",
            "ERROR",
            "generation",
            "LLM",
            "chat",
            "a,b",
        ]
    ),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
_known_keys = sorted(
    {row[0] for row in EXACT}
    | {p + "x" for p, *_ in PREFIXED}
    | {p + "0.role" for p, *_ in INDEXED}
    | {p + "1" for p, *_ in INDEXED}
)
attribute_keys = st.sampled_from(_known_keys) | st.text(max_size=20)


@settings(max_examples=200, deadline=None)
@given(trace=ids16, span_id=ids8, parent=st.one_of(st.just(b""), ids8), start=nanos, end=nanos)
def test_any_valid_span_maps_to_exactly_one_observation(
    trace: bytes, span_id: bytes, parent: bytes, start: int, end: int
) -> None:
    result = map_request(request(span(trace=trace, span_id=span_id, parent=parent, start=start, end=end)))
    assert result.rejected == 0
    [obs] = observations(result)
    body = obs["body"]
    assert obs["type"] in OBSERVATION_EVENT_TYPES
    assert body["id"] == span_id.hex() and len(body["id"]) == 16
    assert body["traceId"] == trace.hex() and len(body["traceId"]) == 32
    assert body["id"] == body["id"].lower() and body["traceId"] == body["traceId"].lower()
    assert body.get("parentObservationId") == (parent.hex() if parent else None)
    assert len(traces(result)) == (0 if parent else 1)


@settings(max_examples=100, deadline=None)
@given(ns=st.integers(min_value=4_102_444_800 * 10**9, max_value=(1 << 64) - 1))
def test_times_past_2100_reject_the_span(ns: int) -> None:
    result = map_request(request(span(start=T0, end=ns)))
    assert result.rejected == 1 and result.events == []
    assert "between 1970 and 2100" in result.errors[0]


@settings(max_examples=300, deadline=None)
@given(ns=nanos)
def test_times_round_trip_to_the_microsecond(ns: int) -> None:
    body = one(start=ns, end=ns)["body"]
    assert body["startTime"] == body["endTime"] == ns // 1000


@settings(max_examples=400, deadline=None)
@given(
    attrs=st.dictionaries(attribute_keys, any_values, max_size=8),
    resource=st.dictionaries(attribute_keys, any_values, max_size=4),
    parent=st.sampled_from([b"", ROOT]),
)
def test_mapping_never_fails_on_arbitrary_attribute_values(
    attrs: dict[str, Any], resource: dict[str, Any], parent: bytes
) -> None:
    result = map_request(request(span(attrs, parent=parent), resource=resource))
    assert result.rejected == 0, result.errors  # not even through the safety net
    [obs] = observations(result)
    assert obs["type"] in OBSERVATION_EVENT_TYPES
    orjson.dumps(result.events)  # what the envelope does


# --- the real OpenTelemetry SDK encoder ----------------------------------------------------


def test_spans_encoded_by_the_opentelemetry_sdk() -> None:
    encoder = pytest.importorskip("opentelemetry.exporter.otlp.proto.common.trace_encoder")
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    export = pytest.importorskip("opentelemetry.sdk.trace.export")
    in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    from opentelemetry.sdk.resources import Resource

    exporter = in_memory.InMemorySpanExporter()
    provider = sdk_trace.TracerProvider(
        resource=Resource.create({"service.name": "sdk-test", "deployment.environment": "ci"})
    )
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("sdk.scope", "0.1")
    with tracer.start_as_current_span("invoke_agent planner", attributes={"gen_ai.operation.name": "invoke_agent"}):
        with tracer.start_as_current_span(
            "chat gpt-4o",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 11,
                "gen_ai.usage.output_tokens": 2,
            },
        ):
            pass
    provider.shutdown()
    body = encoder.encode_spans(exporter.get_finished_spans()).SerializeToString()

    result = map_request(parse_request(body, "application/x-protobuf"))
    assert result.rejected == 0
    types = sorted(e["type"] for e in result.events)
    assert types == ["agent-create", "generation-create", "trace-create"]
    gen = next(e for e in result.events if e["type"] == "generation-create")["body"]
    agent = next(e for e in result.events if e["type"] == "agent-create")["body"]
    assert gen["parentObservationId"] == agent["id"] and gen["traceId"] == agent["traceId"]
    assert gen["usageDetails"] == {"input": 11, "output": 2, "total": 13}
    assert gen["environment"] == "ci"
    assert gen["metadata"]["scope"] == {"name": "sdk.scope", "version": "0.1"}


def test_error_messages_cut_long_ids_short() -> None:
    result = map_request(request(span(span_id=b"\x01" * 10_000)))
    assert result.rejected == 1 and len(result.errors[0]) < 120


def test_values_nested_too_deep_for_the_envelope_are_cut() -> None:
    # Only OTLP/JSON gets this deep: protobuf messages stop at upb's depth limit.
    deep = '{"arrayValue":{"values":[' * 300 + '{"stringValue":"leaf"}' + "]}}" * 300
    brackets = "[" * 300 + "]" * 300
    attributes = f'[{{"key":"deep","value":{deep}}},{{"key":"input.value","value":{{"stringValue":"{brackets}"}}}}]'
    body = (
        f'{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"{TRACE.hex()}",'
        f'"spanId":"{CHILD.hex()}","parentSpanId":"{ROOT.hex()}","name":"s",'
        f'"attributes":{attributes}}}]}}]}}]}}'
    )
    result = map_request(parse_request(body.encode(), "application/json"))
    [event] = orjson.loads(orjson.dumps(result.events))  # what the envelope does
    assert event["body"]["input"] == brackets  # parsing it would nest too deep: kept as text
    node = event["body"]["metadata"]["deep"]
    while isinstance(node, list):
        node = node[0]
    assert node == "[nested deeper than 128 levels]"


@pytest.mark.parametrize("key", ["gen_ai.request.model", "user.id", "session.id"])
def test_keys_past_the_edge_limit_reject_the_span(key: str) -> None:
    from pipeline.events import MAX_KEY_CHARS

    assert map_request(request(span({key: "k" * MAX_KEY_CHARS}, parent=ROOT))).rejected == 0
    result = map_request(request(span({key: "k" * (MAX_KEY_CHARS + 1)}, parent=ROOT)))
    assert result.rejected == 1 and result.events == []
    assert f"at most {MAX_KEY_CHARS} characters" in result.errors[0]


def test_cached_input_is_priced_once_and_langfuse_usage_is_kept_as_sent() -> None:
    # The GenAI conventions count the cached tokens inside gen_ai.usage.input_tokens.
    usage = one(
        {
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 10,
            "gen_ai.usage.cache_read.input_tokens": 800,
        }
    )["body"]["usageDetails"]
    assert usage == {"input": 200, "output": 10, "total": 1010, "input_cached_tokens": 800}
    prices = {"input": 2.5e-6, "input_cached_tokens": 1.25e-6, "output": 1e-5}
    gpt_4o = ModelPrice("m", None, "gpt-4o", "^gpt-4o$", prices)
    _, cost, _ = priced(usage, {}, gpt_4o)
    assert cost["total"] == pytest.approx(200 * 2.5e-6 + 800 * 1.25e-6 + 10 * 1e-5)  # not 1000 at the full price too
    # Langfuse's SDKs send their own dict, whose input is already without the cached part.
    # Its total, when it sends none, is the sum of every usage type, as Langfuse makes it.
    sent = {"input": 200, "output": 10, "input_cached_tokens": 800}
    usage = one({"langfuse.observation.usage_details": orjson.dumps(sent).decode()})["body"]["usageDetails"]
    assert usage == sent
    assert priced(usage, {}, None)[0] == {**sent, "total": 1010}
    # More cached than input (a count reported apart): never below zero.
    usage = one({"gen_ai.usage.input_tokens": 5, "gen_ai.usage.cache_read.input_tokens": 9})["body"]["usageDetails"]
    assert usage["input"] == 0 and usage["input_cached_tokens"] == 9


def test_an_index_in_another_script_s_digits_is_a_plain_attribute_not_a_lost_span() -> None:
    # str.isdigit() takes "²", which int() refuses: the span was rejected whole for one key.
    event = one({"llm.input_messages.².message.content": "x", "gen_ai.prompt.².content": "y"})
    assert event["body"]["traceId"]


# --- spans longer than an event may be ------------------------------------------------------


def test_a_span_longer_than_an_event_is_kept_with_its_longest_texts_cut() -> None:
    """A large-context call recorded twice over (OpenInference: input.value and the messages):
    cut to fit, it keeps its model, usage and the start of every text, and says what was cut."""
    prompt = "x" * 700_000
    attrs = {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o",
        "input.value": prompt,
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": prompt,
        "output.value": "short answer",
        "llm.token_count.prompt": 175_000,
        "llm.token_count.completion": 3,
    }
    req = request(span(attrs, span_id=ROOT, parent=b""))
    limit = 1_000_000
    assert req.ByteSize() > limit
    for parsed in (req, parse(req.SerializeToString())):  # OTLP/JSON's messages, and the wire's
        result = Slices(parsed, 0, limit).next()
        assert result.rejected == 0, result.errors
        [gen] = observations(result)
        body = gen["body"]
        assert gen["type"] == "generation-create" and body["model"] == "gpt-4o"
        assert body["usageDetails"]["input"] == 175_000 and body["output"] == "short answer"
        assert len(orjson.dumps(gen)) < limit
        cut = body["metadata"]["agenttrace.truncated"]
        assert cut == {"input.value": 700_000, "llm.input_messages.0.message.content": 700_000}
        content = body["input"][0]["content"]
        assert prompt.startswith(content) and 200_000 < len(content) < 300_000


def test_a_long_span_of_countless_attributes_is_still_refused_unmapped() -> None:
    attrs = {f"k{i}": "v" * 300 for i in range(5_000)}
    req = request(span(attrs))
    result = Slices(req, 0, 1_000_000).next()
    assert result.rejected == 1 and "larger than an event may be" in result.errors[0]
    assert result.events == []
