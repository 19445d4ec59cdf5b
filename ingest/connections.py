"""Connections the edge holds, bounded: at most `max_connections` open at once, and a connection
that has not sent a complete request head within `header_timeout_s` is closed.

aiohttp has neither: its keep-alive timeout only starts after an answer, so a client that
opens sockets and trickles header bytes (slowloris) holds memory and file descriptors
forever. The guard wraps the aiohttp `Server`'s connection hooks, which every connection
passes through before a request exists.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from prometheus_client import Counter, Gauge

HTTP_CONNECTIONS_OPEN = Gauge("http_connections_open", "HTTP connections open")
HTTP_CONNECTIONS_REFUSED = Counter(
    "http_connections_refused_total", "HTTP connections refused or closed by the edge", ["reason"]
)
for _reason in ("limit", "header_timeout"):
    HTTP_CONNECTIONS_REFUSED.labels(_reason)

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\n"
    b'Connection: close\r\nContent-Length: 55\r\n\r\n{"error":"overloaded","message":"too many connections"}'
)


class ConnectionGuard:
    def __init__(self, server: web.Server, max_connections: int, header_timeout_s: float) -> None:
        self._server = server
        self._max = max_connections
        self._header_timeout_s = header_timeout_s
        self._made = server.connection_made
        self._lost = server.connection_lost
        self.open = 0

    def install(self) -> None:
        self._server.connection_made = self._connection_made  # type: ignore[method-assign]
        self._server.connection_lost = self._connection_lost  # type: ignore[method-assign,assignment]

    def _connection_made(self, handler: Any, transport: asyncio.Transport) -> None:
        self._made(handler, transport)
        self.open += 1
        HTTP_CONNECTIONS_OPEN.set(self.open)
        if self.open > self._max:
            HTTP_CONNECTIONS_REFUSED.labels("limit").inc()
            transport.write(_BUSY)
            handler.force_close()
            transport.close()
            return
        asyncio.get_running_loop().call_later(self._header_timeout_s, self._check_head, handler, transport)

    def _check_head(self, handler: Any, transport: asyncio.Transport) -> None:
        # aiohttp counts a request once its head is parsed; none by now means a stalled client.
        if not transport.is_closing() and handler._request_count == 0:
            HTTP_CONNECTIONS_REFUSED.labels("header_timeout").inc()
            handler.force_close()
            transport.abort()

    def _connection_lost(self, handler: Any, exc: BaseException | None) -> None:
        self.open -= 1
        HTTP_CONNECTIONS_OPEN.set(self.open)
        self._lost(handler, exc)
