"""OTLP spans to Langfuse-style ingestion events, driven by declarative attribute tables.

For every valid span: one observation event (`span-create`, `generation-create`, ...), and a
`trace-create` event when the span is a root or carries trace-level attributes (of one trace's
in a request, those that cannot change its fold are dropped: `absorb_trace_events`). Event ids
are derived from the trace and span ids, so a retried export yields the same events.

How a span is read (see `router.Router`): each attribute is converted once and looked up once.
A table row (`conventions.py`) sends an attribute key to a *slot* `(group, field)` with a
*rank*; when several attributes feed one slot the lowest rank wins (Langfuse's own attributes
first, then the OpenTelemetry GenAI conventions, then OpenInference, the Vercel AI SDK,
OpenLLMetry, Pydantic AI and others). An attribute no row claims goes to metadata. A few
values are combined with others before they become fields (`_compose`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from ingest.otlp import attributes as coerce
from ingest.otlp.attributes import SKIP, attributes_dict
from ingest.otlp.conventions import (
    ADK_CALL_SPAN,
    ADK_SCOPE,
    CACHED_INPUT,
    CHOICE_EVENT,
    COST,
    EVENT_IO,
    EXACT,
    FIRST_TOKEN_EVENTS,
    HINTS,
    INDEXED,
    LIVEKIT_SCOPE,
    LIVEKIT_SPANS,
    MESSAGE_EVENTS,
    META,
    OBS,
    OBSERVATION_TYPES,
    OPERATION_DETAILS,
    PARAMS,
    PREFIXED,
    PROVIDER_USAGE,
    RESOURCE,
    SHARED,
    TRACE,
    TRACE_META,
    USAGE,
    adk_call_has_child,
)
from ingest.otlp.router import WHOLE, Router
from ingest.otlp.wire import Link, Span, SpanEvent, Status
from pipeline.events import InvalidEvent, check_keys
from pipeline.fold import FIRST_WINS, TRACE_FIELDS
from pipeline.times import MAX_US, MIN_US, micros_to_iso

_EVENT_TYPES: Final = {t: f"{t}-create" for t in OBSERVATION_TYPES}
_SHARED_FIELDS: Final = ("release", "version", "environment")
_MODEL_CALLS: Final = frozenset({"generation", "embedding"})  # never a sum of other calls
_UNPROMPTED: Final = frozenset({"span", "event"})
_INSTRUCTIONS: Final = "gen_ai.system_instructions"

ROUTER: Final = Router(EXACT, PREFIXED, INDEXED)


@dataclass(slots=True)
class MappingResult:
    """Events in emission order, as the batch API's after normalize(): times in µs."""

    events: list[dict[str, Any]] = field(default_factory=list)
    # Counted over the whole request: Slices hands each slice the totals so far.
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    # What the slice's events are estimated to hold in memory (Slices).
    weight: int = 0
    # The traces of its trace events, and whether one has several (absorb_trace_events).
    traces: set[str] = field(default_factory=set)
    repeated: bool = False


def as_tuples(events: list[dict[str, Any]]) -> list[tuple[Any, Any, Any, Any]]:
    """The events as `Intake.publish` takes them: (event id, type, event time µs, body)."""
    return [(event["id"], event["type"], event["timestamp"], event["body"]) for event in events]


# --- mapping --------------------------------------------------------------------------------

_ZERO_TRACE: Final = bytes(16)
_ZERO_SPAN: Final = bytes(8)
_STATUS_ERROR: Final = 2
# What a span's metadata holds of itself alone, not of its trace.
_SPAN_ONLY_METADATA: Final = frozenset({"spanEvents", "spanLinks"})
_MAX_ERRORS: Final = 20
# What a mapped span holds in memory, by its length on the wire (tracemalloc, wire.py's reader):
# ~1.4 KB for a span of a few bytes (its observation and trace event), ~6 bytes per byte of
# realistic spans (ingest/config.py) and ~7 of an attribute bomb's (a metadata entry each).
SPAN_WEIGHT: Final = 1_400
WEIGHT_PER_BYTE: Final = 8


def map_request(request: Any) -> MappingResult:
    """Map an export request (`wire.Request`, or upb's `ExportTraceServiceRequest`); invalid spans
    are counted and reported, never raised."""
    return Slices(request).next()


