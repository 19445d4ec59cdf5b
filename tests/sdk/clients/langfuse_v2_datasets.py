"""Datasets with the last 2.x Langfuse Python SDK, unchanged: create_dataset,
create_dataset_item, get_dataset, item.link to a trace and to a generation (the batch API
carries them), get_dataset_run(s).

Arguments: one JSON object with host, public_key, secret_key and a run id (dataset names are
prefixed with it). Prints one JSON object of what the SDK returned.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def main() -> None:
    args = json.loads(sys.argv[1])
    run = args["run"]

    from langfuse import Langfuse

    lf = Langfuse(public_key=args["public_key"], secret_key=args["secret_key"], host=args["host"], timeout=10)
    out: dict[str, Any] = {}
    name = f"{run}-v2/summaries"
    created = lf.create_dataset(name=name, description="short texts", metadata={"lang": "en"})
    out["created"] = [created.name, created.description, created.metadata]
    for n in range(2):
        lf.create_dataset_item(
            dataset_name=name, id=f"{run}-s{n}", input={"text": f"text {n}"}, expected_output=f"t{n}"
        )
    dataset = lf.get_dataset(name)
    out["items"] = sorted([i.id, i.input, i.expected_output, i.status] for i in dataset.items)

    links: dict[str, list[str | None]] = {}
    for item in dataset.items:
        trace = lf.trace(name="summarize", input=item.input)
        if item.id.endswith("s0"):
            item.link(trace, f"{run}-run", run_description="v2 run", run_metadata={"model": "m"})
            links[item.id] = [trace.id, None]
        else:
            generation = trace.generation(name="llm", model="gpt-4o", input=item.input, output="t")
            item.link(generation, f"{run}-run")
            links[item.id] = [trace.id, generation.id]
    out["links"] = links
    lf.flush()

    got = lf.get_dataset_run(dataset_name=name, dataset_run_name=f"{run}-run")
    out["run"] = {
        "name": got.name,
        "description": got.description,
        "metadata": got.metadata,
        "links": {i.dataset_item_id: [i.trace_id, i.observation_id] for i in got.dataset_run_items},
    }
    out["runs"] = [r.name for r in lf.get_dataset_runs(name).data]
    lf.shutdown()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
