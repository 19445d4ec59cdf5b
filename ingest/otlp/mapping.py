"""OTLP spans to Langfuse-style ingestion events, driven by declarative attribute tables.

For every valid span: one observation event (`span-create`, `generation-create`, ...), and a
`trace-create` event when the span is a root or carries trace-level attributes. Event ids are
derived from the trace and span ids, so a retried export yields the same events.

How a span is read (see `routes.Router`): each attribute is converted once and looked up once.
A table row sends an attribute key to a *slot* `(group, field)` with a *rank*; when several
attributes feed one slot the lowest rank wins (Langfuse's own attributes first, then the
OpenTelemetry GenAI conventions, then OpenInference and others). An attribute no row claims
goes to metadata.

Sources: OpenTelemetry GenAI semantic conventions (gen_ai.*), OpenInference (openinference.*,
llm.*, input.value, ...) and Langfuse's OTel attribute names (langfuse.*).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ingest.otlp import attributes as coerce
from ingest.otlp.attributes import SKIP, attributes_dict
from ingest.otlp.router import WHOLE, Coerce, Router
from pipeline.events import InvalidEvent, check_keys
from pipeline.times import MAX_US, MIN_US, micros_to_iso

# Slot groups. OBS and TRACE hold body fields; SHARED fields go to both bodies; the others
# are dicts assembled key by key ("*" is a whole dict given at once, merged over the keys).
OBS, TRACE, SHARED = "obs", "trace", "shared"
PARAMS, USAGE, COST, META, TRACE_META = "params", "usage", "cost", "meta", "trace_meta"
INTERNAL = "internal"  # the SDKs' bookkeeping: claimed, so it stays out of metadata, and dropped

OBSERVATION_TYPES = frozenset(
    {"span", "generation", "event", "agent", "tool", "chain", "retriever", "embedding", "guardrail", "evaluator"}
)
_LANGFUSE_TYPES = {t: t for t in OBSERVATION_TYPES}
_EVENT_TYPES = {t: f"{t}-create" for t in OBSERVATION_TYPES}
_OPENINFERENCE_KINDS = {
    "LLM": "generation",
    "EMBEDDING": "embedding",
    "TOOL": "tool",
    "AGENT": "agent",
    "CHAIN": "chain",
    "RETRIEVER": "retriever",
    "RERANKER": "retriever",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluator",
}
_GENAI_OPERATIONS = {
    "chat": "generation",
    "text_completion": "generation",
    "generate_content": "generation",
    "embeddings": "embedding",
    "execute_tool": "tool",
    "invoke_agent": "agent",
    "create_agent": "agent",
}
_LEVELS = {lv: lv for lv in ("DEBUG", "DEFAULT", "WARNING", "ERROR")}

_type_langfuse = coerce.one_of(_LANGFUSE_TYPES)
_type_openinference = coerce.one_of(_OPENINFERENCE_KINDS, str.upper)
_type_genai = coerce.one_of(_GENAI_OPERATIONS)
_level = coerce.one_of(_LEVELS, str.upper)
_io = coerce.json_text


def _tool_hint(value: Any) -> Any:
    return "tool" if coerce.text(value) is not SKIP else SKIP


# (attribute key, group, field, rank, coercion). Rank orders the sources of one slot.
EXACT: tuple[tuple[str, str, str, int, Coerce], ...] = (
    # observation type
    ("langfuse.observation.type", OBS, "type", 0, _type_langfuse),
    ("openinference.span.kind", OBS, "type", 1, _type_openinference),
    ("gen_ai.operation.name", OBS, "type", 2, _type_genai),
    ("gen_ai.tool.name", OBS, "type", 3, _tool_hint),
    ("gen_ai.tool.name", META, "gen_ai.tool.name", 0, None),
    # level and status
    ("langfuse.observation.level", OBS, "level", 0, _level),
    ("langfuse.observation.status_message", OBS, "statusMessage", 0, coerce.text),
    # input / output
    ("langfuse.observation.input", OBS, "input", 0, _io),
    ("gen_ai.input.messages", OBS, "input", 1, _io),
    ("gen_ai.prompt", OBS, "input", 2, _io),
    ("input.value", OBS, "input", 3, _io),
    ("gen_ai.tool.call.arguments", OBS, "input", 4, _io),
    ("langfuse.observation.output", OBS, "output", 0, _io),
    ("gen_ai.output.messages", OBS, "output", 1, _io),
    ("gen_ai.completion", OBS, "output", 2, _io),
    ("output.value", OBS, "output", 3, _io),
    ("gen_ai.tool.call.result", OBS, "output", 4, _io),
    # model
    ("langfuse.observation.model.name", OBS, "model", 0, coerce.text),
    ("gen_ai.response.model", OBS, "model", 1, coerce.text),
    ("gen_ai.request.model", OBS, "model", 2, coerce.text),
    ("llm.model_name", OBS, "model", 3, coerce.text),
    ("langfuse.observation.model.parameters", PARAMS, WHOLE, 0, coerce.json_object),
    ("llm.invocation_parameters", PARAMS, WHOLE, 1, coerce.json_object),
    # usage (token counts)
    ("langfuse.observation.usage_details", USAGE, WHOLE, 0, coerce.counts_map),
    ("gen_ai.usage.input_tokens", USAGE, "input", 1, coerce.count),
    ("gen_ai.usage.prompt_tokens", USAGE, "input", 2, coerce.count),
    ("llm.token_count.prompt", USAGE, "input", 3, coerce.count),
    ("gen_ai.usage.output_tokens", USAGE, "output", 1, coerce.count),
    ("gen_ai.usage.completion_tokens", USAGE, "output", 2, coerce.count),
    ("llm.token_count.completion", USAGE, "output", 3, coerce.count),
    ("gen_ai.usage.total_tokens", USAGE, "total", 1, coerce.count),
    ("llm.usage.total_tokens", USAGE, "total", 2, coerce.count),
    ("llm.token_count.total", USAGE, "total", 3, coerce.count),
    ("gen_ai.usage.cache_read.input_tokens", USAGE, "input_cached_tokens", 1, coerce.count),
    ("gen_ai.usage.cache_read_input_tokens", USAGE, "input_cached_tokens", 2, coerce.count),
    ("gen_ai.usage.input_tokens.cached", USAGE, "input_cached_tokens", 2, coerce.count),
    ("gen_ai.usage.cache_read_tokens", USAGE, "input_cached_tokens", 2, coerce.count),
    ("llm.token_count.prompt_details.cache_read", USAGE, "input_cached_tokens", 3, coerce.count),
    ("gen_ai.usage.cache_creation.input_tokens", USAGE, "input_cache_creation", 1, coerce.count),
    ("gen_ai.usage.cache_creation_input_tokens", USAGE, "input_cache_creation", 2, coerce.count),
    ("gen_ai.usage.input_tokens.cache_write", USAGE, "input_cache_creation", 2, coerce.count),
    ("gen_ai.usage.cache_write_tokens", USAGE, "input_cache_creation", 2, coerce.count),
    ("llm.token_count.prompt_details.cache_write", USAGE, "input_cache_creation", 3, coerce.count),
    ("gen_ai.usage.reasoning.output_tokens", USAGE, "output_reasoning_tokens", 1, coerce.count),
    ("gen_ai.usage.output_tokens.reasoning", USAGE, "output_reasoning_tokens", 2, coerce.count),
    ("llm.token_count.completion_details.reasoning", USAGE, "output_reasoning_tokens", 3, coerce.count),
    # cost
    ("langfuse.observation.cost_details", COST, WHOLE, 0, coerce.amounts_map),
    ("gen_ai.usage.cost", COST, "total", 1, coerce.amount),
    ("llm.cost.total", COST, "total", 2, coerce.amount),
    ("llm.cost.prompt", COST, "input", 2, coerce.amount),
    ("llm.cost.completion", COST, "output", 2, coerce.amount),
    # generation details
    ("langfuse.observation.completion_start_time", OBS, "completionStartTime", 0, coerce.timestamp),
    ("langfuse.observation.prompt.name", OBS, "promptName", 0, coerce.text),
    ("langfuse.prompt.name", OBS, "promptName", 1, coerce.text),
    ("langfuse.observation.prompt.version", OBS, "promptVersion", 0, coerce.prompt_version),
    ("langfuse.prompt.version", OBS, "promptVersion", 1, coerce.prompt_version),
    # observation metadata given whole
    ("langfuse.observation.metadata", META, WHOLE, 0, coerce.json_object),
    ("metadata", META, WHOLE, 1, coerce.json_object),
    # trace-level attributes
    ("langfuse.trace.name", TRACE, "name", 0, coerce.text),
    ("langfuse.trace.input", TRACE, "input", 0, _io),
    ("langfuse.trace.output", TRACE, "output", 0, _io),
    ("langfuse.trace.tags", TRACE, "tags", 0, coerce.tag_list),
    ("langfuse.tags", TRACE, "tags", 1, coerce.tag_list),
    ("tag.tags", TRACE, "tags", 2, coerce.tag_list),
    ("langfuse.trace.public", TRACE, "public", 0, coerce.flag),
    ("langfuse.trace.metadata", TRACE_META, WHOLE, 0, coerce.json_object),
    ("langfuse.user.id", TRACE, "userId", 0, coerce.text),
    ("user.id", TRACE, "userId", 1, coerce.text),
    ("langfuse.session.id", TRACE, "sessionId", 0, coerce.text),
    ("session.id", TRACE, "sessionId", 1, coerce.text),
    ("gen_ai.conversation.id", TRACE, "sessionId", 2, coerce.text),
    ("langfuse.internal.as_root", TRACE, "asRoot", 0, coerce.flag),
    # The current SDKs mark the first span they export when they drop the app's server span.
    ("langfuse.internal.is_app_root", TRACE, "asRoot", 1, coerce.flag),
    # fields of both the observation and its trace (span attributes; resource ones below)
    ("langfuse.environment", SHARED, "environment", 0, coerce.text),
    ("deployment.environment.name", SHARED, "environment", 1, coerce.text),
    ("deployment.environment", SHARED, "environment", 2, coerce.text),
    ("langfuse.release", SHARED, "release", 0, coerce.text),
    ("service.version", SHARED, "release", 1, coerce.text),
    ("langfuse.version", SHARED, "version", 0, coerce.text),
)

# (key prefix, group, rank, coercion): the rest of the key names the field. Exact rows win.
# Langfuse SDKs JSON-encode metadata values (5.x even strings: "core" arrives as '"core"').
PREFIXED: tuple[tuple[str, str, int, Coerce], ...] = (
    ("langfuse.observation.metadata.", META, 0, _io),
    ("langfuse.metadata.", META, 1, _io),
    ("langfuse.trace.metadata.", TRACE_META, 0, _io),
    ("gen_ai.request.", PARAMS, 2, None),
    ("gen_ai.usage.", USAGE, 4, coerce.count),
    ("llm.token_count.", USAGE, 5, coerce.count),
    ("langfuse.internal.", INTERNAL, 9, None),
)

# Flattened message lists `<prefix><index>.<key>`: (prefix, group, field, rank, key prefix
# to drop). `gen_ai.prompt.0.role` and `.content` become input `[{"role": .., "content": ..}]`.
INDEXED: tuple[tuple[str, str, str, int, str], ...] = (
    ("gen_ai.prompt.", OBS, "input", 5, ""),
    ("llm.input_messages.", OBS, "input", 6, "message."),
    ("gen_ai.completion.", OBS, "output", 5, ""),
    ("llm.output_messages.", OBS, "output", 6, "message."),
)

# Resource attributes only set defaults for the SHARED fields.
RESOURCE: tuple[tuple[str, str, int, Coerce], ...] = (
    ("langfuse.environment", "environment", 0, coerce.text),
    ("deployment.environment.name", "environment", 1, coerce.text),
    ("deployment.environment", "environment", 2, coerce.text),
    ("langfuse.release", "release", 0, coerce.text),
    ("service.version", "release", 1, coerce.text),
    ("langfuse.version", "version", 0, coerce.text),
)

_SHARED_FIELDS = ("release", "version", "environment")

ROUTER = Router(EXACT, PREFIXED, INDEXED)


@dataclass(slots=True)
class MappingResult:
    """Events in emission order, as the batch API's after normalize(): times in µs."""

    events: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0
    errors: list[str] = field(default_factory=list)


