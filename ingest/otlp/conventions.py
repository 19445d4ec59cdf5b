"""The attribute tables: which span attribute of which convention feeds which event field.

A row sends an attribute key to a *slot* `(group, field)` with a *rank*; when several attributes
of a span feed one slot the lowest rank wins (see `router.Router`). The rows are grouped by the
field they feed, so that a slot's precedence reads top to bottom: Langfuse's own attributes
first, then the OpenTelemetry GenAI conventions, then the instrumentations':

- OpenTelemetry GenAI semantic conventions: `gen_ai.*`;
- OpenInference (Arize; LlamaIndex, smolagents, the OpenAI/Anthropic/... instrumentors):
  `openinference.span.kind`, `llm.*`, `embedding.*`, `input.value`, `session.id`, ...;
- Vercel AI SDK telemetry (instrumentation scope `ai`): `ai.*` (`operation.name` stays metadata);
- OpenLLMetry (traceloop-sdk and its instrumentations): `traceloop.*`, `llm.*`, and the
  flattened `gen_ai.prompt.N.*` / `gen_ai.completion.N.*`;
- Pydantic AI and Logfire: `gen_ai.*` plus `pydantic_ai.all_messages`, `final_result`,
  `gen_ai.system_instructions`, `logfire.*`, `tool_arguments` / `tool_response`, and in 0.x
  the JSON `events` and `all_messages_events`, with `agent_name` on the agent run;
- Langfuse's OTel attribute names: `langfuse.*`;
- frameworks with payloads of their own, as Langfuse reads them: Google ADK before its GenAI
  spans (`gcp.vertex.agent.*`), MLflow (`mlflow.*`), Genkit (`genkit:*`), LiveKit Agents
  (`lk.*`, its spans typed by name), Flue (`flue.*`), Haystack's tracer (`haystack.*`:
  JSON payloads, its chat messages converted, a generator's model and usage in its replies) and
  Mastra (`mastra.<span type>.input`/`.output`, its run's metadata, user, session and tags).

Structured message lists always rank before the opaque payloads (`input.value`, `traceloop.entity.
input`, ...) that instrumentations record next to them: those hold the raw request.

Usage keys follow Langfuse's: `input`, `output`, `total`, `input_cached_tokens`,
`input_cache_creation`, `output_reasoning_tokens`. Each key is priced by itself, so `input` is
the count the instrumentation reports less its cached parts (`CACHED_INPUT`), which the
conventions include in it; `total` stays the whole count. Langfuse's own usage dict is kept as
sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

import orjson

from ingest.otlp import attributes as coerce
from ingest.otlp.attributes import SKIP
from ingest.otlp.router import WHOLE, Coerce, IndexedRow
from pipeline.fold import flat_usage

# Slot groups. OBS and TRACE hold body fields; SHARED fields go to both bodies; the others
# are dicts assembled key by key ("*" is a whole dict given at once, merged over the keys).
OBS: Final = "obs"
TRACE: Final = "trace"
SHARED: Final = "shared"
PARAMS: Final = "params"
USAGE: Final = "usage"
COST: Final = "cost"
META: Final = "meta"
TRACE_META: Final = "trace_meta"
INTERNAL: Final = "internal"  # the SDKs' bookkeeping: claimed, so it stays out of metadata, and dropped
# Values the mapper combines with others before they become fields (see mapping._compose).
HINTS: Final = "hints"

OBSERVATION_TYPES: Final = frozenset(
    {"span", "generation", "event", "agent", "tool", "chain", "retriever", "embedding", "guardrail", "evaluator"}
)
_LANGFUSE_TYPES: Final = {t: t for t in OBSERVATION_TYPES}
_OPENINFERENCE_KINDS: Final = {
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
_GENAI_OPERATIONS: Final = {
    "chat": "generation",
    "text_completion": "generation",
    "generate_content": "generation",
    "generate": "generation",
    "completion": "generation",  # the operation's name before text_completion
    "embeddings": "embedding",
    "execute_tool": "tool",
    "invoke_agent": "agent",
    "create_agent": "agent",
    # Semantic Kernel before the names settled
    "chat.completions": "generation",
    "chat.streaming_completions": "generation",
    "text.completions": "generation",
    "text.streaming_completions": "generation",
}
# OpenLLMetry: `llm.request.type` on model calls, `traceloop.span.kind` on decorated functions.
_OPENLLMETRY_REQUESTS: Final = {"chat": "generation", "completion": "generation", "embedding": "embedding"}
_TRACELOOP_KINDS: Final = {"workflow": "chain", "task": "span", "agent": "agent", "tool": "tool"}
# Vercel AI SDK `ai.operationId`: the provider calls are generations and embeddings; the calls
# of the app (`ai.generateText`, `ai.embed`, ...) wrap them, step after step.
_VERCEL_CALLS: Final = {
    "ai.generateText.doGenerate": "generation",
    "ai.streamText.doStream": "generation",
    "ai.generateObject.doGenerate": "generation",
    "ai.streamObject.doStream": "generation",
    "ai.embed.doEmbed": "embedding",
    "ai.embedMany.doEmbed": "embedding",
    "ai.toolCall": "tool",
}
_VERCEL_WRAPPERS: Final = frozenset(
    {"ai.generateText", "ai.streamText", "ai.generateObject", "ai.streamObject", "ai.embed", "ai.embedMany"}
)
# Spans whose model and usage add up their children's: kept out of usage, or counted twice.
# Langfuse does the same for these operations (`isAiSdkAgentOperation`).
_AGGREGATE_OPERATIONS: Final = frozenset({"invoke_agent", "agent_step"})
_OPENINFERENCE_SUMS: Final = frozenset({"AGENT", "CHAIN"})
# Genkit's `genkit:metadata:subtype` (of its actions) and MLflow's `mlflow.spanType`.
_GENKIT_SUBTYPES: Final = {
    "model": "generation",
    "background-model": "generation",
    "embedder": "embedding",
    "tool": "tool",
    "tool.v2": "tool",
    "retriever": "retriever",
    "evaluator": "evaluator",
}
_MLFLOW_SPAN_TYPES: Final = {
    "llm": "generation",
    "chat_model": "generation",
    "embedding": "embedding",
    "tool": "tool",
    "agent": "agent",
    "chain": "chain",
    "retriever": "retriever",
    "reranker": "retriever",
    "guardrail": "guardrail",
    "evaluator": "evaluator",
}
# Google ADK from 1.24 writes each model call as a `generate_content` span inside its `call_llm`
# span and records the call's usage on both (its native span, or google-genai's instrumentation):
# from that release `call_llm` sums up its child, as an agent run does. Earlier releases have no
# child, and their call_llm is the model call.
ADK_SCOPE: Final = "gcp.vertex.agent"
ADK_CALL_SPAN: Final = "call_llm"
_ADK_CHILD_CALLS_FROM: Final = (1, 24)


def adk_call_has_child(scope_version: str) -> bool:
    """Whether this ADK release writes a model call span under its `call_llm`."""
    try:
        release = tuple(int(part) for part in scope_version.split(".")[:2])
    except ValueError:
        return False
    return release >= _ADK_CHILD_CALLS_FROM


# LiveKit Agents' spans (scope `livekit-agents`) carry no kind: Langfuse types them by name.
LIVEKIT_SCOPE: Final = "livekit-agents"
LIVEKIT_SPANS: Final = {"agent_turn": "agent", "start_agent_activity": "agent", "function_tool": "tool"}
# Logfire's `logfire.level_num` (its OTel severity numbers) as observation levels.
_LOGFIRE_LEVELS: Final = ((17, "ERROR"), (13, "WARNING"), (9, "DEFAULT"), (0, "DEBUG"))
# MLflow's `mlflow.spanLogLevel` (Python's logging levels).
_MLFLOW_LEVELS: Final = ((40, "ERROR"), (30, "WARNING"), (20, "DEFAULT"), (0, "DEBUG"))
_LEVELS: Final = {lv: lv for lv in ("DEBUG", "DEFAULT", "WARNING", "ERROR")}

_type_langfuse: Final = coerce.one_of(_LANGFUSE_TYPES)
_type_openinference: Final = coerce.one_of(_OPENINFERENCE_KINDS, str.upper)
_type_genai: Final = coerce.one_of(_GENAI_OPERATIONS)
_type_openllmetry: Final = coerce.one_of(_OPENLLMETRY_REQUESTS)
_type_traceloop: Final = coerce.one_of(_TRACELOOP_KINDS)
_type_genkit: Final = coerce.one_of(_GENKIT_SUBTYPES)
_level: Final = coerce.one_of(_LEVELS, str.upper)
# A JSON number short enough to be exact as a double (Langfuse keeps longer ones as their
# text), true or false: what an SDK's JSON.stringify makes of a scalar.
_JSON_SCALAR: Final = re.compile(r"-?(0|[1-9][0-9]{0,11})(\.[0-9]{1,11})?|true|false")


def _io(value: Any) -> Any:
    """An input, output or metadata value: JSON text parsed, a JSON scalar too (`"21"` is 21,
    as Langfuse reads it back: the SDKs send `JSON.stringify` of whatever was observed)."""
    parsed = coerce.json_text(value)
    if parsed is value and type(value) is str and len(value) <= 24 and _JSON_SCALAR.fullmatch(value):
        return orjson.loads(value)
    return parsed


def _tool_hint(value: Any) -> Any:
    return "tool" if coerce.text(value) is not SKIP else SKIP


def _type_vercel(value: Any) -> Any:
    if type(value) is str:
        found = _VERCEL_CALLS.get(value)
        if found is not None:
            return found
        if value in _VERCEL_WRAPPERS:
            return "span"
    return SKIP


def _vercel_wrapper(value: Any) -> Any:
    return True if type(value) is str and value in _VERCEL_WRAPPERS else SKIP


def _aggregate_operation(value: Any) -> Any:
    return True if type(value) is str and value in _AGGREGATE_OPERATIONS else SKIP


def _aggregate_kind(value: Any) -> Any:
    # Token counts belong on LLM spans (OpenInference); smolagents also sums a run's on its AGENT span.
    return True if type(value) is str and value.upper() in _OPENINFERENCE_SUMS else SKIP


def _present(value: Any) -> Any:
    return True if coerce.text(value) is not SKIP else SKIP


def _turn(value: Any) -> Any:
    return "span" if value == "turn" else SKIP


def _agent_hint(value: Any) -> Any:
    return "agent" if coerce.text(value) is not SKIP else SKIP


# Spring AI's observations (`spring.ai.kind`): the ChatClient's call runs its advisors, model
# calls and tools; its model calls name their operation (chat), the rest only `framework`.
_type_spring: Final = coerce.one_of({"tool_call": "tool", "chat_client": "chain"})
# AgentOps' decorators (`agentops.span.kind`); its session is the trace's root, a plain span.
_type_agentops: Final = coerce.one_of(
    {
        "agent": "agent",
        "team": "agent",
        "tool": "tool",
        "llm": "generation",
        "guardrail": "guardrail",
        "task": "chain",
        "operation": "chain",
        "workflow": "chain",
    }
)
# The entities AgentOps records a decorated function's call and result for, as
# `agentops.<entity>.input` / `.output`.
_AGENTOPS_ENTITIES: Final = ("entity", "agent", "team", "tool", "task", "operation", "workflow", "guardrail")
# Logfire's OpenAI Agents spans say what they are only in their message templates.
_type_logfire_template: Final = coerce.one_of({"function: {name}": "tool", "agent run: {name!r}": "agent"})


def _logfire_events(value: Any) -> Any:
    """Logfire's `events`: a JSON list of GenAI events, each named by its `event.name`."""
    events = _io(value)
    if type(events) is list and events and all(type(e) is dict and "event.name" in e for e in events):
        return events
    return SKIP


