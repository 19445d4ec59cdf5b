"""Drives the Langfuse Python SDK 2.x (batch API), unchanged, with its OpenAI and LangChain
integrations: the `@observe` decorator, `langfuse.openai` in place of `openai`, and LangChain's
`CallbackHandler`, both the decorator's and a standalone one.

The model calls go to the OpenAI-compatible server of fake_openai.py, in this process.
Arguments: one JSON object with host, public_key, secret_key and a run id; prints one JSON object
with the SDK version, both trace ids and every warning or error the SDK logged (an event the edge
refused shows up there).
"""

from __future__ import annotations

import json
import sys

from collect import collect  # beside this script
from fake_openai import environment, serve_openai


def main() -> None:
    args = json.loads(sys.argv[1])
    errors = collect("langfuse")
    server = serve_openai()
    environment(args, server)

    from langchain_core.prompts import ChatPromptTemplate
    from langchain_openai import ChatOpenAI
    from langfuse.callback import CallbackHandler
    from langfuse.decorators import langfuse_context, observe
    from langfuse.openai import openai
    from langfuse.version import __version__

    run = args["run"]
    prompt = ChatPromptTemplate.from_messages([("user", "Capital of {country}?")])

    @observe(name="agent-run")
    def agent() -> str | None:
        langfuse_context.update_current_trace(user_id=f"user-{run}", session_id=f"session-{run}", tags=["v2"])
        client = openai.OpenAI()
        question = [{"role": "user", "content": "Capital of France?"}]
        client.chat.completions.create(model="gpt-4o-mini", messages=question, name="plain")
        for _ in client.chat.completions.create(
            model="gpt-4o-mini", messages=question, stream=True, stream_options={"include_usage": True}, name="streamed"
        ):
            pass
        handler = langfuse_context.get_current_langchain_handler()
        (prompt | ChatOpenAI(model="gpt-4o-mini")).invoke({"country": "France"}, config={"callbacks": [handler]})
        langfuse_context.score_current_trace(name="quality", value=1.0)
        return langfuse_context.get_current_trace_id()

    trace_id = agent()
    langfuse_context.flush()
    # The handler on its own, as LangChain-first applications use it: a trace of its own.
    handler = CallbackHandler(user_id=f"user-{run}", session_id=f"session-{run}")
    (prompt | ChatOpenAI(model="gpt-4o-mini")).invoke({"country": "Peru"}, config={"callbacks": [handler]})
    handler.flush()
    server.shutdown()
    out = {"sdk_version": __version__, "trace_id": trace_id, "chain_trace_id": handler.get_trace_id()}
    print(json.dumps({**out, "errors": errors}))


if __name__ == "__main__":
    main()
