"""An OpenAI-compatible server for the integration clients, in their own process: chat
completions (plain and streamed, with usage when asked as the real API does) and embeddings,
answered with OpenAI's shapes, usage objects included. The real API is out of reach here and
beside the point: what is under test is what the SDKs send AgentTrace about the calls."""

from __future__ import annotations

import json
import os
import threading
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


def serve_openai() -> ThreadingHTTPServer:
    """Started on a free loopback port (`server_address[1]`); `shutdown()` stops it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def environment(args: dict[str, str], server: ThreadingHTTPServer) -> None:
    """The variables the Langfuse SDKs and the OpenAI client read: the key of `args` (a client's
    arguments) and `server` for the model calls."""
    os.environ.update(
        LANGFUSE_PUBLIC_KEY=args["public_key"],
        LANGFUSE_SECRET_KEY=args["secret_key"],
        LANGFUSE_HOST=args["host"],
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=f"http://127.0.0.1:{server.server_address[1]}/v1",
    )
