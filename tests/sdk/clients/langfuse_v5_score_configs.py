"""Score configs with the current Langfuse Python SDK, unchanged: the API client's create (numeric
with a range, categorical), get, get_by_id and update (archive), and create_score naming a
config, one score within it, one outside it (which the SDK sends and the server refuses).

Arguments: one JSON object with host, public_key, secret_key and a run id. Prints one JSON object
with the SDK version, the configs as the SDK read them, and the ids of the scores and trace.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    args = json.loads(sys.argv[1])

    from langfuse import Langfuse
    from langfuse._version import __version__
    from langfuse.api import ConfigCategory

    lf = Langfuse(public_key=args["public_key"], secret_key=args["secret_key"], base_url=args["host"], timeout=10)
    accuracy = lf.api.score_configs.create(name="accuracy", data_type="NUMERIC", min_value=0, max_value=1)
    tone = lf.api.score_configs.create(
        name="tone",
        data_type="CATEGORICAL",
        categories=[ConfigCategory(label="rude", value=0), ConfigCategory(label="polite", value=1)],
        description="how it speaks",
    )
    listed = lf.api.score_configs.get(limit=10)
    one = lf.api.score_configs.get_by_id(tone.id)
    trace_id = lf.create_trace_id()
    lf.create_score(name="accuracy", value=0.9, trace_id=trace_id, config_id=accuracy.id)
    lf.create_score(name="tone", value="polite", data_type="CATEGORICAL", trace_id=trace_id, config_id=tone.id)
    lf.create_score(name="accuracy", value=7, trace_id=trace_id, config_id=accuracy.id)  # outside 0..1
    lf.flush()
    archived = lf.api.score_configs.update(accuracy.id, is_archived=True)
    lf.shutdown()
    out = {
        "sdk_version": __version__,
        "listed": sorted((c.name, c.data_type, c.min_value, c.max_value) for c in listed.data),
        "total": listed.meta.total_items,
        "tone": {"categories": [(c.label, c.value) for c in one.categories or []], "description": one.description},
        "archived": archived.is_archived,
        "configs": {"accuracy": accuracy.id, "tone": tone.id},
        "trace_id": trace_id,
    }
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
