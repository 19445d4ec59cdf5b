"""Each stage's config from the environment: the ClickHouse stage waits less for a batch than
the Postgres stage, and one interval set for all stages still reaches both."""

import pytest

from agenttrace.settings import CLICKHOUSE_FLUSH_INTERVAL_S, Settings
from pipeline.config import StageConfig


def test_the_clickhouse_stage_has_its_own_interval() -> None:
    settings = Settings.from_env({"AGENTTRACE_FLUSH_ROWS": "500"})
    clickhouse, postgres = settings.stage_config("clickhouse"), settings.stage_config("postgres")
    assert clickhouse.flush_interval_s == CLICKHOUSE_FLUSH_INTERVAL_S < postgres.flush_interval_s
    assert postgres.flush_interval_s == StageConfig.flush_interval_s
    assert clickhouse.flush_rows == postgres.flush_rows == 500  # the rest is shared


@pytest.mark.parametrize(
    ("env", "clickhouse", "postgres"),
    [
        ({"AGENTTRACE_FLUSH_INTERVAL_S": "1.5"}, 1.5, 1.5),
        ({"AGENTTRACE_CLICKHOUSE_FLUSH_INTERVAL_S": "0.05"}, 0.05, StageConfig.flush_interval_s),
        ({"AGENTTRACE_FLUSH_INTERVAL_S": "1", "AGENTTRACE_CLICKHOUSE_FLUSH_INTERVAL_S": "0.2"}, 0.2, 1.0),
    ],
)
def test_intervals_from_the_environment(env: dict[str, str], clickhouse: float, postgres: float) -> None:
    settings = Settings.from_env(env)
    assert settings.stage_config("clickhouse").flush_interval_s == clickhouse
    assert settings.stage_config("postgres").flush_interval_s == postgres


def test_a_clickhouse_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="CLICKHOUSE_FLUSH_INTERVAL_S"):
        Settings.from_env({"AGENTTRACE_CLICKHOUSE_FLUSH_INTERVAL_S": "-1"})
