"""Validation of Langfuse-style ingestion events, table-driven by event type.

An invalid event is reported on its own (status 400 and a message) and never affects the
other events of its batch. Field names follow Langfuse's public ingestion API. A valid event's
times leave here as µs (pipeline/times.py), the only place they are parsed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Final

from pipeline.times import MAX_US, MIN_US, to_micros

LEVELS: Final = frozenset({"DEBUG", "DEFAULT", "WARNING", "ERROR"})
# TEXT and CORRECTION: free-text scores, sent by the current Langfuse SDKs.
SCORE_TYPES: Final = frozenset({"NUMERIC", "CATEGORICAL", "BOOLEAN", "TEXT", "CORRECTION"})

OBSERVATION_TYPES: Final = {
    "span-create": "SPAN",
    "span-update": "SPAN",
    "generation-create": "GENERATION",
    "generation-update": "GENERATION",
    "event-create": "EVENT",
    "agent-create": "AGENT",
    "tool-create": "TOOL",
    "chain-create": "CHAIN",
    "retriever-create": "RETRIEVER",
    "evaluator-create": "EVALUATOR",
    "embedding-create": "EMBEDDING",
    "guardrail-create": "GUARDRAIL",
}
UPDATE_TYPES: Final = frozenset({"span-update", "generation-update"})
EVENT_TYPES: Final = frozenset({"trace-create", "score-create", "sdk-log", *OBSERVATION_TYPES})


class InvalidEvent(ValueError):
    pass


Check = Callable[[str, Any], None]


def _str(name: str, v: Any) -> None:
    if not isinstance(v, str):
        raise InvalidEvent(f"body.{name} must be a string")


def _id(name: str, v: Any) -> None:
    if not isinstance(v, str) or not v or len(v) > 256:
        raise InvalidEvent(f"body.{name} must be a non-empty string of at most 256 characters")


# Session and user ids and model names are primary-key parts of the Postgres projection (a btree
# entry must stay small); sinks/postgres/rollup.py dead-letters longer ones, so they are refused
# here, per event, and the stage never sees one. Ids are held to 256 by _id.
MAX_KEY_CHARS: Final = 1000


KEY_FIELDS: Final = ("userId", "sessionId", "model")


def _key(name: str, v: Any) -> None:
    if not isinstance(v, str) or len(v) > MAX_KEY_CHARS:
        raise InvalidEvent(f"body.{name} must be a string of at most {MAX_KEY_CHARS} characters")


# Go's and .NET's zero time (0001-01-01T00:00:00Z), which their JSON encoders write for a time
# left unset: CloudWeGo Eino's Langfuse client sends it as every update's startTime and every
# create's endTime. Such a field is absent, as Langfuse takes it, not out of range.
UNSET_TIME_US: Final = -62_135_596_800_000_000


def event_time(name: str, v: Any, unset: bool = False) -> int | None:
    """A client's time as µs, within what every store holds; InvalidEvent otherwise. With
    `unset`, None for the zero time that means no time (UNSET_TIME_US)."""
    try:
        us = to_micros(v)
    except (ValueError, OverflowError) as exc:
        raise InvalidEvent(f"{name} is not an ISO 8601 timestamp") from exc
    if unset and us == UNSET_TIME_US:
        return None
    if us is not None and not MIN_US <= us < MAX_US:
        raise InvalidEvent(f"{name} must lie between 1970 and 2100")
    return us


def _bool(name: str, v: Any) -> None:
    if not isinstance(v, bool):
        raise InvalidEvent(f"body.{name} must be a boolean")


def _obj(name: str, v: Any) -> None:
    if not isinstance(v, dict):
        raise InvalidEvent(f"body.{name} must be an object")


# Token counts and costs beyond this are garbage, and past 2**63 no store can hold them.
MAX_AMOUNT: Final = 1e15


# OpenAI's usage objects nest their parts' counts under these keys; Langfuse takes such an object
# as usageDetails (the SDKs' OpenAI integrations send `response.usage` as it is). Side: whose part.
OPENAI_USAGE_DETAILS: Final = {
    "prompt_tokens_details": "input",
    "input_tokens_details": "input",
    "completion_tokens_details": "output",
    "output_tokens_details": "output",
}


def _num_map(name: str, v: Any) -> None:
    """usage/usageDetails/costDetails: numbers (or null) by key; Langfuse's `unit` is a string,
    and a usage's OpenAI details are maps of numbers themselves."""
    _amounts(name, v, name != "costDetails")


def _amounts(name: str, v: Any, details: bool) -> None:
    if not isinstance(v, dict):
        raise InvalidEvent(f"body.{name} must be an object")
    for k, x in v.items():
        if x is None or (k == "unit" and isinstance(x, str)):
            continue
        if details and type(x) is dict and k in OPENAI_USAGE_DETAILS:
            _amounts(f"{name}.{k}", x, False)
            continue
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise InvalidEvent(f"body.{name}.{k} must be a number")
        if not -MAX_AMOUNT <= x <= MAX_AMOUNT:
            raise InvalidEvent(f"body.{name}.{k} is out of range (at most {MAX_AMOUNT:.0e} either way)")


