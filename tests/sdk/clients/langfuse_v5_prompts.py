"""Prompt management with the current Langfuse Python SDK, unchanged: create_prompt (text, and
chat with a placeholder in a folder), get_prompt by default label, label and version, compile,
update_prompt, a generation linked to the prompt it used, references between prompts, the API
client's list and delete, and a fallback.

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
    from langfuse._version import __version__

    lf = Langfuse(public_key=args["public_key"], secret_key=args["secret_key"], base_url=args["host"], timeout=10)
    out: dict[str, Any] = {"sdk_version": __version__}
    critic = f"{run}-movie-critic"
    first = lf.create_prompt(
        name=critic,
        prompt="As a {{criticLevel}} critic, do you like {{movie}}?",
        labels=["production"],
        tags=["movies"],
        config={"model": "gpt-4o", "temperature": 0.2},
    )
    second = lf.create_prompt(
        name=critic,
        prompt="As a {{criticLevel}} critic, rate {{movie}} from 1 to 10.",
        labels=["staging"],
        commit_message="ask for a rating",
    )
    out["created"] = [first.version, second.version, second.commit_message]
    production = lf.get_prompt(critic, cache_ttl_seconds=0)
    out["production"] = {
        "version": production.version,
        "compiled": production.compile(criticLevel="expert", movie="Dune"),
        "config": production.config,
        "labels": sorted(production.labels),
        "tags": production.tags,
        "fallback": production.is_fallback,
    }
    out["staging"] = lf.get_prompt(critic, label="staging", cache_ttl_seconds=0).version
    out["latest"] = lf.get_prompt(critic, label="latest", cache_ttl_seconds=0).version
    out["version_1"] = lf.get_prompt(critic, version=1, cache_ttl_seconds=0).prompt
    lf.update_prompt(name=critic, version=2, new_labels=["production"])
    promoted = lf.get_prompt(critic, cache_ttl_seconds=0)
    out["promoted"] = {"version": promoted.version, "labels": sorted(promoted.labels)}
    # A generation made with the prompt: Langfuse links it (promptId) to the version it used.
    generation = lf.start_observation(as_type="generation", name="rate", prompt=promoted, model="gpt-4o")
    generation.update(output="8").end()
    out["generation"] = {"trace_id": generation.trace_id, "id": generation.id}

    chat = f"{run}-team/assistant"
    lf.create_prompt(
        name=chat,
        type="chat",
        prompt=[
            {"role": "system", "content": "You are a {{role}} assistant."},
            {"type": "placeholder", "name": "history"},
            {"role": "user", "content": "{{question}}"},
        ],
        labels=["production"],
    )
    chat_prompt = lf.get_prompt(chat, type="chat", cache_ttl_seconds=0)
    out["chat"] = chat_prompt.compile(
        role="helpful",
        question="And now?",
        history=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
    )

    greeting = f"{run}-greeting"
    lf.create_prompt(name=greeting, prompt="Hello {{name}}!", labels=["production"])
    composed = f"{run}-composed"
    lf.create_prompt(
        name=composed,
        prompt=f"@@@langfusePrompt:name={greeting}|label=production@@@ How are you?",
        labels=["production"],
    )
    out["composed"] = lf.get_prompt(composed, cache_ttl_seconds=0).compile(name="Ada")

    listed = lf.api.prompts.list(name=critic)
    out["listed"] = [
        {"name": m.name, "versions": m.versions, "labels": sorted(m.labels), "tags": m.tags} for m in listed.data
    ]
    lf.api.prompts.delete(critic, version=1)
    out["after_delete"] = lf.api.prompts.list(name=critic).data[0].versions

    missing = lf.get_prompt(f"{run}-never", fallback="Fallback {{x}}", cache_ttl_seconds=0)
    out["missing"] = {"fallback": missing.is_fallback, "compiled": missing.compile(x="used")}
    lf.shutdown()
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
