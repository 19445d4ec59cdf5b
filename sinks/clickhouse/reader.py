"""Reads of the ClickHouse projection for the public API: rows as dicts, times as µs.

Rows are read with FINAL, so what comes back is the fold of every event seen so far, whatever
order they arrived in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from pipeline.fold import OBSERVATION, SCORE, TRACE
from pipeline.times import micros_of_column
from sinks.clickhouse.client import ClickHouse

TRACE_COLUMNS = (
    "id", "timestamp", "name", "user_id", "session_id", "release", "version", "environment", "tags",
    "public", "metadata", "input", "output",
)  # fmt: skip
OBSERVATION_COLUMNS = (
    "id", "trace_id", "type", "parent_observation_id", "name", "start_time", "end_time",
    "completion_start_time", "level", "status_message", "version", "environment", "metadata", "input",
    "output", "provided_model_name", "model_parameters", "usage_details", "cost_details", "total_cost",
    "prompt_name", "prompt_version",
)  # fmt: skip
SCORE_COLUMNS = (
    "id", "trace_id", "observation_id", "name", "value", "string_value", "data_type", "source",
    "comment", "timestamp",
)  # fmt: skip
TIME_COLUMNS = frozenset({"timestamp", "start_time", "end_time", "completion_start_time"})

Row = dict[str, Any]


class Reader:
    def __init__(self, client: ClickHouse) -> None:
        self._ch = client

    async def trace(self, project_id: str, trace_id: str) -> tuple[Row | None, list[Row], list[Row]]:
        """One trace with its observations (by start) and scores (by time); None when absent.

        Raises ClickHouseError when the store failed.
        """
        params = {"project": project_id, "trace": trace_id}
        traces, observations, scores = await asyncio.gather(
            self._select(TRACE, TRACE_COLUMNS, "id = %(trace)s", "", params),
            self._select(OBSERVATION, OBSERVATION_COLUMNS, "trace_id = %(trace)s", "ORDER BY start_time, id", params),
            self._select(SCORE, SCORE_COLUMNS, "trace_id = %(trace)s", "ORDER BY timestamp, id", params),
        )
        return (traces[0] if traces else None), observations, scores

    async def _select(
        self, table: str, columns: Sequence[str], where: str, order: str, params: dict[str, str]
    ) -> list[Row]:
        sql = (
            f"SELECT {', '.join(columns)} FROM {table} FINAL "
            f"WHERE project_id = %(project)s AND {where} AND is_deleted = 0 {order}"
        )
        rows = await self._ch.fetch(sql, params, operation=f"read_{table}")
        return [_decoded(dict(zip(columns, row, strict=True))) for row in rows]


def _decoded(row: Row) -> Row:
    for column in TIME_COLUMNS & row.keys():
        if row[column] is not None:
            row[column] = micros_of_column(row[column])
    return row
