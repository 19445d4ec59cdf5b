from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class ClickHouseConfig:
    host: str = "127.0.0.1"
    port: int = 9000
    database: str = "agenttrace"
    user: str = "default"
    password: str = ""
    pool_size: int = 4
    connect_timeout_s: float = 5.0
    # The name of a cluster in the servers' remote_servers: tables become Replicated local
    # tables plus Distributed tables under the public names (schema.py), and inserts wait for
    # the shards (client.py). Empty: one server, plain tables.
    cluster: str = ""

    def __repr__(self) -> str:
        return (
            f"ClickHouseConfig(host={self.host!r}, port={self.port}, database={self.database!r}, "
            f"user={self.user!r}, password={'***' if self.password else ''!r}, cluster={self.cluster!r})"
        )

    @classmethod
    def from_url(cls, url: str) -> ClickHouseConfig:
        u = urlsplit(url)
        if u.scheme not in ("clickhouse", "tcp"):
            raise ValueError("AGENTTRACE_CLICKHOUSE_URL must be clickhouse://user:pass@host:port/db")
        return cls(
            host=u.hostname or cls.host,
            port=u.port or cls.port,
            database=(u.path or "").strip("/") or cls.database,
            user=unquote(u.username) if u.username else cls.user,
            password=unquote(u.password) if u.password else "",
        )

    def url(self) -> str:
        return f"clickhouse://{self.user}:@{self.host}:{self.port}/{self.database}"

    def validate(self) -> None:
        if not self.database.isidentifier():
            raise ValueError("the ClickHouse database name must be a plain identifier")
        if self.pool_size < 1:
            raise ValueError("ClickHouse pool_size must be at least 1")
        if self.cluster and not self.cluster.isidentifier():
            raise ValueError("the ClickHouse cluster name must be a plain identifier")
