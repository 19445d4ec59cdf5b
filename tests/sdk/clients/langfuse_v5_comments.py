"""Comments with the current Langfuse Python SDK, unchanged: a trace sent through the SDK, then
its API client's comments.create on it (retried while the trace is not stored yet, a moment),
get by object and get_by_id.

Arguments: one JSON object with host, public_key, secret_key and a run id. Prints one JSON object
with the SDK version, the trace id and what the SDK read back.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    args = json.loads(sys.argv[1])

    from langfuse import Langfuse
    from langfuse._version import __version__
    from langfuse.api import NotFoundError

    lf = Langfuse(public_key=args["public_key"], secret_key=args["secret_key"], base_url=args["host"], timeout=10)
    with lf.start_as_current_observation(name=f"{args['run']}-agent") as span:
        trace_id = span.trace_id
    lf.flush()
    deadline = time.monotonic() + 30
    while True:
        try:
            created = lf.api.comments.create(
                project_id="any", object_type="TRACE", object_id=trace_id, content="needs a retry", author_user_id="ada"
            )
            break
        except NotFoundError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    listed = lf.api.comments.get(object_type="TRACE", object_id=trace_id)
    one = lf.api.comments.get_by_id(created.id)
    lf.shutdown()
    out = {
        "sdk_version": __version__,
        "trace_id": trace_id,
        "listed": [(c.object_type, c.object_id, c.content, c.author_user_id) for c in listed.data],
        "total": listed.meta.total_items,
        "one": {"id": one.id, "content": one.content, "project_id": one.project_id},
        "created": created.id,
    }
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
