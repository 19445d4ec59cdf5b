"""JSON logs, one object per line, with the monitoring guide's fields; configured once here.

Fields: level, ts (ISO 8601 UTC, milliseconds), msg, caller (file.py:line), then whatever the
call site bound: request_id, project_id, trace_id, duration_ms, observations_count, ...
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC
from typing import Any

import orjson
from loguru import logger

# Secrets never reach a log line, whoever logs: our code, aiokafka, or aiohttp's HTTP parser,
# which quotes a malformed request's raw headers. Redaction runs on the finished JSON line, so
# a value escaped inside a string (\r, \n, \x01, \u0000) cannot hide what follows it.
_SECRETS = (
    # An Authorization header's value: the rest of its JSON string, escapes included.
    (re.compile(r"""(?i)(authorization(?:\\"|')?\s*[:=,]\s*(?:\\"|')?)(?:[^"\\]|\\.)+"""), r"\1***"),
    # Credentials after a scheme, wherever they appear.
    (re.compile(r"(?i)(?<![a-z])(basic|bearer|digest)(?:\s|\\t)+[^\s\"'\\,;]+"), r"\1 ***"),
    # Secret keys, in clear or inside anything else (`pk-at-` keys are public).
    (re.compile(r"sk-at-[^\s\"'\\,;:@]*"), "sk-at-***"),
)


def redact(line: str) -> str:
    for pattern, replacement in _SECRETS:
        line = pattern.sub(replacement, line)
    return line


_LEVELS = {"WARNING": "warn", "CRITICAL": "error", "SUCCESS": "info", "TRACE": "debug"}


def _line(record: dict[str, Any]) -> str:
    doc: dict[str, Any] = {
        "level": _LEVELS.get(record["level"].name, record["level"].name.lower()),
        "ts": record["time"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{record['time'].microsecond // 1000:03d}Z",
        "msg": record["message"],
        "caller": f"{record['file'].name}:{record['line']}",
    }
    for k, v in record["extra"].items():
        if v is not None:
            doc[k] = v
    if record["exception"] is not None:
        exc = record["exception"]
        doc["error"] = f"{exc.type.__name__}: {exc.value}" if exc.type else None
    return redact(orjson.dumps(doc, default=str).decode())


def _sink_to(stream: Any) -> Any:
    def sink(message: Any) -> None:
        stream.write(_line(message.record) + "\n")
        stream.flush()

    return sink


class _Intercept(logging.Handler):
    """aiokafka and aiohttp log through the stdlib; route them into the same JSON stream."""

    def emit(self, record: logging.LogRecord) -> None:
        level = record.levelname if record.levelname in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") else "INFO"
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage(), logger_name=record.name)


def configure(level: str = "INFO", *, component: str, stream: Any = None) -> None:
    """Servers log to stdout; one-shot commands pass stderr so their output stays parseable."""
    logger.remove()
    logger.configure(extra={"component": component})
    logger.add(_sink_to(stream or sys.stdout), level=level.upper(), backtrace=False, diagnose=False)
    logging.basicConfig(handlers=[_Intercept()], level=logging.WARNING, force=True)
    logging.getLogger("aiohttp.access").setLevel(logging.ERROR)
