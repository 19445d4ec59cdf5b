"""JSON logs, one object per line, with the monitoring guide's fields; configured once here.

Fields: level, ts (ISO 8601 UTC, milliseconds), msg, caller (file.py:line), then whatever the
call site bound: request_id, project_id, trace_id, duration_ms, observations_count, ...

Warnings and errors are rate-limited per kind (logger and message): the first of a kind in a
second is written, the rest of that second are counted, and the next line of that kind (or a
summary, once the second is over and another line is written) carries `repeated=N`. During a
broker outage aiokafka's metadata loop logs ~16k identical lines a second; they become one
line a second per kind. Info and debug lines describe single events and are never limited.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from loguru import logger

# Secrets never reach a log line, whoever logs: our code, aiokafka, or aiohttp's HTTP parser,
# which quotes a malformed request's raw headers. Redaction runs on the finished JSON line, so
# a value escaped inside a string (\r, \n, \x01, \u0000) cannot hide what follows it.
# Each pattern with the words (lower case) without which it cannot match an ASCII line.
_SECRETS = (
    # An Authorization header's value: the rest of its JSON string, escapes included.
    (
        re.compile(r"""(?i)(authorization(?:\\"|')?\s*[:=,]\s*(?:\\"|')?)(?:[^"\\]|\\.)+"""),
        r"\1***",
        ("authorization",),
    ),
    # Credentials after a scheme, wherever they appear.
    (
        re.compile(r"(?i)(?<![a-z])(basic|bearer|digest)(?:\s|\\t)+[^\s\"'\\,;]+"),
        r"\1 ***",
        ("basic", "bearer", "digest"),
    ),
    # Secret keys, in clear or inside anything else (`pk-at-` keys are public).
    (re.compile(r"sk-at-[^\s\"'\\,;:@]*"), "sk-at-***", ("sk-at-",)),
)


def redact(line: str) -> str:
    # The case-insensitive patterns cost ~20 µs each on a request's log line (0.4 µs per event
    # of a 100-event batch); most lines contain none of their words, which an ASCII line shows
    # lower-cased. Beyond ASCII, case folding widens the matches (ſ for s, K for k): all run.
    lowered = line.lower() if line.isascii() else None
    for pattern, replacement, words in _SECRETS:
        if lowered is None or any(w in lowered for w in words):
            line = pattern.sub(replacement, line)
    return line


_LEVELS = {"WARNING": "warn", "CRITICAL": "error", "SUCCESS": "info", "TRACE": "debug"}
_LIMITED_FROM = logging.WARNING  # loguru's WARNING has the stdlib's number
_TEMPLATE = "log_template"  # a stdlib record's format string: its kind, never written out


# The timestamp's text up to its milliseconds, for the second last written: lines come many a
# second (one per request), and strftime was ~4 µs of a line's ~30.
_second: list[tuple[int, str]] = [(-1, "")]  # one tuple, swapped whole: threads log too


