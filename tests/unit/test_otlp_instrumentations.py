"""Spans recorded from the real instrumentations (tests/fixtures/otlp/README.md) mapped to events,
field by field, one section per instrumentation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ingest.otlp import map_request, parse_request

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "otlp"


def mapped(name: str) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The fixture's events: observations by span id, trace events by the span that made them."""
    result = map_request(parse_request((FIXTURES / f"{name}.json").read_bytes(), "application/json"))
    assert result.rejected == 0, result.errors
    observations: dict[str, dict[str, Any]] = {}
    traces: dict[str, list[dict[str, Any]]] = {}
    for event in result.events:
        if event["type"] == "trace-create":
            traces.setdefault(event["id"].split("-")[1], []).append(event["body"])
        else:
            observations[event["body"]["id"]] = event
    return observations, traces


def fields(event: dict[str, Any]) -> dict[str, Any]:
    """The body without ids, times and metadata (asserted apart)."""
    skip = {"id", "traceId", "parentObservationId", "startTime", "endTime", "metadata"}
    return {k: v for k, v in event["body"].items() if k not in skip}


def user_metadata(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event["body"]["metadata"].items() if k not in ("resourceAttributes", "scope")}


def trace_metadata(root: dict[str, Any]) -> dict[str, Any]:
    """What a root span's trace has of its metadata: the span's, without its events and links."""
    return {k: v for k, v in root["body"]["metadata"].items() if k not in ("spanEvents", "spanLinks")}


# --- Vercel AI SDK -------------------------------------------------------------------------

V4_STEP1, V4_TOOL, V4_STEP2, V4_ROOT = "e967fa42af0fdf85", "0dac866341b2fdb7", "944ba4594132457b", "5a154aa04a8df521"
V4_EMBED, V4_EMBED_ROOT = "d941c13cf866d319", "9b6c29d6926332ca"
SYSTEM = {"role": "system", "content": "You answer weather questions."}


def test_vercel_ai_v4_generate_text_with_a_tool_step() -> None:
    obs, traces = mapped("vercel_ai_v4")
    step1 = obs[V4_STEP1]
    assert step1["type"] == "generation-create"
    params = {"temperature": 0.3, "max_tokens": 200, "maxRetries": 2, "toolChoice": {"type": "auto"}}
    assert fields(step1) == {
        "name": "weather-agent:ai.generateText.doGenerate",
        "model": "gpt-4o-mini",
        "input": [SYSTEM, {"role": "user", "content": [{"type": "text", "text": "What is the weather in Paris?"}]}],
        "output": [  # a step that only calls tools: its calls are the output
            {"toolCallType": "function", "toolCallId": "call-1", "toolName": "weather", "args": '{"city":"Paris"}'}
        ],
        "modelParameters": params,
        "usageDetails": {"input": 40, "output": 12, "total": 52},
    }
    meta = user_metadata(step1)
    assert meta["team"] == "search"  # ai.telemetry.metadata.* is the app's metadata
    assert meta["ai.model.provider"] == "openai.chat"
    assert meta["ai.telemetry.functionId"] == "weather-agent"
    claimed = {"userId", "sessionId", "tags", "ai.prompt.messages", "ai.response.toolCalls", "ai.usage.promptTokens"}
    assert not claimed & meta.keys()
    assert not any(k.startswith("ai.telemetry.metadata.") for k in meta)
    # user, session and tags name the trace from every span that carries them: the trace event
    # of the child that started last stands for the others' (absorb_trace_events)
    assert V4_STEP1 not in traces
    assert traces[V4_STEP2] == [{"id": step1["body"]["traceId"], **TRACE_V4}]

    step2 = obs[V4_STEP2]
    assert fields(step2)["output"] == "It is sunny in Paris."
    assert fields(step2)["usageDetails"] == {
        "input": 28,  # 60 less the 32 cached
        "output": 8,
        "total": 68,
        "input_cached_tokens": 32,  # from ai.response.providerMetadata's openai counts
        "output_reasoning_tokens": 0,
    }

    tool = obs[V4_TOOL]
    assert tool["type"] == "tool-create"
    assert fields(tool) == {
        "name": "weather",  # ai.toolCall.name, as Langfuse names it
        "input": {"city": "Paris"},
        "output": {"city": "Paris", "sky": "sunny"},
    }
    assert user_metadata(tool)["ai.toolCall.name"] == "weather"


TRACE_V4 = {"userId": "user-v4", "sessionId": "session-v4", "tags": ["vercel", "v4"]}


def test_vercel_ai_v4_wrapper_span_keeps_the_steps_usage_out_of_its_own() -> None:
    obs, traces = mapped("vercel_ai_v4")
    root = obs[V4_ROOT]
    assert root["type"] == "span-create"  # ai.generateText: the app's call, not a model call
    body = fields(root)
    assert body == {
        "name": "weather-agent:ai.generateText",
        "input": {"system": "You answer weather questions.", "prompt": "What is the weather in Paris?"},
        "output": "It is sunny in Paris.",
        "modelParameters": {"temperature": 0.3, "max_tokens": 200, "maxRetries": 2, "maxSteps": 2},
    }
    assert user_metadata(root)["aggregate"] == {
        "model": "gpt-4o-mini",
        "usageDetails": {
            "input": 28,
            "output": 8,
            "total": 68,
            "input_cached_tokens": 32,
            "output_reasoning_tokens": 0,
        },
    }
    [trace] = traces[V4_ROOT]
    assert trace == {
        "id": root["body"]["traceId"],
        "timestamp": 1796137653817000,
        "name": "weather-agent:ai.generateText",
        **TRACE_V4,
        "input": body["input"],
        "output": body["output"],
        "metadata": trace_metadata(root),
    }


def test_vercel_ai_v4_embedding() -> None:
    obs, _ = mapped("vercel_ai_v4")
    embed = obs[V4_EMBED]
    assert embed["type"] == "embedding-create"
    assert fields(embed) == {
        "name": "embed-city:ai.embed.doEmbed",
        "model": "text-embedding-3-small",
        "input": ["sunny in Paris"],
        "modelParameters": {"maxRetries": 2},
        "usageDetails": {"input": 5, "total": 5},
    }
    assert user_metadata(embed)["ai.embeddings"] == ["[0.1,0.2,0.3]"]
    wrapper = obs[V4_EMBED_ROOT]
    assert wrapper["type"] == "span-create" and "usageDetails" not in wrapper["body"]


V5_STEP1, V5_STEP2, V5_ROOT = "d470119688129a3e", "112fb83f43fa3746", "0f6197daa386f3d4"
V5_STREAM, V5_STREAM_ROOT = "fad70d053adc9c52", "259e7683b16af7a4"


