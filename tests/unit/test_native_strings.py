"""sinks/clickhouse/native.py's String columns: every path gives the Native format's bytes."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sinks.clickhouse.native import _strings, varint


def reference(values: list[Any]) -> bytes:
    """A varint of each value's UTF-8 length, then its bytes (a non-text value as its text)."""
    out = b""
    for v in values:
        data = (v if isinstance(v, str) else str(v)).encode()
        out += varint(len(data)) + data
    return out


texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.text(alphabet='ab{}"', max_size=200)


@given(st.lists(texts | st.integers() | st.sampled_from(["x" * 16383, "y" * 16384, "é" * 9000]), max_size=12))
def test_a_column_of_any_text_is_its_values_with_their_lengths(values: list[Any]) -> None:
    assert _strings(values) == reference(values)
