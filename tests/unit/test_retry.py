"""The one retry helper and the one batch-halving helper that stages, replays and clients share."""

from __future__ import annotations

import asyncio

import psycopg2.extensions
import pytest

from pipeline.errors import StoreError
from pipeline.retry import Backoff, isolate, retry
from sinks.postgres.config import PostgresConfig

FAST = Backoff(initial_s=0.001, max_s=0.004)


async def test_retry_until_success() -> None:
    failures, seen = [OSError("down"), StoreError("busy")], []

    async def attempt() -> str:
        if failures:
            raise failures.pop(0)
        return "ok"

    assert await retry(attempt, FAST, on_error=lambda exc, delay: seen.append(type(exc))) == "ok"
    assert seen == [OSError, StoreError]


async def test_a_permanent_store_error_is_not_retried() -> None:
    calls = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        raise StoreError("refused", permanent=True)

    with pytest.raises(StoreError):
        await retry(attempt, FAST)
    assert calls == 1


@pytest.mark.parametrize("backoff", [Backoff(0.001, 0.002, attempts=3), Backoff(0.001, 0.002, deadline_s=0.05)])
async def test_attempts_and_deadlines_bound_it(backoff: Backoff) -> None:
    async def attempt() -> None:
        raise OSError("down")

    with pytest.raises(OSError):
        await asyncio.wait_for(retry(attempt, backoff), 5)


async def test_stopping_ends_it_once_the_backoff_is_at_its_maximum() -> None:
    stopping = asyncio.Event()
    stopping.set()
    delays: list[float] = []

    async def attempt() -> None:
        raise OSError("down")

    with pytest.raises(OSError):
        await asyncio.wait_for(retry(attempt, FAST, on_error=lambda e, d: delays.append(d), stopping=stopping), 5)
    assert delays == [0.001, 0.002]  # the next delay would have been the maximum


async def test_isolate_finds_the_items_the_store_refuses() -> None:
    bad = {3, 8}
    written: list[int] = []

    async def write(items: list[int]) -> list[tuple[int, str]]:
        if bad & set(items):
            raise StoreError("refused", permanent=True)
        written.extend(items)
        return [(i, "poison") for i in items if i == 5]  # what a sink returns itself is kept

    refused = await isolate(write, list(range(10)))
    assert sorted(refused) == [(3, "refused"), (5, "poison"), (8, "refused")]
    assert sorted(written) == [0, 1, 2, 4, 5, 6, 7, 9]


async def test_isolate_lets_a_transient_failure_through() -> None:
    async def write(items: list[int]) -> list[tuple[int, str]]:
        raise StoreError("away")

    with pytest.raises(StoreError):
        await isolate(write, [1, 2])


def test_postgres_dsn_parts_survive_quotes_spaces_and_backslashes() -> None:
    dsn = PostgresConfig(dsn="postgresql://us%20er:p%27w%20d%5C%3A@db.local:6543/at").aiopg_dsn()
    assert psycopg2.extensions.parse_dsn(dsn) == {
        "host": "db.local", "port": "6543", "dbname": "at", "user": "us er", "password": "p'w d\\:",
    }  # fmt: skip
