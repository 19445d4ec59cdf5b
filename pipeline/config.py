from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicConfig:
    events: str = "agenttrace.events"
    dead_letters: str = "agenttrace.dlq"
    partitions: int = 8
    # One broker locally; a cluster sets 3 and 2, so an acknowledged event (acks=all) is on two
    # brokers at least and one broker can die without losing it or stopping the edge.
    replication: int = 1
    min_insync_replicas: int = 1
    retention_ms: int = 7 * 24 * 3600 * 1000

    def validate(self) -> None:
        if not self.events or not self.dead_letters or self.events == self.dead_letters:
            raise ValueError("the events and dead-letter topics must be distinct and named")
        if self.partitions < 1 or self.replication < 1:
            raise ValueError("partitions and replication must be at least 1")
        if not 1 <= self.min_insync_replicas <= self.replication:
            raise ValueError("min.insync.replicas must be between 1 and the replication factor")
        if self.retention_ms < 1:
            raise ValueError("the topic retention must be positive")

    def topic_configs(self) -> dict[str, str]:
        """The per-topic settings `agenttrace migrate` creates topics with and checks them for."""
        return {"retention.ms": str(self.retention_ms), "min.insync.replicas": str(self.min_insync_replicas)}


@dataclass(frozen=True)
class StageConfig:
    # A stage consumes in the group `<group_prefix><stage name>`; tests and parallel
    # deployments on one cluster use their own prefix so they never share partitions.
    group_prefix: str = "agenttrace-"
    # Flush a stage's buffer when it holds this many events or when its oldest is this old.
    # Under load a batch fills before it ages: 10k rows per insert halves ClickHouse's parts and
    # round trips against 5k (~13k -> ~14.7k events/s end to end on two cores) for ~40 MB more
    # of worker memory; 20k gains little more and passes the worker's 300 MB budget.
    flush_rows: int = 10_000
    flush_interval_s: float = 0.25
    # Bound on one fetch from Kafka, so a backlog does not become one huge batch in memory.
    max_fetch_records: int = 5_000
    retry_initial_s: float = 0.2
    retry_max_s: float = 10.0
    # SIGTERM drains: stop fetching, flush, commit, within this bound.
    drain_timeout_s: float = 20.0
    lag_interval_s: float = 3.0
    # A change to model prices reaches every worker within this (plus one batch).
    prices_refresh_s: float = 2.0
    # A tombstone written by another process (an edge) reaches a stage's check within this;
    # the deletion event itself reaches it through the log, after the trace's own events.
    tombstones_refresh_s: float = 1.0

    def validate(self) -> None:
        if self.flush_rows < 1 or self.flush_interval_s <= 0 or self.max_fetch_records < 1:
            raise ValueError("flush_rows, flush_interval_s and max_fetch_records must be positive")
        if not 0 < self.retry_initial_s <= self.retry_max_s:
            raise ValueError("retry backoff must satisfy 0 < initial <= max")
        if not self.group_prefix:
            raise ValueError("the consumer group prefix must not be empty")
        if self.drain_timeout_s <= 0:
            raise ValueError("drain_timeout_s must be positive")
