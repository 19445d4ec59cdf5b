"""Dataset run items from the spans of an SDK's experiment.

The current Langfuse SDKs (Python 5.x) no longer post /api/public/dataset-run-items when they
run an experiment on a dataset: they mark each item's spans with `langfuse.experiment.*`
attributes (the dataset, the item, the run's name) and Langfuse derives the link from the
spans. We do the same at the edge, from the mapped observations: the span the SDK names as the
item's root observation (`langfuse.experiment.item.root_observation_id`) links its item to its
trace in the run of that name, which is created with the dataset's first such span.

Writes are idempotent (the run item's id derives from run, item, trace and observation), so
an exporter retrying an export, whose events fold once, links its items once too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from loguru import logger

from ingest.auth import AuthUnavailable
from sinks.postgres.client import Postgres, PostgresError
from sinks.postgres.dataset_runs import ExperimentItem, RunTable

ROOT = "langfuse.experiment.item.root_observation_id"
_DATASET = "langfuse.experiment.dataset.id"
_ITEM = "langfuse.experiment.item.id"
_RUN = "langfuse.experiment.name"
_DESCRIPTION = "langfuse.experiment.description"
_METADATA = "langfuse.experiment.metadata"

Link = Callable[[str, list[ExperimentItem]], Awaitable[None]]


def experiment_item(event: dict[str, Any]) -> ExperimentItem | None:
    """The link an observation event makes, when it is the root of an experiment's dataset item."""
    body = event.get("body")
    if event.get("type") == "trace-create" or not isinstance(body, dict):
        return None
    metadata = body.get("metadata")
    if not isinstance(metadata, dict) or metadata.get(ROOT) != body.get("id"):
        return None
    dataset_id, item_id, run_name = (metadata.get(k) for k in (_DATASET, _ITEM, _RUN))
    trace_id = body.get("traceId")
    ids = (dataset_id, item_id, run_name, trace_id)
    if not all(isinstance(v, str) and 0 < len(v) <= 255 and "\x00" not in v for v in ids):
        return None
    description = metadata.get(_DESCRIPTION)
    return ExperimentItem(
        dataset_id=str(dataset_id),
        item_id=str(item_id),
        run_name=str(run_name),
        trace_id=str(trace_id),
        observation_id=str(body["id"]),
        description=description if isinstance(description, str) else None,
        metadata=_run_metadata(metadata.get(_METADATA)),
    )


def _run_metadata(raw: object) -> str | None:
    """The run's metadata as JSON text of an object: the SDK sends it serialized."""
    if not isinstance(raw, str):
        return None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = raw
    if doc is None:
        return None
    return orjson.dumps(doc if isinstance(doc, dict) else {"metadata": doc}).decode()


@dataclass(frozen=True)
class Linker:
    """Links an export's experiment items in Postgres; its outage is the client's 503 (the
    exporter retries; its spans fold once and its links are written once)."""

    pg: Postgres

    async def __call__(self, project_id: str, items: list[ExperimentItem]) -> None:
        try:
            await RunTable(self.pg).link_experiment(project_id, items)
        except PostgresError as exc:
            if not exc.permanent:
                raise AuthUnavailable(f"experiment items could not be linked: {exc}") from exc
            # Text Postgres cannot hold: retrying cannot help, and the spans are in.
            logger.warning("experiment items not linked", project_id=project_id, error=str(exc))