def _events_input(value: Any) -> Any:
    events = _logfire_events(value)
    if events is SKIP:
        return SKIP
    return [e for e in events if e["event.name"] != "gen_ai.choice"] or SKIP


def _events_output(value: Any) -> Any:
    events = _logfire_events(value)
    if events is SKIP:
        return SKIP
    return next((e for e in events if e["event.name"] == "gen_ai.choice"), SKIP)


def _level_by_floor(floors: tuple[tuple[int, str], ...]) -> Coerce:
    """A level from a severity number: the first level whose floor it reaches."""

    def level(value: Any) -> Any:
        n = coerce.count(value)
        if n is SKIP:
            return SKIP
        return next(level for floor, level in floors if n >= floor)

    return level


_logfire_level: Final = _level_by_floor(_LOGFIRE_LEVELS)
_mlflow_level: Final = _level_by_floor(_MLFLOW_LEVELS)


def _type_mlflow(value: Any) -> Any:
    """`mlflow.spanType`: MLflow writes every attribute as JSON, so the type is `"\"TOOL\""`."""
    kind = coerce.json_text(value)
    return _MLFLOW_SPAN_TYPES.get(kind.strip().lower(), SKIP) if type(kind) is str else SKIP


def _unless_empty(fn: Callable[[Any], Any]) -> Coerce:
    """Google ADK's `llm_request` and `llm_response`: `{}` on its tool spans, which carry the
    tool's arguments and response instead, so none then."""
    return lambda value: SKIP if value in ("", "{}") else fn(value)


_adk_payload: Final = _unless_empty(_io)
_adk_response: Final = _unless_empty(coerce.json_object)


def _genkit_field(key: str) -> Coerce:
    """Genkit's `genkit:input` / `genkit:output`: a model action's messages (`messages`, the
    answer's `message`), any other action's whole value."""

    def coerce_io(value: Any) -> Any:
        parsed = _io(value)
        if type(parsed) is dict and parsed.get(key) is not None:
            return parsed[key]
        return parsed

    return coerce_io


def _generation_hint(value: Any) -> Any:
    return "generation" if coerce.text(value) is not SKIP else SKIP


# Haystack's component types by how their names end (its own and integrations' follow them).
_HAYSTACK_TYPES: Final = (
    ("ChatGenerator", "generation"),
    ("Generator", "generation"),
    ("Embedder", "embedding"),
    ("Retriever", "retriever"),
    ("Ranker", "retriever"),
    ("ToolInvoker", "tool"),
    ("Agent", "agent"),
)


def _type_haystack(value: Any) -> Any:
    """`haystack.component.type`, the component's class name."""
    if type(value) is str:
        for suffix, kind in _HAYSTACK_TYPES:
            if value.endswith(suffix):
                return kind
    return SKIP


