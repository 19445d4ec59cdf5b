"""Settings read from the environment, once, by the entry point.

Each component receives its own frozen config; nothing below this module reads os.environ.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from ingest.config import EdgeConfig, RedisConfig
from pipeline.config import StageConfig, TopicConfig
from sinks.clickhouse.config import ClickHouseConfig
from sinks.postgres.config import PostgresConfig
from sinks.purge import PurgeConfig
from sinks.retention import RetentionConfig

# Every stage consumes the whole events topic in its own consumer group; they differ in the sink.
STAGES = ("clickhouse", "postgres")
# The ClickHouse stage's batches wait less than the others': its writes are what a user waits
# for to see a trace (bench/README.md, "A shorter wait for the ClickHouse stage").
CLICKHOUSE_FLUSH_INTERVAL_S = 0.1


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = "127.0.0.1:9092"
    topics: TopicConfig = field(default_factory=TopicConfig)
    clickhouse: ClickHouseConfig = field(default_factory=ClickHouseConfig)
    postgres: PostgresConfig = field(default_factory=PostgresConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    edge: EdgeConfig = field(default_factory=EdgeConfig)
    stage: StageConfig = field(default_factory=StageConfig)
    clickhouse_flush_interval_s: float = CLICKHOUSE_FLUSH_INTERVAL_S
    purge: PurgeConfig = field(default_factory=PurgeConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    admin_token: str | None = None
    # Images set the git revision at build time; a checkout asks git (health/version.py).
    revision: str | None = None

    def __repr__(self) -> str:
        token = "***" if self.admin_token else None
        return (
            f"Settings(kafka_bootstrap={self.kafka_bootstrap!r}, topics={self.topics!r}, "
            f"clickhouse={self.clickhouse!r}, postgres={self.postgres!r}, redis={self.redis!r}, "
            f"edge={self.edge!r}, stage={self.stage!r}, "
            f"clickhouse_flush_interval_s={self.clickhouse_flush_interval_s!r}, purge={self.purge!r}, "
            f"admin_token={token}, revision={self.revision!r})"
        )

    @classmethod
    def from_env(cls, env: os._Environ[str] | dict[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str, default: str) -> str:
            return env.get(f"AGENTTRACE_{name}", default) or default

        def num(name: str, default: float) -> float:
            raw = env.get(f"AGENTTRACE_{name}")
            return type(default)(raw) if raw else default

        topics = TopicConfig(
            events=get("TOPIC_EVENTS", TopicConfig.events),
            dead_letters=get("TOPIC_DLQ", TopicConfig.dead_letters),
            partitions=int(num("TOPIC_PARTITIONS", TopicConfig.partitions)),
            replication=int(num("TOPIC_REPLICATION", TopicConfig.replication)),
            min_insync_replicas=int(num("TOPIC_MIN_INSYNC_REPLICAS", TopicConfig.min_insync_replicas)),
            retention_ms=int(num("TOPIC_RETENTION_MS", TopicConfig.retention_ms)),
        )
        max_body = int(num("MAX_BODY_BYTES", EdgeConfig.max_body_bytes))
        settings = cls(
            kafka_bootstrap=get("KAFKA_BOOTSTRAP", cls.kafka_bootstrap),
            topics=topics,
            clickhouse=replace(
                ClickHouseConfig.from_url(get("CLICKHOUSE_URL", ClickHouseConfig().url())),
                cluster=env.get("AGENTTRACE_CLICKHOUSE_CLUSTER", ""),
            ),
            postgres=PostgresConfig(dsn=get("POSTGRES_DSN", PostgresConfig.dsn)),
            redis=RedisConfig(url=get("REDIS_URL", RedisConfig.url)),
            edge=EdgeConfig(
                grpc_address=get("GRPC_ADDRESS", EdgeConfig.grpc_address),
                max_body_bytes=max_body,
                # Never below the general limit, which an operator may have raised alone.
                max_otlp_body_bytes=int(num("MAX_OTLP_BODY_BYTES", max(EdgeConfig.max_otlp_body_bytes, max_body))),
                otlp_piece_bytes=min(EdgeConfig.otlp_piece_bytes, max_body),
                max_event_bytes=int(num("MAX_EVENT_BYTES", EdgeConfig.max_event_bytes)),
                max_inflight_bytes=int(num("MAX_INFLIGHT_BYTES", EdgeConfig.max_inflight_bytes)),
                publish_timeout_s=num("PUBLISH_TIMEOUT_S", EdgeConfig.publish_timeout_s),
                kafka_probe_interval_s=num("KAFKA_PROBE_INTERVAL_S", EdgeConfig.kafka_probe_interval_s),
                memory_per_body_byte=int(num("MEMORY_PER_BODY_BYTE", EdgeConfig.memory_per_body_byte)),
                max_mapped_bytes=int(num("MAX_MAPPED_BYTES", EdgeConfig.max_mapped_bytes)),
                max_connections=int(num("MAX_CONNECTIONS", EdgeConfig.max_connections)),
                keepalive_timeout_s=num("KEEPALIVE_TIMEOUT_S", EdgeConfig.keepalive_timeout_s),
                header_timeout_s=num("HEADER_TIMEOUT_S", EdgeConfig.header_timeout_s),
                rate_limit_per_minute=int(num("RATE_LIMIT_PER_MINUTE", EdgeConfig.rate_limit_per_minute)),
                auth_cache_ttl_s=int(num("AUTH_CACHE_TTL_S", EdgeConfig.auth_cache_ttl_s)),
                tombstone_keep_s=2 * topics.retention_ms / 1000,
            ),
            stage=StageConfig(
                group_prefix=get("CONSUMER_GROUP_PREFIX", StageConfig.group_prefix),
                flush_rows=int(num("FLUSH_ROWS", StageConfig.flush_rows)),
                flush_interval_s=num("FLUSH_INTERVAL_S", StageConfig.flush_interval_s),
                retry_max_s=num("RETRY_MAX_S", StageConfig.retry_max_s),
                drain_timeout_s=num("DRAIN_TIMEOUT_S", StageConfig.drain_timeout_s),
            ),
            # One interval set for every stage (as before this one had its own) still sets it.
            clickhouse_flush_interval_s=num(
                "CLICKHOUSE_FLUSH_INTERVAL_S", num("FLUSH_INTERVAL_S", CLICKHOUSE_FLUSH_INTERVAL_S)
            ),
            purge=PurgeConfig(
                interval_s=num("PURGE_INTERVAL_S", PurgeConfig.interval_s),
                after_s=num("PURGE_AFTER_S", PurgeConfig.after_s),
            ),
            retention=RetentionConfig(interval_s=num("RETENTION_INTERVAL_S", RetentionConfig.interval_s)),
            admin_token=env.get("AGENTTRACE_ADMIN_TOKEN") or None,
            revision=env.get("AGENTTRACE_GIT_REVISION") or None,
        )
        settings.validate()
        return settings

    def stage_config(self, name: str) -> StageConfig:
        """The config of the stage `name`: the shared one, with the ClickHouse stage's interval."""
        if name == "clickhouse":
            return replace(self.stage, flush_interval_s=self.clickhouse_flush_interval_s)
        return self.stage

    def validate(self) -> None:
        if not self.kafka_bootstrap:
            raise ValueError("AGENTTRACE_KAFKA_BOOTSTRAP must not be empty")
        if self.clickhouse_flush_interval_s <= 0:
            raise ValueError("AGENTTRACE_CLICKHOUSE_FLUSH_INTERVAL_S must be positive")
        for part in (
            self.topics,
            self.clickhouse,
            self.postgres,
            self.redis,
            self.edge,
            self.stage,
            self.purge,
            self.retention,
        ):
            part.validate()