class Slices:
    """map_request's result a slice at a time, so that what a request maps into is bounded.

    `next()` maps spans until they weigh `slice_weight` (0: the whole request), and `done` says
    whether any are left; each slice carries the request's rejections so far. A span longer
    than `max_span_bytes` on the wire (0: no limit) would map into a longer event still (JSON
    spells out what protobuf packs, and ids double as hex), past the edge's limit for an event:
    it is mapped with its longest texts cut (trimmed_span), or rejected unmapped when it has
    more attributes than cutting can bound (one of tiny attributes parses and maps into ~13
    times its length: bench/hostile.py's OTLP wave).

    A cursor over the request, which it lets go with the last slice. Not a generator: a
    compiled one keeps its loops' lists, so the parse, until it is itself dropped; nor a list
    of the spans: ~120 bytes a span, 12 MB beside the 23 that 100k tiny spans parse into.
    """

    def __init__(self, request: Any, slice_weight: int = 0, max_span_bytes: int = 0) -> None:
        self._request: Any = request
        self._slice_weight = slice_weight
        self._max_span_bytes = max_span_bytes
        # Where the next span is: its ResourceSpans, ScopeSpans and place among their spans,
        # and what the spans there share (built on the way in).
        self._resource = 0
        self._scope = 0
        self._span = 0
        self._resource_context: tuple[dict[str, Any], dict[str, Any]] | None = None
        self._context: tuple[Any, ...] | None = None
        self._rejected = 0
        self._errors: list[str] = []
        self.done = False

    def next(self) -> MappingResult:
        result = MappingResult(rejected=self._rejected, errors=self._errors)
        request, limit, most = self._request, self._slice_weight, self._max_span_bytes
        full = False
        resources = request.resource_spans if request is not None else []
        while not full and self._resource < len(resources):
            resource_spans = resources[self._resource]
            if self._resource_context is None:
                resource_attrs = attributes_dict(resource_spans.resource.attributes)
                self._resource_context = (resource_attrs, _resource_defaults(resource_attrs))
            scopes = resource_spans.scope_spans
            while not full and self._scope < len(scopes):
                scope_spans = scopes[self._scope]
                context = self._context
                if context is None:
                    context = self._context = _scope_context(scope_spans.scope, self._resource_context)
                spans = scope_spans.spans
                at = self._span
                while at < len(spans):
                    span = spans[at]
                    size = span.size if type(span) is Span else span.ByteSize()
                    error: str | None = None
                    if most and size > most:
                        # Its longest values cut to half an event (JSON may spell them longer).
                        trimmed = trimmed_span(span, most // 2)
                        if trimmed is None:
                            error = (
                                f"span {_show(span.span_id)}: {size} bytes on the wire,"
                                f" larger than an event may be ({most})"
                            )
                        else:
                            span, size = trimmed, most // 2
                    if error is None:
                        if limit and result.weight >= limit:
                            full = True
                            break
                        result.weight += SPAN_WEIGHT + WEIGHT_PER_BYTE * size
                        try:
                            error = _map_span(span, context, result)
                        except Exception as exc:  # a mapping bug must not fail the other spans
                            error = f"span could not be mapped: {type(exc).__name__}: {exc}"
                    at += 1
                    if error is not None:
                        result.rejected += 1
                        if len(result.errors) < _MAX_ERRORS:
                            result.errors.append(error)
                self._span = at
                if not full:
                    self._scope, self._span, self._context = self._scope + 1, 0, None
            if not full:
                self._resource, self._scope, self._resource_context = self._resource + 1, 0, None
        self._rejected = result.rejected
        if not full:
            self._request, self.done = None, True  # the parsed request goes
        if result.repeated:
            result.events = absorb_trace_events(result.events)
        return result


# A span with more attributes than this is not trimmed (trimmed_span) but refused unmapped: tiny
# attributes map into ~13 times their length, which trimming the long ones does not bound.
_TRIM_MAX_ATTRIBUTES: Final = 4_000
TRUNCATED: Final = "agenttrace.truncated"


def trimmed_span(span: Any, budget: int) -> Span | None:
    """The span with its longest text values cut so that all its values weigh about `budget`
    characters, or None when that cannot be done (too many attributes, or too much that is not
    text).

    Instrumentations record a long prompt whole, some twice (OpenInference: `input.value` and
    the `llm.input_messages.*`), so a large-context call makes a span longer than a Kafka record
    may be. Refused, it was lost whole, silently: OTel exporters ignore partial success. Cut,
    the call keeps its model, usage, cost and timing, and the beginning of every text; the
    attribute `agenttrace.truncated` (in metadata) names each value cut and its length.
    """
    attributes = coerce.flat(span.attributes)
    events = [(e, coerce.flat(e.attributes)) for e in span.events]
    lists = [attributes, *(attrs for _, attrs in events)]
    if sum(len(attrs) for attrs in lists) // 2 > _TRIM_MAX_ATTRIBUTES:
        return None
    lengths: list[int] = []
    rest = 0
    for attrs in lists:
        for i in range(1, len(attrs), 2):
            value = attrs[i]
            if type(value) is str:
                lengths.append(len(value))
            elif value is not None and type(value) is not bool and type(value) is not int and type(value) is not float:
                rest += len(orjson.dumps(value, default=str))
    if rest >= budget:
        return None
    # The longest a text may stay: the largest cap at which the texts, cut to it, fit what is
    # left. With the i + 1 longest cut and the rest whole, it is what the rest leave them.
    lengths.sort(reverse=True)
    left, after = budget - rest, sum(lengths)
    cap = lengths[0] if lengths else 0
    if after > left:
        for i, n in enumerate(lengths):
            after -= n
            cap = (left - after) // (i + 1)
            if cap >= (lengths[i + 1] if i + 1 < len(lengths) else 0):
                break
    cut: dict[str, int] = {}

    def trim(attrs: list[Any], prefix: str) -> list[Any]:
        out = list(attrs)
        for i in range(1, len(out), 2):
            value = out[i]
            if type(value) is str and len(value) > cap:
                cut[prefix + str(out[i - 1])] = len(value)
                out[i] = value[:cap]
        return out

    trimmed = Span()
    trimmed.trace_id, trimmed.span_id, trimmed.parent_span_id = span.trace_id, span.span_id, span.parent_span_id
    trimmed.name = span.name
    trimmed.status = Status()  # OTLP/JSON's spans are upb's messages: copied into the wire's
    trimmed.status.code, trimmed.status.message = span.status.code, span.status.message
    trimmed.links = []
    for link in span.links:
        kept = Link()
        kept.trace_id, kept.span_id, kept.attributes = link.trace_id, link.span_id, coerce.flat(link.attributes)
        trimmed.links.append(kept)
    trimmed.start_time_unix_nano, trimmed.end_time_unix_nano = span.start_time_unix_nano, span.end_time_unix_nano
    trimmed.attributes = trim(attributes, "")
    trimmed.events = []
    for n, (event, attrs) in enumerate(events):
        copy = SpanEvent()
        copy.name, copy.time_unix_nano, copy.attributes = event.name, event.time_unix_nano, trim(attrs, f"event {n} ")
        trimmed.events.append(copy)
    if cut:
        trimmed.attributes += [TRUNCATED, cut]
    return trimmed


# The trace body's keys whose fold keeps the earliest event's value.
_TRACE_FIRST_WINS: Final = frozenset(key for key, (column, _) in TRACE_FIELDS.items() if column in FIRST_WINS)
# How many of a trace's kept events a later one is weighed against: a bound on the work a
# request of many spans of one trace, each with trace fields of its own, can cause.
_ABSORBERS: Final = 4


def absorb_trace_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events without the trace events that cannot change what their trace folds into.

    The current Langfuse SDKs (`propagate_attributes`) and OpenInference (`using_session`) put
    the trace's user, session, tags and metadata on every span, so every span maps to a trace
    event as well as its observation, and each stage folds nearly twice the events. A trace
    event B decides nothing when another event A of its trace sets each field B sets (metadata:
    each key; tags: each tag), to the same value, at the same or a later time: in the fold the
    later version wins (pipeline/fold.apply) and A's value is B's; not for a field whose
    earliest setter wins (fold.FIRST_WINS: the trace's timestamp, which only a root sets). Such
    a B is dropped unless it is the trace's earliest event, whose time is the trace's first
    time (`touch`); the latest is never dropped, as nothing is later. The fold of what remains equals the fold of all of
    them, in any order; a trace exported whole maps to two trace events, not one a span.
    """
    groups: dict[Any, list[int]] = {}
    repeated = False
    for i, event in enumerate(events):
        if event["type"] == "trace-create":
            trace_id = event["body"]["id"]
            at = groups.get(trace_id)
            if at is None:
                groups[trace_id] = [i]
            else:
                at.append(i)
                repeated = True
    if not repeated:
        return events
    dropped: set[int] = set()
    for at in groups.values():
        if len(at) > 2:
            # Latest first: whatever is kept before an event is at its time or later.
            at.sort(key=lambda i: events[i]["timestamp"], reverse=True)
            kept: list[dict[str, Any]] = [events[at[0]]["body"]]
            for i in at[1:-1]:
                body = events[i]["body"]
                if any(_covers(a, body) for a in kept[-_ABSORBERS:]):
                    dropped.add(i)
                else:
                    kept.append(body)
    if not dropped:
        return events
    return [event for i, event in enumerate(events) if i not in dropped]


def _covers(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether trace body `a` sets every field `b` sets, to the same value, so that a later `a`
    decides what `b` would: never for a field whose earliest setter wins."""
    for key, value in b.items():
        if value is None:  # sets nothing: a null never overwrites
            continue
        if key in _TRACE_FIRST_WINS:
            return False
        other = a.get(key)
        if key == "metadata" and type(value) is dict and type(other) is dict:
            for k, v in value.items():
                if not (k in other and _same(other[k], v)):  # a null key is set: merge_map
                    return False
        elif key == "tags" and type(value) is list and type(other) is list:
            for tag in value:
                if not any(_same(t, tag) for t in other):
                    return False
        elif not _same(other, value):
            return False
    return True


def _same(a: Any, b: Any) -> bool:
    # Of one type: 1 == True == 1.0, but the fold stores them differently.
    return type(a) is type(b) and a == b


def _scope_context(scope: Any, resource: tuple[dict[str, Any], dict[str, Any]]) -> tuple[Any, ...]:
    """What a scope's spans share: the resource's attributes, the scope's metadata, the defaults."""
    scope_meta: dict[str, Any] = {"name": scope.name}
    if scope.version:
        scope_meta["version"] = scope.version
    if len(scope.attributes):
        scope_meta["attributes"] = attributes_dict(scope.attributes)
    return (resource[0], scope_meta, resource[1])


def _show(raw_id: bytes) -> str:
    """An id for an error message, cut short: a client chooses its length."""
    return repr(raw_id[:16].hex() + ("..." if len(raw_id) > 16 else ""))


def _resource_defaults(resource_attrs: dict[str, Any]) -> dict[str, Any]:
    best: dict[str, tuple[int, Any]] = {}
    for key, fld, rank, fn in RESOURCE:
        if key in resource_attrs and (fld not in best or best[fld][0] > rank):
            value = fn(resource_attrs[key]) if fn else resource_attrs[key]
            if value is not SKIP:
                best[fld] = (rank, value)
    return {fld: value for fld, (_, value) in best.items()}


def _map_span(span: Any, context: tuple[Any, ...], result: MappingResult) -> str | None:
    """Append the span's events to `result`; return why it was rejected, or None."""
    raw_trace, raw_span, raw_parent = span.trace_id, span.span_id, span.parent_span_id
    if len(raw_trace) != 16 or raw_trace == _ZERO_TRACE:
        return f"span {_show(raw_span)}: invalid trace id {_show(raw_trace)}"
    if len(raw_span) != 8 or raw_span == _ZERO_SPAN:
        return f"span {_show(raw_span)}: invalid span id"
    if raw_parent and len(raw_parent) != 8:
        return f"span {_show(raw_span)}: invalid parent span id {_show(raw_parent)}"
    trace_id, span_id = raw_trace.hex(), raw_span.hex()
    is_root = not raw_parent or raw_parent == _ZERO_SPAN
    resource_attrs, scope_meta, defaults = context

    groups, metadata = ROUTER.read(span.attributes)

    start_ns, end_ns = span.start_time_unix_nano, span.end_time_unix_nano
    if not (start_ns and end_ns):  # a missing edge takes the other; both missing: now
        start_ns = start_ns or end_ns or time.time_ns()
        end_ns = end_ns or start_ns
    start, end = start_ns // 1000, end_ns // 1000
    if not (MIN_US <= start < MAX_US and MIN_US <= end < MAX_US):
        return f"span {_show(raw_span)}: start and end times must lie between 1970 and 2100"

    # The observation.
    body: dict[str, Any] = {"id": span_id, "traceId": trace_id, "name": span.name, "startTime": start, "endTime": end}
    if not is_root:
        body["parentObservationId"] = raw_parent.hex()
    obs_type = None
    o = groups.get(OBS)
    if o:
        obs_type = o.pop("type", None)
        body.update(o)
    shared = {**defaults, **groups[SHARED]} if SHARED in groups else defaults
    if "version" in shared:
        body["version"] = shared["version"]
    if "environment" in shared:
        body["environment"] = shared["environment"]
    params = _merged(groups, PARAMS)
    if params:
        body["modelParameters"] = params
    # Langfuse's SDKs send their own usage dict, whose keys are already disjoint: its total is
    # then the sum of them all, made where every usage is priced (pipeline/prices.py).
    langfuse_usage = WHOLE in groups.get(USAGE, ())
    usage = _merged(groups, USAGE)
    hints = groups.get(HINTS)
    if hints and not langfuse_usage:
        usage = _payload_usage(hints, usage)
    if usage:
        if "total" not in usage and not langfuse_usage and ("input" in usage or "output" in usage):
            total = usage.get("input", 0) + usage.get("output", 0)
            if total <= coerce.MAX_COUNT:
                usage["total"] = total
        body["usageDetails"] = usage
    cost = _merged(groups, COST)
    if cost:
        body["costDetails"] = cost
    status = span.status
    if "level" not in body and status.code == _STATUS_ERROR:
        body["level"] = "ERROR"
    if "statusMessage" not in body and status.message:
        body["statusMessage"] = status.message
    if (
        span.name == ADK_CALL_SPAN
        and scope_meta["name"] == ADK_SCOPE
        and adk_call_has_child(scope_meta.get("version", ""))
    ):
        # Its usage is its generate_content child's: counted there, kept here as a sum.
        if hints is None:
            hints = {}
        hints["aggregate"] = True  # the router's dict of this span
    if hints and "operationId" in hints and not (o and "name" in o):
        # The AI SDK's spans as Langfuse names them: the app's function id, then the operation.
        function_id = hints.get("functionId")
        body["name"] = f"{function_id}:{hints['operationId']}" if function_id else hints["operationId"]
    if hints:
        _compose(hints, body, metadata, start, obs_type, langfuse_usage, scope_meta["name"])
    if not langfuse_usage and "usageDetails" in body:
        _cache_out_of_input(body["usageDetails"])
    from_events = _add_metadata(body, span, metadata, groups, resource_attrs, scope_meta)
    # gen_ai.system_instructions, as an attribute or in the operation's details event: after
    # the events, which may have given the messages it belongs in front of.
    system = hints.get("system") if hints else None
    if system is None:
        system = from_events
    if system is not None:
        system_message(system, body, metadata)
    if obs_type is None and scope_meta["name"] == LIVEKIT_SCOPE:
        obs_type = LIVEKIT_SPANS.get(span.name)
    if obs_type is None:
        obs_type = "generation" if ("model" in body or "usageDetails" in body) else "span"
    if obs_type in _UNPROMPTED:
        # Langfuse links a prompt to generation-like observations only; Langfuse's SDKs propagate
        # one (propagate_attributes(prompt=...)) to every span in its context.
        body.pop("promptName", None)
        body.pop("promptVersion", None)

    # Its trace, when the span is a root or sets trace-level attributes.
    t = groups.get(TRACE)
    trace_meta = _merged(groups, TRACE_META)
    as_root = (t.pop("asRoot", False) if t else False) or is_root
    if as_root or t or trace_meta:
        trace: dict[str, Any] = {"id": trace_id}
        if as_root:
            trace["timestamp"] = start
            trace["name"] = body["name"]
        if t:
            trace.update(t)
        if as_root:  # the root's input and output describe the whole trace
            if "input" not in trace and "input" in body:
                trace["input"] = body["input"]
            if "output" not in trace and "output" in body:
                trace["output"] = body["output"]
        for fld in _SHARED_FIELDS:
            if fld in shared:
                trace[fld] = shared[fld]
        if as_root:
            # The root's metadata describes the trace too, as in Langfuse: its attributes, its
            # resource's and its scope (what service sent it); the trace's own keys over them.
            root_meta = {k: v for k, v in body["metadata"].items() if k not in _SPAN_ONLY_METADATA}
            trace_meta = {**root_meta, **trace_meta} if trace_meta else root_meta
        if trace_meta:
            trace["metadata"] = trace_meta
        # At the span's start: of two spans that set a trace field, the one that started later
        # wins (a child's update of its trace over its root's), as Langfuse orders them.
        events = [{"id": f"{trace_id}-{span_id}-trace", "type": "trace-create", "timestamp": start, "body": trace}]
        if trace_id in result.traces:
            result.repeated = True
        else:
            result.traces.add(trace_id)
    else:
        events = []
    events.append({"id": f"{span_id}-obs", "type": _EVENT_TYPES[obs_type], "timestamp": end, "body": body})
    # The batch API's contract holds here too (e.g. a model name's length): a span the stages
    # would dead-letter is refused now, with its reason, and none of its events are kept.
    for event in events:
        try:
            check_keys(event["body"])
        except InvalidEvent as exc:
            return f"span {_show(raw_span)}: {exc}"
    result.events.extend(events)
    return None


def _compose(
    hints: dict[str, Any],
    body: dict[str, Any],
    metadata: dict[str, Any],
    start: int,
    obs_type: str | None,
    langfuse_usage: bool,
    scope: str,
) -> None:
    """The fields some instrumentations spread over several attributes."""
    provider = hints.get("providerMetadata")
    if provider is not None:
        metadata["ai.response.providerMetadata"] = provider
        _provider_usage(provider, body)
    if hints.get("aggregate") and obs_type not in _MODEL_CALLS:
        # A call of the app that sums up the model calls below it (the AI SDK's generateText, an
        # agent run): as a generation its model and usage would count twice. Kept as metadata.
        aggregate = {k: body.pop(k) for k in ("model", "usageDetails", "costDetails") if k in body}
        if "usageDetails" in aggregate and not langfuse_usage:
            _cache_out_of_input(aggregate["usageDetails"])  # as in the generations it sums up
        if aggregate:
            metadata["aggregate"] = aggregate
    if "genkitInput" in hints or "genkitOutput" in hints or "genkitSubtype" in hints:
        _genkit(hints, body)
    meta = _haystack_meta(hints)
    if meta is not None and "model" not in body and type(meta.get("model")) is str and meta["model"]:
        body["model"] = meta["model"]
    calls = hints.get("toolCalls")
    if calls is not None:  # the AI SDK's tool calls of a step, with its text if it has any
        output = body.get("output")
        if output is None:
            body["output"] = calls
        elif type(output) is str:
            body["output"] = {"role": "assistant", "content": output, "tool_calls": calls}
        else:
            metadata["ai.response.toolCalls"] = calls
    if "logfireResponse" in hints and "output" not in body:
        _answer_out_of_events(body)
    empty = hints.get("emptyOutput")
    if empty is not None:  # messages without content: the output unless another source gave one
        if "output" in body:
            metadata["gen_ai.output.messages"] = empty
        else:
            body["output"] = empty
    first_chunk = hints.get("completionStart")
    if first_chunk is not None and first_chunk >= start and "completionStartTime" not in body:
        body["completionStartTime"] = first_chunk
    ms = hints.get("msToFirstChunk")
    if ms is None and "timeToFirstToken" in hints:
        ms = hints["timeToFirstToken"] * (1000 if scope.startswith("openlit") else 1)
    if ms is not None and "completionStartTime" not in body:
        offset = ms * 1000
        # A delay past any time (1e302 s is infinite in µs) sets none, rather than refuse the span.
        if -MAX_US < offset < MAX_US:
            first = start + round(offset)  # round: 147.8 ms in binary, times 1000, is 147799.99...
            if MIN_US <= first < MAX_US:
                body["completionStartTime"] = first


_GENKIT_MODELS: Final = frozenset({"model", "background-model"})
# Genkit's usage keys (of a model action's output) as usage keys.
_GENKIT_USAGE: Final = (
    ("inputTokens", "input"),
    ("outputTokens", "output"),
    ("totalTokens", "total"),
    ("thoughtsTokens", "output_reasoning_tokens"),
    ("cachedContentTokens", "input_cached_tokens"),
)
# MLflow's `mlflow.chat.tokenUsage` keys as usage keys.
_MLFLOW_USAGE: Final = (
    ("input_tokens", "input"),
    ("output_tokens", "output"),
    ("total_tokens", "total"),
    ("cache_read_input_tokens", "input_cached_tokens"),
    ("cache_creation_input_tokens", "input_cache_creation"),
)


def _payload_usage(hints: dict[str, Any], given: dict[str, Any] | None) -> dict[str, Any] | None:
    """Token counts some frameworks record only inside a payload, for the keys no attribute gave
    (before the total is derived, so that it sums them too): `given` with them, or None."""
    usage: dict[str, Any] = {} if given is None else given
    genkit: Any = hints.get("genkitOutput")
    # A model action's; the `generate` step around them repeats the last one's.
    model_action = hints.get("genkitSubtype") in _GENKIT_MODELS
    counts = genkit.get("usage") if genkit is not None and model_action and not usage else None
    if type(counts) is dict:  # Genkit's, where no attribute gave any
        # The thoughts are listed, not taken out of the output (Langfuse takes them out): Gemini
        # counts them apart from its output already, and every other convention here keeps the
        # reported output whole, a detail beside it.
        for name, key in _GENKIT_USAGE:
            n = coerce.count(counts.get(name))
            if n is not SKIP and n:
                usage[key] = n
    adk: Any = hints.get("adkResponse")
    meta = adk.get("usage_metadata") if adk is not None else None
    if type(meta) is dict and "input_cached_tokens" not in usage:
        # Google ADK's prompt count includes the cached part, which releases before its GenAI
        # convention spans report only in the response they record.
        cached = coerce.count(meta.get("cached_content_token_count"))
        if cached is not SKIP and cached > 0:
            usage["input_cached_tokens"] = cached
    haystack = _haystack_meta(hints)
    counts = haystack.get("usage") if haystack is not None else None
    if type(counts) is dict:  # an OpenAI usage object, as Haystack's OpenAI generators keep it
        _take_counts(counts, _HAYSTACK_USAGE, usage)
        _take_details(counts, _HAYSTACK_DETAILS, usage)
    agents: Any = hints.get("agentsUsage")
    if agents is not None and given:  # a model call's (its own counts given): not a turn's sum
        _take_details(agents, _AGENTS_DETAILS, usage)
    mlflow: Any = hints.get("mlflowUsage")
    if mlflow is not None:
        _take_counts(mlflow, _MLFLOW_USAGE, usage)
    return usage if usage else given


def _take_counts(found: dict[str, Any], names: tuple[tuple[str, str], ...], usage: dict[str, Any]) -> None:
    """The counts `found` has under `names` (its name, the usage key), where no other gave one."""
    for name, key in names:
        n = coerce.count(found.get(name))
        if n is not SKIP and key not in usage:
            usage[key] = n


def _take_details(found: dict[str, Any], details: tuple[tuple[str, str, str], ...], usage: dict[str, Any]) -> None:
    """The non-zero counts of `found`'s nested details (its details object, the count's name in
    it, the usage key), where no other gave one."""
    for group, name, key in details:
        parts = found.get(group)
        n = coerce.count(parts.get(name)) if type(parts) is dict else SKIP
        if n is not SKIP and n and key not in usage:
            usage[key] = n


_ASSISTANT_EVENT: Final = "gen_ai.assistant.message"


def _answer_out_of_events(body: dict[str, Any]) -> None:
    """Logfire's OpenAI Agents integration appends a model call's answer to its `events` as
    assistant messages (no gen_ai.choice): those at the end are the output, not the input."""
    events = body.get("input")
    if type(events) is not list or not events:
        return
    n = len(events)
    while n and type(events[n - 1]) is dict and events[n - 1].get("event.name") == _ASSISTANT_EVENT:
        n -= 1
    if n == len(events) or n == 0:
        return
    answer = events[n:]
    body["input"] = events[:n]
    body["output"] = answer[0] if len(answer) == 1 else answer


# Haystack's replies keep the provider's usage in their meta: OpenAI's, and the same keys from
# the generators built on it.
_HAYSTACK_USAGE: Final = (("prompt_tokens", "input"), ("completion_tokens", "output"), ("total_tokens", "total"))
_HAYSTACK_DETAILS: Final = (
    ("prompt_tokens_details", "cached_tokens", "input_cached_tokens"),
    ("completion_tokens_details", "reasoning_tokens", "output_reasoning_tokens"),
)


# The OpenAI Agents SDK's Usage (and the Responses API's): the parts of its counts.
_AGENTS_DETAILS: Final = (
    ("input_tokens_details", "cached_tokens", "input_cached_tokens"),
    ("output_tokens_details", "reasoning_tokens", "output_reasoning_tokens"),
)


def _haystack_meta(hints: dict[str, Any]) -> dict[str, Any] | None:
    """The meta of a Haystack generator's first reply (its `replies` output), where the model
    that answered and its usage are."""
    output: Any = hints.get("haystackOutput")
    replies = output.get("replies") if output is not None else None
    first = replies[0] if type(replies) is list and replies else None
    meta = first.get("meta") if type(first) is dict else None
    return meta if type(meta) is dict else None


def _genkit(hints: dict[str, Any], body: dict[str, Any]) -> None:
    """What Genkit records of a model call only inside its action's input and output: the model
    (the action's name, on a `model` action) and its settings (`config`), where no attribute
    gave them (its usage: _payload_usage)."""
    given: Any = hints.get("genkitInput")
    answer: Any = hints.get("genkitOutput")
    if hints.get("genkitSubtype") in _GENKIT_MODELS and "model" not in body and "genkitName" in hints:
        body["model"] = hints["genkitName"]
    if "modelParameters" not in body:
        request = answer.get("request") if answer is not None else None
        config = given.get("config") if given is not None else None
        if type(config) is not dict and type(request) is dict:
            config = request.get("config")
        if type(config) is dict and config:
            body["modelParameters"] = config


def _provider_usage(provider: dict[str, Any], body: dict[str, Any]) -> None:
    usage = body.get("usageDetails")
    for path, key in PROVIDER_USAGE:
        if usage is not None and key in usage:
            continue
        node: Any = provider
        for step in path:
            node = node.get(step) if type(node) is dict else None
        n = coerce.count(node)
        if n is not SKIP:
            if usage is None:
                body["usageDetails"] = usage = {}
            usage[key] = n


def _cache_out_of_input(usage: dict[str, Any]) -> None:
    """The input count without the cached parts reported beside it.

    Instrumentations count prompt tokens read from or written to a provider's cache inside
    the input (the GenAI conventions: they "SHOULD be included in gen_ai.usage.input_tokens";
    OpenInference's prompt details are parts of the prompt count), while usage keys are priced
    each by itself, as Langfuse's are: kept whole, the cached tokens were priced twice, once at
    the input price. The total stays the whole count."""
    n = usage.get("input")
    if n is None:
        return
    cached = sum(usage.get(k, 0) for k in CACHED_INPUT)
    if cached:
        usage["input"] = max(n - cached, 0)


def _instructions_text(system: Any) -> str:
    """System instructions as text, as Langfuse shows them: a list of parts joins their contents."""
    if type(system) is str:
        return system
    if type(system) is list:
        return "\n".join(
            str(p["content"]) if type(p) is dict and "content" in p else p if type(p) is str else str(p) for p in system
        )
    return str(system)


def _add_metadata(
    body: dict[str, Any],
    span: Any,
    metadata: dict[str, Any],
    groups: dict[str, dict[str, Any]],
    resource_attrs: dict[str, Any],
    scope_meta: dict[str, Any],
) -> Any:
    """Unclaimed attributes, explicit metadata over them, span events and links, provenance;
    returns the system instructions the events hold, if any."""
    meta = _merged(groups, META)
    if meta:
        metadata.update(meta)
    system = None
    if len(span.events):
        metadata["spanEvents"] = events = [_span_event(e) for e in span.events]
        system = next(
            (
                coerce.json_text(e["attributes"][_INSTRUCTIONS])
                for e in events
                if e["name"] == OPERATION_DETAILS and _INSTRUCTIONS in e["attributes"]
            ),
            None,
        )
        if "input" not in body or "output" not in body:
            io_from_events(events, body)
        if body.get("level") == "ERROR" and "statusMessage" not in body:
            message = _exception_message(events)
            if message is not None:
                body["statusMessage"] = message
        if "completionStartTime" not in body:
            times = [e.time_unix_nano for e in span.events if e.name in FIRST_TOKEN_EVENTS and e.time_unix_nano]
            first = min(times, default=0) // 1000
            # Not past the span's end: OpenInference's LlamaIndex stream_chat span ends before
            # its stream is read, and a first token after the end made the time to it longer
            # than the call.
            end = body["endTime"]
            if times and MIN_US <= first < MAX_US and (type(end) is not int or first <= end):
                body["completionStartTime"] = first
    if len(span.links):
        metadata["spanLinks"] = [_span_link(link) for link in span.links]
    # Shared by every span of the resource and scope: events are read-only from here on.
    metadata["resourceAttributes"] = resource_attrs
    metadata["scope"] = scope_meta
    body["metadata"] = metadata
    return system


def system_message(system: Any, body: dict[str, Any], metadata: dict[str, Any]) -> None:
    """System instructions as the input's first message; metadata where the input is not a
    list of messages."""
    messages = body.get("input")
    if type(messages) is list:
        if not any(type(m) is dict and m.get("role") == "system" for m in messages):
            body["input"] = [{"role": "system", "content": _instructions_text(system)}, *messages]
    else:
        metadata["gen_ai.system_instructions"] = system


def io_from_events(events: list[dict[str, Any]], body: dict[str, Any]) -> bool:
    """Input and output that older GenAI conventions record as span events, when no attribute
    gave them: `gen_ai.content.prompt`/`.completion` (Semantic Kernel and many apps), the
    per-message events (`gen_ai.user.message`, ..., `gen_ai.choice`) and
    `gen_ai.client.inference.operation.details`. The events stay in metadata too. Whether the
    input is the list of the per-message events."""
    found: dict[str, Any] = {}
    messages: list[dict[str, Any]] = []
    choices: list[dict[str, Any]] = []
    for event in events:
        name, attrs = event["name"], event["attributes"]
        if name in EVENT_IO:
            fld, key = EVENT_IO[name]
            if fld not in found:
                found[fld] = _tool_call_messages(coerce.json_text(attrs[key])) if key in attrs else attrs
        elif name == OPERATION_DETAILS:
            for fld, key in (("input", "gen_ai.input.messages"), ("output", "gen_ai.output.messages")):
                if key in attrs and fld not in found:
                    found[fld] = coerce.json_text(attrs[key])
        elif name in MESSAGE_EVENTS:
            messages.append({"role": MESSAGE_EVENTS[name], **_message_fields(attrs)})
        elif name == CHOICE_EVENT:
            choices.append(_message_fields(attrs))
    if messages:
        found.setdefault("input", messages)
    if choices:
        found.setdefault("output", choices[0] if len(choices) == 1 else choices)
    for fld, value in found.items():
        body.setdefault(fld, value)
    return bool(messages) and body.get("input") is messages


def _tool_call_messages(messages: Any) -> Any:
    """Langtrace writes an assistant's tool calls as its message's content (in the answer) or as a
    bare list in place of the message (in the next request): as the chat shape's `tool_calls`."""
    if type(messages) is not list:
        return messages
    out: list[Any] | None = None
    for i, m in enumerate(messages):
        fixed = m
        if type(m) is list and _all_tool_calls(m):
            fixed = {"role": "assistant", "tool_calls": m}
        elif type(m) is dict and m.get("role") == "assistant" and _all_tool_calls(m.get("content")):
            fixed = {k: v for k, v in m.items() if k != "content"}
            fixed["tool_calls"] = m["content"]
        if fixed is not m:
            if out is None:
                out = list(messages)
            out[i] = fixed
    return messages if out is None else out


def _all_tool_calls(items: Any) -> bool:
    return (
        type(items) is list
        and len(items) > 0
        and all(type(c) is dict and c.get("type") == "function" and type(c.get("function")) is dict for c in items)
    )


# The fields of a message event whose JSON text is read as JSON (Strands writes its content
# blocks so, `[{"text": ...}]`), as the attributes' payloads are.
_JSON_MESSAGE_FIELDS: Final = frozenset({"content", "message", "tool_calls", "tool.result"})


def _message_fields(attrs: dict[str, Any]) -> dict[str, Any]:
    if not _JSON_MESSAGE_FIELDS.intersection(attrs):
        return attrs
    return {k: coerce.json_text(v) if k in _JSON_MESSAGE_FIELDS else v for k, v in attrs.items()}


def _merged(groups: dict[str, dict[str, Any]], group: str) -> dict[str, Any] | None:
    """A dict group: its keys one by one, with a whole-dict source merged over them."""
    g = groups.get(group)
    if not g:
        return None
    whole = g.pop(WHOLE, None)
    if whole:
        g.update(whole)
    return g


def _exception_message(events: list[dict[str, Any]]) -> str | None:
    for e in events:
        if e["name"] == "exception":
            message = coerce.text(e["attributes"].get("exception.message"))
            if message is not SKIP:
                return message
    return None


def _span_event(event: Any) -> dict[str, Any]:
    return {
        "name": event.name,
        "time": micros_to_iso(event.time_unix_nano // 1000),
        "attributes": attributes_dict(event.attributes),
    }


def _span_link(link: Any) -> dict[str, Any]:
    out = {"traceId": link.trace_id.hex(), "spanId": link.span_id.hex()}
    if len(link.attributes):
        out["attributes"] = attributes_dict(link.attributes)
    return out
