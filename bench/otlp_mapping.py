"""Spans per second for decode + map of a realistic 100-span OTLP/HTTP protobuf export.

The request looks like an agent run: per trace one agent root, LLM calls with GenAI usage,
parameters and JSON messages, tool calls, and a few plain HTTP client spans; ten traces.
Prints the median of 5 runs for protobuf, and for the same request as OTLP/JSON.

    PYTHONPATH=. python bench/otlp_mapping.py
"""

from __future__ import annotations

import os
import statistics
import time

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from ingest.otlp import map_request, parse_request

SPANS = 100
RUNS = 5
ROUNDS = 200  # requests per run


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        v = AnyValue(bool_value=value)
    elif isinstance(value, int):
        v = AnyValue(int_value=value)
    elif isinstance(value, float):
        v = AnyValue(double_value=value)
    else:
        v = AnyValue(string_value=str(value))
    return KeyValue(key=key, value=v)


def _span(trace_id: bytes, parent: bytes, name: str, attrs: dict, t0: int, error: bool = False):
    span = Span(
        trace_id=trace_id,
        span_id=os.urandom(8),
        parent_span_id=parent,
        name=name,
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=t0,
        end_time_unix_nano=t0 + 850_000_000,
        attributes=[_kv(k, v) for k, v in attrs.items()],
    )
    if error:
        span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message="tool failed"))
    return span


def build_request() -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(
        _kv(k, v)
        for k, v in {
            "service.name": "support-agent",
            "service.version": "1.4.2",
            "deployment.environment.name": "production",
            "telemetry.sdk.name": "opentelemetry",
            "telemetry.sdk.language": "python",
            "telemetry.sdk.version": "1.27.0",
            "host.name": "worker-7",
        }.items()
    )
    ss = rs.scope_spans.add()
    ss.scope.name, ss.scope.version = "opentelemetry.instrumentation.openai_v2", "2.0b0"
    t0 = 1_700_000_000_000_000_000
    messages = orjson.dumps(
        [
            {"role": "system", "parts": [{"type": "text", "content": "You are a support agent."}]},
            {"role": "user", "parts": [{"type": "text", "content": "Where is my order 1234?"}]},
        ]
    ).decode()
    answer = orjson.dumps(
        [{"role": "assistant", "parts": [{"type": "text", "content": "It ships tomorrow."}], "finish_reason": "stop"}]
    ).decode()
    while len(ss.spans) < SPANS:
        trace_id = os.urandom(16)
        root = _span(
            trace_id,
            b"",
            "invoke_agent support",
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "support",
                "user.id": "user-42",
                "session.id": "sess-9",
                "langfuse.trace.tags": "prod,support",
            },
            t0,
        )
        ss.spans.append(root)
        for i in range(9):
            if len(ss.spans) >= SPANS:
                break
            if i % 3 == 0:
                attrs = {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.response.model": "gpt-4o-2024-08-06",
                    "gen_ai.request.temperature": 0.2,
                    "gen_ai.request.max_tokens": 512,
                    "gen_ai.usage.input_tokens": 812,
                    "gen_ai.usage.output_tokens": 96,
                    "gen_ai.usage.cache_read.input_tokens": 512,
                    "gen_ai.response.id": "chatcmpl-123",
                    "gen_ai.response.finish_reasons": "stop",
                    "gen_ai.input.messages": messages,
                    "gen_ai.output.messages": answer,
                    "server.address": "api.openai.com",
                }
                ss.spans.append(_span(trace_id, root.span_id, "chat gpt-4o", attrs, t0 + i))
            elif i % 3 == 1:
                attrs = {
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "orders",
                    "gen_ai.tool.call.arguments": '{"order": 1234}',
                    "gen_ai.tool.call.result": '{"status": "shipped"}',
                }
                ss.spans.append(_span(trace_id, root.span_id, "execute_tool orders", attrs, t0 + i, error=i == 7))
            else:
                attrs = {
                    "http.request.method": "GET",
                    "url.full": "https://orders/api/1234",
                    "http.response.status_code": 200,
                    "server.port": 443,
                }
                ss.spans.append(_span(trace_id, root.span_id, "GET", attrs, t0 + i))
    return req


def _measure(body: bytes, content_type: str) -> float:
    rates = []
    for _ in range(RUNS):
        start = time.perf_counter()
        for _ in range(ROUNDS):
            result = map_request(parse_request(body, content_type))
        elapsed = time.perf_counter() - start
        assert result.rejected == 0
        rates.append(SPANS * ROUNDS / elapsed)
    return statistics.median(rates)


def main() -> None:
    req = build_request()
    proto = req.SerializeToString()
    as_json = json_format.MessageToDict(req)
    for rs in as_json["resourceSpans"]:  # OTLP/JSON ids are hex
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                for k in ("traceId", "spanId", "parentSpanId"):
                    if k in s:
                        s[k] = __import__("base64").b64decode(s[k]).hex()
    body_json = orjson.dumps(as_json)
    events = len(map_request(req).events)
    print(f"request: {SPANS} spans, {events} events, {len(proto)} bytes protobuf, {len(body_json)} bytes JSON")
    rate = _measure(proto, "application/x-protobuf")
    print(f"protobuf decode+map: {rate:,.0f} spans/s ({1e6 / rate:.1f} µs/span), median of {RUNS}")
    rate = _measure(body_json, "application/json")
    print(f"OTLP/JSON decode+map: {rate:,.0f} spans/s ({1e6 / rate:.1f} µs/span), median of {RUNS}")


if __name__ == "__main__":
    main()
