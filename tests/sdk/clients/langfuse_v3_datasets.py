"""Dataset runs with the last 3.x Langfuse Python SDK, unchanged: it links each item to its
trace through POST /api/public/dataset-run-items, both in `item.run(...)` and in
dataset.run_experiment, and reads and deletes runs through the datasets API.

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

    from langfuse import Evaluation, Langfuse

    lf = Langfuse(public_key=args["public_key"], secret_key=args["secret_key"], host=args["host"], timeout=10)
    out: dict[str, Any] = {}
    name = f"{run}-support/tickets"
    lf.create_dataset(name=name, description="tickets", metadata={"team": "support"})
    for n, text in enumerate(["refund please", "where is my order", "thanks!"]):
        lf.create_dataset_item(
            dataset_name=name, id=f"{run}-t{n}", input={"text": text}, expected_output=["refund", "status", "none"][n]
        )
    dataset = lf.get_dataset(name)
    out["items"] = sorted(i.id for i in dataset.items)

    # The manual way: a span per item, linked by the SDK as it opens.
    manual: dict[str, str] = {}
    for item in dataset.items:
        with item.run(run_name=f"{run}-manual", run_description="by hand", run_metadata={"v": 1}) as span:
            span.update(output="none")
            manual[item.id] = span.trace_id
    out["manual"] = manual

    def classify(*, item: Any, **kwargs: Any) -> str:
        return "refund" if "refund" in item.input["text"] else "none"

    def correct(*, output: Any, expected_output: Any = None, **kwargs: Any) -> Evaluation:
        return Evaluation(name="correct", value=float(output == expected_output))

    result = dataset.run_experiment(
        name="classifier", run_name=f"{run}-experiment", description="keyword", task=classify, evaluators=[correct]
    )
    out["experiment"] = {
        "dataset_run_id": result.dataset_run_id,
        "items": sorted([r.item.id, r.trace_id, r.output] for r in result.item_results),
    }
    lf.flush()

    got = lf.get_dataset_run(dataset_name=name, run_name=f"{run}-manual")
    out["run"] = {
        "name": got.name,
        "description": got.description,
        "metadata": got.metadata,
        "dataset_name": got.dataset_name,
        "links": sorted([i.dataset_item_id, i.trace_id] for i in got.dataset_run_items),
    }
    out["runs"] = sorted(r.name for r in lf.get_dataset_runs(dataset_name=name).data)
    out["deleted"] = lf.delete_dataset_run(dataset_name=name, run_name=f"{run}-manual").message
    out["runs_after"] = sorted(r.name for r in lf.get_dataset_runs(dataset_name=name).data)
    lf.shutdown()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
