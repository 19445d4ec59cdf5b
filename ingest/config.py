from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from sinks.redact import redact_url


@dataclass(frozen=True)
class EdgeConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    # OTLP/gRPC (TraceService/Export), HOST:PORT; 4317 is OTLP's registered gRPC port.
    grpc_address: str = "127.0.0.1:4317"
    # Langfuse's limit; measured after decompression so a small gzip bomb is still refused.
    max_body_bytes: int = 5 * 1024 * 1024
    # OTLP trace exports (protobuf or JSON) may be this long (decompressed): a Collector's batch
    # processor sends 8,192 spans a request by default, 10-30 MB of spans that carry prompts. One
    # past max_body_bytes is cut into requests of otlp_piece_bytes (otlp/split.py, json_split.py), parsed and
    # appended one after another: memory holds the body and one piece's parse, not ~10 times
    # the body. 413 (which exporters do not retry) only past this.
    max_otlp_body_bytes: int = 32 * 1024 * 1024
    otlp_piece_bytes: int = 512 * 1024
    # One event's envelope. Kafka refuses a record past its message.max.bytes (1 MiB by
    # default) and the producer's max_request_size; a larger event gets 413 at the edge rather
    # than a 503 that clients would retry forever. Raise all three together.
    max_event_bytes: int = 1_000_000
    # Memory held by requests being processed at once, counted from a body's first byte to
    # its answer; beyond it the edge answers 503 instead of buffering, which keeps memory flat
    # under overload. A request counts its body, its decompressed copy, and
    # memory_per_body_byte per decompressed byte for what it is parsed into. bench/hostile.py
    # (bench/README.md) measured a 2.6 MB batch of 10,000 small events at 3-6 bytes of RSS
    # per body byte at its peak, ~2.5 for 8 such batches at once; an OTLP protobuf export of
    # 5,000 spans parses into ~4 (otlp/wire.py) and peaks at ~9 while mapped (tracemalloc): 10
    # covers both. Bodies of tiny things parse into more: JSON of tiny values is weighed by its
    # values too (Intake.body), OTLP spans are mapped a slice at a time (max_mapped_bytes), and
    # a span longer than an event may be is mapped with its long values cut, or refused unmapped
    # when it has too many attributes for that (bench/hostile.py's last waves).
    # The bound leaves an idle api (~90 MB, 40 of them shared libraries) and the buffers of
    # refused connections within the 150 MB budget: one maximal batch at a time, or a hundred
    # ordinary requests.
    max_inflight_bytes: int = 40 * 1024 * 1024
    memory_per_body_byte: int = 10
    # What an OTLP request's spans are mapped into at a time, estimated (otlp/mapping.py): a
    # slice this heavy is appended to Kafka before the next is mapped. A request of many tiny
    # spans maps into ~27 times its length, past what memory_per_body_byte reserves; whole,
    # 5 MB of them took the api to 300-375 MB. Realistic requests are one slice.
    max_mapped_bytes: int = 8 * 1024 * 1024
    # How long a request waits for Kafka's acknowledgement before answering 503.
    publish_timeout_s: float = 10.0
    # How often the edge pings Kafka. Once a ping or a publish fails, requests get 503 at once
    # rather than each waiting publish_timeout_s, until a ping succeeds again.
    kafka_probe_interval_s: float = 1.0
    # Connections: at most this many open per process (more get 503 and are closed), idle
    # keep-alive ones closed after keepalive_timeout_s, and one that has not sent a complete
    # request head within header_timeout_s closed (slow clients hold sockets and buffers).
    max_connections: int = 1024
    keepalive_timeout_s: float = 30.0
    header_timeout_s: float = 10.0
    # Events per project per minute; 0 disables the limit.
    rate_limit_per_minute: int = 0
    auth_cache_ttl_s: int = 60
    # How long a deleted trace's tombstone is kept: until no copy of its events can be left in
    # the log. Kafka deletes a segment only once its newest record passed retention.ms, so
    # twice the topic's retention (the shell sets it from TopicConfig).
    tombstone_keep_s: float = 2 * 7 * 86_400.0

    def validate(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError("edge port out of range")
        grpc_host, grpc_port = split_address(self.grpc_address)
        if not grpc_host or not 0 < grpc_port < 65536:
            raise ValueError("AGENTTRACE_GRPC_ADDRESS must be HOST:PORT with a port in 1..65535")
        if self.max_body_bytes <= 0 or self.max_inflight_bytes < self.max_body_bytes:
            raise ValueError("max_inflight_bytes must be at least max_body_bytes")
        if self.max_otlp_body_bytes < self.max_body_bytes:
            raise ValueError("max_otlp_body_bytes must be at least max_body_bytes")
        if not 0 < self.otlp_piece_bytes <= self.max_body_bytes:
            raise ValueError("otlp_piece_bytes must be positive and at most max_body_bytes")
        if self.memory_per_body_byte < 0:
            raise ValueError("memory_per_body_byte must not be negative")
        if self.max_mapped_bytes <= 0:
            raise ValueError("max_mapped_bytes must be positive")
        if self.max_event_bytes <= 0:
            raise ValueError("max_event_bytes must be positive")
        if self.publish_timeout_s <= 0 or self.kafka_probe_interval_s <= 0:
            raise ValueError("publish_timeout_s and kafka_probe_interval_s must be positive")
        if self.max_connections <= 0 or self.keepalive_timeout_s <= 0 or self.header_timeout_s <= 0:
            raise ValueError("max_connections, keepalive_timeout_s and header_timeout_s must be positive")
        if self.rate_limit_per_minute < 0 or self.auth_cache_ttl_s < 0:
            raise ValueError("rate limit and cache ttl must not be negative")

    def listening(self, host: str | None, port: int, grpc_port: int | None) -> EdgeConfig:
        """This config with the command line's listeners: `host`, when given, is where both
        HTTP and gRPC listen; `grpc_port`, when given, replaces the port of grpc_address."""
        grpc_host, default_grpc_port = split_address(self.grpc_address)
        return replace(
            self,
            host=host or self.host,
            port=port,
            grpc_address=join_address(host or grpc_host, default_grpc_port if grpc_port is None else grpc_port),
        )


def split_address(address: str) -> tuple[str, int]:
    """("host", port) from "host:port" or "[v6]:port"; port -1 when missing or not a number."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else -1


def join_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class RedisConfig:
    url: str = "redis://127.0.0.1:6379/0"

    def __repr__(self) -> str:
        return f"RedisConfig(url={redact_url(self.url)!r})"

    def validate(self) -> None:
        if urlsplit(self.url).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("AGENTTRACE_REDIS_URL must be a redis:// URL")
