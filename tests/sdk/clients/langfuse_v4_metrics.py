"""Queries the metrics API, with the Langfuse Python SDK 4.x unchanged, over what the test
seeded for run `run`: `api.metrics.metrics` (the v2 endpoint) and `api.legacy.metrics_v1.metrics`
(v1), each parsed by that SDK's response model; and a refused query, as the SDK raises it.

Runs in the SDK's own venv and imports nothing from this repository. Prints one JSON object.
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
    window = {"fromTimestamp": "2026-11-25T00:00:00Z", "toTimestamp": "2026-11-26T00:00:00Z"}
    observations = {
        **window,
        "view": "observations",
        "dimensions": [{"field": "name"}],
        "metrics": [{"measure": "count", "aggregation": "count"}, {"measure": "latency", "aggregation": "max"}],
        "filters": [{"column": "traceName", "operator": "=", "value": "sdk-read", "type": "string"}],
        "orderBy": [{"field": "name", "direction": "asc"}],
    }
    v2 = lf.api.metrics.metrics(query=json.dumps(observations))
    traces = {
        **window,
        "view": "traces",
        "dimensions": [{"field": "userId"}],
        "metrics": [{"measure": "totalCost", "aggregation": "sum"}],
        "filters": [{"column": "userId", "operator": "=", "value": f"user-{run}", "type": "string"}],
        "timeDimension": {"granularity": "day"},
    }
    v1 = lf.api.legacy.metrics_v1.metrics(query=json.dumps(traces))
    try:
        lf.api.metrics.metrics(query=json.dumps({**traces, "view": "traces"}))
        refused = None
    except Exception as exc:  # the SDK's ApiError for a 400
        refused = [getattr(exc, "status_code", None), getattr(exc, "body", None)]
    print(
        json.dumps(
            {
                "sdk_version": version("langfuse"),
                "v2": [type(v2).__name__, v2.data],
                "v1": [type(v1).__name__, v1.data],
                "refused": refused,
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()
