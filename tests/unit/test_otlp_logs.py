"""GenAI content in OTLP log records (ingest/otlp/logs.py): which records are kept, how a span's
records become its update, and what a hostile export costs."""

from __future__ import annotations

import base64
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from ingest.encoding import DecodeError
from ingest.otlp import logs
from ingest.otlp.logs import encode_logs_response, map_logs, parse_logs
from pipeline.envelope import partition_key

PROTOBUF, JSON = "application/x-protobuf", "application/json"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "otlp"
TRACE, SPAN = bytes.fromhex("0af7651916cd43dd8448eb211c80319c"), bytes.fromhex("b7ad6b7169203331")
OTHER_SPAN = bytes.fromhex("00f067aa0ba902b7")
T0 = 1_795_000_000_000_000_000  # ns


def value(v: Any) -> AnyValue:
    if isinstance(v, dict):
        return AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=value(x)) for k, x in v.items()]))
    if isinstance(v, list):
        return AnyValue(array_value=ArrayValue(values=[value(x) for x in v]))
    if isinstance(v, int):
        return AnyValue(int_value=v)
    return AnyValue(string_value=v)


def request(*records: dict[str, Any]) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    scope = req.resource_logs.add().scope_logs.add()
    for r in records:
        record = scope.log_records.add()
        if "event_name" in r:
            record.event_name = r["event_name"]
        record.trace_id, record.span_id = r.get("trace_id", TRACE), r.get("span_id", SPAN)
        record.time_unix_nano = r.get("time", T0)
        if r.get("body") is not None:
            record.body.CopyFrom(value(r["body"]))
        for k, v in r.get("attributes", {"gen_ai.system": "openai"}).items():
            record.attributes.append(KeyValue(key=k, value=value(v)))
    return req


def as_json(req: ExportLogsServiceRequest) -> bytes:
    doc = json_format.MessageToDict(req)
    for resource in doc["resourceLogs"]:
        for scope in resource["scopeLogs"]:
            for record in scope["logRecords"]:
                for k in ("traceId", "spanId"):
                    if k in record:
                        record[k] = base64.b64decode(record[k]).hex()
    return orjson.dumps(doc)


def mapped(req: ExportLogsServiceRequest) -> Any:
    """The mapping of both encodings, which must agree."""
    binary = map_logs(parse_logs(req.SerializeToString(), PROTOBUF), now_us=1)
    text = map_logs(parse_logs(as_json(req), JSON), now_us=1)
    assert (binary.events, binary.rejected, binary.errors) == (text.events, text.rejected, text.errors)
    return binary


