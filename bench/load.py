"""Load generator for the edge: posts Langfuse batches (or OTLP exports) at a target rate or
flat out, and prints accepted events/s and latency percentiles.

    .venv/bin/python bench/load.py --seconds 20 --concurrency 32 --batch 100
    .venv/bin/python bench/load.py --rate 20000 --seconds 20        # p99 at a given load
    .venv/bin/python bench/load.py --otlp --seconds 20
    .venv/bin/python bench/load.py --grpc --seconds 20                # the same spans over OTLP/gRPC

It makes its own project through the keys code path, so runs never mix. Bodies are prepared
before the clock starts, so the generator spends its CPU on sending, not on building JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agenttrace.settings import Settings
from sinks.postgres.client import Postgres
from sinks.postgres.keys import create_key


def generation_id(run: str, n: int, i: int, uuids: bool) -> str:
    """The run's prefix keeps a run's ids in one narrow range of the sorting key, which a
    lookup of them reads as one; the SDKs' uuid4s are spread over it, as these uuid5s are."""
    name = f"{run}-g{n}-{i}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name)) if uuids else name


_SENTENCE = "The agent looked the order up, found it shipped on Monday, and wrote the customer back. "


def chat(prompt_bytes: int = 0) -> tuple[list[dict[str, str]], dict[str, str]]:
    """A call's input messages and its answer: a one-line question by default, or a system
    prompt and a question of ~`prompt_bytes` of JSON together and an answer a quarter as long
    (chat products send 1-4 kB, agents with retrieved context tens)."""
    if not prompt_bytes:
        question = {"role": "user", "content": "What is the capital of France?"}
        return [question], {"role": "assistant", "content": "Paris."}

    def text(size: int) -> str:
        return (_SENTENCE * (size // len(_SENTENCE) + 1))[: max(size, 1)]

    overhead = 70  # the JSON around the two messages' contents
    system = text((prompt_bytes - overhead) * 3 // 4)
    question = text(prompt_bytes - overhead - len(system))
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    return messages, {"role": "assistant", "content": text(prompt_bytes // 4)}


def batch_body(run: str, n: int, batch: int, traces: int = 0, uuids: bool = False, prompt_bytes: int = 0) -> bytes:
    """A trace's create and `batch - 1` generations, realistic small payloads (`prompt_bytes`:
    chat()'s); ids unique per body. The trace is the body's own, or with `traces` one of that
    many, round robin: long traces that grow over the run, each body adding to one (an agent's
    run that lasts)."""
    messages, answer = chat(prompt_bytes)
    t = n % traces if traces else n
    trace_id = f"{run}-t{t}"
    events = [
        {
            "id": f"{run}-e{n}-0",
            "type": "trace-create",
            "timestamp": "2026-11-27T10:00:00.000001Z",
            "body": {
                "id": trace_id,
                "name": "agent-run",
                "userId": "user-1",
                "sessionId": f"s-{t % 100}",
                "tags": ["bench"],
                "metadata": {"env": "bench"},
            },
        }
    ]
    for i in range(1, batch):
        events.append(
            {
                "id": f"{run}-e{n}-{i}",
                "type": "generation-create",
                "timestamp": "2026-11-27T10:00:00.100000Z",
                "body": {
                    "id": generation_id(run, n, i, uuids),
                    "traceId": trace_id,
                    "name": "llm-call",
                    "model": "gpt-4o-mini",
                    "startTime": "2026-11-27T10:00:00.100000Z",
                    "endTime": "2026-11-27T10:00:00.900000Z",
                    "input": messages,
                    "output": answer,
                    "usage": {"input": 12, "output": 3},
                    "metadata": {"step": i},
                },
            }
        )
    return orjson.dumps({"batch": events})


def update_body(run: str, n: int, batch: int, traces: int = 0, uuids: bool = False) -> bytes:
    """The updates that end batch_body(run, n, ...)'s generations, as an SDK sends them when
    each call returns (its trace named, as Langfuse's SDKs do): end time, output, usage."""
    trace_id = f"{run}-t{n % traces if traces else n}"
    events = [
        {
            "id": f"{run}-u{n}-{i}",
            "type": "generation-update",
            "timestamp": "2026-11-27T10:00:01.000000Z",
            "body": {
                "id": generation_id(run, n, i, uuids),
                "traceId": trace_id,
                "endTime": "2026-11-27T10:00:01.000000Z",
                "output": {"role": "assistant", "content": "Paris is the capital of France."},
                "usage": {"output": 7},
            },
        }
        for i in range(1, batch)
    ]
    return orjson.dumps({"batch": events})


def otlp_body(
    run: str, n: int, batch: int, per_trace: int = 0, prompt_bytes: int = 0, propagated: bool = False
) -> bytes:
    """`batch` LLM-call spans under a root span, in one trace, or with `per_trace` in traces of
    that many spans each (an export of many small traces: records of that many events); with
    `prompt_bytes`, chat()'s messages and answer as the GenAI conventions' attributes; with
    `propagated`, a user and a session on every span, as the current Langfuse SDKs'
    `propagate_attributes` and OpenInference's `using_session` set them."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="bench")))
    ss = rs.scope_spans.add()
    per_trace = per_trace or batch
    texts = [("gen_ai.input.messages", '[{"role":"user","content":"hi"}]')]
    if prompt_bytes:
        messages, answer = chat(prompt_bytes)
        texts = [("gen_ai.input.messages", orjson.dumps(messages).decode())]
        texts.append(("gen_ai.output.messages", orjson.dumps([answer]).decode()))
    for j in range(batch):
        i = j % per_trace
        if i == 0:
            trace_id, root = uuid.uuid4().bytes, os.urandom(8)
        span = ss.spans.add()
        span.trace_id = trace_id
        span.span_id = root if i == 0 else os.urandom(8)
        if i:
            span.parent_span_id = root
        span.name = "chat gpt-4o-mini" if i else "agent-run"
        span.start_time_unix_nano = 1_795_000_000_000_000_000 + i * 1000
        span.end_time_unix_nano = span.start_time_unix_nano + 800_000_000
        if propagated:
            for k, v in (("user.id", "user-1"), ("session.id", f"s-{n % 100}")):
                span.attributes.append(KeyValue(key=k, value=AnyValue(string_value=v)))
        if i:
            for k, v in [("gen_ai.operation.name", "chat"), ("gen_ai.request.model", "gpt-4o-mini"), *texts]:
                span.attributes.append(KeyValue(key=k, value=AnyValue(string_value=v)))
            for k, v in (("gen_ai.usage.input_tokens", 12), ("gen_ai.usage.output_tokens", 3)):
                span.attributes.append(KeyValue(key=k, value=AnyValue(int_value=v)))
    return req.SerializeToString()


async def new_key() -> tuple[str, str, str]:
    pg = Postgres(Settings.from_env().postgres)
    await pg.start()
    try:
        key = await create_key(pg, f"bench-{uuid.uuid4().hex[:10]}")
    finally:
        await pg.close()
    return key.project_id, key.public_key, key.secret_key


async def run(args: argparse.Namespace) -> dict:
    project_id, pk, sk = args.key.split(":", 2) if args.key else await new_key()
    run_id = uuid.uuid4().hex[:8]
    if args.otlp or args.grpc:
        if args.traces or args.updates:
            raise SystemExit("--traces and --updates are for Langfuse batches")
        bodies = [
            otlp_body(run_id, n, args.batch, args.spans_per_trace, args.prompt_bytes, args.propagated)
            for n in range(args.bodies)
        ]
    else:
        bodies = [
            batch_body(run_id, n, args.batch, args.traces, args.uuids, args.prompt_bytes) for n in range(args.bodies)
        ]
        if args.updates:  # after every create: folded in later batches than their creates
            bodies += [update_body(run_id, n, args.batch, args.traces, args.uuids) for n in range(args.bodies)]
    url = args.url + ("/v1/traces" if args.otlp else "/api/public/ingestion")
    headers = {
        "Authorization": "Basic " + base64.b64encode(f"{pk}:{sk}".encode()).decode(),
        "Content-Type": "application/x-protobuf" if args.otlp else "application/json",
    }
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    sent = 0
    deadline = time.monotonic() + args.seconds
    interval = args.batch / args.rate if args.rate else 0.0
    next_at = time.monotonic()
    lock = asyncio.Lock()

    async def next_body() -> bytes | None:
        """The next body to send, at the target rate when one is set; None when all are sent."""
        nonlocal sent, next_at
        if interval:
            async with lock:
                at, next_at = next_at, max(next_at + interval, time.monotonic() - 1.0)
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        if sent >= len(bodies):
            return None
        sent += 1
        return bodies[sent - 1]

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline and (body := await next_body()) is not None:
            t0 = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as r:
                await r.read()
                statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
            latencies.append(time.perf_counter() - t0)

    async def grpc_worker(export: Any) -> None:
        metadata = (("authorization", headers["Authorization"]),)
        while time.monotonic() < deadline and (body := await next_body()) is not None:
            t0 = time.perf_counter()
            try:
                await export(body, metadata=metadata, timeout=30)
                code = "OK"
            except grpc.aio.AioRpcError as exc:
                code = exc.code().name
            statuses[code] = statuses.get(code, 0) + 1
            latencies.append(time.perf_counter() - t0)

    start = time.monotonic()
    if args.grpc:
        # RPCs share a few HTTP/2 connections, as exporters do (one channel each); a channel per
        # 8 workers keeps the client off a single connection's flow-control window.
        channels = [grpc.aio.insecure_channel(args.grpc_target) for _ in range(max(1, args.concurrency // 8))]
        start = time.monotonic()
        try:
            exports = [c.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export") for c in channels]
            await asyncio.gather(*(grpc_worker(exports[i % len(exports)]) for i in range(args.concurrency)))
        finally:
            for c in channels:
                await c.close()
    else:
        conn = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(connector=conn) as session:
            await asyncio.gather(*(worker(session) for _ in range(args.concurrency)))
    elapsed = time.monotonic() - start
    ok = statuses.get("207", 0) + statuses.get("200", 0) + statuses.get("OK", 0)
    latencies.sort()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 2 else [0.0] * 99
    return {
        "project_id": project_id,
        "requests": len(latencies),
        "statuses": statuses,
        "events": ok * args.batch,
        "events_per_s": round(ok * args.batch / elapsed),
        "p50_ms": round(q[49] * 1000, 1),
        "p99_ms": round(q[98] * 1000, 1),
        "seconds": round(elapsed, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--batch", type=int, default=100, help="events per request")
    p.add_argument("--rate", type=float, default=0, help="target events/s (0: flat out)")
    p.add_argument("--bodies", type=int, default=20000, help="distinct request bodies prepared")
    p.add_argument("--otlp", action="store_true", help="OTLP/HTTP protobuf instead of batch JSON")
    p.add_argument("--traces", type=int, default=0, help="bodies add to this many traces, round robin (0: one each)")
    p.add_argument("--updates", action="store_true", help="then a body updating each body's generations")
    p.add_argument("--spans-per-trace", type=int, default=0, help="--otlp: traces of this many spans (0: one a body)")
    p.add_argument("--propagated", action="store_true", help="--otlp: a user and a session on every span")
    p.add_argument("--grpc", action="store_true", help="the --otlp spans over OTLP/gRPC (TraceService/Export)")
    p.add_argument("--uuids", action="store_true", help="generation ids spread over the key space, as the SDKs'")
    p.add_argument(
        "--prompt-bytes", type=int, default=0, help="each call's messages this long, its answer a quarter (0: a line)"
    )
    p.add_argument("--key", default="", metavar="PROJECT:PUBLIC:SECRET", help="an existing project (else a new one)")
    p.add_argument("--grpc-target", default="127.0.0.1:4317", help="HOST:PORT of the gRPC listener")
    args = p.parse_args()
    result = asyncio.run(run(args))
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
