"""`agenttrace replay`'s pure parts: reading --from, drawing the progress bar."""

from __future__ import annotations

import io

import pytest

from pipeline.replay import Progress, ReplaySummary, parse_since

NOW_S = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "expected_ms"),
    [
        ("2026-11-27T10:00:00Z", 1_795_773_600_000),
        ("2026-11-27T11:00:00.123+01:00", 1_795_773_600_123),
        ("90s", 1_800_000_000_000 - 90_000),
        ("15m", 1_800_000_000_000 - 900_000),
        ("2h", 1_800_000_000_000 - 7_200_000),
        ("1.5d", 1_800_000_000_000 - 129_600_000),
    ],
)
def test_since_is_iso_or_a_duration_ago(text: str, expected_ms: int) -> None:
    assert parse_since(text, NOW_S) == expected_ms


@pytest.mark.parametrize("text", ["yesterday", "15 minutes", "-5m", ""])
def test_since_rejects_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        parse_since(text, NOW_S)


def test_progress_redraws_one_line_and_ends_it() -> None:
    out = io.StringIO()
    bar = Progress(200, out, width=10, every_s=0.0)
    bar.update(50)
    bar.update(50)  # unchanged: not drawn again
    bar.finish(200)
    drawn = out.getvalue()
    assert drawn.count("\r") == 2 and drawn.endswith("\n")
    assert "[##........]  25.0% 50/200 records" in drawn
    assert "[##########] 100.0% 200/200 records" in drawn


def test_progress_of_an_empty_replay_is_complete() -> None:
    out = io.StringIO()
    Progress(0, out).finish(0)
    assert "100.0% 0/0 records" in out.getvalue()


def test_summary_names_counts_and_first_reasons() -> None:
    summary = ReplaySummary(
        "postgres",
        partitions=8,
        records=10,
        events=9,
        poison=1,
        seconds=2.0,
        reasons=["p generation-create e: bad timestamp 'x'"],
    )
    assert summary.lines() == [
        "replay postgres: 10 records from 8 partitions in 2.0s (5/s)",
        "  folded: 9  poison: 1  undecodable: 0",
        "  poison: p generation-create e: bad timestamp 'x'",
    ]