def _haystack_message(m: Any) -> Any:
    """A Haystack ChatMessage as its `to_dict()` writes it (`content` a list of parts: `text`,
    `tool_call`, `tool_call_result`) in the chat form the other conventions are shown in; one
    with a part of another kind stays as it is, so that nothing of it is lost."""
    if type(m) is not dict or type(m.get("content")) is not list:
        return m
    texts: list[Any] = []
    calls: list[dict[str, Any]] = []
    out: dict[str, Any] = {"role": m.get("role")}
    for part in m["content"]:
        if type(part) is not dict or len(part) != 1:
            return m
        if "text" in part:
            texts.append(part["text"])
        elif "tool_call" in part and type(part["tool_call"]) is dict:
            call = part["tool_call"]
            arguments = call.get("arguments")
            calls.append(
                {
                    "id": call.get("id"),
                    "type": "function",
                    "function": {
                        "name": call.get("tool_name"),
                        "arguments": arguments if type(arguments) is str else orjson.dumps(arguments).decode(),
                    },
                }
            )
        elif "tool_call_result" in part and type(part["tool_call_result"]) is dict:
            result = part["tool_call_result"]
            texts.append(result.get("result"))
            origin = result.get("origin")
            if type(origin) is dict and origin.get("id") is not None:
                out["tool_call_id"] = origin["id"]
            if result.get("error"):
                out["error"] = True
        else:
            return m
    if texts:
        out["content"] = texts[0] if len(texts) == 1 else texts
    if calls:
        out["tool_calls"] = calls
    if m.get("name"):
        out["name"] = m["name"]
    return out


def _haystack_messages(value: Any, depth: int = 0) -> Any:
    """A Haystack payload with the chat messages in it, down to a few levels (a pipeline's output
    holds its components' outputs, which hold replies), in chat form."""
    if depth > 3:
        return value
    if type(value) is dict:
        if "role" in value and type(value.get("content")) is list:
            return _haystack_message(value)
        return {k: _haystack_messages(v, depth + 1) for k, v in value.items()}
    if type(value) is list:
        return [_haystack_messages(v, depth + 1) for v in value]
    return value


def _haystack_field(key: str) -> Coerce:
    """Haystack's JSON payloads of a component, an agent step or an agent run: what is under
    `key` (a generator's `messages` and `replies`, an agent's `last_message`), or else the whole
    payload, their chat messages in chat form."""

    def coerce_io(value: Any) -> Any:
        parsed = _io(value)
        if type(parsed) is dict and parsed.get(key):
            parsed = parsed[key]
        return _haystack_messages(parsed)

    return coerce_io


def _haystack_messages_io(value: Any) -> Any:
    return _haystack_messages(_io(value))


def _haystack_pipeline_output(value: Any) -> Any:
    """`haystack.pipeline.output_data`: Haystack 2.x sets it when the run starts, to `{}`."""
    return SKIP if value == "{}" else _haystack_messages_io(value)


def _non_empty_io(value: Any) -> Any:
    """`ai.response.text` is set, empty, on steps that only call tools."""
    return SKIP if value == "" else _io(value)


# What a message holds besides its content: a list of such messages says nothing to show.
_MESSAGE_FRAME: Final = frozenset({"role", "finish_reason", "parts"})
# Message lists longer than this, or with a part (each has a "type"), hold content: not parsed
# twice to learn it.
_FRAME_TEXT: Final = 512


def _frames(parsed: Any) -> bool:
    if type(parsed) is not list or not parsed:
        return False
    for message in parsed:
        if type(message) is not dict or message.get("parts") or not _MESSAGE_FRAME.issuperset(message):
            return False
    return True


def _output_messages(value: Any) -> Any:
    """LiteLLM's generic `otel` callback sends a tool call's answer as an assistant message
    without parts, the call itself only as `gen_ai.completion.0.function_call.*`: messages
    without content leave the output to the next source (`emptyOutput` keeps them)."""
    parsed = _io(value)
    return SKIP if _frames(parsed) else parsed


def _empty_output(value: Any) -> Any:
    if type(value) is str and (len(value) > _FRAME_TEXT or '"type"' in value):
        return SKIP
    parsed = _io(value)
    return parsed if _frames(parsed) else SKIP


def _io_items(value: Any) -> Any:
    """A list of JSON texts (the AI SDK's `ai.values`), each parsed."""
    return [_io(v) for v in value] if type(value) is list else _io(value)


def _usage_details(value: Any) -> Any:
    """Langfuse's usage dict, or the OpenAI usage object its OpenAI drop-in sends as one."""
    obj = coerce.json_object(value)
    return SKIP if obj is SKIP else coerce.counts_map(flat_usage(obj))


def _json_text(value: Any) -> Any:
    """Text, also as a JSON string (`"\"abc\""`)."""
    return coerce.text(coerce.json_text(value))


def _milliseconds_of_seconds(value: Any) -> Any:
    seconds = coerce.amount(value)
    return SKIP if seconds is SKIP else seconds * 1000


def _prompt_field(key: str, fn: Coerce) -> Coerce:
    """A field of an attribute holding a JSON object: the `{"name": .., "version": ..}` Langfuse's
    AI SDK helper sends, OpenInference's invocation parameters."""

    def coerce_field(value: Any) -> Any:
        obj = coerce.json_object(value)
        if obj is SKIP or key not in obj:
            return SKIP
        return fn(obj[key]) if fn is not None else obj[key]

    return coerce_field


def _name(value: Any) -> Any:
    """An observation's name from an attribute, as Langfuse's `extractName` takes it: a
    non-empty string as it is, another value that is not empty as its JSON."""
    if type(value) is str:
        return value if value else SKIP
    if not value:
        return SKIP
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return SKIP


def _set_params(value: Any) -> Any:
    """Logfire's `model_config`: the settings a call gave, not the ones it left unset (null)."""
    given = coerce.json_object(value)
    if given is SKIP:
        return SKIP
    kept = {k: v for k, v in given.items() if v is not None and k != "base_url"}  # an endpoint
    return kept if kept else SKIP


# Mastra (@mastra/otel-exporter) writes a span's payloads as `mastra.<span type>.input` and
# `.output` wherever no GenAI attribute holds them (agent runs, model steps with their messages,
# workflows, processors, memory): its span types, as @mastra/core 1.x names them.
_MASTRA_SPANS: Final = (
    "agent_run",
    "agent_signal",
    "classifier_evaluation",
    "client_tool_call",
    "generic",
    "graph_action",
    "mapping",
    "mcp_server_request",
    "memory_operation",
    "model_chunk",
    "model_generation",
    "model_inference",
    "model_step",
    "processor_run",
    "rag_action",
    "rag_embedding",
    "rag_ingestion",
    "rag_vector_operation",
    "scorer_run",
    "scorer_step",
    "skill_action",
    "skill_resolution",
    "workflow_conditional",
    "workflow_conditional_eval",
    "workflow_loop",
    "workflow_parallel",
    "workflow_run",
    "workflow_sleep",
    "workflow_step",
    "workflow_wait_event",
    "workspace_action",
)


def _agentops_call(value: Any) -> Any:
    """AgentOps' record of a decorated function's call, `{"args": [..], "kwargs": {..}}`: the
    keyword arguments alone, or the one positional argument, where that is all it was given."""
    call = _io(value)
    if type(call) is dict and len(call) == 2 and "args" in call and "kwargs" in call:
        args, kwargs = call["args"], call["kwargs"]
        if args == [] and kwargs == {}:
            return SKIP  # called without arguments: no input
        if args == [] and type(kwargs) is dict:
            return kwargs
        if kwargs == {} and type(args) is list and len(args) == 1:
            return args[0]
    return call


