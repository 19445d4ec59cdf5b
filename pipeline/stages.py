"""The stages a worker (or a replay) can run, by name, and the sink each one folds into.

Every stage consumes the whole events topic in its own consumer group; they differ only in
the sink. The CLI imports STAGES for its choices, so the sinks (and the stage metrics they
bring) are imported only when a sink is built: the API process must not register them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agenttrace.settings import Settings
    from pipeline.stage import Sink
    from sinks.clickhouse.client import ClickHouse
    from sinks.postgres.client import Postgres

STAGES = ("clickhouse", "postgres")


def sink_for(name: str, settings: Settings, *, ch: ClickHouse | None = None, pg: Postgres | None = None) -> Sink:
    """The sink of stage `name`, on the store client it needs (the other may be None)."""
    if name == "clickhouse" and ch is not None:
        from sinks.clickhouse.schema import dialect_for
        from sinks.clickhouse.writer import ClickHouseWriter

        return ClickHouseWriter(ch, dialect_for(ch.version))
    if name == "postgres" and pg is not None:
        from sinks.postgres.writer import PostgresWriter

        # A state must outlive every copy of its events the topic can still hand out.
        return PostgresWriter(pg, horizon_s=2 * settings.topics.retention_ms / 1000)
    if name in STAGES:
        raise ValueError(f"stage {name!r} needs its store client")
    raise ValueError(f"unknown stage {name!r}; expected one of {', '.join(STAGES)}")
