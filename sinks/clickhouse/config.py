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
    # Further servers (host, port) of the same cluster, tried in order when the first is down.
    fallbacks: tuple[tuple[str, int], ...] = ()

    def __repr__(self) -> str:
        return (
            f"ClickHouseConfig(host={self.host!r}, port={self.port}, database={self.database!r}, "
            f"user={self.user!r}, password={'***' if self.password else ''!r}, cluster={self.cluster!r}, "
            f"fallbacks={self.fallbacks!r})"
        )

    @classmethod
    def from_url(cls, url: str) -> ClickHouseConfig:
        """clickhouse://user:pass@host:port/db; in a cluster more servers may follow the first,
        comma-separated (host:port,host2:port2), to fail over to when it is unreachable."""
        u = urlsplit(url)
        if u.scheme not in ("clickhouse", "tcp"):
            raise ValueError("AGENTTRACE_CLICKHOUSE_URL must be clickhouse://user:pass@host:port/db")
        userinfo, _, hostlist = u.netloc.rpartition("@")
        first, *others = hostlist.split(",")
        u = urlsplit(f"{u.scheme}://{userinfo}{'@' if userinfo else ''}{first}{u.path}")
        return cls(
            host=u.hostname or cls.host,
            port=u.port or cls.port,
            database=(u.path or "").strip("/") or cls.database,
            user=unquote(u.username) if u.username else cls.user,
            password=unquote(u.password) if u.password else "",
            fallbacks=tuple(_host_port(h) for h in others),
        )

    def servers(self) -> tuple[tuple[str, int], ...]:
        return ((self.host, self.port), *self.fallbacks)

    def url(self) -> str:
        return f"clickhouse://{self.user}:@{self.host}:{self.port}/{self.database}"

    def validate(self) -> None:
        if not self.database.isidentifier():
            raise ValueError("the ClickHouse database name must be a plain identifier")
        if self.pool_size < 1:
            raise ValueError("ClickHouse pool_size must be at least 1")
        if self.cluster and not self.cluster.isidentifier():
            raise ValueError("the ClickHouse cluster name must be a plain identifier")


def _host_port(spec: str) -> tuple[str, int]:
    host, _, port = spec.strip().rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"a further ClickHouse server must be host:port, not {spec!r}")
    return host, int(port)