def test_vercel_ai_v5_generate_text() -> None:
    obs, traces = mapped("vercel_ai_v5")
    step1 = obs[V5_STEP1]
    assert step1["type"] == "generation-create"
    assert fields(step1) == {
        "name": "weather-agent-v5:ai.generateText.doGenerate",
        "model": "claude-sonnet-4",
        "input": [SYSTEM, {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"}]}],
        "output": [{"toolCallId": "call-1", "toolName": "weather", "input": '{"city":"Oslo"}'}],
        "modelParameters": {"max_tokens": 300, "temperature": 0.1, "maxRetries": 2, "toolChoice": {"type": "auto"}},
        "usageDetails": {"input": 50, "output": 20, "total": 70},
    }
    assert user_metadata(step1)["plan"] == "pro"
    assert traces[V5_STEP2][0] == {  # the latest-started child's stands for step 1's
        "id": step1["body"]["traceId"],
        "userId": "user-v5",
        "sessionId": "session-v5",
        "tags": ["vercel", "v5"],
    }
    assert fields(obs[V5_STEP2])["output"] == "Snow in Oslo."
    assert fields(obs[V5_STEP2])["usageDetails"] == {"input": 90, "output": 10, "total": 100}
    root = obs[V5_ROOT]
    assert root["type"] == "span-create" and "model" not in root["body"] and "usageDetails" not in root["body"]


def test_vercel_ai_v5_stream_text_with_cached_and_reasoning_tokens() -> None:
    obs, _ = mapped("vercel_ai_v5")
    stream = obs[V5_STREAM]
    assert stream["type"] == "generation-create"
    body = fields(stream)
    # msToFirstChunk (9.677018 ms) after the start
    assert body.pop("completionStartTime") == 1796137677759000 + 9677
    assert body == {
        "name": "answer-stream:ai.streamText.doStream",
        "model": "o4-mini-2025-04-16",  # the response's model wins over ai.model.id
        "input": [{"role": "user", "content": [{"type": "text", "text": "The answer?"}]}],
        "output": "Forty-two.",
        "modelParameters": {"maxRetries": 2},
        "usageDetails": {
            "input": 20,  # 120 less the 100 cached
            "output": 45,
            "total": 165,
            "input_cached_tokens": 100,
            "output_reasoning_tokens": 30,
        },
    }
    wrapper = obs[V5_STREAM_ROOT]
    assert wrapper["type"] == "span-create"
    assert user_metadata(wrapper)["aggregate"] == {
        "model": "o4-mini",
        "usageDetails": {
            "input": 20,
            "output": 45,
            "total": 165,
            "input_cached_tokens": 100,
            "output_reasoning_tokens": 30,
        },
    }


# --- OpenLLMetry ---------------------------------------------------------------------------

OL_CHAT, OL_TASK, OL_TOOL, OL_AGENT, OL_WORKFLOW = (
    "63426f3034eb04a5",
    "6ad451c25dde8a69",
    "27b3ce83713dd0d9",
    "99a500e3c8725316",
    "e242cc21b9d68cf9",
)
OL_TRACE = {"sessionId": "session-ol", "userId": "user-ol"}


def test_openllmetry_chat_span() -> None:
    obs, traces = mapped("openllmetry")
    chat = obs[OL_CHAT]
    assert chat["type"] == "generation-create"
    assert fields(chat) == {
        "name": "openai.chat",
        "model": "gpt-4o-2024-08-06",
        "input": [
            {"role": "system", "parts": [{"content": "You write haiku.", "type": "text"}]},
            {"role": "user", "parts": [{"content": "A haiku about autumn", "type": "text"}]},
        ],
        "output": [{"role": "assistant", "parts": [{"content": "A haiku.", "type": "text"}], "finish_reason": "stop"}],
        "modelParameters": {"max_tokens": 50, "temperature": 0.7},
        "usageDetails": {
            "input": 9,  # 21 less the 12 cached
            "output": 7,
            "total": 28,
            "input_cached_tokens": 12,
            "output_reasoning_tokens": 2,  # gen_ai.usage.reasoning_tokens
        },
    }
    meta = user_metadata(chat)
    assert meta["tenant"] == "acme"  # an association property is the app's metadata
    assert "session_id" not in meta and "user_id" not in meta
    assert not any(k.startswith("traceloop.association.properties.") for k in meta)
    # the trace event of the child that started last stands for those it absorbs
    assert traces[OL_TOOL] == [{"id": chat["body"]["traceId"], **OL_TRACE}]


@pytest.mark.parametrize(
    ("span_id", "event_type", "name", "output"),
    [
        (OL_TASK, "span-create", "write_haiku.task", "A haiku."),
        (OL_TOOL, "tool-create", "count_syllables", 17),  # the JSON of what it returned
        (OL_AGENT, "agent-create", "poet.agent", "A haiku."),
        (OL_WORKFLOW, "chain-create", "haiku_workflow.workflow", "A haiku."),
    ],
)
def test_openllmetry_decorated_functions(span_id: str, event_type: str, name: str, output: Any) -> None:
    obs, _ = mapped("openllmetry")
    event = obs[span_id]
    assert event["type"] == event_type
    body = fields(event)
    assert (body.pop("name"), body.pop("output")) == (name, output)
    assert body == {"input": {"args": ["A haiku."] if span_id == OL_TOOL else ["autumn"], "kwargs": {}}}
    meta = user_metadata(event)
    assert meta["traceloop.workflow.name"] == "haiku_workflow" and meta["tenant"] == "acme"
    assert "traceloop.entity.input" not in meta and "traceloop.entity.output" not in meta


def test_openllmetry_workflow_names_the_trace() -> None:
    obs, traces = mapped("openllmetry")
    [trace] = traces[OL_WORKFLOW]
    assert trace == {
        "id": obs[OL_WORKFLOW]["body"]["traceId"],
        "timestamp": 1796138496522474,
        "name": "haiku_workflow.workflow",
        **OL_TRACE,
        "input": {"args": ["autumn"], "kwargs": {}},
        "output": "A haiku.",
        "metadata": trace_metadata(obs[OL_WORKFLOW]),
    }


# --- Pydantic AI ---------------------------------------------------------------------------

PA_CHAT1, PA_TOOL, PA_CHAT2, PA_AGENT = "718b971bda0c4b0f", "add287a5ea76e2f2", "563ab234d7dd6d14", "f51127faee1a5249"
PA_SYSTEM = {"role": "system", "content": "Answer weather questions briefly."}
PA_ASK = {"role": "user", "parts": [{"type": "text", "content": "Weather in Lima?"}]}
PA_CALL = {
    "role": "assistant",
    "parts": [{"type": "tool_call", "id": "call-1", "name": "get_weather", "arguments": {"city": "Lima"}}],
}
PA_RESULT = {
    "role": "user",
    "parts": [{"type": "tool_call_response", "id": "call-1", "name": "get_weather", "result": "cloudy in Lima"}],
}
PA_ANSWER = {"role": "assistant", "parts": [{"type": "text", "content": "Cloudy in Lima."}]}
PA_SESSION = "01a23229-b5df-75f8-b196-76da5ad73702"


def test_pydantic_ai_chat_spans() -> None:
    obs, traces = mapped("pydantic_ai")
    chat = obs[PA_CHAT1]
    assert chat["type"] == "generation-create"
    assert fields(chat) == {
        "name": "chat function-model",
        "model": "function-model",
        "input": [PA_SYSTEM, PA_ASK],  # gen_ai.system_instructions as the system message
        "output": [PA_CALL],
        "modelParameters": {"max_tokens": 100, "temperature": 0.4},
        "usageDetails": {"input": 20, "output": 8, "total": 38, "input_cached_tokens": 10},
    }
    meta = user_metadata(chat)
    assert meta["model_request_parameters"]["function_tools"][0]["name"] == "get_weather"  # parsed
    assert not {"gen_ai.system_instructions", "gen_ai.usage.details.cache_read_tokens"} & meta.keys()
    # the trace event of the child that started last stands for those it absorbs
    assert traces[PA_CHAT2] == [{"id": chat["body"]["traceId"], "sessionId": PA_SESSION}]
    chat2 = fields(obs[PA_CHAT2])
    assert chat2["input"] == [PA_SYSTEM, PA_ASK, PA_CALL, PA_RESULT]
    assert chat2["output"] == [PA_ANSWER]
    assert chat2["usageDetails"] == {"input": 52, "output": 6, "total": 58}


def test_pydantic_ai_tool_span() -> None:
    obs, _ = mapped("pydantic_ai")
    tool = obs[PA_TOOL]
    assert tool["type"] == "tool-create"
    assert fields(tool) == {"name": "get_weather", "input": {"city": "Lima"}, "output": "cloudy in Lima"}
    assert user_metadata(tool)["logfire.msg"] == "running tool: get_weather"


def test_pydantic_ai_agent_run_is_an_agent_without_the_runs_usage() -> None:
    obs, traces = mapped("pydantic_ai")
    agent = obs[PA_AGENT]
    assert agent["type"] == "agent-create"
    body = fields(agent)
    assert body == {
        "name": "weather_agent run",
        "input": [PA_SYSTEM, PA_ASK, PA_CALL, PA_RESULT, PA_ANSWER],  # pydantic_ai.all_messages
        "output": "Cloudy in Lima.",  # final_result
    }
    meta = user_metadata(agent)
    assert meta["gen_ai.aggregated_usage.input_tokens"] == 82  # the run's total, not a generation's
    assert meta["model_name"] == "function-model"
    [trace] = traces[PA_AGENT]
    assert trace == {
        "id": agent["body"]["traceId"],
        "timestamp": 1796137924120439,
        "name": "weather_agent run",
        "sessionId": PA_SESSION,
        "input": body["input"],
        "output": body["output"],
        "metadata": trace_metadata(agent),
    }


# --- OpenInference -------------------------------------------------------------------------

OI_EMBED, OI_CHAT = "e0c0f79360ed1817", "5b0b5f17ed058786"
OI_TRACE = {"sessionId": "session-oi", "userId": "user-oi", "tags": ["oi"]}


def test_openinference_embedding_span() -> None:
    obs, traces = mapped("openinference_openai")
    embed = obs[OI_EMBED]
    assert embed["type"] == "embedding-create"
    body = fields(embed)
    output = body.pop("output")  # output.value: the response
    assert output["usage"] == {"prompt_tokens": 9, "total_tokens": 9}
    assert body == {
        "name": "CreateEmbeddings",
        "model": "text-embedding-3-small",  # embedding.model_name
        "input": [{"text": "capital of France"}, {"text": "capital of Peru"}],  # the texts, not input.value
        "modelParameters": {"model": "text-embedding-3-small", "encoding_format": "base64"},
        "usageDetails": {"input": 9, "total": 9},
    }
    meta = user_metadata(embed)
    assert meta["embedding.embeddings.0.embedding.vector"] == [0.25, -0.5, 0.125]  # vectors stay metadata
    assert meta["team"] == "geo"
    assert not {"embedding.embeddings.0.embedding.text", "input.value", "embedding.model_name"} & meta.keys()
    [trace] = traces[OI_EMBED]
    assert trace["name"] == "CreateEmbeddings" and {k: trace[k] for k in OI_TRACE} == OI_TRACE


def test_openinference_chat_prefers_the_message_lists_to_input_value() -> None:
    obs, _ = mapped("openinference_openai")
    chat = obs[OI_CHAT]
    assert chat["type"] == "generation-create"
    assert fields(chat) == {
        "name": "ChatCompletion",
        "model": "gpt-4o-mini-2024-07-18",
        "input": [
            {"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": "Capital of France?"},
        ],
        "output": [{"role": "assistant", "content": "Paris."}],
        "modelParameters": {"model": "gpt-4o-mini", "temperature": 0},
        "usageDetails": {
            "input": 9,  # 25 less the 16 cached
            "output": 3,
            "total": 28,
            "input_cached_tokens": 16,
            "output_reasoning_tokens": 0,
        },
    }
    assert "input.value" not in user_metadata(chat) and "output.value" not in user_metadata(chat)


OI_TOOL_CALL, OI_STREAM = "97c51818743b46af", "d60d98ba486ab0dd"
OI_QUESTION = {
    "role": "user",
    "content": [
        {"type": "text", "text": "What is the weather where this photo was taken?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/eiffel.png"}},
    ],
}
OI_CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


def test_openinference_tool_calls_images_and_first_token_in_the_chat_shape() -> None:
    obs, _ = mapped("openinference_openai_tools")
    call = fields(obs[OI_TOOL_CALL])
    # The messages as the client sent them to OpenAI, not OpenInference's wrappers of their parts.
    assert call["input"] == [OI_QUESTION]
    assert call["output"] == [{"role": "assistant", "tool_calls": [OI_CALL]}]
    assert "completionStartTime" not in call
    stream = fields(obs[OI_STREAM])
    assert stream["input"] == [
        OI_QUESTION,
        {"role": "assistant", "tool_calls": [OI_CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    assert stream["output"] == [{"role": "assistant", "content": "Sunny in Paris."}]
    assert stream["usageDetails"] == {"input": 60, "output": 4, "total": 64}
    # Its "First Token Stream Event" (the event stays in metadata too).
    assert stream["completionStartTime"] == 1796390801041881
    assert [e["name"] for e in obs[OI_STREAM]["body"]["metadata"]["spanEvents"]] == ["First Token Stream Event"]


# --- OpenLLMetry before the GenAI message attributes ---------------------------------------

OLL_CHAT, OLL_EMBED = "77643d9ae049ecc5", "797d57fcc7973ec5"


def test_openllmetry_legacy_flattened_prompt_and_completion() -> None:
    obs, traces = mapped("openllmetry_legacy")
    chat = obs[OLL_CHAT]
    assert chat["type"] == "generation-create"  # llm.request.type = chat
    assert fields(chat) == {
        "name": "openai.chat",
        "model": "gpt-4o-2024-08-06",
        "input": [
            {"role": "system", "content": "Use the tools."},
            {"role": "user", "content": "When is high tide?"},
        ],
        "output": [
            {
                "finish_reason": "tool_calls",
                "role": "assistant",
                "tool_calls": [{"id": "call-9", "name": "lookup", "arguments": '{"q": "tides"}'}],
            }
        ],
        "modelParameters": {"temperature": 0.2},
        "usageDetails": {"input": 13, "output": 11, "total": 44, "input_cached_tokens": 20},
    }
    meta = user_metadata(chat)
    assert meta["gen_ai.system"] == "OpenAI" and meta["llm.request.functions.0.name"] == "lookup"
    assert not any(k.startswith(("gen_ai.prompt.", "gen_ai.completion.", "llm.usage.")) for k in meta)
    assert traces[OLL_CHAT][0]["input"] == fields(chat)["input"]


def test_openllmetry_legacy_embedding() -> None:
    obs, _ = mapped("openllmetry_legacy")
    embed = obs[OLL_EMBED]
    assert embed["type"] == "embedding-create"  # llm.request.type = embedding
    assert fields(embed) == {
        "name": "openai.embeddings",
        "model": "text-embedding-3-small",
        "input": [{"content": "tides"}],
        "usageDetails": {"input": 4, "total": 4, "input_cached_tokens": 0},
    }


# --- Pydantic AI 0.x: Logfire's events attribute, an agent run without invoke_agent ---------

PE_CHAT, PE_TOOL, PE_TOOLS, PE_RUN = "337caac487f3a7df", "01c021c68b8f9d96", "c977fdb4929d8acb", "f1c7c1ff99586391"
PE_CALL = {"id": "call-1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Quito"}}}


def test_pydantic_ai_events_attribute_is_the_chat_input_and_output() -> None:
    obs, _ = mapped("pydantic_ai_events")
    chat = obs[PE_CHAT]
    assert chat["type"] == "generation-create"
    system, user = (
        {"role": "system", "content": "Answer weather questions briefly.", "event.name": "gen_ai.system.message"},
        {"role": "user", "content": "Weather in Quito?", "event.name": "gen_ai.user.message"},
    )
    common = {"gen_ai.system": "function", "gen_ai.message.index": 0}
    assert fields(chat) == {
        "name": "chat function-model",
        "model": "function-model",
        "input": [{**system, **common}, {**user, **common}],  # the events sent
        "output": {  # the gen_ai.choice received
            "index": 0,
            "message": {"role": "assistant", "tool_calls": [PE_CALL]},
            "gen_ai.system": "function",
            "event.name": "gen_ai.choice",
        },
        "usageDetails": {"input": 28, "output": 9, "total": 37},
    }
    assert "events" not in user_metadata(chat)


def test_pydantic_ai_0x_tool_and_agent_run() -> None:
    obs, traces = mapped("pydantic_ai_events")
    tool = obs[PE_TOOL]
    assert tool["type"] == "tool-create"
    assert fields(tool) == {"name": "get_weather", "input": {"city": "Quito"}, "output": "rain in Quito"}
    assert obs[PE_TOOLS]["type"] == "span-create"
    run = obs[PE_RUN]
    assert run["type"] == "agent-create"  # agent_name marks the run
    body = fields(run)
    assert body.pop("output") == "Rain in Quito."  # final_result
    assert [m["event.name"] for m in body.pop("input")] == [  # all_messages_events
        "gen_ai.system.message",
        "gen_ai.user.message",
        "gen_ai.assistant.message",
        "gen_ai.tool.message",
        "gen_ai.assistant.message",
    ]
    assert body == {"name": "weather_agent run"}  # logfire.msg; the run's token sum is no usage of its own
    meta = user_metadata(run)
    assert meta["aggregate"] == {"usageDetails": {"input": 75, "output": 14, "total": 89}}
    assert (meta["agent_name"], meta["model_name"], meta["logfire.msg"]) == (
        "weather_agent",
        "function-model",
        "weather_agent run",
    )
    [trace] = traces[PE_RUN]
    assert (trace["name"], trace["output"]) == ("weather_agent run", "Rain in Quito.")


# --- Semantic Kernel: prompt and completion as span events ---------------------------------


def test_semantic_kernel_chat_span_events() -> None:
    obs, traces = mapped("semantic_kernel")
    chat = obs["1e2c018ce345963e"]
    assert chat["type"] == "generation-create"  # gen_ai.operation.name = chat.completions
    assert fields(chat) == {
        "name": "chat.completions gpt-4o-mini",
        "model": "gpt-4o-mini",
        "input": [{"role": "system", "content": "Translate to French."}, {"role": "user", "content": "Hello."}],
        "output": [{"role": "assistant", "content": "Bonjour."}],
        "modelParameters": {"max_tokens": 20, "temperature": 0.1},
        "usageDetails": {"input": 14, "output": 3, "total": 17},  # gen_ai.response.*_tokens
    }
    meta = user_metadata(chat)
    assert [e["name"] for e in meta["spanEvents"]] == ["gen_ai.content.prompt", "gen_ai.content.completion"]
    assert meta["gen_ai.response.finish_reason"] == "FinishReason.STOP"
    assert traces["1e2c018ce345963e"][0]["input"] == fields(chat)["input"]


# --- Google ADK: its GenAI-convention spans, and the gcp.vertex.agent.* ones before them -----

ADK_TOOL, ADK_CALL1, ADK_MODEL1, ADK_CALL2 = (
    "faac73da51cfb559",
    "b6f27765b70b1ed0",
    "175120b2bfe57c23",
    "72ec05af94c586df",
)
ADK_SYSTEM = 'Answer weather questions briefly.\n\nYou are an agent. Your internal name is "weather_agent".'


def test_google_adk_legacy_call_llm_takes_its_request_and_response() -> None:
    obs, _ = mapped("google_adk_legacy")
    call = obs[ADK_CALL1]
    # ADK 2.13 (from 1.24): the model call is its generate_content child, which carries the same
    # usage; call_llm keeps it as the sum of its child, not as a second generation
    assert call["type"] == "span-create"
    body = fields(call)
    assert body["name"] == "call_llm"
    assert body["input"]["config"]["system_instruction"] == ADK_SYSTEM
    assert body["input"]["contents"] == [{"parts": [{"text": "Weather in Lima?"}], "role": "user"}]
    assert body["output"]["content"]["parts"] == [{"function_call": {"args": {"city": "Lima"}, "name": "get_weather"}}]
    assert "usageDetails" not in body and "model" not in body
    child = obs[ADK_MODEL1]
    assert child["type"] == "generation-create"
    usage = {"input": 28, "output": 9, "input_cached_tokens": 12, "total": 49}
    assert fields(child)["usageDetails"] == usage
    assert user_metadata(call)["aggregate"] == {"model": "scripted-model", "usageDetails": usage}
    meta = user_metadata(call)
    assert not {"gcp.vertex.agent.llm_request", "gcp.vertex.agent.llm_response"} & meta.keys()
    assert meta["gcp.vertex.agent.session_id"] == "7dae6da8-32ed-4bfd-9bfc-c5115507f499"
    assert fields(obs[ADK_CALL2])["output"]["content"] == {"parts": [{"text": "Cloudy in Lima."}], "role": "model"}


def test_google_adk_legacy_tool_span_takes_the_arguments_and_response_past_the_empty_request() -> None:
    obs, _ = mapped("google_adk_legacy")
    tool = obs[ADK_TOOL]
    assert tool["type"] == "tool-create"
    assert fields(tool) == {
        "name": "get_weather",
        "input": {"city": "Lima"},
        "output": {"city": "Lima", "weather": "cloudy"},
    }
    # ADK's empty request and response of a tool span stay what they were: metadata
    meta = user_metadata(tool)
    assert (meta["gcp.vertex.agent.llm_request"], meta["gcp.vertex.agent.llm_response"]) == ("{}", "{}")


def test_google_adk_genai_convention_spans() -> None:
    obs, traces = mapped("google_adk")
    chat = obs["8248c8a7690afaab"]
    assert chat["type"] == "generation-create"
    body = fields(chat)
    assert body["input"] == [
        {"role": "system", "content": ADK_SYSTEM},
        {"role": "user", "parts": [{"content": "Weather in Lima?", "type": "text"}]},
    ]
    assert body["output"][0]["parts"][0]["name"] == "get_weather"
    assert body["usageDetails"] == {"input": 28, "output": 9, "input_cached_tokens": 12, "total": 49}
    assert fields(obs["6a11bfda42ab44ce"]) == {
        "name": "get_weather",
        "input": {"city": "Lima"},
        "output": {"city": "Lima", "weather": "cloudy"},
    }
    assert obs["10668ed8300f05f8"]["type"] == "agent-create"
    # gen_ai.conversation.id: ADK's session
    assert traces["0c74a763fb3852a1"] == [
        {"id": chat["body"]["traceId"], "sessionId": "9bc402ee-6f95-48ae-a0df-8dd88638f97e"}
    ]


# --- MLflow: mlflow.spanInputs / spanOutputs, its span types, model and token usage ---------

ML_TOOL, ML_CHAT, ML_AGENT = "581be8c52fca14e9", "5e190ae89bceb920", "7708bdacce4b81a3"


def test_mlflow_openai_autolog_span_is_a_priced_generation() -> None:
    obs, _ = mapped("mlflow")
    chat = obs[ML_CHAT]
    assert chat["type"] == "generation-create"  # mlflow.spanType "CHAT_MODEL"
    body = fields(chat)
    assert body["model"] == "gpt-4o-mini-2024-07-18"  # mlflow.llm.model, a JSON string
    assert body["input"]["messages"][0] == {"role": "user", "content": "Weather in Lima?"}
    assert body["output"]["choices"][0]["message"]["content"] == "Cloudy in Lima."
    assert body["usageDetails"] == {"input": 21, "output": 6, "total": 27}  # mlflow.chat.tokenUsage
    assert body["level"] == "DEFAULT"  # mlflow.spanLogLevel 20 (INFO)
    meta = user_metadata(chat)
    assert not {"mlflow.spanInputs", "mlflow.spanOutputs", "mlflow.chat.tokenUsage", "mlflow.llm.model"} & meta.keys()
    assert meta["mlflow.spanType"] == '"CHAT_MODEL"'


def test_mlflow_traced_functions() -> None:
    obs, traces = mapped("mlflow")
    tool, agent = obs[ML_TOOL], obs[ML_AGENT]
    assert (tool["type"], agent["type"]) == ("tool-create", "agent-create")
    assert fields(tool) == {
        "name": "get_weather",
        "input": {"city": "Lima"},
        "output": {"city": "Lima", "weather": "cloudy"},
        "level": "DEFAULT",
    }
    [trace] = traces[ML_AGENT]
    assert (trace["name"], trace["input"], trace["output"]) == (
        "agent",
        {"question": "Weather in Lima?"},
        "Cloudy in Lima.",
    )


# --- Genkit: its actions' genkit:input and genkit:output ------------------------------------

GK_MODEL1, GK_TOOL, GK_MODEL2, GK_GENERATE, GK_FLOW = (
    "c2d6ffdae0d5766c",
    "4bf2a54a0e3bf378",
    "d320c05e25871ba0",
    "baa833cb3febdefc",
    "59970e03cff7cb0b",
)
GK_ASK = {"role": "user", "content": [{"text": "Weather in Lima?"}]}
GK_CALL = {"role": "model", "content": [{"toolRequest": {"name": "get_weather", "input": "Lima"}}]}


def test_genkit_model_actions_are_priced_generations() -> None:
    obs, _ = mapped("genkit")
    first = obs[GK_MODEL1]
    assert first["type"] == "generation-create"
    assert fields(first) == {
        "name": "scripted-model",
        "model": "scripted-model",  # the model action's name
        "input": [GK_ASK],  # the request's messages
        "output": GK_CALL,  # the response's message
        "modelParameters": {"temperature": 0.3},  # the request's config
        # the cached part out of the input; the thoughts beside the output
        "usageDetails": {
            "input": 20,
            "output": 8,
            "total": 43,
            "output_reasoning_tokens": 5,
            "input_cached_tokens": 10,
        },
    }
    second = fields(obs[GK_MODEL2])
    assert second["input"][1:] == [
        GK_CALL,
        {"role": "tool", "content": [{"toolResponse": {"name": "get_weather", "output": "cloudy in Lima"}}]},
    ]
    assert second["usageDetails"] == {"input": 52, "output": 6, "total": 58}
    assert not {"genkit:input", "genkit:output"} & user_metadata(first).keys()


def test_genkit_tool_flow_and_the_generate_step() -> None:
    obs, traces = mapped("genkit")
    assert obs[GK_TOOL]["type"] == "tool-create"  # subtype tool.v2
    assert fields(obs[GK_TOOL]) == {"name": "get_weather", "input": "Lima", "output": {"output": "cloudy in Lima"}}
    # the generate step repeats its last model call's answer and usage: a span, not a generation
    step = obs[GK_GENERATE]
    assert step["type"] == "span-create"
    assert "usageDetails" not in step["body"] and "model" not in step["body"]
    [trace] = traces[GK_FLOW]
    assert (trace["name"], trace["input"], trace["output"]) == ("weather_flow", "Weather in Lima?", "Cloudy in Lima.")


# --- Vercel AI SDK 7: @ai-sdk/otel's GenAI-convention spans, and its legacy ai.* ones --------

V7_CHAT1, V7_TOOL, V7_STEP1, V7_CHAT2, V7_AGENT = (
    "490abad25b5c9f48",
    "7e5b9c6f9287133a",
    "9602eaf8b637a161",
    "880b00a863409407",
    "252ebdbbc3c2b3c6",
)
V7_SYSTEM = {"role": "system", "content": "You answer weather questions."}


def test_vercel_ai_v7_chat_spans_are_generations() -> None:
    obs, _ = mapped("vercel_ai_v7")
    chat = fields(obs[V7_CHAT1])
    assert obs[V7_CHAT1]["type"] == "generation-create"
    assert chat["model"] == "gpt-4o-mini"
    assert chat["input"] == [V7_SYSTEM, {"role": "user", "parts": [{"type": "text", "content": "Weather in Oslo?"}]}]
    assert chat["output"][0]["parts"][0] == {
        "type": "tool_call",
        "id": "call-1",
        "name": "weather",
        "arguments": {"city": "Oslo"},
    }
    assert chat["modelParameters"] == {"max_tokens": 300, "temperature": 0.1}
    assert chat["usageDetails"] == {
        "input": 20,
        "output": 20,
        "total": 70,
        "input_cached_tokens": 30,
        "input_cache_creation": 0,
    }
    assert fields(obs[V7_CHAT2])["usageDetails"]["input_cached_tokens"] == 64
    assert fields(obs[V7_TOOL]) == {
        "name": "weather",
        "input": {"city": "Oslo"},
        "output": {"city": "Oslo", "sky": "snow"},
    }
    assert obs[V7_STEP1]["type"] == "span-create"  # agent_step


def test_vercel_ai_v7_agent_keeps_the_runs_usage_out_of_its_own() -> None:
    obs, traces = mapped("vercel_ai_v7")
    agent = obs[V7_AGENT]
    assert agent["type"] == "agent-create"
    assert "usageDetails" not in agent["body"] and "model" not in agent["body"]
    assert user_metadata(agent)["aggregate"]["usageDetails"]["total"] == 170  # the two calls' 70 and 100
    [trace] = traces[V7_AGENT]
    assert trace["name"] == "invoke_agent gpt-4o-mini"
    assert trace["output"][0]["parts"][-1] == {"type": "text", "content": "Snow in Oslo."}


def test_vercel_ai_v7_legacy_spans() -> None:
    obs, _ = mapped("vercel_ai_v7_legacy")
    step = obs["ebf9e18af8f113c2"]
    assert step["type"] == "generation-create"
    body = fields(step)
    assert (body["name"], body["model"], body["output"]) == (
        "weather-agent-v7:ai.generateText.doGenerate",
        "gpt-4o-mini",
        "Snow in Oslo.",
    )
    assert body["usageDetails"] == {
        "input": 26,
        "output": 10,
        "total": 100,
        "output_reasoning_tokens": 4,
        "input_cached_tokens": 64,
    }
    assert obs["dc9d30d6f27fbd01"]["type"] == "tool-create"
    assert obs["0176663c10a5969a"]["type"] == "span-create"  # ai.generateText: the calls' sum, not a call


# --- Strands Agents: messages as span events, in its default and its latest conventions ------

ST_CHAT1, ST_TOOL, ST_AGENT = "4938eb1d0d54732a", "eaaff68d54ef75f0", "ff947a5c90a4059d"
ST_SYSTEM_BLOCKS = {"role": "system", "content": [{"text": "Answer weather questions briefly."}]}


def test_strands_chat_spans_with_message_events() -> None:
    obs, traces = mapped("strands")
    chat = obs[ST_CHAT1]
    assert chat["type"] == "generation-create"
    body = fields(chat)
    # gen_ai.server.time_to_first_token: Strands' milliseconds (310) after the start
    assert body.pop("completionStartTime") == chat["body"]["startTime"] + 310_000
    assert body == {
        "name": "chat",
        "model": "gpt-4o-mini",
        # the events' content blocks, JSON text, read as JSON
        "input": [ST_SYSTEM_BLOCKS, {"role": "user", "content": [{"text": "Weather in Lima?"}]}],
        "output": {
            "finish_reason": "tool_use",
            "message": [{"toolUse": {"toolUseId": "call-1", "name": "get_weather", "input": {"city": "Lima"}}}],
        },
        "usageDetails": {"input": 28, "output": 9, "total": 49, "input_cached_tokens": 12},
    }
    assert obs[ST_TOOL]["type"] == "tool-create"
    agent = obs[ST_AGENT]
    assert agent["type"] == "agent-create" and "usageDetails" not in agent["body"]
    assert user_metadata(agent)["aggregate"]["usageDetails"]["total"] == 115
    [trace] = traces[ST_AGENT]
    assert (trace["name"], trace["userId"], trace["sessionId"]) == (
        "invoke_agent weather_agent",
        "user-st",
        "session-st",
    )


def test_strands_latest_conventions_operation_details_events() -> None:
    obs, _ = mapped("strands_latest")
    chat = fields(obs["2d42c5eb6b9090c2"])
    assert chat["input"] == [
        {"role": "system", "content": "Answer weather questions briefly."},
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Lima?"}]},
    ]
    assert chat["output"][0]["parts"][0]["name"] == "get_weather"
    assert chat["usageDetails"] == {"input": 28, "output": 9, "total": 49, "input_cached_tokens": 12}
    assert fields(obs["821d0710ca3cfbac"]) == {
        "name": "get_weather",
        "input": {"city": "Lima"},
        "output": [{"text": "cloudy in Lima"}],
    }


# --- Logfire's OpenAI instrumentation (5.x): GenAI-convention attributes --------------------


def test_logfire_openai_chat_spans() -> None:
    obs, _ = mapped("logfire_openai")
    chat = obs["57db910888acedcd"]
    assert chat["type"] == "generation-create"
    body = fields(chat)
    assert (body["name"], body["model"]) == ("Chat Completion with 'gpt-4o-mini'", "gpt-4o-mini-2024-07-18")
    assert body["input"][1] == {"role": "user", "parts": [{"type": "text", "content": "Weather in Lima?"}]}
    assert body["output"][0]["finish_reason"] == "tool_calls"
    assert body["modelParameters"] == {"temperature": 0.2}
    # the cached prompt tokens it reports since 5.x, out of the input
    assert body["usageDetails"] == {"input": 28, "output": 9, "total": 49, "input_cached_tokens": 12}
    assert user_metadata(chat)["logfire.msg_template"] == "Chat Completion with {request_data[model]!r}"
    assert fields(obs["4d48d10c401b9aa7"])["output"][0]["parts"] == [{"type": "text", "content": "Cloudy in Lima."}]


# --- OpenInference's LangChain instrumentation ----------------------------------------------


def test_openinference_langchain_chain_model_and_tool() -> None:
    obs, traces = mapped("openinference_langchain")
    chat = obs["4b69f9c97bb08e3c"]
    assert chat["type"] == "generation-create"
    body = fields(chat)
    assert body["model"] == "gpt-4o-mini-2024-07-18"
    assert body["input"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Weather in Lima?"},
    ]
    assert body["output"][0]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert body["modelParameters"]["temperature"] == 0.2
    assert body["usageDetails"] == {"input": 28, "output": 9, "total": 49, "input_cached_tokens": 12}
    assert user_metadata(chat)["ls_model_name"] == "gpt-4o-mini"  # LangChain's metadata, a key each
    assert obs["a3d9c7b7bf782fb1"]["type"] == "chain-create"
    assert obs["f831375bd2f63a5a"]["type"] == "tool-create"
    assert obs["94355d044414b376"]["type"] == "span-create"  # a PROMPT span, as Langfuse types it
    [trace] = traces["a3d9c7b7bf782fb1"]
    assert (trace["name"], trace["sessionId"], trace["userId"]) == ("RunnableSequence", "session-lc", "user-lc")


# --- The OpenAI Agents SDK through OpenInference's instrumentor -----------------------------


def test_openai_agents_responses_are_generations_under_turns() -> None:
    obs, traces = mapped("openai_agents")
    first, second = obs["02897754e4726ca6"], obs["a7885ee7959479de"]
    assert first["type"] == second["type"] == "generation-create"
    body = fields(first)
    assert (body["name"], body["model"]) == ("response", "gpt-4o-mini-2024-07-18")
    assert body["input"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Weather in Lima?"},
    ]
    assert body["output"][0]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city":"Lima"}'}
    # cached tokens out of the input, reasoning tokens kept apart, as Langfuse reads OpenInference's
    assert body["usageDetails"] == {
        "input": 40,
        "output": 17,
        "total": 69,
        "input_cached_tokens": 12,
        "output_reasoning_tokens": 4,
    }
    assert fields(second)["input"][-1] == {"role": "tool", "content": "cloudy in Lima", "tool_call_id": "call_1"}
    assert fields(second)["output"][0]["content"] == "Cloudy in Lima."
    tool = obs["7d85fe6ba239f225"]
    assert (tool["type"], fields(tool)["input"], fields(tool)["output"]) == (
        "tool-create",
        {"city": "Lima"},
        "cloudy in Lima",
    )
    assert obs["f0998eb3ba5c4a63"]["type"] == "chain-create"  # a turn
    assert obs["3078a0c0043c1070"]["type"] == "agent-create"
    [trace] = traces["aad4a7df1c595c37"]
    assert trace["name"] == "Agent workflow"


# --- OpenInference's LlamaIndex instrumentation: a RAG query and a FunctionAgent --------------


def test_openinference_llamaindex_rag_query() -> None:
    obs, traces = mapped("openinference_llamaindex")
    chat = fields(obs["e8932c5ad10d5d6b"])
    assert obs["e8932c5ad10d5d6b"]["type"] == "generation-create"
    assert (chat["model"], chat["usageDetails"]) == ("gpt-4o-mini", {"input": 120, "output": 12, "total": 132})
    assert chat["output"] == [{"role": "assistant", "content": "Lima is the capital of Peru, on the Pacific coast."}]
    retriever = obs["e8ffcd2e38bae658"]
    assert retriever["type"] == "retriever-create"
    assert user_metadata(retriever)["retrieval.documents.0.document.content"] == "Lima is the capital of Peru."
    assert obs["7862e32589fe613a"]["type"] == "embedding-create"
    [trace] = traces["7c9606b9b74d772a"]
    assert (trace["name"], trace["sessionId"], trace["userId"]) == (
        "RetrieverQueryEngine.query",
        "session-li",
        "user-li",
    )
    assert (trace["input"], trace["output"]) == (
        "What is the capital of Peru?",
        "Lima is the capital of Peru, on the Pacific coast.",
    )


def test_openinference_llamaindex_function_agent() -> None:
    obs, _ = mapped("openinference_llamaindex")
    call = fields(obs["c8454c8fa1acebba"])
    assert call["usageDetails"] == {"input": 28, "output": 9, "total": 49, "input_cached_tokens": 12}
    assert call["output"][0]["tool_calls"][0]["id"] == "call-1"
    answer = fields(obs["c0cb4af8cd3286ff"])
    assert answer["input"][-1] == {"role": "tool", "content": "cloudy in Lima", "tool_call_id": "call-1"}
    assert answer["output"] == [{"role": "assistant", "content": "Cloudy in Lima."}]


# --- smolagents through OpenInference: the run's usage summed on its AGENT span --------------


def test_smolagents_agent_run_keeps_its_sum_out_of_its_usage() -> None:
    obs, traces = mapped("smolagents")
    generations = [e for e in obs.values() if e["type"] == "generation-create"]
    assert sorted(fields(g)["usageDetails"]["total"] for g in generations) == [49, 66]
    run = obs["236fc6ea5cb06e4a"]
    assert run["type"] == "agent-create" and "usageDetails" not in run["body"]
    assert run["body"]["metadata"]["aggregate"] == {"usageDetails": {"input": 101, "output": 14, "total": 115}}
    tool = obs["589c2f802b83a5b1"]
    assert (tool["type"], fields(tool)["output"]) == ("tool-create", "cloudy in Lima")
    [trace] = traces["236fc6ea5cb06e4a"]
    assert trace["output"] == "Cloudy in Lima."


# --- AutoGen AgentChat's own spans (its model client writes none) -----------------------------


def test_autogen_agent_and_tool_spans() -> None:
    obs, traces = mapped("autogen")
    assert obs["9639268bacc8538c"]["type"] == "agent-create"
    tool = obs["c92e8e9b8f90ea5a"]
    assert (tool["type"], fields(tool)["name"]) == ("tool-create", "get_weather")
    assert user_metadata(tool)["gen_ai.tool.call.id"] == "call-1"
    assert [t["name"] for t in traces["9639268bacc8538c"]] == ["invoke_agent weather_agent"]


# --- OpenLIT's OpenAI instrumentation: messages in the parts shape, its own cost --------------


def test_openlit_chat_spans_are_priced_as_it_says() -> None:
    obs, traces = mapped("openlit")
    first, second = obs["e58e72674eb8c1bf"], obs["0a34ae967746070d"]
    assert first["type"] == second["type"] == "generation-create"
    body = fields(first)
    # named after gen_ai.tool.name, which OpenLIT sets on the chat span that calls it: as Langfuse does
    assert (body["name"], body["model"]) == ("get_weather", "gpt-4o-mini-2024-07-18")
    assert body["usageDetails"] == {
        "input": 28,
        "output": 9,
        "total": 49,
        "input_cached_tokens": 12,
        "input_cache_creation": 0,
    }
    assert body["costDetails"] == {"total": 1.05e-05}
    assert body["output"][0]["parts"][0] == {
        "type": "tool_call",
        "id": "call-1",
        "name": "get_weather",
        "arguments": {"city": "Lima"},
    }
    assert fields(second)["name"] == "chat gpt-4o-mini"
    [trace] = traces["697a6ef18e99cce8"]
    assert (trace["name"], trace["output"]) == ("weather question", "Cloudy in Lima.")


# --- LiteLLM's OpenTelemetry callbacks: its Langfuse one, and its generic one ------------------


def test_litellm_langfuse_otel_calls_are_traces_of_a_session() -> None:
    obs, traces = mapped("litellm_langfuse_otel")
    call = obs["572e05953b4362af"]
    assert call["type"] == "generation-create"
    body = fields(call)
    assert (body["name"], body["model"]) == ("litellm_request", "gpt-4o-mini-2024-07-18")
    assert body["input"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Weather in Lima?"},
    ]
    assert body["output"][0]["name"] == "get_weather"
    assert body["usageDetails"] == {"input": 28, "output": 9, "total": 49, "input_cached_tokens": 12}
    assert body["costDetails"] == {"total": 1.05e-05}
    assert body["modelParameters"]["temperature"] == 0.2
    [trace] = traces["572e05953b4362af"]
    assert (trace["name"], trace["userId"], trace["sessionId"], trace["tags"]) == (
        "weather-question",
        "user-42",
        "session-lima-1",
        ["fixture", "weather"],
    )
    assert trace["metadata"]["app"] == "fixture"
    assert fields(obs["73768a3b36cbaad5"])["output"] == {"role": "assistant", "content": "Cloudy in Lima."}
    assert obs["9b30f8a1c3f41f0c"]["type"] == "span-create"  # raw_gen_ai_request: the provider's own call


def test_litellm_otel_generic_callback() -> None:
    obs, traces = mapped("litellm_otel")
    body = fields(obs["5b0dfb90b8bf8ea0"])
    assert body["model"] == "gpt-4o-mini-2024-07-18"
    assert body["input"][1] == {"role": "user", "parts": [{"type": "text", "content": "Weather in Lima?"}]}
    assert body["usageDetails"] == {"input": 40, "output": 9, "total": 49}  # it sends no cached count
    assert body["costDetails"] == {"total": 1.05e-05, "input": 5.0999999999999995e-06, "output": 5.4e-06}
    answer = fields(obs["f36ee892a8dbbd06"])
    assert answer["output"] == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Cloudy in Lima."}], "finish_reason": "stop"}
    ]
    assert [t["name"] for t in traces["f36ee892a8dbbd06"]] == ["litellm_request"]
    # The tool call: its output message has no parts, the call is in the legacy attributes.
    assert body["output"] == [{"function_call": {"name": "get_weather", "arguments": '{"city": "Lima"}'}}]
    meta = user_metadata(obs["5b0dfb90b8bf8ea0"])
    assert meta["gen_ai.output.messages"] == [{"role": "assistant", "parts": [], "finish_reason": "tool_calls"}]
    assert not any(k.startswith("gen_ai.completion.") for k in meta)


# --- Anthropic with prompt caching, through OpenInference and OpenLLMetry ----------------------


@pytest.mark.parametrize(
    ("fixture", "span"),
    [("openinference_anthropic", "ecff44e531f020bb"), ("openllmetry_anthropic", "cd597803bb518eaf")],
)
def test_anthropic_cache_reads_and_writes_are_out_of_the_input(fixture: str, span: str) -> None:
    """Anthropic reports 20 uncached input tokens, 100 written to the cache and 300 read; both
    instrumentations send 420 as the input with the two parts beside it: priced once each."""
    obs, _ = mapped(fixture)
    body = fields(obs[span])
    assert obs[span]["type"] == "generation-create"
    assert body["model"] == "claude-sonnet-4-5-20250929"
    assert body["usageDetails"] == {
        "input": 20,
        "input_cached_tokens": 300,
        "input_cache_creation": 100,
        "output": 7,
        "total": 427,
    }
    assert body["input"][0] == {"role": "system", "content": "Answer briefly."}


# --- OpenLLMetry's LangChain instrumentation (GenAI-convention messages) ----------------------


def test_openllmetry_langchain_chain_chat_and_tool() -> None:
    obs, traces = mapped("openllmetry_langchain")
    chat = obs["4879bf0b43e6659f"]
    assert chat["type"] == "generation-create"
    body = fields(chat)
    assert (body["name"], body["model"]) == ("ChatOpenAI.chat", "gpt-4o-mini-2024-07-18")
    # its system instructions in front of the messages, as Langfuse shows them
    assert body["input"][0] == {"role": "system", "content": "Answer briefly."}
    assert body["output"][0]["parts"][0]["name"] == "get_weather"
    assert body["usageDetails"] == {"input": 28, "output": 9, "total": 49, "input_cached_tokens": 12}
    assert user_metadata(chat)["ls_model_name"] == "gpt-4o-mini"  # its association properties
    assert obs["cfcfbdb70db4d8f4"]["type"] == "span-create"
    tool = obs["1c0948ad4e7e2793"]
    assert (tool["type"], fields(tool)["input"]["inputs"]) == ("tool-create", {"city": "Lima"})
    [trace] = traces["e58a949dc9fa6ae9"]
    assert trace["name"] == "RunnableSequence.workflow" and trace["input"]["inputs"] == {"question": "Weather in Lima?"}


# --- Google Gen AI (Gemini 2.5, thinking tokens), official instrumentation and OpenInference ----


@pytest.mark.parametrize(
    ("fixture", "span"), [("google_genai", "f085f7022af7a8b5"), ("openinference_google_genai", "bfabfeca2edc6472")]
)
def test_google_genai_generate_content(fixture: str, span: str) -> None:
    """Gemini counts 12 prompt tokens (4 of them cached) and 35 output tokens, 30 of them
    thinking: the thinking stays in the output (priced as output, as Gemini bills it) and is
    shown beside it."""
    obs, _ = mapped(fixture)
    body = fields(obs[span])
    assert obs[span]["type"] == "generation-create"
    assert body["model"] == "gemini-2.5-flash"
    assert body["usageDetails"] == {
        "input": 8,
        "input_cached_tokens": 4,
        "output": 35,
        "output_reasoning_tokens": 30,
        "total": 47,
    }
    assert body["input"][0] == {"role": "system", "content": "Answer briefly."}
    assert body["modelParameters"] == {"temperature": 0.2}


# --- Haystack's OpenTelemetry tracer (3.x and 2.x) -----------------------------------------------

HAYSTACK_SYSTEM = {"role": "system", "content": "Answer weather questions briefly."}
HAYSTACK_CALL = {
    "role": "assistant",
    "tool_calls": [
        {"id": "call-1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Lima"}'}}
    ],
}


@pytest.mark.parametrize(
    ("fixture", "names"),
    [("haystack", ("haystack.agent.step.llm", "get_weather")), ("haystack_2x", ("chat_generator", "tool_invoker"))],
)
def test_haystack_pipeline_and_agent(fixture: str, names: tuple[str, str]) -> None:
    """Every Haystack span carries its payloads as JSON, a chat message as a list of parts; the
    generators' model and usage are only in their replies' meta."""
    obs, traces = mapped(fixture)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for event in obs.values():
        by_name.setdefault(event["body"]["name"], []).append(event)
    # The pipeline: its components by their names, not all `haystack.component.run`.
    [builder], [llm] = by_name["prompt_builder"], by_name["llm"]
    assert builder["type"] == "span-create"
    assert builder["body"]["output"]["prompt"][1] == {"role": "user", "content": "Tell me about Berlin"}
    assert llm["type"] == "generation-create"
    body = fields(llm)
    assert (body["model"], body["usageDetails"]) == ("gpt-4o-mini-2024-07-18", {"input": 21, "output": 7, "total": 28})
    assert body["input"][0] == {"role": "system", "content": "Always respond in German."}
    assert body["output"] == [{"role": "assistant", "content": "Berlin ist die Hauptstadt Deutschlands."}]
    assert llm["body"]["metadata"]["haystack.component.type"] == "OpenAIChatGenerator"
    [pipeline] = [t for ts in traces.values() for t in ts if t["name"] == "haystack.pipeline.run"]
    assert pipeline["input"]["prompt_builder"]["template_variables"] == {"location": "Berlin"}
    # The agent: its model calls (the first asks for the tool, 12 of its 40 prompt tokens cached),
    # its tool, and the run whose input is the trace's.
    step, tool = names
    first, second = sorted(by_name[step], key=lambda e: e["body"]["startTime"])
    assert (first["type"], second["type"]) == ("generation-create", "generation-create")
    assert fields(first)["usageDetails"] == {"input": 28, "input_cached_tokens": 12, "output": 9, "total": 49}
    assert fields(first)["output"] == [HAYSTACK_CALL]
    assert fields(second)["input"][2:] == [
        HAYSTACK_CALL,
        {"role": "tool", "tool_call_id": "call-1", "content": "cloudy in Lima"},
    ]
    assert fields(second)["output"] == [{"role": "assistant", "content": "Cloudy in Lima."}]
    [invoked] = by_name[tool]
    assert invoked["type"] == "tool-create"
    [run] = by_name["haystack.agent.run"]
    assert run["type"] == "agent-create" and "usageDetails" not in run["body"]
    assert fields(run)["input"] == [{"role": "user", "content": "Weather in Lima?"}]
    [trace] = [t for ts in traces.values() for t in ts if t["name"] == "haystack.agent.run"]
    assert trace["input"] == [{"role": "user", "content": "Weather in Lima?"}]
    if fixture == "haystack":  # 3.x: the tool's own span, and the run's last message as its output
        assert (fields(invoked)["input"], fields(invoked)["output"]) == ({"city": "Lima"}, "cloudy in Lima")
        assert fields(run)["output"] == {"role": "assistant", "content": "Cloudy in Lima."}
    assert first["body"]["input"][0] == HAYSTACK_SYSTEM


def test_haystack_messages_of_another_kind_stay_as_they_are() -> None:
    from ingest.otlp.conventions import _haystack_message

    image = {"role": "user", "content": [{"text": "What is it?"}, {"image": {"base64_image": "..."}}]}
    assert _haystack_message(image) == image
    failed = {
        "role": "tool",
        "content": [{"tool_call_result": {"result": "boom", "origin": {"id": "c"}, "error": True}}],
    }
    assert _haystack_message(failed) == {"role": "tool", "content": "boom", "tool_call_id": "c", "error": True}


# --- Microsoft Agent Framework -------------------------------------------------------------------


def test_agent_framework_run_with_a_tool() -> None:
    obs, traces = mapped("agent_framework")
    chats = sorted((e for e in obs.values() if e["type"] == "generation-create"), key=lambda e: e["body"]["startTime"])
    first, second = chats
    assert fields(first)["model"] == "gpt-4o-mini-2024-07-18"
    assert fields(first)["usageDetails"] == {"input": 28, "input_cached_tokens": 12, "output": 9, "total": 49}
    assert fields(first)["output"][0]["parts"][0]["name"] == "get_weather"
    # Written as the JSON of an array: read as one.
    assert first["body"]["metadata"]["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert fields(second)["usageDetails"] == {"input": 61, "output": 5, "total": 66}
    [tool] = [e for e in obs.values() if e["type"] == "tool-create"]
    assert (fields(tool)["name"], fields(tool)["input"], fields(tool)["output"]) == (
        "get_weather",
        {"city": "Lima"},
        "cloudy in Lima",
    )
    [agent] = [e for e in obs.values() if e["type"] == "agent-create"]
    assert "usageDetails" not in agent["body"]  # the sum of its calls: metadata, not counted again
    assert agent["body"]["metadata"]["aggregate"]["usageDetails"]["total"] == 115
    [trace] = [t for ts in traces.values() for t in ts]
    assert trace["input"][-1]["parts"][0]["content"] == "Weather in Lima?"


# --- The OpenAI Agents SDK through Logfire -----------------------------------------------------


def test_openai_agents_through_logfire() -> None:
    """Logfire appends a model call's answer to its `events` as an assistant message: the output,
    not the input's last message."""
    obs, _ = mapped("openai_agents_logfire")
    calls = sorted((e for e in obs.values() if e["type"] == "generation-create"), key=lambda e: e["body"]["startTime"])
    first, second = (fields(e) for e in calls)
    assert [m["role"] for m in first["input"]] == ["system", "user"]
    assert first["output"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert [m["role"] for m in second["input"]] == ["system", "user", "assistant", "tool"]
    assert second["output"]["content"] == "Cloudy in Lima."
    assert first["modelParameters"]["temperature"] == 0.2  # Logfire's model_settings, without its nulls
    # the reasoning tokens only in the provider's usage object (`gen_ai.usage.raw`), shown beside the output
    assert first["usageDetails"] == {
        "input": 40,
        "input_cached_tokens": 12,
        "output": 17,
        "output_reasoning_tokens": 4,
        "total": 69,
    }
    by_name = {e["body"]["name"]: e for e in obs.values()}
    assert by_name["Function: get_weather"]["type"] == "tool-create"
    assert by_name["Agent run: 'Weather agent'"]["type"] == "agent-create"
    assert by_name["Turn 1 for agent Weather agent"]["type"] == "span-create"


def test_openai_agents_through_logfire_on_chat_completions() -> None:
    """On the Chat Completions path the cached tokens are only in the SDK's `usage` object; a
    turn's `usage` (the sum of its calls) gives nothing: its calls count."""
    obs, _ = mapped("openai_agents_logfire_chat")
    calls = sorted((e for e in obs.values() if e["type"] == "generation-create"), key=lambda e: e["body"]["startTime"])
    first, second = (fields(e) for e in calls)
    assert first["usageDetails"] == {"input": 28, "input_cached_tokens": 12, "output": 9, "total": 49}
    assert first["modelParameters"] == {"temperature": 0.2}  # not the client's base_url
    assert first["output"][0]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert second["output"][0]["content"] == "Cloudy in Lima."
    assert all("usageDetails" not in e["body"] for e in obs.values() if e["type"] != "generation-create")


# --- Mastra ------------------------------------------------------------------------------------


def _by_name(obs: dict[str, dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return sorted((e for e in obs.values() if e["body"].get("name") == name), key=lambda e: e["body"]["startTime"])


def test_mastra_agent_run_with_its_payloads_user_session_and_tags() -> None:
    """Mastra's exporter writes the payloads no GenAI attribute holds as `mastra.<span type>.input`
    and `.output`, and the run's tracingOptions as `mastra.metadata.*` and `mastra.tags`."""
    obs, traces = mapped("mastra")
    (agent,) = _by_name(obs, "invoke_agent Weather Agent")
    assert agent["type"] == "agent-create"
    assert fields(agent)["input"] == "Weather in Lima?"
    assert fields(agent)["output"]["text"] == "It is 19°C and overcast in Lima."
    (trace,) = traces[agent["body"]["id"]][-1:]
    assert trace["userId"] == "user-42" and trace["sessionId"] == "session-42"
    assert trace["tags"] == ["fixture", "weather"]
    assert trace["input"] == "Weather in Lima?"
    # the run's other metadata under its own keys; the user and session are fields, not metadata
    meta = user_metadata(agent)
    assert meta["runId"] and "userId" not in meta and "mastra.metadata.userId" not in meta

    first_step, second_step = _by_name(obs, "agent_step Weather Agent")
    assert [m["role"] for m in fields(first_step)["input"]] == ["system", "user"]
    assert fields(first_step)["output"]["toolCalls"][0]["args"] == {"city": "Lima"}
    assert fields(second_step)["output"]["text"] == "It is 19°C and overcast in Lima."
    (generation,) = _by_name(obs, "model_generation gpt-4o-mini")
    assert generation["type"] == "span-create"  # its calls below are the generations
    assert fields(generation)["input"]["messages"][0]["role"] == "system"

    (tool,) = _by_name(obs, "get_weather")
    assert tool["type"] == "tool-create"
    assert fields(tool)["input"] == {"city": "Lima"}


def test_mastra_model_calls_are_priced_generations_with_a_plausible_first_chunk() -> None:
    """Mastra gives every call of a run the first step's completion start: kept where it falls
    within the call, dropped where it is before the call began."""
    obs, _ = mapped("mastra")
    first, second = _by_name(obs, "chat gpt-4o-mini")
    assert first["type"] == second["type"] == "generation-create"
    assert fields(first)["model"] == "gpt-4o-mini-2024-07-18"
    assert fields(first)["modelParameters"] == {"temperature": 0.2, "max_tokens": 300}
    assert fields(first)["usageDetails"] == {
        "input": 20,
        "input_cached_tokens": 32,
        "output": 18,
        "output_reasoning_tokens": 0,
        "total": 70,
    }
    assert fields(second)["usageDetails"]["input_cached_tokens"] == 64
    assert first["body"]["startTime"] <= fields(first)["completionStartTime"] <= first["body"]["endTime"]
    assert "completionStartTime" not in fields(second)
    assert fields(second)["output"][0]["parts"][0]["content"] == "It is 19°C and overcast in Lima."


def test_mastra_with_memory_keeps_the_runs_session_over_the_thread() -> None:
    """With a Memory, every span names its thread as the conversation; the session the run's
    metadata gives wins over it. The memory's own spans carry the messages it read and wrote."""
    obs, traces = mapped("mastra_memory")
    (agent,) = _by_name(obs, "invoke_agent Weather Agent")
    trace = traces[agent["body"]["id"]][-1]
    assert trace["sessionId"] == "session-42" and trace["userId"] == "user-42"
    reads = _by_name(obs, "memory_operation MessageHistory")
    assert reads and all("input" in fields(e) for e in reads)
    assert fields(reads[0])["input"]["messages"][0]["role"] == "user"


# --- Spring AI ---------------------------------------------------------------------------------


def test_spring_ai_tool_call_client_and_model_calls() -> None:
    """Spring AI's tool observation carries its arguments and result as `spring.ai.tool.call.*`;
    Micrometer's bridge sends every value as a string, the model parameters as numbers again."""
    obs, _ = mapped("spring_ai")
    (tool,) = (e for e in obs.values() if e["type"] == "tool-create")
    assert fields(tool) == {"name": "get_weather", "input": {"city": "Lima"}, "output": "Cloudy, 18 C in Lima"}
    (client,) = _by_name(obs, "spring_ai chat_client")
    assert client["type"] == "chain-create"
    assert _by_name(obs, "call")[0]["type"] == "span-create"  # an advisor
    first, second = _by_name(obs, "chat gpt-4o-mini")
    assert first["type"] == "generation-create"
    assert fields(first)["model"] == "gpt-4o-mini-2024-07-18"
    assert fields(first)["modelParameters"] == {"max_tokens": 100, "temperature": 0.2}
    assert fields(first)["usageDetails"] == {"input": 40, "output": 9, "total": 49}
    # As Spring AI reports it: the loop's running total (61/5/66 of its own), not corrected here.
    assert fields(second)["usageDetails"] == {"input": 101, "output": 14, "total": 115}


# --- AgentOps, Langtrace, Agno -----------------------------------------------------------------


def test_agentops_decorated_functions_are_typed_with_their_calls() -> None:
    """AgentOps types its spans by `agentops.span.kind` and records a call as `{"args", "kwargs"}`:
    the arguments it was given are the input, the result the output."""
    obs, traces = mapped("agentops")
    (tool,) = _by_name(obs, "get_weather.tool")
    assert tool["type"] == "tool-create"
    assert (fields(tool)["input"], fields(tool)["output"]) == ({"city": "Lima"}, "cloudy in Lima")
    (task,) = _by_name(obs, "answer.task")
    assert task["type"] == "chain-create"
    assert (fields(task)["input"], fields(task)["output"]) == ("Weather in Lima?", "Cloudy in Lima.")
    (agent,) = _by_name(obs, "weather_agent.agent")
    assert agent["type"] == "agent-create" and "input" not in fields(agent)  # called without arguments
    (session,) = _by_name(obs, "weather_session.session")
    assert traces[session["body"]["id"]][0]["tags"] == ["weather", "lima"]
    first, _ = _by_name(obs, "openai.chat.completion")
    # the tools offered are metadata, not settings of the call
    assert fields(first)["modelParameters"] == {"temperature": 0.2, "streaming": False}
    assert first["body"]["metadata"]["gen_ai.request.functions"][0]["name"] == "get_weather"


def test_langtrace_tool_calls_cached_tokens_and_user() -> None:
    """Langtrace writes an assistant's tool calls as its content, or as a bare list in the next
    request's messages, and its cached tokens as `gen_ai.usage.cached_tokens`."""
    obs, traces = mapped("langtrace")
    first, second = _by_name(obs, "openai.chat.completions.create")
    assert fields(first)["usageDetails"] == {"input": 28, "input_cached_tokens": 12, "output": 9, "total": 49}
    (answer,) = fields(first)["output"]
    assert answer["role"] == "assistant" and "content" not in answer
    assert answer["tool_calls"][0]["function"]["name"] == "get_weather"
    assert fields(second)["input"][2] == {"role": "assistant", "tool_calls": answer["tool_calls"]}
    assert "tools" not in fields(first)["modelParameters"]
    assert {t.get("userId") for ts in traces.values() for t in ts} >= {"user-lt"}


def test_agno_through_openinference() -> None:
    obs, traces = mapped("agno")
    calls = [e for e in obs.values() if e["type"] == "generation-create"]
    assert len(calls) == 2
    assert sorted(fields(c)["usageDetails"]["input"] for c in calls) == [28, 61]
    (tool,) = (e for e in obs.values() if e["type"] == "tool-create")
    assert fields(tool)["input"] == {"city": "Lima"}
    (agent,) = (e for e in obs.values() if e["type"] == "agent-create")
    trace = traces[agent["body"]["id"]][-1]
    assert trace["input"] == "Weather in Lima?" and trace["userId"] and trace["sessionId"]


def test_beeai_cached_tokens_from_its_usage_object() -> None:
    """BeeAI's cached prompt tokens are only in its usage object, flattened under `metadata.`."""
    obs, _ = mapped("openinference_beeai")
    calls = sorted((e for e in obs.values() if e["type"] == "generation-create"), key=lambda e: e["body"]["startTime"])
    assert fields(calls[0])["usageDetails"] == {
        "input": 28,
        "input_cached_tokens": 12,
        "input_cache_creation": 0,
        "output": 9,
        "total": 49,
    }