# --- mapping --------------------------------------------------------------------------------

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_STATUS_ERROR = 2
_MAX_ERRORS = 20


def map_request(request: Any) -> MappingResult:
    """Map an `ExportTraceServiceRequest`; invalid spans are counted and reported, never raised."""
    result = MappingResult()
    for resource_spans in request.resource_spans:
        resource_attrs = attributes_dict(resource_spans.resource.attributes)
        defaults = _resource_defaults(resource_attrs)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            scope_meta: dict[str, Any] = {"name": scope.name}
            if scope.version:
                scope_meta["version"] = scope.version
            if len(scope.attributes):
                scope_meta["attributes"] = attributes_dict(scope.attributes)
            context = (resource_attrs, scope_meta, defaults)
            for span in scope_spans.spans:
                try:
                    error = _map_span(span, context, result)
                except Exception as exc:  # a mapping bug must not fail the other spans
                    error = f"span could not be mapped: {type(exc).__name__}: {exc}"
                if error is not None:
                    result.rejected += 1
                    if len(result.errors) < _MAX_ERRORS:
                        result.errors.append(error)
    return result


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
    usage = _merged(groups, USAGE)
    if usage:
        if "total" not in usage and ("input" in usage or "output" in usage):
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
    _add_metadata(body, span, metadata, groups, resource_attrs, scope_meta)
    if obs_type is None:
        obs_type = "generation" if ("model" in body or usage) else "span"

    # Its trace, when the span is a root or sets trace-level attributes.
    t = groups.get(TRACE)
    trace_meta = _merged(groups, TRACE_META)
    as_root = (t.pop("asRoot", False) if t else False) or is_root
    if as_root or t or trace_meta:
        trace: dict[str, Any] = {"id": trace_id}
        if as_root:
            trace["timestamp"] = start
            trace["name"] = span.name
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
        if trace_meta:
            trace["metadata"] = trace_meta
        events = [{"id": f"{trace_id}-{span_id}-trace", "type": "trace-create", "timestamp": end, "body": trace}]
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


def _add_metadata(
    body: dict[str, Any],
    span: Any,
    metadata: dict[str, Any],
    groups: dict[str, dict[str, Any]],
    resource_attrs: dict[str, Any],
    scope_meta: dict[str, Any],
) -> None:
    """Unclaimed attributes, explicit metadata over them, span events and links, provenance."""
    meta = _merged(groups, META)
    if meta:
        metadata.update(meta)
    if len(span.events):
        metadata["spanEvents"] = events = [_span_event(e) for e in span.events]
        if body.get("level") == "ERROR" and "statusMessage" not in body:
            message = _exception_message(events)
            if message is not None:
                body["statusMessage"] = message
    if len(span.links):
        metadata["spanLinks"] = [_span_link(link) for link in span.links]
    # Shared by every span of the resource and scope: events are read-only from here on.
    metadata["resourceAttributes"] = resource_attrs
    metadata["scope"] = scope_meta
    body["metadata"] = metadata


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
