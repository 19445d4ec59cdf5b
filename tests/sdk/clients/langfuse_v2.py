"""Drives the official Langfuse Python SDK 2.x, unchanged, against AgentTrace's batch API.

Runs in its own venv (the 2.x SDK cannot share one with the current SDK), so it imports
nothing from this repository. Arguments: one JSON object with host, public_key, secret_key
and a run id; prints one JSON object with the SDK version, the ids it created and every
warning or error the SDK logged (a rejected event shows up there).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime, timedelta


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.levelname}: {record.getMessage()}")


def main() -> None:
    args = json.loads(sys.argv[1])
    from langfuse import Langfuse
    from langfuse.version import __version__

    run = args["run"]
    langfuse = Langfuse(
        public_key=args["public_key"],
        secret_key=args["secret_key"],
        host=args["host"],
        release="rel-1",
        environment="sdk-test",
        max_retries=1,
        timeout=5,
        flush_at=100,
        flush_interval=0.05,  # flush() waits for the consumer's next poll
    )
    collect = _Collect()
    logging.getLogger("langfuse").addHandler(collect)
    authenticated = langfuse.auth_check()  # GET /api/public/projects, as quickstarts do

    start = datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC)
    trace = langfuse.trace(
        id=f"trace-{run}",
        name="agent-run",
        user_id=f"user-{run}",
        session_id=f"session-{run}",
        tags=["sdk", "v2"],
        metadata={"team": "core"},
        input={"question": "what is 2+2?"},
        version="v7",
    )
    span = trace.span(id=f"span-{run}", name="plan", start_time=start, input={"step": 1})
    generation = span.generation(
        id=f"gen-{run}",
        name="llm",
        model="gpt-4o",
        model_parameters={"temperature": 0.2, "max_tokens": 128},
        input=[{"role": "user", "content": "what is 2+2?"}],
        start_time=start,
        metadata={"attempt": 1},
        prompt=None,
    )
    generation.end(
        output={"role": "assistant", "content": "4"},
        end_time=start + timedelta(seconds=1),
        completion_start_time=start + timedelta(milliseconds=300),
        usage_details={"input": 12, "output": 3},
        cost_details={"input": 0.0012, "output": 0.0009},
    )
    span.event(id=f"event-{run}", name="tool-called", input={"tool": "calc"})
    span.end(output={"plan": "answer"}, end_time=start + timedelta(seconds=2))
    trace.update(output={"answer": "4"})
    trace.score(id=f"score-{run}", name="quality", value=0.9, comment="good")
    langfuse.flush()
    langfuse.shutdown()
    print(
        json.dumps(
            {
                "sdk_version": __version__,
                "auth_check": authenticated,
                "trace_id": trace.id,
                "span_id": span.id,
                "generation_id": generation.id,
                "event_id": f"event-{run}",
                "score_id": f"score-{run}",
                "errors": collect.messages,
            }
        )
    )


if __name__ == "__main__":
    main()