def _request_tools(value: Any) -> Any:
    """Langtrace's `gen_ai.request.tools`: a list holding the tools' JSON text."""
    if type(value) is list and len(value) == 1 and type(value[0]) is str:
        return _io(value[0])
    return _io(value)


# (attribute key, group, field, rank, coercion). Rank orders the sources of one slot.
EXACT: Final[tuple[tuple[str, str, str, int, Coerce], ...]] = (
    # name: the span's own unless one of these says better (Langfuse's order); the AI SDK's
    # `functionId:operationId` comes after them all (mapping.py)
    ("gen_ai.tool.name", OBS, "name", 0, _name),
    ("genkit:name", OBS, "name", 1, _name),
    ("genkit:name", META, "genkit:name", 0, None),
    # Haystack's spans are all `haystack.component.run` (or `haystack.agent.step.*`): its name
    ("haystack.component.name", OBS, "name", 4, _name),
    ("haystack.component.name", META, "haystack.component.name", 0, None),
    ("haystack.tool.name", OBS, "name", 4, _name),
    ("haystack.tool.name", META, "haystack.tool.name", 0, None),
    ("spring.ai.tool.definition.name", OBS, "name", 5, _name),
    ("spring.ai.tool.definition.name", META, "spring.ai.tool.definition.name", 0, None),
    ("logfire.msg", OBS, "name", 2, _name),  # the message, where the span's name is its template
    ("logfire.msg", META, "logfire.msg", 0, None),
    ("ai.toolCall.name", OBS, "name", 3, _name),
    ("ai.toolCall.name", META, "ai.toolCall.name", 0, None),
    ("ai.operationId", HINTS, "operationId", 0, coerce.text),
    ("ai.telemetry.functionId", HINTS, "functionId", 0, coerce.text),
    ("ai.telemetry.functionId", META, "ai.telemetry.functionId", 0, None),
    # observation type
    ("langfuse.observation.type", OBS, "type", 0, _type_langfuse),
    ("openinference.span.kind", OBS, "type", 1, _type_openinference),
    ("gen_ai.operation.name", OBS, "type", 2, _type_genai),
    ("genkit:metadata:subtype", OBS, "type", 3, _type_genkit),
    ("genkit:metadata:subtype", META, "genkit:metadata:subtype", 0, None),
    ("mlflow.spanType", OBS, "type", 4, _type_mlflow),
    ("mlflow.spanType", META, "mlflow.spanType", 0, None),
    ("ai.operationId", OBS, "type", 5, _type_vercel),
    ("llm.request.type", OBS, "type", 6, _type_openllmetry),
    ("traceloop.span.kind", OBS, "type", 7, _type_traceloop),
    ("gen_ai.tool.name", OBS, "type", 8, _tool_hint),
    ("gen_ai.tool.name", META, "gen_ai.tool.name", 0, None),
    ("gen_ai.tool.call.id", OBS, "type", 8, _tool_hint),  # Pydantic AI names no operation
    ("gen_ai.tool.call.id", META, "gen_ai.tool.call.id", 0, None),
    # Flue (@flue/opentelemetry): its model turns name their operation; tools and delegated
    # tasks (sub-agents) of its 1.x only carry flue.* attributes (2.x writes the GenAI ones).
    ("flue.tool.name", OBS, "type", 9, _tool_hint),
    ("flue.tool.name", META, "flue.tool.name", 0, None),
    ("flue.tool.call_id", OBS, "type", 9, _tool_hint),
    ("flue.tool.call_id", META, "flue.tool.call_id", 0, None),
    ("flue.task.id", OBS, "type", 10, _agent_hint),
    ("flue.task.id", META, "flue.task.id", 0, None),
    ("flue.task.agent", OBS, "type", 10, _agent_hint),
    ("flue.task.agent", META, "flue.task.agent", 0, None),
    # The OpenAI Agents SDK's turns through Logfire carry the agent's name too: not agents.
    ("name", OBS, "type", 11, _turn),
    ("name", META, "name", 0, None),
    ("agent_name", OBS, "type", 12, _agent_hint),  # Pydantic AI's agent run before invoke_agent
    ("agent_name", META, "agent_name", 0, None),
    ("logfire.msg_template", OBS, "type", 12, _type_logfire_template),
    ("logfire.msg_template", META, "logfire.msg_template", 0, None),
    # Haystack: components by their class, and its agent's own spans (3.x) by their payloads
    ("haystack.component.type", OBS, "type", 13, _type_haystack),
    ("haystack.component.type", META, "haystack.component.type", 0, None),
    ("haystack.agent.step.llm.input", OBS, "type", 13, _generation_hint),
    ("haystack.agent.step.tool.input", OBS, "type", 13, _tool_hint),
    ("haystack.agent.input", OBS, "type", 13, _agent_hint),
    ("spring.ai.kind", OBS, "type", 14, _type_spring),
    ("spring.ai.kind", META, "spring.ai.kind", 0, None),
    ("agentops.span.kind", OBS, "type", 15, _type_agentops),
    ("agentops.span.kind", META, "agentops.span.kind", 0, None),
    # spans that sum up the calls below them
    ("ai.operationId", HINTS, "aggregate", 0, _vercel_wrapper),
    ("gen_ai.operation.name", HINTS, "aggregate", 1, _aggregate_operation),
    ("agent_name", HINTS, "aggregate", 2, _present),
    ("openinference.span.kind", HINTS, "aggregate", 3, _aggregate_kind),
    # level and status
    ("langfuse.observation.level", OBS, "level", 0, _level),
    ("logfire.level_num", OBS, "level", 1, _logfire_level),
    ("logfire.level_num", META, "logfire.level_num", 0, None),
    ("mlflow.spanLogLevel", OBS, "level", 2, _mlflow_level),
    ("mlflow.spanLogLevel", META, "mlflow.spanLogLevel", 0, None),
    ("langfuse.observation.status_message", OBS, "statusMessage", 0, coerce.text),
    # input: message lists, then payloads (ranks 9 and up: see INDEXED for 5 to 8)
    ("langfuse.observation.input", OBS, "input", 0, _io),
    ("gen_ai.input.messages", OBS, "input", 1, _io),
    ("ai.prompt.messages", OBS, "input", 2, _io),
    ("pydantic_ai.all_messages", OBS, "input", 3, _io),
    ("all_messages_events", OBS, "input", 3, _io),  # Pydantic AI 0.x's agent run
    ("events", OBS, "input", 8, _events_input),  # Logfire / Pydantic AI 0.x: the messages sent
    ("gen_ai.prompt", OBS, "input", 4, _io),
    ("ai.prompt", OBS, "input", 9, _io),
    ("traceloop.entity.input", OBS, "input", 10, _io),
    ("input.value", OBS, "input", 11, _io),
    ("input", OBS, "input", 12, _io),  # Pydantic's (Logfire) and Pipecat's, after OpenInference's
    ("prompt", OBS, "input", 16, _io),  # Logfire's agent run
    ("gen_ai.tool.call.arguments", OBS, "input", 13, _io),
    ("ai.toolCall.args", OBS, "input", 13, _io),
    ("tool_arguments", OBS, "input", 14, _io),
    ("ai.values", OBS, "input", 15, _io_items),
    ("ai.value", OBS, "input", 15, _io),
    # Namespaced payloads of frameworks no other convention covers, in Langfuse's order.
    ("genkit:input", OBS, "input", 17, _genkit_field("messages")),
    ("flue.turn.input", OBS, "input", 18, _io),
    ("flue.tool.arguments", OBS, "input", 19, _io),
    ("flue.tool.call.arguments", OBS, "input", 19, _io),  # 2.x, where not a JSON object
    ("flue.task.prompt", OBS, "input", 20, _io),
    ("flue.workflow.payload", OBS, "input", 21, _io),
    # Google ADK before its GenAI-convention spans (1.x, or ADK_TELEMETRY_SCHEMA_VERSION_OPT_IN=1)
    ("gcp.vertex.agent.llm_request", OBS, "input", 22, _adk_payload),
    ("gcp.vertex.agent.tool_call_args", OBS, "input", 23, _io),
    # LiveKit Agents: the names Langfuse reads, and those of its current releases (`lk.pii.*`)
    ("lk.input_text", OBS, "input", 24, _io),
    ("lk.pii.input_text", OBS, "input", 24, _io),
    ("lk.pii.function_tool.arguments", OBS, "input", 24, _io),
    ("lk.user_transcript", OBS, "input", 25, _io),
    ("lk.pii.user_transcript", OBS, "input", 25, _io),
    ("lk.chat_ctx", OBS, "input", 26, _io),
    ("lk.pii.chat_ctx", OBS, "input", 26, _io),
    ("lk.user_input", OBS, "input", 27, _io),
    ("lk.pii.user_input", OBS, "input", 27, _io),
    ("mlflow.spanInputs", OBS, "input", 28, _io),
    ("haystack.component.input", OBS, "input", 29, _haystack_field("messages")),
    ("haystack.agent.step.llm.input", OBS, "input", 29, _haystack_field("messages")),
    ("haystack.agent.step.tool.input", OBS, "input", 29, _io),
    ("haystack.agent.input", OBS, "input", 29, _haystack_field("messages")),
    ("haystack.pipeline.input_data", OBS, "input", 29, _haystack_messages_io),
    *((f"mastra.{t}.input", OBS, "input", 30, _io) for t in _MASTRA_SPANS),
    ("spring.ai.tool.call.arguments", OBS, "input", 31, _io),
    *((f"agentops.{e}.input", OBS, "input", 32, _agentops_call) for e in _AGENTOPS_ENTITIES),
    ("gen_ai.system_instructions", HINTS, "system", 0, _io),
    # output
    ("langfuse.observation.output", OBS, "output", 0, _io),
    ("gen_ai.output.messages", OBS, "output", 1, _output_messages),
    ("gen_ai.output.messages", HINTS, "emptyOutput", 0, _empty_output),
    ("ai.response.text", OBS, "output", 2, _non_empty_io),
    ("ai.result.text", OBS, "output", 3, _non_empty_io),  # AI SDK before 4.0
    ("ai.response.object", OBS, "output", 3, _io),
    ("ai.result.object", OBS, "output", 3, _io),
    ("ai.response.toolCalls", HINTS, "toolCalls", 0, _io),
    ("ai.response.providerMetadata", HINTS, "providerMetadata", 0, coerce.json_object),
    ("ai.result.toolCalls", HINTS, "toolCalls", 1, _io),
    ("gen_ai.completion", OBS, "output", 4, _io),
    ("events", OBS, "output", 8, _events_output),  # ... and the gen_ai.choice received
    ("final_result", OBS, "output", 9, _io),
    ("traceloop.entity.output", OBS, "output", 10, _io),
    ("output.value", OBS, "output", 11, _io),
    ("output", OBS, "output", 12, _io),
    ("gen_ai.tool.call.result", OBS, "output", 13, _io),
    ("ai.toolCall.result", OBS, "output", 13, _io),
    ("tool_response", OBS, "output", 14, _io),
    ("genkit:output", OBS, "output", 17, _genkit_field("message")),
    ("flue.turn.output", OBS, "output", 18, _io),
    ("flue.tool.result", OBS, "output", 19, _io),
    ("flue.tool.call.result", OBS, "output", 19, _io),
    ("flue.task.result", OBS, "output", 20, _io),
    ("flue.operation.result", OBS, "output", 21, _io),
    ("flue.workflow.result", OBS, "output", 22, _io),
    ("gcp.vertex.agent.llm_response", OBS, "output", 23, _adk_payload),
    ("gcp.vertex.agent.tool_response", OBS, "output", 24, _io),
    ("lk.function_tool.output", OBS, "output", 25, _non_empty_io),
    ("lk.pii.function_tool.output", OBS, "output", 25, _non_empty_io),
    ("lk.response.text", OBS, "output", 26, _non_empty_io),
    ("lk.pii.response.text", OBS, "output", 26, _non_empty_io),
    ("lk.pii.response.function_calls", OBS, "output", 27, _io),
    ("mlflow.spanOutputs", OBS, "output", 28, _io),
    ("haystack.component.output", OBS, "output", 29, _haystack_field("replies")),
    ("haystack.agent.step.llm.output", OBS, "output", 29, _haystack_field("replies")),
    ("haystack.agent.step.tool.output", OBS, "output", 29, _io),
    ("haystack.agent.output", OBS, "output", 29, _haystack_field("last_message")),
    ("haystack.pipeline.output_data", OBS, "output", 29, _haystack_pipeline_output),
    *((f"mastra.{t}.output", OBS, "output", 30, _io) for t in _MASTRA_SPANS),
    ("spring.ai.tool.call.result", OBS, "output", 31, _io),  # its JSON: a string in quotes
    *((f"agentops.{e}.output", OBS, "output", 32, _io) for e in _AGENTOPS_ENTITIES),
    # Figures some of them only give inside those payloads (mapping._compose).
    ("genkit:input", HINTS, "genkitInput", 0, coerce.json_object),
    ("genkit:output", HINTS, "genkitOutput", 0, coerce.json_object),
    ("genkit:name", HINTS, "genkitName", 0, coerce.text),
    ("genkit:metadata:subtype", HINTS, "genkitSubtype", 0, coerce.text),
    ("gcp.vertex.agent.llm_response", HINTS, "adkResponse", 0, _adk_response),
    ("mlflow.chat.tokenUsage", HINTS, "mlflowUsage", 0, coerce.json_object),
    # The OpenAI Agents SDK's usage object on Logfire's spans: a model call's cached and reasoning
    # tokens are only there on the Chat Completions path (and the reasoning on either).
    ("usage", HINTS, "agentsUsage", 0, coerce.json_object),
    ("usage", META, "usage", 0, None),
    # Logfire's OpenAI Agents spans of a model call: their `events` end with the answer, not as
    # a gen_ai.choice (mapping._compose); the whole response stays metadata.
    ("response", HINTS, "logfireResponse", 0, _present),
    ("response", META, "response", 0, None),
    ("haystack.component.output", HINTS, "haystackOutput", 0, coerce.json_object),
    ("haystack.agent.step.llm.output", HINTS, "haystackOutput", 0, coerce.json_object),
    # model
    ("langfuse.observation.model.name", OBS, "model", 0, coerce.text),
    ("gen_ai.response.model", OBS, "model", 1, coerce.text),
    ("ai.response.model", OBS, "model", 2, coerce.text),
    ("llm.response.model", OBS, "model", 2, coerce.text),
    ("ai.model.id", OBS, "model", 3, coerce.text),
    ("gen_ai.request.model", OBS, "model", 4, coerce.text),
    ("llm.request.model", OBS, "model", 5, coerce.text),
    ("llm.model_name", OBS, "model", 6, coerce.text),
    ("embedding.model_name", OBS, "model", 7, coerce.text),
    ("mlflow.llm.model", OBS, "model", 7, _json_text),  # as MLflow writes a string: its JSON
    # The request's model, where OpenInference records nothing else (a call that failed).
    ("llm.invocation_parameters", OBS, "model", 8, _prompt_field("model", coerce.text)),
    # model parameters (also PREFIXED gen_ai.request.* and ai.settings.*)
    ("langfuse.observation.model.parameters", PARAMS, WHOLE, 0, coerce.json_object),
    ("llm.invocation_parameters", PARAMS, WHOLE, 1, coerce.json_object),
    ("embedding.invocation_parameters", PARAMS, WHOLE, 1, coerce.json_object),
    ("model_config", PARAMS, WHOLE, 2, _set_params),  # Logfire's (the OpenAI Agents SDK's settings)
    ("model_config", META, "model_config", 0, None),
    ("model_settings", PARAMS, WHOLE, 2, _set_params),  # Logfire's OpenAI Agents spans
    ("model_settings", META, "model_settings", 0, None),
    ("ai.prompt.toolChoice", PARAMS, "toolChoice", 3, _io),
    # the AI SDK's settings under the GenAI names, where they have one (the rest: ai.settings.*)
    ("ai.settings.maxOutputTokens", PARAMS, "max_tokens", 3, None),
    ("ai.settings.maxTokens", PARAMS, "max_tokens", 3, None),  # AI SDK 4
    ("ai.settings.topP", PARAMS, "top_p", 3, None),
    ("ai.settings.topK", PARAMS, "top_k", 3, None),
    ("ai.settings.frequencyPenalty", PARAMS, "frequency_penalty", 3, None),
    ("ai.settings.presencePenalty", PARAMS, "presence_penalty", 3, None),
    ("ai.settings.stopSequences", PARAMS, "stop_sequences", 3, None),
    # usage (token counts)
    ("langfuse.observation.usage_details", USAGE, WHOLE, 0, _usage_details),
    ("gen_ai.usage.input_tokens", USAGE, "input", 1, coerce.count),
    ("gen_ai.usage.prompt_tokens", USAGE, "input", 2, coerce.count),
    ("gen_ai.response.prompt_tokens", USAGE, "input", 3, coerce.count),  # Semantic Kernel 1.x
    ("ai.usage.inputTokens", USAGE, "input", 3, coerce.count),
    ("ai.usage.promptTokens", USAGE, "input", 3, coerce.count),
    ("llm.token_count.prompt", USAGE, "input", 3, coerce.count),
    ("llm.usage.prompt_tokens", USAGE, "input", 4, coerce.count),
    ("ai.usage.tokens", USAGE, "input", 5, coerce.count),  # embeddings: all tokens are input
    ("gen_ai.usage.output_tokens", USAGE, "output", 1, coerce.count),
    ("gen_ai.usage.completion_tokens", USAGE, "output", 2, coerce.count),
    ("gen_ai.response.completion_tokens", USAGE, "output", 3, coerce.count),
    ("ai.usage.outputTokens", USAGE, "output", 3, coerce.count),
    ("ai.usage.completionTokens", USAGE, "output", 3, coerce.count),
    ("llm.token_count.completion", USAGE, "output", 3, coerce.count),
    ("llm.usage.completion_tokens", USAGE, "output", 4, coerce.count),
    ("gen_ai.usage.total_tokens", USAGE, "total", 1, coerce.count),
    ("llm.usage.total_tokens", USAGE, "total", 2, coerce.count),
    ("ai.usage.totalTokens", USAGE, "total", 3, coerce.count),
    ("llm.token_count.total", USAGE, "total", 3, coerce.count),
    ("ai.usage.tokens", USAGE, "total", 4, coerce.count),
    ("gen_ai.usage.cache_read.input_tokens", USAGE, "input_cached_tokens", 1, coerce.count),
    ("gen_ai.usage.cache_read_input_tokens", USAGE, "input_cached_tokens", 2, coerce.count),
    ("gen_ai.usage.input_tokens.cached", USAGE, "input_cached_tokens", 2, coerce.count),
    ("gen_ai.usage.cache_read_tokens", USAGE, "input_cached_tokens", 2, coerce.count),
    ("gen_ai.usage.cached_tokens", USAGE, "input_cached_tokens", 2, coerce.count),  # Langtrace
    # BeeAI (through OpenInference): its usage object flattened under the span's metadata
    ("metadata.usage.cached_prompt_tokens", USAGE, "input_cached_tokens", 4, coerce.count),
    ("gen_ai.usage.details.cache_read_tokens", USAGE, "input_cached_tokens", 3, coerce.count),
    ("gen_ai.usage.details.cache_read_input_tokens", USAGE, "input_cached_tokens", 3, coerce.count),
    ("ai.usage.cachedInputTokens", USAGE, "input_cached_tokens", 3, coerce.count),
    ("llm.token_count.prompt_details.cache_read", USAGE, "input_cached_tokens", 3, coerce.count),
    ("gen_ai.usage.cache_creation.input_tokens", USAGE, "input_cache_creation", 1, coerce.count),
    ("gen_ai.usage.cache_creation_input_tokens", USAGE, "input_cache_creation", 2, coerce.count),
    ("gen_ai.usage.input_tokens.cache_write", USAGE, "input_cache_creation", 2, coerce.count),
    ("gen_ai.usage.cache_write_tokens", USAGE, "input_cache_creation", 2, coerce.count),
    ("gen_ai.usage.cache_write_input_tokens", USAGE, "input_cache_creation", 2, coerce.count),  # Strands
    ("metadata.usage.cached_creation_tokens", USAGE, "input_cache_creation", 4, coerce.count),  # BeeAI
    ("gen_ai.usage.details.cache_write_tokens", USAGE, "input_cache_creation", 3, coerce.count),
    ("gen_ai.usage.details.cache_creation_input_tokens", USAGE, "input_cache_creation", 3, coerce.count),
    ("llm.token_count.prompt_details.cache_write", USAGE, "input_cache_creation", 3, coerce.count),
    ("gen_ai.usage.reasoning.output_tokens", USAGE, "output_reasoning_tokens", 1, coerce.count),
    ("gen_ai.usage.output_tokens.reasoning", USAGE, "output_reasoning_tokens", 2, coerce.count),
    ("gen_ai.usage.reasoning_tokens", USAGE, "output_reasoning_tokens", 2, coerce.count),
    ("gen_ai.usage.details.reasoning_tokens", USAGE, "output_reasoning_tokens", 3, coerce.count),
    ("ai.usage.reasoningTokens", USAGE, "output_reasoning_tokens", 3, coerce.count),
    ("llm.token_count.completion_details.reasoning", USAGE, "output_reasoning_tokens", 3, coerce.count),
    ("llm.usage.reasoning_tokens", USAGE, "output_reasoning_tokens", 4, coerce.count),
    ("llm.token_count.prompt_details.audio", USAGE, "input_audio_tokens", 3, coerce.count),
    ("llm.token_count.completion_details.audio", USAGE, "output_audio_tokens", 3, coerce.count),
    # cost
    ("langfuse.observation.cost_details", COST, WHOLE, 0, coerce.amounts_map),
    ("gen_ai.usage.cost", COST, "total", 1, coerce.amount),
    ("llm.cost.total", COST, "total", 2, coerce.amount),
    ("llm.cost.prompt", COST, "input", 2, coerce.amount),
    ("llm.cost.completion", COST, "output", 2, coerce.amount),
    # LiteLLM's `otel` callback: what it charged, with its own price list (and any margin)
    ("gen_ai.cost.total_cost", COST, "total", 3, coerce.amount),
    ("gen_ai.cost.input_cost", COST, "input", 3, coerce.amount),
    ("gen_ai.cost.output_cost", COST, "output", 3, coerce.amount),
    # generation details
    ("langfuse.observation.completion_start_time", OBS, "completionStartTime", 0, coerce.timestamp),
    # Mastra's: a later step's call may carry the first step's time, which mapping.py drops.
    ("mastra.completion_start_time", HINTS, "completionStart", 0, coerce.timestamp),
    ("mastra.completion_start_time", META, "mastra.completion_start_time", 0, None),
    ("ai.response.msToFirstChunk", HINTS, "msToFirstChunk", 0, coerce.amount),
    ("ai.stream.msToFirstChunk", HINTS, "msToFirstChunk", 1, coerce.amount),
    # Pydantic AI's, in seconds. Strands' (its timeToFirstByteMs) in milliseconds, OpenLIT's in
    # seconds (the GenAI metric's unit), under one name: mapping.py reads it by the scope.
    ("gen_ai.client.operation.time_to_first_chunk", HINTS, "msToFirstChunk", 2, _milliseconds_of_seconds),
    ("gen_ai.server.time_to_first_token", HINTS, "timeToFirstToken", 0, coerce.amount),
    ("langfuse.observation.prompt.name", OBS, "promptName", 0, coerce.text),
    ("langfuse.prompt.name", OBS, "promptName", 1, coerce.text),
    ("ai.telemetry.metadata.langfusePrompt", OBS, "promptName", 2, _prompt_field("name", coerce.text)),
    ("langfuse.observation.prompt.version", OBS, "promptVersion", 0, coerce.prompt_version),
    ("langfuse.prompt.version", OBS, "promptVersion", 1, coerce.prompt_version),
    ("ai.telemetry.metadata.langfusePrompt", OBS, "promptVersion", 2, _prompt_field("version", coerce.prompt_version)),
    # observation metadata given whole, and JSON values worth reading as such
    ("langfuse.observation.metadata", META, WHOLE, 0, coerce.json_object),
    ("metadata", META, WHOLE, 1, coerce.json_object),
    ("model_request_parameters", META, "model_request_parameters", 0, _io),
    ("gen_ai.tool.definitions", META, "gen_ai.tool.definitions", 0, _io),
    # under gen_ai.request.* but not settings of the call: Langtrace's tools (a list of one JSON
    # text), the request type OpenLLMetry's older OpenAI wrapper (AgentOps) writes
    ("gen_ai.request.tools", META, "gen_ai.request.tools", 0, _request_tools),
    ("gen_ai.request.type", META, "gen_ai.request.type", 0, None),
    # a string array, which Microsoft Agent Framework writes as its JSON
    ("gen_ai.response.finish_reasons", META, "gen_ai.response.finish_reasons", 0, _io),
    # trace-level attributes
    ("langfuse.trace.name", TRACE, "name", 0, coerce.text),
    ("langfuse.trace.input", TRACE, "input", 0, _io),
    ("langfuse.trace.output", TRACE, "output", 0, _io),
    ("langfuse.trace.tags", TRACE, "tags", 0, coerce.tag_list),
    ("langfuse.tags", TRACE, "tags", 1, coerce.tag_list),
    ("ai.telemetry.metadata.tags", TRACE, "tags", 2, coerce.tag_list),
    ("tag.tags", TRACE, "tags", 3, coerce.tag_list),
    ("mastra.tags", TRACE, "tags", 5, coerce.tag_list),
    ("agentops.tags", TRACE, "tags", 6, coerce.tag_list),
    ("langfuse.trace.public", TRACE, "public", 0, coerce.flag),
    ("langfuse.trace.metadata", TRACE_META, WHOLE, 0, coerce.json_object),
    ("langfuse.user.id", TRACE, "userId", 0, coerce.text),
    ("user.id", TRACE, "userId", 1, coerce.text),
    ("ai.telemetry.metadata.userId", TRACE, "userId", 2, coerce.text),
    ("traceloop.association.properties.user_id", TRACE, "userId", 3, coerce.text),
    # Mastra's tracingOptions.metadata, where its docs put the user and session; a memory's
    # resource is the user it belongs to (its thread is the session: gen_ai.conversation.id)
    ("mastra.metadata.userId", TRACE, "userId", 6, coerce.text),
    ("mastra.metadata.resourceId", TRACE, "userId", 7, coerce.text),
    # Langtrace's: the end user OpenAI's `user` names, and its `user_id` (inject_additional_attributes)
    ("gen_ai.user", TRACE, "userId", 8, coerce.text),
    ("user_id", TRACE, "userId", 9, coerce.text),
    ("langfuse.session.id", TRACE, "sessionId", 0, coerce.text),
    ("session.id", TRACE, "sessionId", 1, coerce.text),
    # Mastra's tracingOptions.metadata, over the memory thread it also writes as the conversation
    ("mastra.metadata.sessionId", TRACE, "sessionId", 2, coerce.text),
    ("gen_ai.conversation.id", TRACE, "sessionId", 3, coerce.text),
    ("ai.telemetry.metadata.sessionId", TRACE, "sessionId", 4, coerce.text),
    ("traceloop.association.properties.session_id", TRACE, "sessionId", 5, coerce.text),
    # Langfuse's OpenAI drop-in takes them as metadata keys (metadata={"langfuse_user_id": ..});
    # its 5.x SDK sends each metadata value as JSON text.
    ("langfuse.observation.metadata.langfuse_user_id", TRACE, "userId", 5, _json_text),
    ("langfuse.trace.metadata.langfuse_user_id", TRACE, "userId", 5, _json_text),
    ("langfuse.observation.metadata.langfuse_session_id", TRACE, "sessionId", 6, _json_text),
    ("langfuse.trace.metadata.langfuse_session_id", TRACE, "sessionId", 6, _json_text),
    ("langfuse.observation.metadata.langfuse_tags", TRACE, "tags", 4, coerce.tag_list),
    ("langfuse.trace.metadata.langfuse_tags", TRACE, "tags", 4, coerce.tag_list),
    ("langfuse.internal.as_root", TRACE, "asRoot", 0, coerce.flag),
    # The current SDKs mark the first span they export when they drop the app's server span.
    ("langfuse.internal.is_app_root", TRACE, "asRoot", 1, coerce.flag),
    # fields of both the observation and its trace (span attributes; resource ones below)
    ("langfuse.environment", SHARED, "environment", 0, coerce.text),
    ("deployment.environment.name", SHARED, "environment", 1, coerce.text),
    ("deployment.environment", SHARED, "environment", 2, coerce.text),
    ("langfuse.release", SHARED, "release", 0, coerce.text),
    ("service.version", SHARED, "version", 1, coerce.text),  # Langfuse's reading, not a release
    ("langfuse.version", SHARED, "version", 0, coerce.text),
)

