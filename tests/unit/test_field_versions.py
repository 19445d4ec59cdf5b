"""The `field_versions` column's compact text (sinks/clickhouse/versions.py)."""

from __future__ import annotations

import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.clickhouse.versions import BITS, versions_of, versions_text

US = st.integers(-(2**63) + 1, 2**63 - 1)
# Names of every kind the fold writes: the fields with a bit, map keys (dots in the key too),
# and anything else, near misses of both included.
NAMES = st.one_of(
    st.sampled_from(BITS),
    st.builds(lambda c, k: f"{c}.{k}", st.sampled_from(["metadata", "usage_details", "cost_details", ""]), st.text()),
    st.text(),
)
VERSIONS = st.dictionaries(NAMES, US, max_size=40)
# Most rows: every field at one version, a few at another.
SHARED = st.builds(
    lambda names, base, odd: {**dict.fromkeys(names, base), **odd},
    st.lists(NAMES, max_size=30),
    US,
    st.dictionaries(NAMES, US, max_size=3),
)


@settings(max_examples=500, deadline=None, database=None)
@given(st.one_of(VERSIONS, SHARED))
def test_the_text_reads_back_as_the_versions_written(versions: dict[str, int]) -> None:
    text = versions_text(versions)
    assert versions_of(text) == versions
    # The same versions in another key order: the same text (replays compare rows as stored).
    shuffled = list(versions.items())
    random.Random(len(text)).shuffle(shuffled)
    assert versions_text(dict(shuffled)) == text


@given(VERSIONS)
def test_rows_written_as_an_object_still_read(versions: dict[str, int]) -> None:
    assert versions_of(orjson.dumps(versions).decode()) == versions


def test_a_span_says_its_version_once() -> None:
    ts = 1_795_000_000_800_004
    names = ["input", "trace_id", "parent_observation_id", "name", "start_time", "end_time"]
    names += ["provided_model_name", "type", "metadata.resourceAttributes", "metadata.scope"]
    names += ["usage_details.input", "usage_details.output", "usage_details.total"]
    versions = dict.fromkeys(names, ts)
    text = versions_text(versions)
    assert len(text) < len(orjson.dumps(versions)) / 3
    assert text.count(str(ts)) == 1
    # A field set later, and a synthetic (negative) version, keep their names.
    versions |= {"output": ts + 5, "timestamp": -ts - 1}
    assert versions_of(versions_text(versions)) == versions


def test_no_versions_and_not_versions() -> None:
    assert versions_of(versions_text({})) == {}
    assert versions_of("") == {}
    for bad in ("[1]", '["a", 1]', "3", "[1, 2, 3, 4, 5]"):
        with pytest.raises(ValueError):
            versions_of(bad)
