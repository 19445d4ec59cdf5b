"""Reads back, with the Langfuse Python SDK 2.x unchanged, what the test seeded for run `run`.

Runs in the SDK's own venv and imports nothing from this repository. Every call parses the
answer with the SDK's own pydantic models, so a missing or mistyped key fails here. Prints one
JSON object with what the calls returned.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    args = json.loads(sys.argv[1])
    from langfuse import Langfuse
    from langfuse.version import __version__

    run = args["run"]
    lf = Langfuse(public_key=args["public_key"], secret_key=args["secret_key"], host=args["host"], timeout=10)
    trace_id, gen_id = f"trace-{run}", f"gen-{run}"
    trace = lf.fetch_trace(trace_id).data
    legacy = lf.get_trace(trace_id)
    traces = lf.fetch_traces(user_id=f"user-{run}", tags=["a", "b"], limit=10).data
    none = lf.fetch_traces(user_id=f"user-{run}", tags=["a", "missing"]).data
    observations = lf.fetch_observations(trace_id=trace_id, type="GENERATION").data
    observation = lf.fetch_observation(gen_id).data
    sessions = lf.fetch_sessions(limit=10)
    scores = lf.client.score.get(name="quality")
    daily = lf.client.metrics.daily()
    gen = next(o for o in trace.observations if o.id == gen_id)
    print(
        json.dumps(
            {
                "sdk_version": __version__,
                "trace": {
                    "id": trace.id,
                    "name": trace.name,
                    "tags": trace.tags,
                    "session": trace.session_id,
                    "observations": sorted(o.id for o in trace.observations),
                    "scores": sorted(s.name for s in trace.scores),
                    "latency": trace.latency,
                    "total_cost": trace.total_cost,
                },
                "generation": {
                    "model": gen.model,
                    "model_parameters": gen.model_parameters,
                    "usage": [gen.usage.input, gen.usage.output, gen.usage.total],
                    "level": str(gen.level.value if hasattr(gen.level, "value") else gen.level),
                },
                "legacy_id": legacy.id,
                "traces": [t.id for t in traces],
                "traces_observations": [sorted(t.observations) for t in traces],
                "none": len(none),
                "observations": [o.id for o in observations],
                "observation": observation.id,
                "sessions": [s.id for s in sessions.data],
                "sessions_total": sessions.meta.total_items,
                "scores": [(s.name, s.value, s.trace.user_id) for s in scores.data],
                "daily": [(d.date.isoformat(), d.count_traces, [u.model for u in d.usage]) for d in daily.data],
            }
        )
    )


if __name__ == "__main__":
    main()