# (key prefix, group, rank, coercion): the rest of the key names the field. Exact rows win;
# of two prefixes of one key, the first listed.
# Langfuse SDKs JSON-encode metadata values (5.x even strings: "core" arrives as '"core"').
PREFIXED: Final[tuple[tuple[str, str, int, Coerce], ...]] = (
    ("langfuse.observation.metadata.", META, 0, _io),
    ("langfuse.metadata.", META, 1, _io),
    ("langfuse.trace.metadata.", TRACE_META, 0, _io),
    # The app's own metadata, as the AI SDK and OpenLLMetry carry it.
    ("ai.telemetry.metadata.", META, 2, None),
    ("traceloop.association.properties.", META, 3, None),
    ("mastra.metadata.", META, 4, None),
    # Micrometer's OpenTelemetry bridge (Spring AI) sends every value as a string: numbers as numbers.
    ("gen_ai.request.", PARAMS, 2, coerce.number_text),
    ("ai.settings.", PARAMS, 3, None),
    ("gen_ai.usage.details.", USAGE, 4, coerce.count),  # Pydantic AI: the provider's own names
    ("gen_ai.usage.", USAGE, 5, coerce.count),
    ("llm.token_count.", USAGE, 6, coerce.count),
    ("langfuse.internal.", INTERNAL, 9, None),
)


