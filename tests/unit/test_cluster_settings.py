"""Cluster mode from the environment: topic replication and min.insync.replicas, the ClickHouse
cluster name, and what `agenttrace migrate` says about topics that differ from them."""

import pytest

from agenttrace.cli import _migrate
from agenttrace.settings import Settings
from pipeline.config import TopicConfig
from pipeline.topics import TopicState, differences


def test_single_node_defaults_are_unchanged() -> None:
    settings = Settings.from_env({})
    assert (settings.topics.partitions, settings.topics.replication, settings.topics.min_insync_replicas) == (8, 1, 1)
    assert settings.clickhouse.cluster == ""


def test_cluster_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "AGENTTRACE_TOPIC_PARTITIONS": "12",
            "AGENTTRACE_TOPIC_REPLICATION": "3",
            "AGENTTRACE_TOPIC_MIN_INSYNC_REPLICAS": "2",
            "AGENTTRACE_CLICKHOUSE_CLUSTER": "agenttrace",
        }
    )
    assert (settings.topics.partitions, settings.topics.replication, settings.topics.min_insync_replicas) == (12, 3, 2)
    assert settings.topics.topic_configs()["min.insync.replicas"] == "2"
    assert settings.clickhouse.cluster == "agenttrace"
    assert "cluster='agenttrace'" in repr(settings)


@pytest.mark.parametrize(
    "env",
    [
        {"AGENTTRACE_TOPIC_MIN_INSYNC_REPLICAS": "2"},  # more in-sync replicas than replicas
        {"AGENTTRACE_TOPIC_REPLICATION": "0"},
        {"AGENTTRACE_CLICKHOUSE_CLUSTER": "two words"},
    ],
)
def test_impossible_cluster_settings_are_refused(env) -> None:
    with pytest.raises(ValueError):
        Settings.from_env(env)


def test_a_topic_as_configured_has_no_differences() -> None:
    config = TopicConfig(partitions=6, replication=3, min_insync_replicas=2)
    state = TopicState("agenttrace.events", 6, 3, config.topic_configs())
    assert differences(config, state) == []


def test_every_difference_is_named() -> None:
    config = TopicConfig(partitions=6, replication=3, min_insync_replicas=2, retention_ms=1000)
    state = TopicState("agenttrace.events", 8, 1, {"min.insync.replicas": "1", "retention.ms": "604800000"})
    assert differences(config, state) == [
        "agenttrace.events: 8 partitions, configured 6",
        "agenttrace.events: replication factor 1, configured 3",
        "agenttrace.events: retention.ms=604800000, configured 1000",
        "agenttrace.events: min.insync.replicas=1, configured 2",
    ]


def test_a_clickhouse_url_may_name_further_servers_to_fail_over_to() -> None:
    one = Settings.from_env({"AGENTTRACE_CLICKHOUSE_URL": "clickhouse://u:p%40ss@10.0.0.1:9000/db"}).clickhouse
    assert (one.host, one.port, one.user, one.password, one.database, one.fallbacks) == (
        "10.0.0.1",
        9000,
        "u",
        "p@ss",
        "db",
        (),
    )
    url = "clickhouse://u:p@ch-a:9000,ch-b:9001,ch-c:9002/db"
    many = Settings.from_env({"AGENTTRACE_CLICKHOUSE_URL": url}).clickhouse
    assert many.servers() == (("ch-a", 9000), ("ch-b", 9001), ("ch-c", 9002))
    assert (many.user, many.password, many.database) == ("u", "p", "db")
    with pytest.raises(ValueError, match="host:port"):
        Settings.from_env({"AGENTTRACE_CLICKHOUSE_URL": "clickhouse://ch-a:9000,ch-b/db"})


async def test_granules_rebuild_is_refused_on_a_cluster_before_touching_anything() -> None:
    # No server runs in the unit tests: a refusal that connected first would fail otherwise.
    settings = Settings.from_env(
        {"AGENTTRACE_CLICKHOUSE_CLUSTER": "agenttrace", "AGENTTRACE_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    )
    assert await _migrate(settings, rebuild_granules=True) == 2
