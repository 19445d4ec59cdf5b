"""Drives the Langfuse Python SDK 3.x, unchanged, with its OpenAI and LangChain integrations, as
most of its users run it: `langfuse.openai` in place of `openai`, LangChain's `CallbackHandler`.

The model calls go to the OpenAI-compatible server of fake_openai.py, in this process.
Arguments: one JSON object with host, public_key, secret_key and a run id; prints one JSON object
with the SDK version, the trace id and every warning or error the SDK or its exporter logged.
"""

from __future__ import annotations

import json
import sys
import warnings

from collect import collect  # beside this script
from fake_openai import environment, serve_openai


def main() -> None:
    args = json.loads(sys.argv[1])
    warnings.simplefilter("ignore", DeprecationWarning)  # start_as_current_generation, as 3.x code calls it
    errors = collect("langfuse", "opentelemetry")
    server = serve_openai()
    environment(args, server)

    from langchain_core.prompts import ChatPromptTemplate
    from langchain_openai import ChatOpenAI
    from langfuse import get_client, observe
    from langfuse.langchain import CallbackHandler
    from langfuse.openai import openai  # the drop-in replacement the Langfuse docs show first
    from langfuse.version import __version__

    run = args["run"]
    langfuse = get_client()

    @observe(name="agent-run")
    def agent() -> str | None:
        client = openai.OpenAI()
        question = [{"role": "user", "content": "Capital of France?"}]
        client.chat.completions.create(model="gpt-4o-mini", messages=question, name="plain")
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=question, stream=True, stream_options={"include_usage": True}, name="streamed"
        )
        for _ in stream:
            pass
        client.embeddings.create(model="text-embedding-3-small", input="Paris", name="embedding")
        # Anthropic's usage object passed on as it is, as the SDK's docs do for other providers.
        with langfuse.start_as_current_generation(name="claude", model="claude-sonnet-4-5-20250929") as claude:
            claude.update(
                output="Paris.",
                usage_details={"input_tokens": 100, "output_tokens": 50, "cache_read_input_tokens": 1000},
            )
        chain = ChatPromptTemplate.from_messages([("user", "Capital of {country}?")]) | ChatOpenAI(model="gpt-4o-mini")
        metadata = {"langfuse_user_id": f"user-{run}", "langfuse_session_id": f"session-{run}", "langfuse_tags": ["lc"]}
        chain.invoke({"country": "France"}, config={"callbacks": [CallbackHandler()], "metadata": metadata})
        return langfuse.get_current_trace_id()

    trace_id = agent()
    langfuse.flush()
    langfuse.shutdown()
    server.shutdown()
    print(json.dumps({"sdk_version": __version__, "trace_id": trace_id, "errors": errors}))


if __name__ == "__main__":
    main()