def _openinference_message(message: dict[str, Any]) -> dict[str, Any]:
    """An OpenInference message (`llm.input_messages.N.message.*`, nested) in the chat shape the
    other conventions and Langfuse's SDKs send: its parts unwrapped from `tool_call` and
    `message_content`, `contents` as the message's `content` parts, `function_call_*` as
    `function_call`. Anything else it holds stays as sent."""
    calls = message.get("tool_calls")
    if type(calls) is list:
        message["tool_calls"] = [_openinference_tool_call(c) for c in calls]
    contents = message.get("contents")
    if type(contents) is list:
        parts = [_openinference_part(p) for p in contents]
        del message["contents"]
        message["content" if "content" not in message else "contents"] = parts
    if "function_call_name" in message or "function_call_arguments_json" in message:
        call = {
            "name": message.pop("function_call_name", None),
            "arguments": message.pop("function_call_arguments_json", None),
        }
        message.setdefault("function_call", {k: v for k, v in call.items() if v is not None})
    return message


def _openinference_tool_call(item: Any) -> Any:
    """`{"tool_call": {"id", "function": {"name", "arguments"}}}` as OpenAI's tool call."""
    call = item.get("tool_call") if type(item) is dict and len(item) == 1 else None
    if type(call) is not dict:
        return item
    out: dict[str, Any] = {"id": call["id"]} if "id" in call else {}
    out["type"] = "function"
    out.update((k, v) for k, v in call.items() if k != "id")
    return out


