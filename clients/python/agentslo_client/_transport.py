"""How a batch travels: one HTTP POST, answered by a status, a few headers and a body.

The sender thread (`agentslo_client._sender`) calls `Transport.post()` and never anything else, so a
transport is small and swappable. `HTTPTransport` is the default: standard library only
(`http.client`), one keep-alive connection reused across batches, reopened after any error.
`AiohttpTransport` (in `agentslo_client._aiohttp`) is the optional alternative when aiohttp is
installed.

    >>> t = HTTPTransport("http://127.0.0.1:9120", timeout_s=5.0)
    >>> t.post("/v1/events", b"[]", {"Content-Type": "application/json"})  # doctest: +SKIP
    Response(status=400, retry_after=None, body=b'{"error": ...}')
"""

from __future__ import annotations

import email.utils
import http.client
import ssl
import time
from collections.abc import Mapping
from typing import NamedTuple, Protocol
from urllib.parse import urlsplit

MAX_RETRY_AFTER_S = 600.0  # a server asking for longer than this is capped (we still retry)


class Response(NamedTuple):
    """What the exporter answered. `retry_after` is in seconds (None when absent or unreadable)."""

    status: int
    retry_after: float | None
    body: bytes


class Transport(Protocol):
    """One POST at a time from the sender thread; raises OSError (or any Exception) when no answer came."""

    def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> Response: ...

    def close(self) -> None: ...


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    delta = when.timestamp() - (time.time() if now is None else now)
    return min(max(delta, 0.0), MAX_RETRY_AFTER_S)


class HTTPTransport:
    """`http.client` with one persistent connection (HTTP/1.1 keep-alive), http or https."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the exporter URL must be http(s)://host[:port], got {base_url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout_s = timeout_s
        self._conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout_s, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s)

    def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> Response:
        if self._conn is None:
            self._conn = self._connect()
        try:
            self._conn.request("POST", self._prefix + path, body=body, headers=dict(headers))
            answer = self._conn.getresponse()
            data = answer.read()
        except Exception:
            self.close()  # a broken or half-read connection is never reused
            raise
        if answer.will_close:
            self.close()
        return Response(answer.status, parse_retry_after(answer.getheader("Retry-After")), data)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