CHAT = (
    {"event_name": "gen_ai.system.message", "body": {"content": "Answer briefly."}},
    {"event_name": "gen_ai.user.message", "body": {"content": "Weather in Lima?"}, "time": T0 + 1000},
    {
        "event_name": "gen_ai.choice",
        "body": {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Cloudy."}},
        "time": T0 + 5_000_000,
    },
)


def test_a_calls_message_records_become_one_update_of_its_span() -> None:
    result = mapped(request(*CHAT))
    assert result.rejected == 0 and result.errors == []
    assert result.events == [
        {
            "id": "b7ad6b7169203331-log-1795000000005000",
            "type": "span-update",
            "timestamp": 1_795_000_000_005_000,  # the latest record's: it outranks none of the span's fields
            "body": {
                "id": "b7ad6b7169203331",  # no traceId: merged with the span's create in either order
                "contextTraceId": "0af7651916cd43dd8448eb211c80319c",  # only its partition: its trace's
                "input": [
                    {"role": "system", "content": "Answer briefly."},
                    {"role": "user", "content": "Weather in Lima?"},
                ],
                "output": {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Cloudy."}},
                # The part of the input this export held: its first message's time, a checksum, a count.
                "inputPart": [f"{T0:020d}-{zlib.crc32(orjson.dumps(result.events[0]['body']['input'])):08x}", 2],
            },
        }
    ]


def test_a_call_split_over_two_exports_gives_two_parts_of_its_input() -> None:
    system, user, choice = CHAT[0], CHAT[1], CHAT[-1]
    first, second = mapped(request(system)).events, mapped(request(user, choice)).events
    (a,), (b,) = first, second
    assert a["body"]["input"] == [{"role": "system", "content": "Answer briefly."}]
    assert b["body"]["input"] == [{"role": "user", "content": "Weather in Lima?"}]
    key_a, key_b = a["body"]["inputPart"][0], b["body"]["inputPart"][0]
    assert key_a < key_b and a["body"]["inputPart"][1] == b["body"]["inputPart"][1] == 1


def test_records_of_two_spans_and_the_event_name_as_an_attribute() -> None:
    # Before LogRecord.event_name, the Events API named a record by its `event.name` attribute.
    older = {"event_name": "", "attributes": {"event.name": "gen_ai.user.message"}, "body": {"content": "Hi"}}
    result = mapped(request({**older, "span_id": OTHER_SPAN}, *CHAT))
    assert [e["body"]["id"] for e in result.events] == ["00f067aa0ba902b7", "b7ad6b7169203331"]
    assert result.events[0]["body"]["input"] == [{"role": "user", "content": "Hi"}]


def test_the_latest_conventions_operation_details_with_system_instructions() -> None:
    details = {
        "event_name": "gen_ai.client.inference.operation.details",
        "attributes": {
            "gen_ai.operation.name": "chat",
            "gen_ai.system_instructions": [{"type": "text", "content": "Answer briefly."}],
            "gen_ai.input.messages": orjson.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": "Weather in Lima?"}]}]
            ).decode(),
            "gen_ai.output.messages": [
                {"role": "assistant", "parts": [{"type": "text", "content": "Cloudy."}], "finish_reason": "stop"}
            ],
        },
    }
    [event] = mapped(request(details)).events
    assert event["body"]["input"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Lima?"}]},
    ]
    assert event["body"]["output"] == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Cloudy."}], "finish_reason": "stop"}
    ]
    assert "inputPart" not in event["body"]  # one record holds the call's whole input


def test_records_without_content_make_no_update() -> None:
    # Content capture off: every message still has its record, with the role or finish reason only.
    result = mapped(
        request(
            {"event_name": "gen_ai.user.message", "body": None},
            {"event_name": "gen_ai.tool.message", "body": {"id": "call-1"}},
            {"event_name": "gen_ai.choice", "body": {"index": 0, "finish_reason": "stop", "message": {"role": "x"}}},
        )
    )
    assert (result.events, result.rejected) == ([], 0)


def test_other_records_and_records_without_a_span_are_rejected_with_reasons() -> None:
    result = mapped(
        request(
            {"event_name": "", "body": "GET /health 200", "attributes": {}},
            {"event_name": "app.started", "body": {"content": "x"}},
            {**CHAT[1], "span_id": bytes(8)},
            {**CHAT[1], "trace_id": b"\x01"},
            CHAT[1],
        )
    )
    assert len(result.events) == 1 and result.rejected == 4
    assert result.errors[0].startswith("2 log records are not GenAI content events (")
    assert result.errors[1] == "2 GenAI content log records have no valid trace and span id to be kept on"


def test_malformed_protobuf_is_refused_and_a_bad_body_rejects_its_records_alone() -> None:
    with pytest.raises(DecodeError):
        parse_logs(request(*CHAT).SerializeToString()[:-3], PROTOBUF)
    with pytest.raises(DecodeError):
        parse_logs(b"[1, 2]", JSON)
    # A body is read only when its span's update is built: bad UTF-8 in it rejects that span's records.
    good = request(CHAT[1]).SerializeToString()
    bad = good.replace(b"Weather in Lima?", b"Weather in Lim\xff?")
    req = ExportLogsServiceRequest.FromString(request({**CHAT[1], "span_id": OTHER_SPAN}).SerializeToString())
    both = bad + req.SerializeToString()
    result = map_logs(parse_logs(both, PROTOBUF), now_us=1)
    assert [e["body"]["id"] for e in result.events] == ["00f067aa0ba902b7"] and result.rejected == 1
    assert "malformed protobuf" in result.errors[0]