def _openinference_part(item: Any) -> Any:
    """`{"message_content": {"type": "text", "text"}}` as `{"type": "text", "text"}`, and an
    image (`image.image.url`) as OpenAI's `{"type": "image_url", "image_url": {"url"}}`."""
    part = item.get("message_content") if type(item) is dict and len(item) == 1 else None
    if type(part) is not dict:
        return item
    image = part.get("image")
    if part.get("type") == "image" and type(image) is dict and type(image.get("image")) is dict:
        rest = {k: v for k, v in part.items() if k not in ("type", "image")}
        return {"type": "image_url", "image_url": image["image"], **rest}
    return part


# Flattened lists `<prefix><index>.<key>`: (prefix, group, field, rank, key prefix to drop,
# item keys kept or None for all, item shape or None; other keys stay metadata).
# `gen_ai.prompt.0.role` and `.content` become input `[{"role": .., "content": ..}]`. Ranks 5
# to 8 of the input and output slots: after the message lists given whole, before the payloads.
INDEXED: Final[tuple[IndexedRow, ...]] = (
    ("gen_ai.prompt.", OBS, "input", 5, "", None, None),
    ("llm.input_messages.", OBS, "input", 6, "message.", None, _openinference_message),
    # OpenInference embeddings: the texts are the input; the vectors stay metadata.
    ("embedding.embeddings.", OBS, "input", 7, "embedding.", frozenset({"text"}), None),
    ("gen_ai.completion.", OBS, "output", 5, "", None, None),
    ("llm.output_messages.", OBS, "output", 6, "message.", None, _openinference_message),
    # The tools a call offered, flattened under gen_ai.request.* (AgentOps): metadata, not settings.
    ("gen_ai.request.functions.", META, "gen_ai.request.functions", 0, "", None, None),
)

