"""Hostile load against the edge, then its memory: 100 bodies of 6 MiB, 100 gzip bombs and 100
batches of 10,000 events, all at once per kind; reports the answers and the api's RSS.

    .venv/bin/python bench/hostile.py --api http://127.0.0.1:8080

The api's pid is found by its listening port (ss -ltnp, else /proc/net/tcp), so run it on the
api's host. The budget is 150 MB of RSS after the load: the in-flight byte bound, counted from
a body's first byte to its answer with its decompressed copy, is what keeps it there.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agenttrace.settings import Settings
from sinks.postgres.client import Postgres
from sinks.postgres.keys import create_key

BUDGET_MB = 150


def api_pid(port: int) -> int:
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


async def main(api: str, count: int) -> int:
    settings = Settings.from_env()
    pg = Postgres(settings.postgres)
    await pg.start()
    key = await create_key(pg, f"bench-hostile-{uuid.uuid4().hex[:8]}")
    await pg.close()
    auth = base64.b64encode(f"{key.public_key}:{key.secret_key}".encode()).decode()
    headers = {"Authorization": f"Basic {auth}", "Content-Type": "application/json"}
    pid = api_pid(urlsplit(api).port or 80)
    url = f"{api}/api/public/ingestion"
    big = b'{"batch": [], "pad": "' + b"x" * (6 * 1024 * 1024) + b'"}'
    bomb = gzip.compress(b'{"batch": [], "pad": "' + b"0" * (64 * 1024 * 1024) + b'"}', 9)
    events = batch(10_000)
    waves = {
        f"{count} x 6 MiB bodies": [(big, headers)] * count,
        f"{count} gzip bombs ({len(bomb) // 1024} KiB -> 64 MiB)": [(bomb, {**headers, "Content-Encoding": "gzip"})]
        * count,
        f"{count} batches of 10,000 events ({len(events) / 1e6:.1f} MB)": [(events, headers)] * count,
    }
    print(f"api pid {pid}: RSS {rss_mb(pid):.0f} MB before")
    peak = 0.0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
        for name, bodies in waves.items():
            done = asyncio.Event()

            async def sample(done: asyncio.Event = done) -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, rss_mb(pid))
                    await asyncio.sleep(0.05)

            sampler = asyncio.create_task(sample())
            start = time.monotonic()
            seen = await wave(http, url, bodies)
            done.set()
            await sampler
            took = time.monotonic() - start
            print(f"{name}: {dict(seen)} in {took:.1f}s; RSS {rss_mb(pid):.0f} MB, peak {peak:.0f} MB")
    after = rss_mb(pid)
    print(f"RSS after the load: {after:.0f} MB, peak {peak:.0f} MB (budget {BUDGET_MB} MB)")
    return 0 if peak <= BUDGET_MB else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", default="http://127.0.0.1:8080")
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.api, args.count)))
