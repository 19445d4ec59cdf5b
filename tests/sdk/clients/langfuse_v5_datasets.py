"""Datasets and experiments with the current Langfuse Python SDK, unchanged: create_dataset,
create_dataset_item (with and without an id, then archiving one), get_dataset reading the
items back a page at a time, and dataset.run_experiment with a local task and evaluator.

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
    from langfuse._version import __version__
    from langfuse.api import DatasetStatus

    lf = Langfuse(public_key=args["public_key"], secret_key=args["secret_key"], base_url=args["host"], timeout=10)
    out: dict[str, Any] = {"sdk_version": __version__}
    name = f"{run}-evals/capitals"
    dataset = lf.create_dataset(name=name, description="capital cities", metadata={"owner": "qa"})
    out["dataset"] = {"name": dataset.name, "description": dataset.description, "metadata": dataset.metadata}
    capitals = {"Italy": "Rome", "France": "Paris", "Japan": "Tokyo", "Peru": "Lima"}
    made = []
    for n, (country, city) in enumerate(capitals.items()):
        item = lf.create_dataset_item(
            dataset_name=name,
            input={"country": country},
            expected_output=city,
            metadata={"n": n},
            id=f"{run}-{country}" if n % 2 else None,
        )
        made.append(item.id)
    # The last one archived, by upsert on its id: get_dataset leaves it out.
    lf.create_dataset_item(dataset_name=name, id=made[-1], status=DatasetStatus.ARCHIVED)
    out["made"] = made

    fetched = lf.get_dataset(name, fetch_items_page_size=2)
    out["fetched"] = {
        "id": fetched.id,
        "items": sorted(
            (i.input["country"], i.expected_output, i.metadata["n"], i.status.value) for i in fetched.items
        ),
    }

    def task(*, item: Any, **kwargs: Any) -> str:
        return {"Italy": "Rome", "France": "Lyon"}.get(item.input["country"], "?")

    def exact(*, output: Any, expected_output: Any = None, **kwargs: Any) -> Evaluation:
        return Evaluation(name="exact", value=1.0 if output == expected_output else 0.0, comment=f"{output}")

    result = fetched.run_experiment(
        name="capitals", run_name=f"{run}-run", description="baseline", task=task, evaluators=[exact]
    )
    out["experiment"] = {
        "experiment_id": result.experiment_id,
        "run_name": result.run_name,
        "items": sorted(
            [r.item.id, r.trace_id, r.output, [(e.name, e.value) for e in r.evaluations]] for r in result.item_results
        ),
    }
    lf.flush()
    lf.shutdown()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