def _ts(when: datetime) -> str:
    second = int(when.timestamp())
    cached = _second[0]
    if cached[0] != second:
        cached = (second, when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S."))
        _second[0] = cached
    return f"{cached[1]}{when.microsecond // 1000:03d}Z"


def _line(record: dict[str, Any], repeated: int = 0) -> str:
    doc: dict[str, Any] = {
        "level": _LEVELS.get(record["level"].name, record["level"].name.lower()),
        "ts": _ts(record["time"]),
        "msg": record["message"],
        "caller": f"{record['file'].name}:{record['line']}",
    }
    for k, v in record["extra"].items():
        if v is not None and k != _TEMPLATE:
            doc[k] = v
    if record["exception"] is not None:
        exc = record["exception"]
        doc["error"] = f"{exc.type.__name__}: {exc.value}" if exc.type else None
    if repeated:
        doc["repeated"] = repeated
    return redact(orjson.dumps(doc, default=str).decode())


@dataclass
class _Kind:
    window_end: float
    suppressed: int = 0
    last: dict[str, Any] | None = None  # the newest suppressed record, for a summary line


class RepeatLimiter:
    """At most one line per `interval_s` per key; what it holds back is counted, not lost."""

    def __init__(self, interval_s: float = 1.0, max_keys: int = 1000, clock: Callable[[], float] = time.monotonic):
        self.interval_s = interval_s
        self._max_keys = max_keys
        self._clock = clock
        self._kinds: dict[tuple[Any, ...], _Kind] = {}
        self._next_sweep = 0.0

    def admit(self, key: tuple[Any, ...], record: dict[str, Any] | None = None) -> int | None:
        """None: hold this line back. Otherwise write it, with `repeated` = the returned count
        of lines of its kind held back since the last one written."""
        now = self._clock()
        kind = self._kinds.get(key)
        if kind is not None and now < kind.window_end:
            kind.suppressed += 1
            kind.last = record
            return None
        repeated = kind.suppressed if kind is not None else 0
        if len(self._kinds) >= self._max_keys and kind is None:
            self._kinds.clear()  # many distinct kinds are no flood; forget rather than grow
        self._kinds[key] = _Kind(now + self.interval_s)
        return repeated

    def overdue(self) -> list[tuple[dict[str, Any], int]]:
        """Summaries owed for kinds whose window ended with lines held back and none since:
        (the newest held-back record, how many); each is owed once."""
        now = self._clock()
        if now < self._next_sweep:
            return []
        self._next_sweep = now + self.interval_s
        owed = []
        for key, kind in list(self._kinds.items()):
            if now >= kind.window_end:
                if kind.suppressed and kind.last is not None:
                    owed.append((kind.last, kind.suppressed))
                    # The summary is this second's line of its kind: a flood that goes on is
                    # held back again until the next one, not admitted beside it.
                    self._kinds[key] = _Kind(now + self.interval_s)
                else:
                    del self._kinds[key]
        return owed


def _key(record: dict[str, Any]) -> tuple[Any, ...]:
    # A library's line is of one kind whatever its arguments (node ids, addresses, error texts
    # differ from line to line during an outage): its format string decides.
    extra = record["extra"]
    return (extra.get("logger_name") or record["name"], record["level"].no, extra.get(_TEMPLATE) or record["message"])


def _sink_to(stream: Any, limiter: RepeatLimiter | None = None) -> Any:
    def sink(message: Any) -> None:
        record = message.record
        lines = []
        if limiter is not None:
            lines = [_line(last, n) for last, n in limiter.overdue()]
            if record["level"].no >= _LIMITED_FROM:
                repeated = limiter.admit(_key(record), record)
                if repeated is None:
                    if lines:
                        stream.write("\n".join(lines) + "\n")
                        stream.flush()
                    return
                lines.append(_line(record, repeated))
            else:
                lines.append(_line(record))
        else:
            lines.append(_line(record))
        stream.write("\n".join(lines) + "\n")
        stream.flush()

    return sink


class _Intercept(logging.Handler):
    """aiokafka and aiohttp log through the stdlib; route them into the same JSON stream."""

    def emit(self, record: logging.LogRecord) -> None:
        level = record.levelname if record.levelname in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") else "INFO"
        template = record.msg if isinstance(record.msg, str) else None
        logger.opt(depth=6, exception=record.exc_info).log(
            level, record.getMessage(), logger_name=record.name, **{_TEMPLATE: template}
        )


def configure(level: str = "INFO", *, component: str, stream: Any = None, repeat_interval_s: float = 1.0) -> None:
    """Servers log to stdout; one-shot commands pass stderr so their output stays parseable."""
    logger.remove()
    logger.configure(extra={"component": component})
    limiter = RepeatLimiter(repeat_interval_s) if repeat_interval_s > 0 else None
    # The sink reads the record, never loguru's formatted text: "{message}" spares formatting
    # the default's time and fields for every line (~4 µs).
    logger.add(
        _sink_to(stream or sys.stdout, limiter),
        level=level.upper(),
        format="{message}",
        colorize=False,
        backtrace=False,
        diagnose=False,
    )
    logging.basicConfig(handlers=[_Intercept()], level=logging.WARNING, force=True)
    logging.getLogger("aiohttp.access").setLevel(logging.ERROR)