def test_a_body_of_tiny_records_keeps_no_object_per_record() -> None:
    # 2 bytes a record (an empty LogRecord): counted, never an object each.
    scope_logs = b"\x12\x00" * 500_000
    resource_logs = b"\x12" + _varint(len(scope_logs)) + scope_logs
    body = b"\x0a" + _varint(len(resource_logs)) + resource_logs
    tracemalloc.start()
    try:
        parsed = parse_logs(body, PROTOBUF)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (len(parsed.records), parsed.skipped) == (0, 500_000)
    assert peak < 1_000_000


def test_the_answer_names_the_rejected_records_in_either_encoding() -> None:
    assert encode_logs_response(0, "", PROTOBUF) == b""
    answer = ExportLogsServiceResponse.FromString(encode_logs_response(3, "why", PROTOBUF))
    assert (answer.partial_success.rejected_log_records, answer.partial_success.error_message) == (3, "why")
    assert orjson.loads(encode_logs_response(3, "why", JSON)) == {
        "partialSuccess": {"rejectedLogRecords": "3", "errorMessage": "why"}
    }
    assert encode_logs_response(0, "", JSON) == b"{}"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _fixture(name: str) -> Any:
    return map_logs(parse_logs((FIXTURES / name).read_bytes(), JSON), now_us=1)


def test_recorded_openai_v2_content_events_on_the_generations_of_its_spans() -> None:
    from tests.unit.test_otlp_instrumentations import mapped as spans_of

    result = _fixture("openai_v2.logs.json")
    assert (result.rejected, len(result.events)) == (0, 2)
    generations, _ = spans_of("openai_v2")
    for event in result.events:  # each an update of a generation the spans' export holds, without content
        span = generations[event["body"]["id"]]
        assert span["type"] == "generation-create" and "input" not in span["body"]
        assert "traceId" not in event["body"]
        assert event["body"]["contextTraceId"] == span["body"]["traceId"]
        assert partition_key("p", event["type"], event["body"], event["id"]) == f"p:{span['body']['traceId']}".encode()
    first, second = (event["body"] for event in result.events)
    assert first["input"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Weather in Lima?"},
    ]
    call = {"id": "call-1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Lima"}'}}
    assert first["output"] == {
        "index": 0,
        "finish_reason": "tool_calls",
        "message": {"role": "assistant", "tool_calls": [call]},
    }
    assert second["input"][2:] == [
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "content": {"sky": "cloudy"}, "id": "call-1"},
    ]
    assert second["output"]["message"] == {"role": "assistant", "content": "Cloudy in Lima."}


def test_recorded_openai_v2_in_the_latest_conventions() -> None:
    from tests.unit.test_otlp_instrumentations import mapped as spans_of

    result = _fixture("openai_v2_latest.logs.json")
    assert (result.rejected, len(result.events)) == (0, 2)
    generations, _ = spans_of("openai_v2_latest")
    assert {e["body"]["id"] for e in result.events} <= set(generations)
    second = result.events[1]["body"]
    assert second["input"][-1] == {
        "role": "tool",
        "parts": [{"response": '{"sky": "cloudy"}', "id": "call-1", "type": "tool_call_response"}],
    }
    assert second["output"] == [
        {"role": "assistant", "parts": [{"content": "Cloudy in Lima.", "type": "text"}], "finish_reason": "stop"}
    ]


def test_records_past_the_cap_and_spans_past_an_events_limit_are_rejected_unread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logs, "MAX_RECORDS", 2)
    big = {"event_name": "gen_ai.user.message", "body": {"content": "x" * 2_000}, "span_id": OTHER_SPAN}
    req = request(CHAT[0], big, CHAT[1], CHAT[2])  # the cap keeps the first two
    for data, kind in ((req.SerializeToString(), PROTOBUF), (as_json(req), JSON)):
        result = map_logs(parse_logs(data, kind), now_us=1, max_event_bytes=1_000)
        assert result.rejected == 3, result.errors
        assert [e["body"]["input"] for e in result.events] == [[{"role": "system", "content": "Answer briefly."}]]
        assert result.errors == [
            "2 GenAI content log records past the first 2 of one export",
            "1 GenAI content log records of spans whose content exceeds 1000 bytes",
        ]


