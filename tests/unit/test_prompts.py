"""A prompt as the store takes it: Langfuse's name and label rules, text and chat shapes."""

from __future__ import annotations

import orjson
import pytest

from sinks.postgres.prompts import MAX_PROMPT_BYTES, PromptError, check_labels, check_name, parse_new


def test_a_text_and_a_chat_prompt_are_taken_as_langfuse_takes_them() -> None:
    text = parse_new({"name": "a/b", "prompt": "hi {{x}}", "labels": ["production", "latest"], "tags": ["t", "t"]})
    assert (text.type, text.prompt, text.config) == ("text", b'"hi {{x}}"', b"{}")
    assert (text.labels, text.tags) == (["production"], ["t"])
    chat = parse_new(
        {
            "name": "c",
            "prompt": [
                {"role": "system", "content": "s", "extra": 1},
                {"type": "placeholder", "name": "history"},
                {"type": "chatmessage", "role": "user", "content": "u"},
            ],
            "config": {"model": "m"},
        }
    )
    assert chat.type == "chat" and chat.tags is None and orjson.loads(chat.config) == {"model": "m"}
    assert orjson.loads(chat.prompt) == [
        {"role": "system", "content": "s"},
        {"type": "placeholder", "name": "history"},
        {"role": "user", "content": "u", "type": "chatmessage"},
    ]


@pytest.mark.parametrize(
    "doc",
    [
        None,
        {"name": "n"},
        {"name": "n", "prompt": ["x"]},
        {"name": "n", "type": "chat", "prompt": [{"type": "placeholder"}]},
        {"name": "n", "type": "chat", "prompt": [{"type": "tool", "role": "r", "content": "c"}]},
        {"name": "n", "prompt": "x", "commitMessage": 3},
        {"name": "n", "prompt": "x", "tags": ["x" * 256]},
    ],
)
def test_malformed_prompts_are_refused(doc: object) -> None:
    with pytest.raises(PromptError):
        parse_new(doc)


def test_a_prompt_past_a_mebibyte_is_too_large() -> None:
    with pytest.raises(PromptError) as refused:
        parse_new({"name": "n", "prompt": "x" * (MAX_PROMPT_BYTES - 10), "config": {"k": "v" * 20}})
    assert refused.value.status == 413
    assert parse_new({"name": "n", "prompt": "x" * (MAX_PROMPT_BYTES - 100)}).type == "text"


@pytest.mark.parametrize("name", ["", "a|b", "/a", "a/", "a//b", "a\x00", "x" * 256, 5])
def test_names_langfuse_refuses(name: object) -> None:
    with pytest.raises(PromptError):
        check_name(name)


def test_labels_are_lowercase_words_and_at_most_36_characters() -> None:
    assert check_labels(["b", "a", "b"]) == ["a", "b"]
    assert check_labels(None) == []
    for bad in (["A"], ["a b"], ["x" * 37], [""], "a", [1]):
        with pytest.raises(PromptError):
            check_labels(bad)
