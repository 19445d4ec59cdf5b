"""Drives the current Langfuse Python SDK (OpenTelemetry-based), unchanged, against AgentTrace.

The SDK exports spans as OTLP/HTTP protobuf to {host}/api/public/otel/v1/traces and sends
scores through the batch API. Runs in its own venv (it cannot share one with the 2.x SDK), so
it imports nothing from this repository but collect.py beside it. Arguments: one JSON object with host, public_key,
secret_key and a run id; prints one JSON object with the SDK version, the ids it created and
every warning or error logged by the SDK or its OTLP exporter.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

from collect import collect  # beside this script


def main() -> None:
    args = json.loads(sys.argv[1])
    errors = collect("langfuse", "opentelemetry")

    from langfuse import Langfuse, propagate_attributes
    from langfuse._version import __version__

    run = args["run"]
    langfuse = Langfuse(
        public_key=args["public_key"],
        secret_key=args["secret_key"],
        base_url=args["host"],
        environment="sdk-test",
        release="rel-1",
        timeout=5,
        flush_at=100,
    )
    authenticated = langfuse.auth_check()  # GET /api/public/projects, as quickstarts do
    completion_start = datetime(2026, 11, 27, 10, 0, 0, 423456, tzinfo=UTC)
    with langfuse.start_as_current_observation(
        name="agent-run", as_type="span", input={"question": "what is 2+2?"}
    ) as root:
        with propagate_attributes(
            user_id=f"user-{run}",
            session_id=f"session-{run}",
            tags=["sdk", "v5"],
            metadata={"team": "core"},
            version="v7",
            trace_name="agent-run",
        ):
            with langfuse.start_as_current_observation(
                name="llm",
                as_type="generation",
                model="gpt-4o",
                model_parameters={"temperature": 0.2, "max_tokens": 128},
                input=[{"role": "user", "content": "what is 2+2?"}],
                metadata={"attempt": 1},
            ) as generation:
                generation.update(
                    output={"role": "assistant", "content": "4"},
                    completion_start_time=completion_start,
                    usage_details={"input": 12, "output": 3},
                    cost_details={"input": 0.0012, "output": 0.0009},
                )
            with langfuse.start_as_current_observation(name="calc", as_type="tool", input={"expr": "2+2"}) as tool:
                tool.update(output=4)
        root.update(output={"answer": "4"})
        root.score_trace(name="quality", value=0.9, comment="good")
        root.score(name="verdict", value="correct", data_type="CATEGORICAL")
    langfuse.flush()
    langfuse.shutdown()
    print(
        json.dumps(
            {
                "sdk_version": __version__,
                "auth_check": authenticated,
                "trace_id": root.trace_id,
                "root_id": root.id,
                "generation_id": generation.id,
                "tool_id": tool.id,
                "errors": errors,
            }
        )
    )


if __name__ == "__main__":
    main()