# Usage keys that count part of the input an instrumentation reports (mapping._cache_out_of_input).
CACHED_INPUT: Final = ("input_cached_tokens", "input_cache_read", "input_cache_creation", "input_cache_write")

# The AI SDK's `ai.response.providerMetadata`: token counts some providers report only there,
# as (path in the object, usage key). They fill the usage keys the span's attributes left out.
PROVIDER_USAGE: Final[tuple[tuple[tuple[str, ...], str], ...]] = (
    (("openai", "cachedPromptTokens"), "input_cached_tokens"),
    (("openai", "reasoningTokens"), "output_reasoning_tokens"),
    (("openai", "acceptedPredictionTokens"), "accepted_prediction_tokens"),
    (("openai", "rejectedPredictionTokens"), "rejected_prediction_tokens"),
    (("anthropic", "usage", "cache_read_input_tokens"), "input_cached_tokens"),
    (("anthropic", "usage", "cache_creation_input_tokens"), "input_cache_creation"),
    (("anthropic", "cacheCreationInputTokens"), "input_cache_creation"),
    (("bedrock", "usage", "cacheReadInputTokens"), "input_cached_tokens"),
    (("bedrock", "usage", "cacheWriteInputTokens"), "input_cache_creation"),
)

# Span events of the GenAI conventions that carry the input and output (mapping.io_from_events).
EVENT_IO: Final = {
    "gen_ai.content.prompt": ("input", "gen_ai.prompt"),
    "gen_ai.content.completion": ("output", "gen_ai.completion"),
}
OPERATION_DETAILS: Final = "gen_ai.client.inference.operation.details"
MESSAGE_EVENTS: Final = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
CHOICE_EVENT: Final = "gen_ai.choice"
# Span events at a stream's first token (OpenInference) or at each chunk (OpenLLMetry, current
# and older names): the earliest is the completion start, where no attribute gave one.
FIRST_TOKEN_EVENTS: Final = frozenset(
    {"First Token Stream Event", "gen_ai.content.completion.chunk", "llm.content.completion.chunk"}
)

# Resource attributes only set defaults for the SHARED fields.
RESOURCE: Final[tuple[tuple[str, str, int, Coerce], ...]] = (
    ("langfuse.environment", "environment", 0, coerce.text),
    ("deployment.environment.name", "environment", 1, coerce.text),
    ("deployment.environment", "environment", 2, coerce.text),
    ("langfuse.release", "release", 0, coerce.text),
    ("service.version", "version", 1, coerce.text),
    ("langfuse.version", "version", 0, coerce.text),
)
