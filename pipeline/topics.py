"""Creates the event and dead-letter topics and checks the ones that exist; run by
`agenttrace migrate`.

Kafka keeps a topic's partitions, replication factor and settings from the day it was created,
so a changed configuration would otherwise go unnoticed: a cluster whose topic still has one
replica loses acknowledged events with its broker. `ensure_topics` reports every difference;
the caller decides what to do with them (the CLI fails, see agenttrace/cli.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from pipeline.config import TopicConfig


@dataclass(frozen=True)
class TopicState:
    """What the cluster says about one topic."""

    name: str
    partitions: int
    replication: int
    configs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicReport:
    created: list[str]
    differences: list[str]


def differences(config: TopicConfig, state: TopicState) -> list[str]:
    """Human-readable differences between a topic as it is and as `config` wants it."""
    found = []
    if state.partitions != config.partitions:
        # Partitions can only grow (and growing moves keys to other partitions, so a trace's
        # events may be folded out of order across the change): never done behind anyone's back.
        found.append(f"{state.name}: {state.partitions} partitions, configured {config.partitions}")
    if state.replication != config.replication:
        found.append(f"{state.name}: replication factor {state.replication}, configured {config.replication}")
    for key, wanted in config.topic_configs().items():
        actual = state.configs.get(key)
        if actual != wanted:
            found.append(f"{state.name}: {key}={actual}, configured {wanted}")
    return found


async def ensure_topics(bootstrap: str, config: TopicConfig) -> TopicReport:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = (config.events, config.dead_letters)
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name,
                num_partitions=config.partitions,
                replication_factor=config.replication,
                topic_configs=config.topic_configs(),
            )
            for name in names
            if name not in existing
        ]
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass  # another migrator won the race; the check below still applies
        created = [t.name for t in wanted]
        found: list[str] = []
        for state in await _describe(admin, [n for n in names if n not in created]):
            found.extend(differences(config, state))
        return TopicReport(created=created, differences=found)
    finally:
        await admin.close()


async def _describe(admin: AIOKafkaAdminClient, names: list[str]) -> list[TopicState]:
    if not names:
        return []
    metadata = {t["topic"]: t for t in await admin.describe_topics(names)}
    keys = {"retention.ms": None, "min.insync.replicas": None}
    responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n, keys) for n in names])
    configs: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in response.resources:
            # (error_code, error_message, resource_type, resource_name, config_entries)
            entries: list[Any] = resource[4]
            configs[resource[3]] = {str(e[0]): str(e[1]) for e in entries}
    states = []
    for name in names:
        partitions = metadata.get(name, {}).get("partitions", [])
        replication = max((len(p["replicas"]) for p in partitions), default=0)
        states.append(TopicState(name, len(partitions), replication, configs.get(name, {})))
    return states