def _tags(name: str, v: Any) -> None:
    if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
        raise InvalidEvent(f"body.{name} must be a list of strings")


def _level(name: str, v: Any) -> None:
    if not isinstance(v, str) or v not in LEVELS:  # an object or a list is not hashable
        raise InvalidEvent(f"body.{name} must be one of {', '.join(sorted(LEVELS))}")


def _version(name: str, v: Any) -> None:
    if not isinstance(v, (str, int)) or isinstance(v, bool):
        raise InvalidEvent(f"body.{name} must be a string or an integer")


def _score_value(name: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise InvalidEvent(f"body.{name} must be a number or a string")


def _score_type(name: str, v: Any) -> None:
    if not isinstance(v, str) or v not in SCORE_TYPES:
        raise InvalidEvent(f"body.{name} must be one of {', '.join(sorted(SCORE_TYPES))}")


_COMMON: Final = {"environment": _str, "metadata": lambda n, v: None}

TRACE_FIELDS: Final[dict[str, Check]] = {
    **_COMMON,
    "id": _id,
    "name": _str,
    "userId": _key,
    "sessionId": _key,
    "release": _str,
    "version": _str,
    "tags": _tags,
    "public": _bool,
}

OBSERVATION_FIELDS: Final[dict[str, Check]] = {
    **_COMMON,
    "id": _id,
    "traceId": _id,
    "parentObservationId": _id,
    "name": _str,
    "level": _level,
    "statusMessage": _str,
    "version": _str,
    "model": _key,
    "modelParameters": _obj,
    "usage": _num_map,
    "usageDetails": _num_map,
    "costDetails": _num_map,
    "promptName": _str,
    "promptVersion": _version,
}

SCORE_FIELDS: Final[dict[str, Check]] = {
    **_COMMON,
    "id": _id,
    "traceId": _id,
    "observationId": _id,
    "sessionId": _id,
    "datasetRunId": _id,
    "name": _id,
    "value": _score_value,
    "dataType": _score_type,
    "comment": _str,
    "configId": _str,
    # A categorical score's label when `value` is its number (a score config's category).
    "stringValue": _str,
}

# The body fields that hold times, by event type: checked and converted to µs by normalize().
TIME_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "trace-create": ("timestamp",),
    "score-create": ("timestamp",),
    **dict.fromkeys(OBSERVATION_TYPES, ("startTime", "endTime", "completionStartTime")),
}

FIELDS_BY_TYPE: Final[dict[str, dict[str, Check]]] = {
    "trace-create": TRACE_FIELDS,
    "score-create": SCORE_FIELDS,
    "sdk-log": {},
    **dict.fromkeys(OBSERVATION_TYPES, OBSERVATION_FIELDS),
}


def check_keys(body: dict[str, Any]) -> None:
    """The stores' key limits alone, for events made by the OTLP mapping (whose coercions
    already give every other field its type and range)."""
    for name in KEY_FIELDS:
        if body.get(name) is not None:
            _key(name, body[name])


def check_body(etype: str, body: dict[str, Any]) -> None:
    """The field checks of `etype` on a body; InvalidEvent for the first that fails."""
    fields = FIELDS_BY_TYPE[etype]
    for name, value in body.items():
        check = fields.get(name)
        if check is not None and value is not None:
            check(name, value)


def normalize(event: Any) -> tuple[str, str, int, dict[str, Any]]:
    """Validate one batch event; return (event id, type, event time in µs, body).

    Raises InvalidEvent with a message meant for the client. Ids the API lets a client omit
    (a trace's, an observation create's, a score's) are generated here, once, at the edge.
    """
    if not isinstance(event, dict):
        raise InvalidEvent("event must be an object")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 256:
        raise InvalidEvent("event.id must be a non-empty string")
    etype = event.get("type")
    if not isinstance(etype, str) or etype not in FIELDS_BY_TYPE:
        raise InvalidEvent(f"unknown event type {etype!r}")
    ts = event_time("event.timestamp", event.get("timestamp"))
    body = event.get("body")
    if not isinstance(body, dict):
        raise InvalidEvent("event.body must be an object")
    check_body(etype, body)
    for name in TIME_FIELDS.get(etype, ()):
        if body.get(name) is not None:
            us = event_time(f"body.{name}", body[name], unset=True)
            if us is None:
                del body[name]
            else:
                body[name] = us
    if etype == "sdk-log":
        return event_id, etype, ts or 0, body
    if etype in UPDATE_TYPES:
        if not body.get("id"):
            raise InvalidEvent("body.id is required for an update")
    elif not body.get("id"):
        body["id"] = str(uuid.uuid4())
    if etype in OBSERVATION_TYPES and not body.get("traceId") and etype not in UPDATE_TYPES:
        raise InvalidEvent("body.traceId is required")
    if etype == "score-create":
        if not body.get("name"):
            raise InvalidEvent("body.name is required")
        if body.get("value") is None:
            raise InvalidEvent("body.value is required")
        if not (body.get("traceId") or body.get("sessionId") or body.get("datasetRunId")):
            raise InvalidEvent("a score needs body.traceId, body.sessionId or body.datasetRunId")
    return event_id, etype, ts or 0, body
