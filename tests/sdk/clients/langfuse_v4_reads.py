"""Reads back, with the Langfuse Python SDK 4.x unchanged, what the test seeded for run `run`.

Runs in the SDK's own venv and imports nothing from this repository. The 4.x models are
pydantic v2 and stricter than 2.x (tags, environment and usage required, tagged score unions),
so each call checks the shapes as that SDK's users meet them. Prints one JSON object.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    args = json.loads(sys.argv[1])
    from importlib.metadata import version

    from langfuse import Langfuse

    run = args["run"]
    lf = Langfuse(
        public_key=args["public_key"], secret_key=args["secret_key"], host=args["host"], tracing_enabled=False
    )
    api = lf.api
    trace_id, gen_id = f"trace-{run}", f"gen-{run}"
    trace = api.trace.get(trace_id)
    traces = api.trace.list(user_id=f"user-{run}", tags=["a", "b"], limit=10)
    v2 = api.observations.get_many(trace_id=trace_id, limit=1, fields="core,basic,model,usage")
    rest = api.observations.get_many(trace_id=trace_id, limit=10, cursor=v2.meta.cursor)
    v1 = api.legacy.observations_v1.get_many(trace_id=trace_id)
    one = api.legacy.observations_v1.get(gen_id)
    sessions = api.sessions.list(limit=10)
    session = api.sessions.get(f"session-{run}")
    scores = api.scores.get_many(trace_id=trace_id)
    score = api.scores.get_by_id(f"score-num-{run}")
    v3 = api.scores_v3.get_many_v3(limit=10)
    print(
        json.dumps(
            {
                "sdk_version": version("langfuse"),
                "trace": {
                    "id": trace.id,
                    "observations": sorted(o.id for o in trace.observations),
                    "scores": sorted(s.name for s in trace.scores),
                    "usage": [[o.usage.input, o.usage.output, o.usage.total] for o in trace.observations],
                },
                "traces": [t.id for t in traces.data],
                "traces_meta": [traces.meta.page, traces.meta.limit, traces.meta.total_items, traces.meta.total_pages],
                "v2_pages": [[o.id for o in v2.data], [o.id for o in rest.data], rest.meta.cursor],
                "v1": sorted(o.id for o in v1.data),
                "one": one.id,
                "sessions": [s.id for s in sessions.data],
                "session_traces": [t.id for t in session.traces],
                "scores": sorted((s.name, s.data_type) for s in scores.data),
                "score": [score.name, score.value],
                "v3": sorted((s.name, s.data_type, s.value) for s in v3.data),
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()