def test_messages_as_json_text_and_a_text_prompt_through_pythons_logging() -> None:
    # Semantic Kernel logs each message's JSON as the record's text, named by `event.name`.
    def logged(name: str, text: str) -> dict[str, Any]:
        return {"event_name": "", "attributes": {"event.name": name, "gen_ai.system": "openai"}, "body": text}

    user = orjson.dumps({"role": "user", "content": "Weather in Lima?"}).decode()
    choice = orjson.dumps({"message": {"role": "assistant", "content": "Cloudy."}, "finish_reason": "stop"}).decode()
    [event] = mapped(request(logged("gen_ai.user.message", user), logged("gen_ai.choice", choice))).events
    assert event["body"]["input"] == [{"role": "user", "content": "Weather in Lima?"}]
    assert event["body"]["output"] == {"message": {"role": "assistant", "content": "Cloudy."}, "finish_reason": "stop"}
    # A text that is not a message's JSON is the message's content; a text completion's prompt is the input.
    [event] = mapped(request(logged("gen_ai.user.message", "{not json"))).events
    assert event["body"]["input"] == [{"role": "user", "content": "{not json"}]
    [event] = mapped(request(logged("gen_ai.prompt", "Say hi."))).events
    assert event["body"]["input"] == "Say hi."


def test_recorded_semantic_kernel_messages_logged_through_pythons_logging() -> None:
    from tests.unit.test_otlp_instrumentations import mapped as spans_of

    result = _fixture("semantic_kernel_logs.logs.json")
    # Its own INFO line ("OpenAI usage: ...") passes SK's logging filter too: not content.
    assert result.rejected == 1 and result.errors[0].startswith("1 log records are not GenAI content events")
    [event] = result.events
    generations, _ = spans_of("semantic_kernel_logs")
    assert generations[event["body"]["id"]]["body"]["usageDetails"] == {"input": 25, "output": 5, "total": 30}
    assert event["body"]["input"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Weather in Lima?"},
    ]
    assert event["body"]["output"] == {
        "message": {"role": "assistant", "content": "Cloudy in Lima."},
        "finish_reason": "stop",
    }


def test_recorded_openlit_operation_details_without_a_time_of_their_own() -> None:
    """OpenLIT's records: the messages as attributes in the parts shape, an empty string body,
    and only an observed time."""
    from tests.unit.test_otlp_instrumentations import mapped as spans_of

    result = _fixture("openlit.logs.json")
    assert (result.rejected, len(result.events)) == (0, 2)
    generations, _ = spans_of("openlit")
    first, second = result.events
    assert first["timestamp"] == 1_796_658_305_241_576  # its observedTimeUnixNano
    assert first["body"]["contextTraceId"] == generations[first["body"]["id"]]["body"]["traceId"]
    assert [m["role"] for m in first["body"]["input"]] == ["system", "user"]  # the instructions once
    assert second["body"]["input"][-1]["parts"][0]["type"] == "tool_call_response"
    assert second["body"]["output"][0]["parts"] == [{"type": "text", "content": "Cloudy in Lima."}]


def test_recorded_google_genai_operation_details() -> None:
    """The official Google Gen AI instrumentation's record (SPAN_AND_EVENT): the same messages as
    its span, as structured attributes, with an empty body."""
    result = _fixture("google_genai.logs.json")
    assert (result.rejected, len(result.events)) == (0, 1)
    [event] = result.events
    assert event["body"]["id"] == "f085f7022af7a8b5"
    assert event["body"]["input"][0] == {"role": "system", "content": "Answer briefly."}
    assert event["body"]["output"][0]["parts"] == [{"content": "Cloudy in Lima.", "type": "text"}]


def test_recorded_agent_framework_messages_are_parts_its_spans_own_input_outranks() -> None:
    """Microsoft Agent Framework sends each call's messages on its span and again as records: the
    records' input is a part (pipeline/fold.py add_part), below the span's own input."""
    result = map_logs(parse_logs((FIXTURES / "agent_framework.logs.json").read_bytes(), JSON), now_us=1)
    assert result.rejected == 0 and len(result.events) == 2
    for event in result.events:
        key, count = event["body"]["inputPart"]
        assert count == len(event["body"]["input"]) and len(key) == 29
