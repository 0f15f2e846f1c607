"""Where probe results go: the exporter's `POST /v1/events`, or a callable in the same process.

`HttpSink` sends each batch with an `Idempotency-Key`, so a retry after a lost answer never counts
a run twice, and honours `Retry-After` on 429/503. `CallableSink` hands the events to
`apply(events)` (sync or async), for running the prober inside `agent-slo serve` or the demo.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

import aiohttp

EVENTS_PATH: Final = "/v1/events"
# 409: the same Idempotency-Key is still in flight (our earlier attempt timed out on our side); a
# later retry gets the first attempt's answer replayed, so it is safe to wait and ask again.
RETRY_STATUSES: Final = (409, 429, 502, 503, 504)
MAX_ATTEMPTS: Final = 4
MAX_RETRY_AFTER_S: Final = 30.0  # never wait longer than this on one Retry-After: the next cycle will come
REQUEST_TIMEOUT_S: Final = 10.0

Apply = Callable[[list[dict[str, Any]]], Awaitable[Any] | Any]


class SinkError(Exception):
    """The exporter refused or could not take the results."""


class Sink(Protocol):
    async def send(self, events: list[dict[str, Any]]) -> None: ...

    async def aclose(self) -> None: ...


class CallableSink:
    """Hands events to `apply(events)`; awaits it when it returns an awaitable."""

    def __init__(self, apply: Apply):
        self.apply = apply

    async def send(self, events: list[dict[str, Any]]) -> None:
        out = self.apply(events)
        if inspect.isawaitable(out):
            await out

    async def aclose(self) -> None:
        return None


class HttpSink:
    """POSTs events to an exporter (`base_url` like http://127.0.0.1:9120), with a bearer token if given."""

    def __init__(self, base_url: str, token: str | None = None, *, backoff_s: float = 0.5):
        self.url = base_url.rstrip("/") + EVENTS_PATH
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.backoff_s = backoff_s
        self._session: aiohttp.ClientSession | None = None
        self.sent = 0  # events accepted, for logs and tests

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S), headers=self.headers
            )
        return self._session

    async def send(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        key = uuid.uuid4().hex
        last = ""
        for attempt in range(MAX_ATTEMPTS):
            try:
                async with self._client().post(
                    self.url, json=events, headers={"Idempotency-Key": key}
                ) as resp:
                    body = await resp.text()
                    if resp.status < 300:
                        self.sent += len(events)
                        return
                    last = f"HTTP {resp.status}: {body[:300]}"
                    if resp.status not in RETRY_STATUSES:
                        raise SinkError(f"the exporter at {self.url} refused the results: {last}")
                    wait = _retry_after(resp.headers.get("Retry-After"), self.backoff_s * 2**attempt)
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = f"{type(exc).__name__}: {exc}"
                wait = self.backoff_s * 2**attempt
            if attempt + 1 < MAX_ATTEMPTS:
                await asyncio.sleep(wait)
        raise SinkError(
            f"could not deliver {len(events)} result(s) to {self.url} after {MAX_ATTEMPTS} attempts: {last}"
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _retry_after(value: str | None, default: float) -> float:
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S) if value is not None else default
    except ValueError:
        return default
