"""A small pool of native-protocol ClickHouse connections (asynch), with timing metrics.

A connection that failed is closed and replaced on next use, so a ClickHouse restart heals
without restarting the process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from asynch.connection import Connection
from asynch.errors import ClickHouseException
from asynch.proto.block import RowOrientedBlock
from asynch.proto.context import ExecuteContext
from asynch.proto.protocol import ClientPacket

from pipeline.errors import StoreError
from sinks.clickhouse import native
from sinks.clickhouse.config import ClickHouseConfig
from sinks.metrics import CLICKHOUSE_QUERY_SECONDS, DB_QUERY_SECONDS, PoolStats


class ClickHouseError(StoreError):
    """Retryable unless `permanent`: a server-side rejection of the data itself."""


IDS_TABLE = "_ids"

# Server error codes that mean the data or the statement is wrong, not that the server is away.
_PERMANENT_CODES = frozenset({6, 16, 27, 32, 38, 41, 53, 62, 69, 70, 72, 117, 130, 131, 321})


class ClickHouse:
    def __init__(self, config: ClickHouseConfig, *, database: str | None = None) -> None:
        self.config = config
        self._database = config.database if database is None else database
        self._idle: list[Connection] = []
        self._sem = asyncio.Semaphore(config.pool_size)
        self._in_use = 0
        self._closed = False
        self.version: tuple[int, ...] = ()
        # Of the settings some queries turn off, those the server has (an unknown one fails the
        # query): see sinks/clickhouse/metrics.py.
        self.settings: frozenset[str] = frozenset()
        # Into a Distributed table an INSERT returns once the rows are queued on the server it
        # reached, unless it is synchronous: then it returns once every shard has them, so an
        # offset committed after it means the rows are where the next read (FINAL) finds them.
        self._insert_settings = {"insert_distributed_sync": 1} if config.cluster else None
        self._servers = config.servers()
        self._current = 0

    async def start(self) -> None:
        # One round trip: every process's clients start here, the workers' as well.
        ((version, settings),) = await self.fetch(
            "SELECT version(), (SELECT groupArray(name) FROM system.settings "
            "WHERE name IN ('use_query_condition_cache'))",
            operation="version",
        )
        self.version = tuple(int(p) for p in str(version).split(".") if p.isdigit())
        self.settings = frozenset(str(name) for name in settings)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await _quietly_close(conn)

    def _new_connection(self, host: str, port: int) -> Connection:
        return Connection(
            host=host,
            port=port,
            database=self._database,
            user=self.config.user,
            password=self.config.password,
            connect_timeout=self.config.connect_timeout_s,
        )

    async def _connect(self) -> Connection:
        """A connection to the current server. A server that cannot be reached hands over to the
        next of `config.servers()` for the next attempt; the pool stays with that one (its
        reads then follow its own writes) until it fails in turn."""
        servers = self._servers
        host, port = servers[self._current % len(servers)]
        conn = self._new_connection(host, port)
        try:
            await conn.connect()
        except BaseException:
            if len(servers) > 1 and servers[self._current % len(servers)] == (host, port):
                self._current += 1
            raise
        return conn

    def stats(self) -> PoolStats:
        return PoolStats(active=self._in_use, idle=len(self._idle), max=self.config.pool_size)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        async with self._sem:
            conn = self._idle.pop() if self._idle else None
            self._in_use += 1
            try:
                if conn is None:
                    conn = await self._connect()
                yield conn
            except BaseException:
                if conn is not None:
                    await _quietly_close(conn)
                conn = None
                raise
            finally:
                self._in_use -= 1
                if conn is not None and not self._closed:
                    self._idle.append(conn)

    async def _run(
        self,
        operation: str,
        sql: str,
        params: Any = None,
        fetch: bool = False,
        ids: Sequence[str] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Any:
        async with _timed(operation):
            async with self._connection() as conn, conn.cursor() as cur:
                if settings:
                    cur.set_settings(settings)
                if ids is not None:
                    cur.set_external_table(IDS_TABLE, [("id", "String")], [(i,) for i in ids])
                result = await cur.execute(sql, params)
                return await cur.fetchall() if fetch else result

    async def execute(self, sql: str, *, operation: str = "ddl", ids: Sequence[str] | None = None) -> None:
        """A statement without rows back (DDL, INSERT ... SELECT, a mutation); `ids` as in fetch()."""
        await self._run(operation, sql, ids=ids)

    async def execute_on_each_shard(self, sql: str, *, operation: str) -> int:
        """`sql` (a mutation or partition drop of a replicated local table, no ON CLUSTER) once
        on each shard of the cluster, on the first of its replicas that answers: the table's
        replication log takes it to the others, a replica that is down included. Alone, on
        this server. Returns the shards reached; raises if one was not.

        Not through the DDL queue (ALTER ... ON CLUSTER): 18.16's DDL worker checks whether a
        replica of the shard ran the ALTER before it takes the shard's lock, not after, so both
        replicas may run it, and the second then fails to mark it run, a ZooKeeper error its
        worker thread does not survive: every later ON CLUSTER statement waits for that server
        until distributed_ddl_task_timeout, until it restarts.
        """
        cluster = self.config.cluster
        if not cluster:
            await self.execute(sql, operation=operation)
            return 1
        rows = await self.fetch(
            "SELECT shard_num, host_address, port FROM system.clusters WHERE cluster = %(c)s "
            "ORDER BY shard_num, replica_num",
            {"c": cluster},
            operation="cluster_shards",
        )
        shards: dict[int, list[tuple[str, int]]] = {}
        for shard, host, port in rows:
            shards.setdefault(int(shard), []).append((str(host), int(port)))
        if not shards:
            raise ClickHouseError(f"{operation}: no servers of cluster {cluster!r} in system.clusters", permanent=True)
        for replicas in shards.values():
            await self._on_one_of(replicas, sql, operation)
        return len(shards)

    async def _on_one_of(self, replicas: list[tuple[str, int]], sql: str, operation: str) -> None:
        last: ClickHouseError | None = None
        for host, port in replicas:
            conn = self._new_connection(host, port)
            try:
                async with _timed(operation):
                    try:
                        await conn.connect()
                        async with conn.cursor() as cur:
                            await cur.execute(sql)
                    finally:
                        await _quietly_close(conn)
                return
            except ClickHouseError as exc:
                if exc.permanent:
                    raise
                last = exc
        assert last is not None
        raise last

    async def fetch(
        self,
        sql: str,
        params: Any = None,
        *,
        operation: str = "select",
        ids: Sequence[str] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> list[tuple[Any, ...]]:
        """Rows of `sql`. `ids` travel beside the query as the external table `_ids` (one String
        column `id`), for `WHERE id IN _ids`: a long literal IN list costs 18.16's parser more
        than the lookup itself (~35 ms for 5000 ids, against ~5 ms for the same set sent as data).
        `settings` are the query's own (ClickHouse's settings by name).
        """
        return await self._run(operation, sql, params, fetch=True, ids=ids, settings=settings)

    async def insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]] | native.Columns) -> int:
        if not len(rows):
            return 0
        sql = f"INSERT INTO {self._database}.{table} ({', '.join(columns)}) VALUES"
        async with _timed(f"insert_{table}"), self._connection() as conn:
            await _insert(conn, sql, rows, self._insert_settings)
        return len(rows)

    async def ping(self) -> None:
        await self._run("ping", "SELECT 1", fetch=True)


async def _insert(
    conn: Connection, sql: str, rows: list[tuple[Any, ...]] | native.Columns, settings: dict[str, Any] | None
) -> None:
    """asynch's INSERT (query, the server's header, data, an empty block, its answer), with
    the data encoded by `native.block` rather than asynch's value-by-value writer.

    Uses asynch's protocol connection below its cursor (pinned in ops/stack/constraints.txt;
    the stack tests insert through here). A header with a type `native` does not handle, or a
    compressed connection, is left to asynch's own writer.
    """
    proto: Any = conn._connection  # asynch's stubs leave out the protocol's methods
    async with ExecuteContext(proto, sql, settings):
        await proto.send_query(sql)
        await proto.send_external_tables(None)
        header = await proto.receive_sample_block()
        if not header:
            return
        try:
            data = None if proto.compression else native.block(header.columns_with_types, rows)
        except (TypeError, ValueError, OverflowError) as exc:
            raise _Refused(str(exc)) from exc  # mid-insert: the pool closes the connection
        if data is None:
            await proto.send_data(header, rows if isinstance(rows, list) else list(rows))
        else:
            writer = proto.writer
            await writer.write_varint(ClientPacket.DATA)
            await writer.write_str("")  # the table name: none for the insert's own data
            await writer.write_bytes(data)
            await proto.send_block(RowOrientedBlock())  # the end of the data
        # Until the end of the stream (newer servers send progress first); raises the exception.
        while await proto.receive_packet() is not False:
            pass


class _Refused(Exception):
    """Rows that the columns cannot hold (a value out of a type's range)."""


@asynccontextmanager
async def _timed(operation: str) -> AsyncIterator[None]:
    """Times a query and turns the driver's errors into ClickHouseError."""
    start = time.perf_counter()
    try:
        yield
    except ClickHouseException as exc:
        code = getattr(exc, "code", None)
        raise ClickHouseError(f"{operation}: {exc}", permanent=code in _PERMANENT_CODES) from exc
    except _Refused as exc:
        raise ClickHouseError(f"{operation}: {exc}", permanent=True) from exc
    except (TimeoutError, OSError, EOFError, ConnectionError) as exc:
        raise ClickHouseError(f"{operation}: ClickHouse unreachable: {exc!r}") from exc
    finally:
        elapsed = time.perf_counter() - start
        CLICKHOUSE_QUERY_SECONDS.labels(operation).observe(elapsed)
        DB_QUERY_SECONDS.labels("clickhouse", operation).observe(elapsed)


async def _quietly_close(conn: Connection) -> None:
    try:
        await conn.close()
    except Exception:  # the connection is already broken; closing is best effort
        pass
