"""What a write request must be before its body is parsed: from this machine's own programs, not a
web page, and sent at a pace that holds nothing up.

- **Browsers are kept out.** A tokenless exporter on loopback must not take events from a web page
  the user happens to open: a page can POST cross-origin without a preflight only with the
  "simple" content types (`text/plain`, forms) and always says where it comes from (`Origin`,
  `Sec-Fetch-Site`). `browser_problem()` refuses both: a simple or text content type is 415, a
  foreign origin 403. Programs (the SDK, curl, collectors) send neither.
- **Slow bodies are cut off.** `read_body()` reads a body at no less than
  `ExporterConfig.min_body_bytes_per_s` (32 KiB/s) once `BODY_GRACE_S` have passed (and within
  the read timeout), and a body being read holds no place in the writer's queue: 64 connections
  announcing 8 MB and sending a byte every 5 s used to make every other batch a 429 for the whole
  read timeout. What all bodies being read hold in memory at once is bounded too
  (`ExporterConfig.max_reading_bytes`, else 429).
- **Slow headers are cut off** by the server's keep-alive timer, which aiohttp also runs before a
  connection's first request: `server_options()` sets it to `ExporterConfig.header_timeout_s`.

    >>> browser_problem("POST", "application/json", {"Origin": "https://evil.test"}, "[::1]:80", ()).status
    403
    >>> browser_problem("POST", "text/plain", {}, "[::1]:80", ()).status
    415
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from agentslo.exporter.config import ExporterConfig
from agentslo.exporter.wire import IngestResult, error

BODY_GRACE_S = 2.0  # a body may take this long to start (and a slow client this long to catch up)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What a web page may send cross-origin without a CORS preflight, plus any other text/* type: never
# what a program sends to this API (JSON, NDJSON or protobuf).
BROWSER_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def _problem(status: int, message: str, field: str, problem: str) -> IngestResult:
    return error(status, message, [{"index": None, "field": field, "problem": problem}])


def browser_problem(
    method: str, content_type: str, headers: Mapping[str, str], host: str, allowed: tuple[str, ...]
) -> IngestResult | None:
    """The refusal of a write that a web page could have sent, or None for a program's request."""
    if method in SAFE_METHODS:
        return None
    origin = headers.get("Origin")
    if origin is not None and origin not in allowed and urlsplit(origin).netloc != host:
        return _problem(
            403,
            f"requests from web pages ({origin[:100]}) are refused; send from a program, or list the "
            "origin in the exporter's allowed origins",
            "Origin",
            "foreign origin",
        )
    if headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none") and origin not in allowed:
        return _problem(403, "cross-site requests from web pages are refused", "Sec-Fetch-Site", "cross-site")
    if content_type in BROWSER_TYPES or content_type.startswith("text/"):
        return _problem(
            415,
            f"unsupported content type {content_type[:100]}; send application/json or application/x-ndjson",
            "Content-Type",
            "a type a web page can send without asking",
        )
    return None


async def read_body(request: web.Request, config: ExporterConfig, reading: list[int]) -> bytes | IngestResult:
    """The request's body, or the refusal: 408 when it comes slower than the minimum rate (or not
    within `config.read_timeout_s`), 413 when larger than `config.max_body_bytes`, 429 when the
    bodies being read would hold more than `config.max_reading_bytes` (`reading[0]`, shared)."""
    limit = config.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + config.read_timeout_s
    chunks: list[bytes] = []
    got = 0
    try:
        while True:
            due = min(deadline, started + BODY_GRACE_S + got / config.min_body_bytes_per_s)
            try:
                async with asyncio.timeout_at(due):
                    chunk = await request.content.readany()
            except TimeoutError:
                rate = config.min_body_bytes_per_s / 1024
                if due >= deadline:
                    return _problem(
                        408, f"the body did not arrive within {config.read_timeout_s:.0f}s", "", ""
                    )
                return _problem(
                    408,
                    f"the body came slower than {rate:.0f} KiB/s; send it whole",
                    "",
                    f"{got} bytes in {loop.time() - started:.1f}s",
                )
            if not chunk:
                return b"".join(chunks)
            got += len(chunk)
            if got > limit:
                raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=got)
            if reading[0] + len(chunk) > config.max_reading_bytes:
                return _problem(429, "too many request bodies being read; retry later", "", "")
            reading[0] += len(chunk)
            chunks.append(chunk)
    finally:
        reading[0] -= sum(map(len, chunks))


def server_options(config: ExporterConfig) -> dict[str, Any]:
    """aiohttp server settings that go with `config`: the keep-alive timer also bounds how long a
    connection may take to send its first request's headers (and any later request's)."""
    return {"keepalive_timeout": config.header_timeout_s}
