"""The optional aiohttp transport: `Client(..., transport="aiohttp")` when aiohttp is installed.

It runs its own event loop inside the client's sender thread, never the application's loop, so an
asyncio agent's loop is not touched and a slow exporter cannot stall it. Choose it to share
aiohttp's proxy settings (`trust_env`) and connection handling; the default `http.client` transport
does the same job with the standard library alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from agentslo_client._transport import Response, parse_retry_after

try:
    import aiohttp
except ImportError:  # optional: the core never needs it
    aiohttp = None  # type: ignore[assignment]

AVAILABLE = aiohttp is not None


class AiohttpTransport:
    """One `aiohttp.ClientSession` on a private loop; created (and used) by the sender thread only."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        if aiohttp is None:
            raise RuntimeError("transport='aiohttp' needs aiohttp installed (the default transport does not)")
        self._base = base_url.rstrip("/")
        self._timeout_s = timeout_s
        self._loop = asyncio.new_event_loop()
        self._session: Any = None

    def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> Response:
        return self._loop.run_until_complete(self._post(path, body, dict(headers)))

    async def _post(self, path: str, body: bytes, headers: dict[str, str]) -> Response:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self._timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout, trust_env=True)
        async with self._session.post(self._base + path, data=body, headers=headers) as answer:
            data = await answer.read()
            return Response(answer.status, parse_retry_after(answer.headers.get("Retry-After")), data)

    def close(self) -> None:
        if self._session is not None:
            self._loop.run_until_complete(self._session.close())
            self._session = None
        self._loop.close()
