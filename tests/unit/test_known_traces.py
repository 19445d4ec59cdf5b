"""What the Postgres writer remembers of the traces it wrote, and when it guesses that the
others are new (sinks/postgres/writer.py, Known)."""

from __future__ import annotations

from sinks.postgres.writer import Known


def test_it_remembers_the_latest_traces_up_to_its_size() -> None:
    known = Known(3)
    known.wrote([("p", "a"), ("p", "b")], guessed=2, missed=0)
    known.wrote([("p", "c"), ("p", "d")], guessed=2, missed=0)
    assert [("p", t) in known for t in "abcd"] == [False, True, True, True]
    known.clear()
    assert len(known) == 0


def test_guesses_that_mostly_miss_stop_the_guessing_for_longer_each_time() -> None:
    known = Known(100)
    pattern = []
    for _ in range(20):  # a replay into a filled table: every guess misses
        guessing = known.guessing()
        pattern.append(guessing)
        known.wrote([("p", "t")], guessed=int(guessing), missed=int(guessing))
    # Guess, skip 1, guess, skip 2, guess, skip 4, guess, skip 8, guess.
    assert [i for i, g in enumerate(pattern) if g] == [0, 2, 5, 10, 19]


def test_guesses_that_hit_keep_the_guessing_on() -> None:
    known = Known(100)
    known.wrote([("p", "a")], guessed=4, missed=3)  # the first batch after a rebalance
    assert not known.guessing()
    assert known.guessing()
    known.wrote([("p", "b")], guessed=10, missed=5)  # half: as often new as not, still worth it
    assert [known.guessing() for _ in range(3)] == [True, True, True]
    known.wrote([("p", "c")], guessed=4, missed=3)
    assert not known.guessing()  # back to a skip of one: the hit reset the backoff
    assert known.guessing()
