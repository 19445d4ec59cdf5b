"""The errors the pipeline tells apart: what a retry can fix, and what no retry will.

Stores raise `StoreError`; `permanent` says the store refused the data or the statement
itself (a retry cannot help; the batch is split to find the culprit), otherwise the store was
away or overloaded and the same write is retried. Content that can never be written is a
`PoisonEvent` and goes to the dead-letter path. Code tells them apart with isinstance.
"""

from __future__ import annotations


class StoreError(Exception):
    """A store failed; retryable unless `permanent`."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class PoisonEvent(ValueError):
    """An event that can never be written; it goes to the dead-letter path with this reason."""


class EnvelopeError(PoisonEvent):
    """A record that is not a valid envelope."""
