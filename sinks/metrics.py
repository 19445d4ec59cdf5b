"""Store-side metrics: query timings, inserted rows, and connection pools read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# Around the SLOs of the monitoring guide: 50 ms, 500 ms and 2 s are bucket edges.
QUERY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)

DB_QUERY_SECONDS = Histogram(
    "db_query_duration_seconds", "Query execution time", ["db", "operation"], buckets=QUERY_BUCKETS
)
CLICKHOUSE_QUERY_SECONDS = Histogram(
    "clickhouse_query_duration_seconds", "ClickHouse query time", ["operation"], buckets=QUERY_BUCKETS
)
CLICKHOUSE_INSERT_ROWS = Counter("clickhouse_insert_rows_total", "Rows inserted to ClickHouse", ["table"])


@dataclass(frozen=True)
class PoolStats:
    active: int
    idle: int
    max: int


class PoolCollector(Collector):
    """db_connections_{active,idle,max}{db}, read from the live pools when scraped."""

    def __init__(self) -> None:
        self._pools: dict[str, Callable[[], PoolStats]] = {}

    def track(self, db: str, stats: Callable[[], PoolStats]) -> None:
        self._pools[db] = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        active = GaugeMetricFamily("db_connections_active", "Active database connections", labels=["db"])
        idle = GaugeMetricFamily("db_connections_idle", "Idle database connections", labels=["db"])
        most = GaugeMetricFamily("db_connections_max", "Maximum database connections", labels=["db"])
        for db, stats in list(self._pools.items()):
            s = stats()
            active.add_metric([db], s.active)
            idle.add_metric([db], s.idle)
            most.add_metric([db], s.max)
        yield from (active, idle, most)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())


POOLS = PoolCollector()
REGISTRY.register(POOLS)

CLICKHOUSE_PURGED_TRACES = Counter(
    "clickhouse_purged_traces_total", "Deleted traces whose ClickHouse rows were removed by a mutation"
)
CLICKHOUSE_PURGED_SCORES = Counter(
    "clickhouse_purged_scores_total", "Deleted scores whose ClickHouse rows were removed by a mutation"
)

RETENTION_ROWS_DELETED = Counter(
    "retention_rows_deleted_total", "Rows removed by the retention job, by table", ["table"]
)
for _table in ("traces", "observations", "scores", "trace_states"):
    RETENTION_ROWS_DELETED.labels(_table)
