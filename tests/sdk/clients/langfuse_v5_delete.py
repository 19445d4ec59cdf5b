"""Deletes traces and a score with the current Langfuse Python SDK's API client, unchanged.

Arguments: one JSON object with host, public_key, secret_key and a run id, then a score id
(deleted with `api.scores.delete`), one trace id (deleted alone, `api.trace.delete`) and the
rest (deleted together, `api.trace.delete_multiple`). Prints one JSON object with the SDK version
and what was answered.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    args = json.loads(sys.argv[1])
    score_id, first, *rest = sys.argv[2:]

    from langfuse import Langfuse
    from langfuse._version import __version__

    langfuse = Langfuse(public_key=args["public_key"], secret_key=args["secret_key"], base_url=args["host"], timeout=5)
    one = langfuse.api.trace.delete(first)
    many = langfuse.api.trace.delete_multiple(trace_ids=rest)
    score = langfuse.api.scores.delete(score_id)  # None: raises unless 2xx
    langfuse.shutdown()
    print(json.dumps({"sdk_version": __version__, "one": one.message, "many": many.message, "score": score}))


if __name__ == "__main__":
    main()
