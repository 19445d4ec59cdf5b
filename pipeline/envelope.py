"""The versioned envelope every accepted event travels in through Kafka.

The edge writes records; stages read each back as envelopes (`decode_record`). The Kafka key is
``project_id:trace_id`` so that the events of one trace land in one partition and keep their
order. A record holds one request's events for one partition (ingest/records.py): what they
share once, then each event, so the per-record work of the edge, the broker and both consumer
groups is paid once per partition and request, not once per event. Its key is its first event's
trace; the other traces in it hash to the same partition.

Version 4 (written now) carries each event's input and output as the JSON text the ClickHouse
stage stores, after the JSON of the rest: `v4 <length of the JSON>` and a newline, the JSON (version 3's
layout; an event with texts is `[id, type, ts, body, [input bytes, output bytes]]`, -1 for
none, and 0 in the body where a text goes), then the texts in event order. So no stage parses
a prompt into objects: the Postgres stage never reads them, and the ClickHouse stage stored them
re-serialized. Versions 1 and 2 held one event each, version 3 a group without texts; all are
still read, so the log replays unchanged, and an envelope alone (a dead letter, a requeue) is
still written as version 2, its texts as values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

from pipeline.errors import EnvelopeError
from pipeline.events import TIME_FIELDS
from pipeline.times import to_micros

# 2: the body's times are µs integers (pipeline/times.py), parsed once at the edge.
# 1: they were the client's text; decode() converts them, so the log replays unchanged.
VERSION: Final = 2
_VERSIONS: Final = (1, 2)
# 3: a group of events of one request, `[id, type, ts, body]` each, after the fields they share.
# 4: the same, prefixed and followed by the events' input and output texts (the module's doc).
GROUP_VERSION: Final = 4
_UNFRAMED_GROUP_VERSION: Final = 3  # the group version that is plain JSON
# The body fields that travel as texts, in the order of an event's lengths.
TEXT_FIELDS: Final = ("input", "output")
# The JSON's length is written in at most this many digits; records are at most a few MB.
_LENGTH_DIGITS: Final = 9
# What a record has beside its JSON and texts: the prefix at its longest, and the closing `]}`.
_FRAME: Final = len(b"v4 \n") + _LENGTH_DIGITS + 2

# `Envelope.source` of OpenTelemetry spans, by transport. A span is exported once, when it has
# ended, whole: an observation made from one needs no stored state to merge into.
OTLP_HTTP: Final = "otlp"
OTLP_GRPC: Final = "otlp_grpc"
# Of the GenAI content that instrumentations send as OTLP log records (ingest/otlp/logs.py):
# updates of spans, not spans, so none of the above.
OTLP_LOGS: Final = "otlp_logs"
OTLP_LOGS_GRPC: Final = "otlp_logs_grpc"
SPAN_SOURCES: Final = frozenset({OTLP_HTTP, OTLP_GRPC})
LOG_SOURCES: Final = frozenset({OTLP_LOGS, OTLP_LOGS_GRPC})
# The trace of a log record's context, on the update it becomes: it names no trace (see
# ingest/otlp/logs.py), yet goes to its trace's partition, to the process holding the trace's
# state, which then gives a root span's content to its trace (sinks/clickhouse/writer.py).
CONTEXT_TRACE: Final = "contextTraceId"
# On such an update whose input is a call's message records: `[key, count]`, the part of the
# input its export held. An SDK's log processor may export one call's records in two requests;
# the fold joins the parts in key order (pipeline/fold.py, add_part) instead of the later
# replacing the earlier. The key: the first record's time (ns, 20 digits), "-" and a checksum.
INPUT_PART: Final = "inputPart"


# init=False and a written __init__: the dataclass decorator's generated __init__ is interpreted
# Python even in the compiled module (ops/stack/native.py), ~0.35 µs per object against ~0.05.
@dataclass(slots=True, init=False)
class Envelope:
    id: str
    project_id: str
    type: str
    # Client event time in microseconds since the epoch; orders updates of the same entity.
    ts: int
    received_at: int
    body: dict[str, Any]
    request_id: str
    sdk_name: str
    sdk_version: str
    source: str
    v: int
    # The body's input and output are JSON texts (a version-4 record's), not values to encode.
    texts: bool

    def __init__(
        self,
        id: str,
        project_id: str,
        type: str,
        ts: int,
        received_at: int,
        body: dict[str, Any],
        request_id: str = "",
        sdk_name: str = "",
        sdk_version: str = "",
        source: str = "batch",
        v: int = VERSION,
        texts: bool = False,
    ) -> None:
        self.id, self.project_id, self.type, self.ts, self.received_at = id, project_id, type, ts, received_at
        self.body, self.request_id, self.sdk_name, self.sdk_version = body, request_id, sdk_name, sdk_version
        self.source, self.v, self.texts = source, v, texts

    def key(self) -> bytes:
        return partition_key(self.project_id, self.type, self.body, self.id)

    def encode(self) -> bytes:
        """This event alone, as version 2 (a dead letter, a requeue): texts as the values they
        hold, so the record reads the same to every version that reads version 2."""
        # orjson (3.13) returns its 4 KiB working buffer whatever the length: a 10,000-event
        # batch held ~40 MB of them until Kafka acknowledged. The %-copy is right-sized and
        # costs ~0.1 µs (bench/hostile.py; bench/README.md "hostile.py").
        return b"%b" % (
            orjson.dumps(
                {
                    "v": self.v,
                    "id": self.id,
                    "project_id": self.project_id,
                    "type": self.type,
                    "ts": self.ts,
                    "received_at": self.received_at,
                    "request_id": self.request_id,
                    "sdk": {"name": self.sdk_name, "version": self.sdk_version},
                    "source": self.source,
                    "body": self.plain_body() if self.texts else self.body,
                }
            ),
        )

    def plain_body(self) -> dict[str, Any]:
        """The body with its texts parsed back into the values they encode."""
        body = dict(self.body)
        for name in TEXT_FIELDS:
            text = body.get(name)
            if type(text) is str:
                try:
                    body[name] = orjson.loads(text)
                except orjson.JSONDecodeError:
                    pass  # not the edge's: kept as it came
        return body

    @classmethod
    def decode(cls, raw: bytes) -> Envelope:
        try:
            d = orjson.loads(raw)
            version = d.get("v")
            if type(version) is not int or version not in _VERSIONS:
                raise EnvelopeError(f"unsupported envelope version {version!r}")
            # Exact types: a record that decodes must never fail later in a way no retry fixes.
            if not type(d["id"]) is type(d["project_id"]) is type(d["type"]) is str:
                raise EnvelopeError("envelope id, project_id and type must be strings")
            if not type(d["ts"]) is type(d["received_at"]) is int:
                raise EnvelopeError("envelope ts and received_at must be integers")
            sdk = d.get("sdk") or {}
            # Positional, in field order: keywords cost ~0.35 µs more per envelope.
            env = cls(
                d["id"],
                d["project_id"],
                d["type"],
                d["ts"],
                d["received_at"],
                d["body"],
                str(d.get("request_id") or ""),
                str(sdk.get("name") or ""),
                str(sdk.get("version") or ""),
                str(d.get("source") or "batch"),
            )
        except EnvelopeError:
            raise
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise EnvelopeError(f"undecodable envelope: {exc}") from exc
        if not isinstance(env.body, dict):
            raise EnvelopeError("envelope body is not an object")
        if version == 1:
            _upgrade_times(env)
        return env


def partition_key(project_id: str, etype: str, body: dict[str, Any], event_id: str) -> bytes:
    """The trace, so its events stay ordered; else the entity itself, else the event."""
    trace = body.get("traceId") or body.get(CONTEXT_TRACE) if etype != "trace-create" else body.get("id")
    return f"{project_id}:{trace or body.get('id') or event_id}".encode()


class Group:
    """Events of one request for one partition, as one version-4 record: `head` once, then each
    event's item, then their texts."""

    __slots__ = ("head", "items", "size", "texts")

    def __init__(self, head: bytes) -> None:
        self.head = head
        self.items: list[bytes] = []
        self.texts: list[bytes] = []
        self.size = len(head) + _FRAME

    @staticmethod
    def opening(
        project_id: str, received_at: int, request_id: str, sdk_name: str, sdk_version: str, source: str
    ) -> bytes:
        """What every record of a request starts with, up to its list of events."""
        shared = {
            "v": GROUP_VERSION,
            "project_id": project_id,
            "received_at": received_at,
            "request_id": request_id,
            "sdk": {"name": sdk_name, "version": sdk_version},
            "source": source,
        }
        return orjson.dumps(shared)[:-1] + b',"events":['

    @staticmethod
    def item(event_id: str, etype: str, ts: int, body: dict[str, Any]) -> tuple[bytes, bytes]:
        """One event's part of a record: its item and its texts (the input's, then the
        output's); JSONEncodeError when its body nests too deeply. The %-copies are right-sized:
        orjson hands back its 4 KiB working buffer (see encode())."""
        given_in, given_out = body.get("input"), body.get("output")
        if given_in is None and given_out is None:
            return b"%b" % orjson.dumps([event_id, etype, ts, body]), b""
        # The caller's body stays as it was. A text's place holds 0, which keeps the body's order
        # (a dead letter reads as the event did) for two bytes.
        rest = dict(body)
        if given_in is not None:
            rest["input"] = 0
        if given_out is not None:
            rest["output"] = 0
        text_in = b"" if given_in is None else orjson.dumps(given_in)
        text_out = b"" if given_out is None else orjson.dumps(given_out)
        lengths = [-1 if given_in is None else len(text_in), -1 if given_out is None else len(text_out)]
        return b"%b" % orjson.dumps([event_id, etype, ts, rest, lengths]), b"%b%b" % (text_in, text_out)

    @staticmethod
    def alone(head: bytes, item: tuple[bytes, bytes]) -> int:
        """The length of a record of `head` and this one item, at most."""
        return len(head) + _FRAME + len(item[0]) + len(item[1])

    def fits(self, item: tuple[bytes, bytes], limit: int) -> bool:
        return not self.items or self.size + 1 + len(item[0]) + len(item[1]) <= limit

    def add(self, item: tuple[bytes, bytes]) -> None:
        self.size += len(item[0]) + len(item[1]) + (1 if self.items else 0)
        self.items.append(item[0])
        if item[1]:
            self.texts.append(item[1])

    def record(self) -> bytes:
        """The record; the items are let go, so a large request holds each event once."""
        items, self.items = self.items, []
        texts, self.texts = self.texts, []
        doc = b"%b%b]}" % (self.head, b",".join(items))
        return b"v4 %d\n%b%b" % (len(doc), doc, b"".join(texts))


