"""Drives the Langfuse Python SDK 3.x, unchanged, with its OpenAI and LangChain integrations, as
most of its users run it: `langfuse.openai` in place of `openai`, LangChain's `CallbackHandler`.

The model calls go to a small OpenAI-compatible server in this process (the real API is out of
reach and beside the point: what is under test is what the SDK sends us). Arguments: one JSON
object with host, public_key, secret_key and a run id; prints one JSON object with the SDK
version, the trace id and every warning or error the SDK or its exporter logged.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "gpt-4o-mini-2024-07-18"
# OpenAI's usage object: 25 prompt tokens of which 16 were cached.
USAGE = {
    "prompt_tokens": 25,
    "completion_tokens": 3,
    "total_tokens": 28,
    "prompt_tokens_details": {"cached_tokens": 16},
    "completion_tokens_details": {"reasoning_tokens": 0},
}


class _OpenAI(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path.endswith("/embeddings"):
            body = {"object": "list", "model": "text-embedding-3-small",
                    "usage": {"prompt_tokens": 4, "total_tokens": 4},
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}]}  # fmt: skip
            return self._send(200, json.dumps(body).encode(), "application/json")
        chunk = {"id": "chatcmpl-1", "created": 1_700_000_000, "model": MODEL}
        if not request.get("stream"):
            choice = {"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}
            body = {**chunk, "object": "chat.completion", "choices": [choice], "usage": USAGE}
            return self._send(200, json.dumps(body).encode(), "application/json")
        events = [
            {**chunk, "object": "chat.completion.chunk",
             "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}]}
            for text in ("Par", "is.")
        ]  # fmt: skip
        stop = {"index": 0, "delta": {}, "finish_reason": "stop"}
        events.append({**chunk, "object": "chat.completion.chunk", "choices": [stop]})
        if (request.get("stream_options") or {}).get("include_usage"):
            events.append({**chunk, "object": "chat.completion.chunk", "choices": [], "usage": USAGE})
        body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
        self._send(200, body, "text/event-stream")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name} {record.levelname}: {record.getMessage()}")


def main() -> None:
    args = json.loads(sys.argv[1])
    warnings.simplefilter("ignore", DeprecationWarning)  # start_as_current_generation, as 3.x code calls it
    collect = _Collect()
    for name in ("langfuse", "opentelemetry"):
        logging.getLogger(name).addHandler(collect)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ.update(
        LANGFUSE_PUBLIC_KEY=args["public_key"],
        LANGFUSE_SECRET_KEY=args["secret_key"],
        LANGFUSE_HOST=args["host"],
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=f"http://127.0.0.1:{server.server_address[1]}/v1",
    )

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
    print(json.dumps({"sdk_version": __version__, "trace_id": trace_id, "errors": collect.messages}))


if __name__ == "__main__":
    main()
