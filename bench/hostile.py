"""Hostile load against the edge, then its memory: 100 bodies of 6 MiB, 100 gzip bombs, 100
batches of 10,000 events, 100 OTLP exports of one span with ~400k tiny attributes (5 MB of
protobuf that parse and map into ~15 times their size), 100 of ~100k tiny spans (~35 times),
100 batches whose metadata holds ~480k tiny values (~25 times), 100 OTLP log exports of ~80k
tiny GenAI content records, 100 of content records whose bodies hold ~75k tiny values each, and
10 OTLP exports of 33 MB of tiny spans (taken in pieces), as protobuf and as JSON, all at once per kind; 100 OTLP/gRPC
exports at once (of 4.9 and 9 MiB); then 20 media uploads of 32 MiB through the media API, half
of them not the bytes declared (refused once read); then `--count` reads at once of the largest
prompts (1 MiB: a text, a chat of ~30k messages, a chat resolving a reference), and as many of a
page of 50 dataset items of 256 KiB each and of single items; reports the answers and each process's RSS.

    .venv/bin/python bench/hostile.py --api http://127.0.0.1:8080 --runs 3 \
        --app worker=8081 --app worker_2=8083 --app worker_postgres=8082

Per kind it prints the api's peak RSS during the wave and its RSS once settled (--settle-s
after the last answer, time for the api's periodic malloc_trim), then, over --runs, the median
of each. `--app NAME=PORT` adds processes (the workers) whose RSS is read at the start and end
of each run and sampled meanwhile. Pids are found by listening port (ss -ltnp, else
/proc/net/tcp), so run it on the api's host. Budgets: api 150 MB, others 300 MB, after the
load (exit status 1 when a median misses one).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import hashlib
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agenttrace.settings import Settings
from sinks.postgres.client import Postgres
from sinks.postgres.keys import create_key

BUDGET_MB = 150
WORKER_BUDGET_MB = 300


def pid_of(port: int) -> int:
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True).stdout
    found = re.search(r"pid=(\d+)", out)
    if found:
        return int(found.group(1))
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
            inode = fields[9]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if any(os.readlink(fd) == f"socket:[{inode}]" for fd in (proc / "fd").iterdir()):
                    return int(proc.name)
            except OSError:
                continue
    raise SystemExit(f"no process listens on port {port}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def batch(n: int) -> bytes:
    trace = f"hostile-{uuid.uuid4()}"
    events = [
        {
            "id": f"{trace}-{i}",
            "type": "span-create" if i else "trace-create",
            "timestamp": "2026-11-27T10:00:00Z",
            "body": {"id": f"{trace}-{i}" if i else trace, "traceId": trace, "name": f"step {i}"},
        }
        for i in range(n)
    ]
    return orjson.dumps({"batch": events})


def _field(number: int, payload: bytes) -> bytes:
    """`payload` as the length-delimited protobuf field `number`."""
    size, n = bytearray(), len(payload)
    while True:
        size.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes([number << 3 | 2]) + bytes(size) + payload


def attribute_bomb(size: int) -> bytes:
    """An OTLP export request of one span whose attributes (short keys, int values) fill `size`
    bytes: each ~12 bytes of protobuf, a metadata entry once mapped."""
    trace, span = os.urandom(16), os.urandom(8)
    head = _field(1, trace) + _field(2, span) + _field(5, b"bomb")
    head += (
        b"\x39"
        + (1_795_000_000 * 10**9).to_bytes(8, "little")
        + b"\x41"
        + (1_795_000_001 * 10**9).to_bytes(8, "little")
    )
    attrs, used, i = [], len(head), 0
    while used < size:
        attr = _field(9, _field(1, f"{i:x}".encode()) + _field(2, b"\x18\x01"))  # key, int_value 1
        attrs.append(attr)
        used, i = used + len(attr), i + 1
    return _field(1, _field(2, _field(2, head + b"".join(attrs))))  # ResourceSpans > ScopeSpans > Span


def tiny_spans(size: int) -> bytes:
    """An OTLP export request of root spans of a few bytes each, each its own trace, filling
    `size`: ~100k spans in 5 MB, two events each once mapped (the span and its trace)."""
    times = (
        b"\x39"
        + (1_795_000_000 * 10**9).to_bytes(8, "little")
        + b"\x41"
        + (1_795_000_001 * 10**9).to_bytes(8, "little")
    )
    spans, used = [], 0
    while used < size:
        span = _field(2, _field(1, os.urandom(16)) + _field(2, os.urandom(8)) + _field(5, b"s") + times)
        spans.append(span)
        used += len(span)
    return _field(1, _field(2, b"".join(spans)))


def tiny_json_spans(size: int) -> bytes:
    """tiny_spans as OTLP/JSON (~290 bytes a span, ~110k in 32 MB)."""
    span = (
        '{"traceId":"%s","spanId":"%s","name":"s",'
        '"startTimeUnixNano":"1795000000000000000","endTimeUnixNano":"1795000001000000000"}'
    )
    spans, used = [], 0
    while used < size - 64:
        item = span % (os.urandom(16).hex(), os.urandom(8).hex())
        spans.append(item)
        used += len(item) + 1
    return ('{"resourceSpans":[{"scopeSpans":[{"spans":[' + ",".join(spans) + "]}]}]}").encode()


def tiny_log_records(size: int) -> bytes:
    """An OTLP log export of GenAI content records of a few bytes each (`gen_ai.user.message`,
    "hi"), each on a span of its own, filling `size`: ~80k in 5 MB, of which the edge reads the
    first 20,000 (ingest/otlp/logs.py MAX_RECORDS), each an update of its span."""
    name = _field(12, b"gen_ai.user.message")
    body = _field(5, _field(1, b"hi"))
    records, used = [], 0
    while used < size:
        record = _field(2, name + _field(9, os.urandom(16)) + _field(10, os.urandom(8)) + body)
        records.append(record)
        used += len(record)
    return _field(1, _field(2, b"".join(records)))


def log_value_bombs(size: int, per_record: int) -> bytes:
    """An OTLP log export of GenAI content records whose bodies are key-value lists of tiny
    entries, ~`per_record` bytes each (read whole: under the limit of an event), filling `size`."""
    name = _field(12, b"gen_ai.user.message")
    records, used = [], 0
    while used + per_record + 64 < size:
        # A content key makes each an update of its span, published: ~0.7 MB of JSON.
        entries, length, i = [_field(1, _field(1, b"content") + _field(2, _field(1, b"x")))], 0, 0
        while length < per_record:
            entry = _field(1, _field(1, f"{i:x}".encode()) + _field(2, b"\x18\x01"))  # key, int_value 1
            entries.append(entry)
            length, i = length + len(entry), i + 1
        body = _field(5, _field(6, b"".join(entries)))
        record = _field(2, name + _field(9, os.urandom(16)) + _field(10, os.urandom(8)) + body)
        records.append(record)
        used += len(record)
    return _field(1, _field(2, b"".join(records)))


def tiny_values(size: int) -> bytes:
    """A batch of one trace whose metadata has members of a few bytes each filling `size`:
    ~475k values in 5 MB, which parse into ~25 times the body's length."""
    members = ",".join(f'"{i:x}":1' for i in range(size // 11))
    event = {"id": str(uuid.uuid4()), "type": "trace-create", "body": {"id": str(uuid.uuid4()), "metadata": "M"}}
    return orjson.dumps({"batch": [event]}).replace(b'"M"', b"{" + members.encode() + b"}")


async def wave(http: aiohttp.ClientSession, url: str, bodies: list[tuple[bytes, dict[str, str]]]) -> Counter[str]:
    seen: Counter[str] = Counter()

    async def one(body: bytes, headers: dict[str, str]) -> None:
        try:
            async with http.post(url, data=body, headers=headers) as r:
                await r.read()
                seen[str(r.status)] += 1
        except aiohttp.ClientError as exc:
            seen[type(exc).__name__] += 1

    await asyncio.gather(*(one(b, h) for b, h in bodies))
    return seen


MEDIA_BYTES = 32 * 1024 * 1024


async def grpc_wave(target: str, authorization: str, count: int) -> Counter[str]:
    """`count` TraceService/Export calls at once over 10 connections, of messages of 4.9 MiB
    (within the limit: grpc core holds each whole before the method runs) and of 9 MiB (past
    it), alternately; the codes they end with."""
    import grpc  # here: the other waves run without it

    within = _field(1, b"\x00" * (4900 * 1024))  # a ResourceSpans of zeros: refused once read
    past = _field(1, b"\x00" * (9 * 1024 * 1024))
    options = [("grpc.max_send_message_length", 64 << 20)]
    channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(10)]
    seen: Counter[str] = Counter()

    async def one(i: int) -> None:
        call = channels[i % 10].unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        try:
            await call(within if i % 2 else past, metadata=(("authorization", authorization),), timeout=60)
            seen["OK"] += 1
        except grpc.aio.AioRpcError as exc:
            seen[exc.code().name] += 1

    try:
        await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        for channel in channels:
            await channel.close()
    return seen


async def media_wave(http: aiohttp.ClientSession, api: str, headers: dict[str, str], count: int) -> Counter[str]:
    """`count` distinct media declared and uploaded at once; every other upload's last byte
    altered (the edge reads it whole, then refuses it for its hash)."""
    seen: Counter[str] = Counter()

    async def one(i: int) -> None:
        content = os.urandom(MEDIA_BYTES)
        sha = base64.b64encode(hashlib.sha256(content).digest()).decode()
        declared = {"traceId": f"hostile-{uuid.uuid4()}", "contentType": "application/octet-stream",
                    "contentLength": MEDIA_BYTES, "sha256Hash": sha, "field": "input"}  # fmt: skip
        try:
            async with http.post(f"{api}/api/public/media", json=declared, headers=headers) as r:
                doc = await r.json()
            body = content if i % 2 else content[:-1] + bytes([content[-1] ^ 1])
            del content
            async with http.put(doc["uploadUrl"], data=body) as r:
                await r.read()
                seen[f"PUT {r.status}"] += 1
        except aiohttp.ClientError as exc:
            seen[type(exc).__name__] += 1

    await asyncio.gather(*(one(i) for i in range(count)))
    return seen


async def prompt_wave(http: aiohttp.ClientSession, api: str, headers: dict[str, str], count: int) -> Counter[str]:
    """Three prompts of the largest size stored, then `count` concurrent reads of each."""
    run = uuid.uuid4().hex[:8]
    url = f"{api}/api/public/v2/prompts"
    fill = [{"role": "user", "content": f"m{i}"} for i in range(30_000)]
    docs = [
        {"name": f"hostile-{run}-small", "prompt": "hi"},
        {"name": f"hostile-{run}-text", "prompt": "x" * 1_000_000},
        {"name": f"hostile-{run}-chat", "type": "chat", "prompt": fill},
        {
            "name": f"hostile-{run}-refs",
            "type": "chat",
            "prompt": [
                *fill[:22_000],
                {"role": "user", "content": f"@@@langfusePrompt:name=hostile-{run}-small|label=production@@@"},
            ],
        },
    ]
    for doc in docs:
        async with http.post(url, data=orjson.dumps({**doc, "labels": ["production"]}), headers=headers) as r:
            assert r.status == 201, await r.text()
    seen: Counter[str] = Counter()

    async def read(name: str) -> None:
        async with http.get(f"{url}/{name}", headers=headers) as r:
            await r.read()
            seen[f"GET {r.status}"] += 1

    await asyncio.gather(*(read(doc["name"]) for doc in docs[1:] for _ in range(count)))
    return seen


async def dataset_wave(http: aiohttp.ClientSession, api: str, headers: dict[str, str], count: int) -> Counter[str]:
    """A dataset of 100 items of the largest size stored (256 KiB), then `count` concurrent reads
    of its first page of 50 (12.5 MB of documents) and of its items one by one."""
    run = uuid.uuid4().hex[:8]
    name = f"hostile-{run}"
    async with http.post(f"{api}/api/public/v2/datasets", data=orjson.dumps({"name": name}), headers=headers) as r:
        assert r.status == 200, await r.text()
    ids = []
    for i in range(100):
        item = {"datasetName": name, "input": "x" * (200 * 1024), "expectedOutput": f"{i}" + "y" * (50 * 1024)}
        async with http.post(f"{api}/api/public/dataset-items", data=orjson.dumps(item), headers=headers) as r:
            assert r.status == 200, await r.text()
            ids.append((await r.json())["id"])
    seen: Counter[str] = Counter()

    async def read(url: str) -> None:
        async with http.get(url, headers=headers) as r:
            await r.read()
            seen[f"GET {r.status}"] += 1

    page = f"{api}/api/public/dataset-items?datasetName={name}&limit=50"
    one = [f"{api}/api/public/dataset-items/{item_id}" for item_id in ids]
    await asyncio.gather(*(read(page) for _ in range(count)), *(read(one[i % len(one)]) for i in range(count)))
    return seen


async def sampled(pids: dict[str, int], work: Any) -> tuple[Any, dict[str, float]]:
    """Await `work` while sampling every process's RSS; its result and the peaks."""
    peaks = {name: rss_mb(pid) for name, pid in pids.items()}
    task = asyncio.ensure_future(work)
    while not task.done():
        for name, pid in pids.items():
            peaks[name] = max(peaks[name], rss_mb(pid))
        await asyncio.wait({task}, timeout=0.05)
    return task.result(), peaks


async def main(
    api: str, count: int, runs: int, settle_s: float, apps: dict[str, int], grpc_target: str, only: list[str]
) -> int:
    settings = Settings.from_env()
    pg = Postgres(settings.postgres)
    await pg.start()
    key = await create_key(pg, f"bench-hostile-{uuid.uuid4().hex[:8]}")
    await pg.close()
    auth = base64.b64encode(f"{key.public_key}:{key.secret_key}".encode()).decode()
    headers = {"Authorization": f"Basic {auth}", "Content-Type": "application/json"}
    pids = {"api": pid_of(urlsplit(api).port or 80), **{name: pid_of(port) for name, port in apps.items()}}
    url = f"{api}/api/public/ingestion"
    big = b'{"batch": [], "pad": "' + b"x" * (6 * 1024 * 1024) + b'"}'
    bomb = gzip.compress(b'{"batch": [], "pad": "' + b"0" * (64 * 1024 * 1024) + b'"}', 9)
    events = batch(10_000)
    otlp = attribute_bomb(5 * 1024 * 1024 - 4096)
    otlp_headers = {**headers, "Content-Type": "application/x-protobuf"}
    spans = tiny_spans(5 * 1024 * 1024 - 4096)
    values = tiny_values(5 * 1024 * 1024 - 4096)
    log_records = tiny_log_records(5 * 1024 * 1024 - 4096)
    log_values = log_value_bombs(5 * 1024 * 1024 - 4096, 900_000)
    # What an OTLP/protobuf export may be (cut into pieces past 5 MiB): of tiny spans, the worst.
    large = tiny_spans(32 * 1024 * 1024 - 4096)
    large_json = tiny_json_spans(32 * 1024 * 1024 - 4096)
    large_logs = tiny_log_records(32 * 1024 * 1024 - 4096)
    json_headers = {**otlp_headers, "Content-Type": "application/json"}
    waves = {
        "bodies": (f"{count} x 6 MiB bodies", url, [(big, headers)] * count),
        "bombs": (
            f"{count} gzip bombs ({len(bomb) // 1024} KiB -> 64 MiB)",
            url,
            [(bomb, {**headers, "Content-Encoding": "gzip"})] * count,
        ),
        "batches": (f"{count} batches of 10,000 events ({len(events) / 1e6:.1f} MB)", url, [(events, headers)] * count),
        "otlp": (
            f"{count} OTLP exports of tiny attributes ({len(otlp) / 1e6:.1f} MB)",
            f"{api}/v1/traces",
            [(otlp, otlp_headers)] * count,
        ),
        "spans": (
            f"{count} OTLP exports of tiny spans ({len(spans) / 1e6:.1f} MB)",
            f"{api}/v1/traces",
            [(spans, otlp_headers)] * count,
        ),
        "values": (
            f"{count} batches of tiny JSON values ({len(values) / 1e6:.1f} MB)",
            url,
            [(values, headers)] * count,
        ),
        "logs": (
            f"{count} OTLP log exports of tiny GenAI content records ({len(log_records) / 1e6:.1f} MB)",
            f"{api}/v1/logs",
            [(log_records, otlp_headers)] * count,
        ),
        "log_values": (
            f"{count} OTLP log exports of content records of tiny values ({len(log_values) / 1e6:.1f} MB)",
            f"{api}/v1/logs",
            [(log_values, otlp_headers)] * count,
        ),
        "large": (
            f"{count // 10} OTLP exports of tiny spans ({len(large) / 1e6:.1f} MB, taken in pieces)",
            f"{api}/v1/traces",
            [(large, otlp_headers)] * (count // 10),
        ),
    }
    waves["large_json"] = (
        f"{count // 10} OTLP/JSON exports of tiny spans ({len(large_json) / 1e6:.1f} MB, taken in pieces)",
        f"{api}/v1/traces",
        [(large_json, json_headers)] * (count // 10),
    )
    waves["large_logs"] = (
        f"{count // 10} OTLP log exports of tiny GenAI content records ({len(large_logs) / 1e6:.1f} MB, read lazily)",
        f"{api}/v1/logs",
        [(large_logs, otlp_headers)] * (count // 10),
    )
    media_count = min(count, 20)
    waves["grpc"] = (f"{count} OTLP/gRPC exports at once, of 4.9 MiB and of 9 MiB in turn", "", [])
    waves["media"] = (f"{media_count} media uploads of 32 MiB, half not as declared", "", [])
    waves["prompts"] = (f"{count} reads at once of each of three 1 MiB prompts", "", [])
    waves["datasets"] = (f"{count} reads at once of a page of 50 dataset items of 256 KiB, and of items", "", [])
    if only:
        waves = {kind: wave for kind, wave in waves.items() if kind in only}
    print(f"pids {pids}; load average {os.getloadavg()[0]:.2f}")
    figures: dict[str, list[float]] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
        for run in range(1, runs + 1):
            start_rss = {name: rss_mb(pid) for name, pid in pids.items()}
            run_peaks = dict(start_rss)
            print(f"run {run}: RSS at start {fmt(start_rss)}")
            for kind, (name, target, bodies) in waves.items():
                began = time.monotonic()
                if target:
                    work = wave(http, target, bodies)
                elif kind == "grpc":
                    work = grpc_wave(grpc_target, headers["Authorization"], count)
                elif kind == "media":
                    work = media_wave(http, api, headers, media_count)
                elif kind == "prompts":
                    work = prompt_wave(http, api, headers, count)
                else:
                    work = dataset_wave(http, api, headers, count)
                seen, peaks = await sampled(pids, work)
                took = time.monotonic() - began
                _, settled_peaks = await sampled(pids, asyncio.sleep(settle_s))
                after = rss_mb(pids["api"])
                for proc, value in peaks.items():
                    run_peaks[proc] = max(run_peaks[proc], value, settled_peaks[proc])
                figures.setdefault(f"{kind} peak", []).append(peaks["api"])
                figures.setdefault(f"{kind} after", []).append(after)
                print(
                    f"  {name}: {dict(seen)} in {took:.1f}s; api RSS peak {peaks['api']:.0f} MB, after {after:.0f} MB"
                )
            end_rss = {name: rss_mb(pid) for name, pid in pids.items()}
            for proc in pids:
                figures.setdefault(f"{proc} peak", []).append(run_peaks[proc])
                figures.setdefault(f"{proc} after", []).append(end_rss[proc])
            print(f"  RSS at the end {fmt(end_rss)}, peak {fmt(run_peaks)}; load average {os.getloadavg()[0]:.2f}")
    print(f"medians of {runs} run(s), MB:")
    for what, seen_mb in figures.items():
        print(f"  {what:24} {statistics.median(seen_mb):6.0f}  ({', '.join(f'{v:.0f}' for v in seen_mb)})")
    missed = [
        proc
        for proc in pids
        if statistics.median(figures[f"{proc} after"]) > (BUDGET_MB if proc == "api" else WORKER_BUDGET_MB)
    ]
    print(f"budgets after the load: api {BUDGET_MB} MB, others {WORKER_BUDGET_MB} MB; missed by {missed or 'none'}")
    return 1 if missed else 0


def fmt(rss: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.0f} MB" for name, value in rss.items())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", default="http://127.0.0.1:8080")
    parser.add_argument("--count", type=int, default=100, help="requests per kind")
    parser.add_argument("--runs", type=int, default=1, help="repeat the three waves; medians over the runs")
    parser.add_argument("--settle-s", type=float, default=3.0, help="wait after a wave before reading RSS")
    parser.add_argument("--grpc", default="127.0.0.1:4317", help="the api's OTLP/gRPC listener")
    parser.add_argument("--app", action="append", default=[], metavar="NAME=PORT", help="another process to watch")
    parser.add_argument("--only", action="append", default=[], metavar="KIND", help="this wave only (repeatable)")
    args = parser.parse_args()
    watched = {name: int(port) for name, _, port in (a.partition("=") for a in args.app)}
    raise SystemExit(asyncio.run(main(args.api, args.count, args.runs, args.settle_s, watched, args.grpc, args.only)))