def decode_record(raw: bytes) -> list[Envelope]:
    """Every event of a Kafka record, in the order sent, at least one; EnvelopeError when any is
    unreadable (the whole record is then dead-lettered as it is: the edge never writes one)."""
    try:
        at = len(raw)  # where the texts start, and how far they go
        framed = raw[:3] == b"v4 "
        if framed:
            newline = raw.find(b"\n", 3, 4 + _LENGTH_DIGITS)
            if newline < 0 or not raw[3:newline].isdigit():
                raise EnvelopeError("a version-4 record's prefix must be `v4 <length>` and a newline")
            at = newline + 1 + int(raw[3:newline])
            if at > len(raw):
                raise EnvelopeError("a version-4 record is shorter than its JSON's length")
            d = orjson.loads(memoryview(raw)[newline + 1 : at])
            if type(d) is not dict or d.get("v") != GROUP_VERSION:
                raise EnvelopeError("a version-4 record's JSON must be a version-4 group")
        else:
            d = orjson.loads(raw)
            if type(d) is not dict or d.get("v") != _UNFRAMED_GROUP_VERSION:
                return [Envelope.decode(raw)]  # versions 1 and 2, parsed again: rare, and it checks
        project_id, received_at, events = d["project_id"], d["received_at"], d["events"]
        request_id, source, sdk = d["request_id"], d["source"], d["sdk"]
        sdk_name, sdk_version = sdk["name"], sdk["version"]
        if not type(project_id) is type(request_id) is type(source) is type(sdk_name) is type(sdk_version) is str:
            raise EnvelopeError("group project_id, request_id, source and sdk must be strings")
        if type(received_at) is not int or type(events) is not list or not events:
            raise EnvelopeError("group received_at must be an integer and events a non-empty list")
        out = []
        for item in events:
            texts = framed and len(item) == 5
            if texts:
                event_id, etype, ts, body, lengths = item
                if type(lengths) is not list or len(lengths) != 2:
                    raise EnvelopeError("an event's text lengths must be a list of two")
                at = _take_texts(raw, at, lengths, body)
            else:
                event_id, etype, ts, body = item
            if not type(event_id) is type(etype) is str or type(ts) is not int or type(body) is not dict:
                raise EnvelopeError("a group's event must be [id, type, ts, body] of exact types")
            out.append(
                Envelope(
                    event_id,
                    project_id,
                    etype,
                    ts,
                    received_at,
                    body,
                    request_id,
                    sdk_name,
                    sdk_version,
                    source,
                    VERSION,
                    texts,
                )
            )
        if at != len(raw):
            raise EnvelopeError("a version-4 record's texts do not add up to its length")
        return out
    except EnvelopeError:
        raise
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise EnvelopeError(f"undecodable record: {exc}") from exc


def _take_texts(raw: bytes, at: int, lengths: list[Any], body: Any) -> int:
    """An event's texts, read from `at` into its body; where the next event's start."""
    if type(body) is not dict:
        raise EnvelopeError("a group's event must be [id, type, ts, body, lengths] of exact types")
    for i in range(2):
        n = lengths[i]
        if type(n) is not int or n < -1 or at + n > len(raw):
            raise EnvelopeError("an event's text length must be -1 or fit in its record")
        if n >= 0:
            body[TEXT_FIELDS[i]] = raw[at : at + n].decode()
            at += n
    return at


def _upgrade_times(env: Envelope) -> None:
    """A version-1 body's times as µs; one that is not a time stays, for the fold to refuse."""
    body = env.body
    for name in TIME_FIELDS.get(env.type, ()):
        value = body.get(name)
        if value is not None:
            try:
                body[name] = to_micros(value)
            except (ValueError, OverflowError):
                pass
