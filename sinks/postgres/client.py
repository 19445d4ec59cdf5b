"""An aiopg pool with timing metrics, multi-row inserts (one statement per batch) and transactions."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import aiopg
import orjson
import psycopg2
import psycopg2.errors

from pipeline.errors import StoreError
from sinks.metrics import DB_QUERY_SECONDS, PoolStats
from sinks.postgres.config import PostgresConfig


class PostgresError(StoreError):
    """Retryable unless `permanent` (the statement or data is wrong, not the server away)."""


# A uuid as Postgres prints it: another spelling (no dashes, braces, urn:) names no row, and
# never reaches a `::uuid` cast that would fail.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_uuid(v: str) -> bool:
    return _UUID.fullmatch(v) is not None


class Refused(ValueError):
    """What a client sent cannot be stored or read as asked (a prompt, a score config, ...):
    `status` 400, 404 or 413, which the api answers with the message."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Postgres:
    def __init__(self, config: PostgresConfig) -> None:
        self.config = config
        self._pool: aiopg.Pool | None = None

    async def start(self) -> None:
        self._pool = await aiopg.create_pool(
            self.config.aiopg_dsn(),
            minsize=self.config.min_size,
            maxsize=self.config.max_size,
            timeout=10,
        )

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
            await pool.wait_closed()

    def stats(self) -> PoolStats:
        if self._pool is None:
            return PoolStats(0, 0, self.config.max_size)
        free = self._pool.freesize
        return PoolStats(active=self._pool.size - free, idle=free, max=self._pool.maxsize or self.config.max_size)

    async def _run(self, operation: str, sql: str, params: Any, fetch: bool) -> Any:
        if self._pool is None:
            raise PostgresError("postgres pool is not started")
        with _translated(operation):
            async with self._pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute(sql, params)
                return await cur.fetchall() if fetch else cur.rowcount

    async def execute(self, sql: str, params: Any = None, *, operation: str = "execute") -> int:
        return await self._run(operation, sql, params, fetch=False)

    async def fetch(self, sql: str, params: Any = None, *, operation: str = "select") -> list[tuple[Any, ...]]:
        return await self._run(operation, sql, params, fetch=True)

    async def insert_many(
        self, prefix: str, template: str, rows: Sequence[Sequence[Any]], suffix: str = "", *, operation: str = "insert"
    ) -> int:
        """`prefix VALUES (row), (row), ... suffix` as one statement (autocommit)."""
        if not rows:
            return 0
        if self._pool is None:
            raise PostgresError("postgres pool is not started")
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            with _translated(f"{operation}_mogrify"):
                sql = _values_statement(cur, prefix, template, rows, suffix)
        return await self._run(operation, sql, None, fetch=False)

    @asynccontextmanager
    async def transaction(self, *, operation: str = "transaction") -> AsyncIterator[Transaction]:
        """One connection inside BEGIN ... COMMIT; any exception rolls back and propagates.

        aiopg connections are in autocommit mode, so the statements are issued explicitly. A
        connection whose rollback failed is closed rather than handed back to the pool.
        """
        if self._pool is None:
            raise PostgresError("postgres pool is not started")
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            with _translated(f"{operation}_begin"):
                await cur.execute("BEGIN")
            try:
                yield Transaction(cur)
            except BaseException:
                try:
                    await asyncio.shield(cur.execute("ROLLBACK"))
                except BaseException:  # broken or cancelled connection: never reuse it
                    conn.close()
                raise
            try:
                with _translated(f"{operation}_commit"):
                    await cur.execute("COMMIT")
            except BaseException:
                conn.close()
                raise

    async def ping(self) -> None:
        await self.fetch("SELECT 1", operation="ping")


class Transaction:
    """The statements of one transaction (see Postgres.transaction); errors as PostgresError."""

    def __init__(self, cursor: aiopg.Cursor) -> None:
        self._cur = cursor

    async def execute(self, sql: str, params: Any = None, *, operation: str = "execute") -> int:
        with _translated(operation):
            await self._cur.execute(sql, params)
            return self._cur.rowcount

    async def fetch(self, sql: str, params: Any = None, *, operation: str = "select") -> list[tuple[Any, ...]]:
        with _translated(operation):
            await self._cur.execute(sql, params)
            return await self._cur.fetchall()

    async def insert_many(
        self, prefix: str, template: str, rows: Sequence[Sequence[Any]], suffix: str = "", *, operation: str = "insert"
    ) -> list[tuple[Any, ...]]:
        """`prefix VALUES (row), ... suffix` as one statement; the RETURNING rows, if any."""
        if not rows:
            return []
        with _translated(operation):
            sql = _values_statement(self._cur, prefix, template, rows, suffix)
            await self._cur.execute(sql)
            return await self._cur.fetchall() if self._cur.description else []

    async def insert_documents(
        self, prefix: str, columns: str, rows: list[dict[str, Any]], suffix: str = "", *, operation: str = "insert"
    ) -> None:
        """`prefix SELECT <columns> FROM rows suffix`, the rows handed over as one JSON document
        (jsonb_to_recordset) whose keys `columns` names and types (`p text, k text, ...`), in
        their order (each row is given its index, `n`). psycopg2 mogrifies a VALUES row in
        ~17-20 µs (datetimes are slow to adapt); in the document a row costs ~3 (bench/pg_params.py)."""
        if not rows:
            return
        for n, row in enumerate(rows):
            row["n"] = n
        names = ", ".join(column.split()[0] for column in columns.split(","))
        await self.execute(
            f"{prefix} SELECT {names} FROM jsonb_to_recordset(%s::jsonb) AS v({columns}, n int) ORDER BY n {suffix}",
            (orjson.dumps(rows).decode(),),
            operation=operation,
        )


def _values_statement(cur: aiopg.Cursor, prefix: str, template: str, rows: Sequence[Sequence[Any]], suffix: str) -> str:
    values = b",".join(cur.mogrify(template, tuple(r)) for r in rows)
    return (prefix.encode() + b" VALUES " + values + (b" " + suffix.encode() if suffix else b"")).decode()


_SCHEMA_MISSING = (psycopg2.errors.UndefinedTable, psycopg2.errors.UndefinedColumn, psycopg2.errors.UndefinedFunction)


@contextmanager
def _translated(operation: str) -> Iterator[None]:
    """psycopg2's errors as PostgresError, permanent when the statement or data is at fault; timed."""
    start = time.perf_counter()
    try:
        yield
    except _SCHEMA_MISSING as exc:
        # Code newer than the schema (a migration not run yet): the deployment's fault, not the
        # data's. Retried, so no event is dead-lettered for it, until `agenttrace migrate` runs.
        raise PostgresError(f"{operation}: {exc} (run `agenttrace migrate`)") from exc
    except (psycopg2.DataError, psycopg2.IntegrityError, psycopg2.ProgrammingError) as exc:
        raise PostgresError(f"{operation}: {exc}", permanent=True) from exc
    except (psycopg2.Error, OSError, TimeoutError) as exc:
        raise PostgresError(f"{operation}: {exc!r}") from exc
    except ValueError as exc:  # psycopg2 refusing to adapt a value (a NUL in a string): the data's fault
        raise PostgresError(f"{operation}: {exc}", permanent=True) from exc
    finally:
        DB_QUERY_SECONDS.labels("postgres", operation).observe(time.perf_counter() - start)
