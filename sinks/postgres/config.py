from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from sinks.redact import redact_url


@dataclass(frozen=True)
class PostgresConfig:
    dsn: str = "postgresql://agenttrace:agenttrace@127.0.0.1:5432/agenttrace"
    min_size: int = 1
    max_size: int = 10

    def __repr__(self) -> str:
        return f"PostgresConfig(dsn={redact_url(self.dsn)!r}, max_size={self.max_size})"

    def validate(self) -> None:
        if urlsplit(self.dsn).scheme not in ("postgres", "postgresql"):
            raise ValueError("AGENTTRACE_POSTGRES_DSN must be a postgresql:// URL")
        if not 1 <= self.min_size <= self.max_size:
            raise ValueError("postgres pool sizes must satisfy 1 <= min <= max")

    def aiopg_dsn(self) -> str:
        """libpq keyword form: aiopg (psycopg2) accepts URLs, but keywords survive odd passwords."""
        u = urlsplit(self.dsn)
        parts = {
            "host": u.hostname or "127.0.0.1",
            "port": str(u.port or 5432),
            "dbname": (u.path or "/agenttrace").lstrip("/") or "agenttrace",
            "user": unquote(u.username or "agenttrace"),
            "password": unquote(u.password or ""),
        }
        return " ".join(f"{k}={_quoted(v)}" for k, v in parts.items() if v)


def _quoted(value: str) -> str:
    """A libpq keyword value: in single quotes, with backslashes and quotes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
