import base64

import pytest

from ingest.auth import Unauthorized, parse_credentials
from sinks.postgres.keys import NewKey, hash_secret, secrets_match, validate_project_name


def _basic(s: str) -> str:
    return "Basic " + base64.b64encode(s.encode()).decode()


def test_basic_and_bearer_credentials_are_parsed() -> None:
    assert parse_credentials(_basic("pk-at-1:sk-at-2")) == ("pk-at-1", "sk-at-2")
    assert parse_credentials(_basic("pk:with:colons")) == ("pk", "with:colons")
    assert parse_credentials("bearer sk-at-2") == (None, "sk-at-2")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Basic",
        "Basic !!!",
        _basic("nocolon"),
        _basic(":secret"),
        _basic("public:"),
        "Bearer ",
        "Digest abc",
        "Basic " + base64.b64encode(b"\xff:x").decode(),
    ],
)
def test_unusable_credentials_are_unauthorized(header) -> None:
    with pytest.raises(Unauthorized):
        parse_credentials(header)


def test_secrets_are_compared_by_hash() -> None:
    stored = hash_secret("sk-at-secret")
    assert len(stored) == 32 and b"secret" not in stored
    assert secrets_match("sk-at-secret", stored)
    assert not secrets_match("sk-at-secreT", stored)


def test_a_new_key_does_not_show_its_secret_in_repr() -> None:
    key = NewKey("p", "pk-at-1", "sk-at-very-secret")
    assert "very-secret" not in repr(key)


@pytest.mark.parametrize("name", ["", " ", "a" * 101, "semi;colon", "-leading"])
def test_bad_project_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        validate_project_name(name)
