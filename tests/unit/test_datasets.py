"""Datasets without servers: what the store takes from a request, Langfuse's stable run id, and
the links an SDK experiment's spans make at the OTLP edge."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from ingest.otlp.experiments import ROOT, experiment_item
from ingest.otlp.export import export_spans
from sinks.postgres.dataset_runs import ExperimentItem, parse_run_item, run_id
from sinks.postgres.datasets import MAX_DOC_BYTES, DatasetError, parse_dataset, parse_item
from tests.unit.test_intake import CALLER, FakeLimiter, FakePublisher, intake


def test_the_run_id_is_langfuses_stable_experiment_id() -> None:
    # As the server and the SDKs write it: JSON.stringify of the array, non-ASCII as it is.
    payload = '["langfuse-experiment-v1","p","d","run é 1"]'.encode()
    assert run_id("p", "d", "run é 1") == hashlib.sha256(payload).hexdigest()[:16]
    assert run_id("p", "d", "a") != run_id("p", "e", "a") != run_id("q", "d", "a")


def test_items_and_datasets_are_taken_as_langfuse_takes_them() -> None:
    item = parse_item({"datasetName": "a/b", "input": {"q": [1]}, "expectedOutput": None, "status": "ARCHIVED"})
    assert (item.id, item.input, item.expected_output, item.metadata, item.status) == (
        None,
        '{"q":[1]}',
        None,
        None,
        "ARCHIVED",
    )
    dataset = parse_dataset({"name": "d", "inputSchema": None, "metadata": "m"})
    assert (dataset.metadata, dataset.set_input_schema, dataset.set_expected_output_schema) == ('"m"', True, False)
    with pytest.raises(DatasetError) as large:
        parse_item({"datasetName": "d", "input": "x" * MAX_DOC_BYTES, "metadata": 1})
    assert large.value.status == 413


@pytest.mark.parametrize(
    ("doc", "metadata"),
    [
        ({"metadata": {"a": 1}}, {"a": 1}),
        ({"metadata": [1]}, {"metadata": [1]}),
        ({}, None),
        ({"metadata": "x", "version": True}, {"metadata": "x", "dataset_version": "2026-01-02T03:04:05Z"}),
        ({"version": True}, {"dataset_version": "2026-01-02T03:04:05Z"}),
    ],
)
def test_a_runs_metadata_is_an_object(doc: dict[str, Any], metadata: Any) -> None:
    version = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC) if doc.pop("version", False) else None
    new = parse_run_item({"runName": "r", "datasetItemId": "i", "traceId": "t", **doc}, None, version)
    assert (None if new.metadata is None else orjson.loads(new.metadata)) == metadata


def _event(span_id: str, metadata: Any, kind: str = "span-create", **body: Any) -> dict[str, Any]:
    return {
        "id": f"{span_id}-obs",
        "type": kind,
        "body": {"id": span_id, "traceId": "t1", "metadata": metadata, **body},
    }


EXPERIMENT = {
    ROOT: "aa",
    "langfuse.experiment.dataset.id": "d1",
    "langfuse.experiment.item.id": "i1",
    "langfuse.experiment.name": "run 1",
    "langfuse.experiment.description": "desc",
    "langfuse.experiment.metadata": '{"model": "m"}',
}


def test_the_span_an_experiment_names_as_its_items_root_links_the_item() -> None:
    assert experiment_item(_event("aa", EXPERIMENT)) == ExperimentItem(
        dataset_id="d1",
        item_id="i1",
        run_name="run 1",
        trace_id="t1",
        observation_id="aa",
        description="desc",
        metadata='{"model":"m"}',
    )
    # Metadata that is not a JSON object is wrapped; text that is not JSON is a string.
    for raw, stored in (("[1]", '{"metadata":[1]}'), ("{x", '{"metadata":"{x"}')):
        item = experiment_item(_event("aa", EXPERIMENT | {"langfuse.experiment.metadata": raw}))
        assert item is not None and item.metadata == stored


@pytest.mark.parametrize(
    "event",
    [
        _event("bb", EXPERIMENT),  # a child of the item's root
        _event("aa", EXPERIMENT, kind="trace-create"),
        _event("aa", "not a dict"),
        _event("aa", None),
        _event("aa", {k: v for k, v in EXPERIMENT.items() if k != "langfuse.experiment.item.id"}),
        _event("aa", EXPERIMENT | {"langfuse.experiment.dataset.id": 7}),
        _event("aa", EXPERIMENT | {"langfuse.experiment.name": "x" * 256}),
        _event("aa", EXPERIMENT | {"langfuse.experiment.name": ""}),
        _event("aa", EXPERIMENT | {"langfuse.experiment.item.id": "a\x00b"}),
        {"id": "x", "type": "span-create", "body": "not a dict"},
    ],
)
def test_other_spans_link_nothing(event: dict[str, Any]) -> None:
    assert experiment_item(event) is None


def _attr(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


async def test_an_export_hands_its_experiment_links_over_once_its_spans_are_appended() -> None:
    spans = []
    for n in range(30):
        span_id = (n + 1).to_bytes(8, "big")  # not 0: an invalid span id
        attrs = {k: v for k, v in EXPERIMENT.items() if k != ROOT} | {ROOT: span_id.hex()}
        if n % 3:  # the others: plain spans
            attrs = {"plain": "yes"}
        spans.append(
            Span(
                trace_id=bytes(range(16)),
                span_id=span_id,
                name=f"s{n}",
                start_time_unix_nano=1,
                end_time_unix_nano=2,
                attributes=[_attr(k, v) for k, v in attrs.items()],
            )
        )
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])])
    publisher = FakePublisher()
    handed: list[tuple[str, list[ExperimentItem], int]] = []

    async def link(project_id: str, items: list[ExperimentItem]) -> None:
        handed.append((project_id, items, len(publisher.records)))

    # Small slices: the links are handed over after the last one is appended.
    edge = intake(publisher, FakeLimiter(), max_mapped_bytes=2_000)
    log: dict[str, Any] = {}
    await export_spans(edge, CALLER, request, "otlp", log, link)
    assert len(handed) == 1
    project_id, items, appended = handed[0]
    assert (project_id, appended, log["experiment_items"]) == ("p1", len(publisher.records), 10)
    assert [i.observation_id for i in items] == [(n + 1).to_bytes(8, "big").hex() for n in range(0, 30, 3)]
    assert {i.trace_id for i in items} == {bytes(range(16)).hex()}
    # Without experiment spans, or without a link, nothing is handed over.
    handed.clear()
    await export_spans(intake(FakePublisher(), FakeLimiter()), CALLER, ExportTraceServiceRequest(), "otlp", {}, link)
    assert handed == []
