"""Annotation queues with the current Langfuse Python SDK's API client, unchanged: a queue with a
score config, items added, listed, completed and removed, a user assigned and unassigned.

Arguments: one JSON object with host, public_key, secret_key and a run id. Prints one JSON object
with the SDK version and what the SDK read back.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    args = json.loads(sys.argv[1])

    from langfuse import Langfuse
    from langfuse._version import __version__

    lf = Langfuse(public_key=args["public_key"], secret_key=args["secret_key"], base_url=args["host"], timeout=10)
    api = lf.api.annotation_queues
    config = lf.api.score_configs.create(name="correct", data_type="BOOLEAN")
    queue = api.create_queue(name=f"{args['run']}-review", score_config_ids=[config.id], description="daily")
    first = api.create_queue_item(queue.id, object_id="trace-1", object_type="TRACE")
    second = api.create_queue_item(queue.id, object_id="session-1", object_type="SESSION")
    done = api.update_queue_item(queue.id, first.id, status="COMPLETED")
    pending = api.list_queue_items(queue.id, status="PENDING")
    removed = api.delete_queue_item(queue.id, second.id)
    assigned = api.create_queue_assignment(queue.id, user_id="ada")
    unassigned = api.delete_queue_assignment(queue.id, user_id="ada")
    queues = api.list_queues()
    again = api.get_queue(queue.id)
    lf.shutdown()
    out = {
        "sdk_version": __version__,
        "queue": {
            "name": again.name,
            "configs": again.score_config_ids == [config.id],
            "description": again.description,
        },
        "listed": [q.name for q in queues.data],
        "done": {"status": done.status, "completed": done.completed_at is not None},
        "pending": [(i.object_type, i.object_id) for i in pending.data],
        "removed": removed.success,
        "assigned": assigned.user_id,
        "unassigned": unassigned.success,
    }
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
