"""What both Langfuse SDK scripts (tests/sdk/clients) send for their agent-run trace."""

from typing import Any

import orjson


def assert_agent_run_trace(trace: dict[str, Any], trace_id: str, run_id: str, sdk_tag: str) -> None:
    assert trace["id"] == trace_id
    assert trace["name"] == "agent-run"
    assert trace["user_id"] == f"user-{run_id}"
    assert trace["session_id"] == f"session-{run_id}"
    assert (trace["release"], trace["version"], trace["environment"]) == ("rel-1", "v7", "sdk-test")
    assert sorted(trace["tags"]) == ["sdk", sdk_tag]
    metadata = orjson.loads(trace["metadata"])
    # Over OTLP the root span's resource and scope describe the trace too, as in Langfuse.
    assert {k: v for k, v in metadata.items() if k not in ("resourceAttributes", "scope")} == {"team": "core"}
    assert orjson.loads(trace["input"]) == {"question": "what is 2+2?"}
    assert orjson.loads(trace["output"]) == {"answer": "4"}
