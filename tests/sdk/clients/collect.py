"""Shared by the client scripts (imported from beside them, in whichever venv runs them): the
warnings and errors the SDKs and their exporters log, kept to be printed with the results (an
event or upload the edge refused shows up there)."""

from __future__ import annotations

import logging


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name} {record.levelname}: {record.getMessage()}")


def collect(*loggers: str) -> list[str]:
    """The messages of WARNING and above logged under `loggers` from now on (a live list)."""
    handler = _Collect()
    for name in loggers:
        logging.getLogger(name).addHandler(handler)
    return handler.messages
