"""Creates the event and dead-letter topics (idempotent); run by `agenttrace migrate`."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from pipeline.config import TopicConfig


async def ensure_topics(bootstrap: str, config: TopicConfig) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name,
                num_partitions=config.partitions,
                replication_factor=config.replication,
                topic_configs={"retention.ms": str(config.retention_ms)},
            )
            for name in (config.events, config.dead_letters)
            if name not in existing
        ]
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass  # another migrator won the race
        return [t.name for t in wanted]
    finally:
        await admin.close()
