"""Helpers shared by the tests against the real stack."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from sinks.clickhouse.client import ClickHouse
from sinks.postgres.keys import NewKey

API = "http://127.0.0.1:8080"
WORKER = "http://127.0.0.1:8081"
T = TypeVar("T")


def basic_auth(key: NewKey) -> dict[str, str]:
    token = base64.b64encode(f"{key.public_key}:{key.secret_key}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def eventually(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, timeout_s: float = 20.0, every_s: float = 0.2
) -> T:
    """Poll `probe` until `done(result)`, or fail with the last result after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await probe()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s; last result: {result!r}")
        await asyncio.sleep(every_s)


async def rows(ch: ClickHouse, sql: str) -> list[dict[str, Any]]:
    """Query and return dicts; `sql` must name its columns explicitly."""
    cols = [c.strip().split(" AS ")[-1] for c in sql.split("SELECT", 1)[1].split("FROM", 1)[0].split(",")]
    return [dict(zip(cols, r)) for r in await ch.fetch(sql)]


async def scrape(http: Any, base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The samples of `base`/metrics as {(sample name, labels): value}."""
    async with http.get(f"{base}/metrics") as r:
        assert r.status == 200, r.status
        text = await r.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """One sample's value, 0 when absent (a counter not yet incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)
