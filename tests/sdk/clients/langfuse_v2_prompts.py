"""Prompts with the Langfuse Python SDK 2.x, unchanged: create_prompt (text and chat),
get_prompt by default label, version and label, compile, and update_prompt.

Arguments: one JSON object with host, public_key, secret_key and a run id (prompt names are
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
    from langfuse.version import __version__

    lf = Langfuse(public_key=args["public_key"], secret_key=args["secret_key"], host=args["host"], timeout=10)
    out: dict[str, Any] = {"sdk_version": __version__}
    name = f"{run}/summarize"
    lf.create_prompt(name=name, prompt="Summarize {{text}}", labels=["production"], config={"max_tokens": 50})
    lf.create_prompt(name=name, prompt="Summarize {{text}} briefly")
    got = lf.get_prompt(name, cache_ttl_seconds=0)
    out["production"] = [got.version, got.compile(text="this"), got.config]
    out["latest"] = lf.get_prompt(name, label="latest", cache_ttl_seconds=0).version
    lf.update_prompt(name=name, version=2, new_labels=["production"])
    out["promoted"] = lf.get_prompt(name, cache_ttl_seconds=0).prompt
    out["version_1"] = lf.get_prompt(name, version=1, cache_ttl_seconds=0).prompt
    chat = f"{run}-chat"
    lf.create_prompt(
        name=chat, type="chat", prompt=[{"role": "system", "content": "You are {{who}}."}], labels=["production"]
    )
    out["chat"] = lf.get_prompt(chat, type="chat", cache_ttl_seconds=0).compile(who="terse")
    lf.flush()
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
