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
import logging
import os
import sys

from fake_openai import serve_openai  # beside this script


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name} {record.levelname}: {record.getMessage()}")


def main() -> None:
    args = json.loads(sys.argv[1])
    collect = _Collect()
    logging.getLogger("langfuse").addHandler(collect)
    server = serve_openai()
    os.environ.update(
        LANGFUSE_PUBLIC_KEY=args["public_key"],
        LANGFUSE_SECRET_KEY=args["secret_key"],
        LANGFUSE_HOST=args["host"],
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=f"http://127.0.0.1:{server.server_address[1]}/v1",
    )

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
    print(json.dumps({**out, "errors": collect.messages}))


if __name__ == "__main__":
    main()
