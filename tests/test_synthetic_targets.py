"""What an agent's endpoint answers, however broken, is the agent's failure, and never grows the prober.

A raw TCP server plays each broken answer (an endless body, a huge declared length, a body that
trickles, a bad status line, a broken chunked body, an oversized header, a dropped connection) to
both target kinds. Each must fail the scenario within the target's timeout, send a failed
`synthetic` event (the agent's failure counts against its synthetic SLI), and leave the prober's
memory bounded.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from agentslo.scenario import Scenario, load_scenarios
from agentslo.spec import Spec, Target, load_spec
from agentslo.synthetic.runner import run_cycle
from agentslo.synthetic.sinks import CallableSink
from agentslo.synthetic.targets import MAX_REPLY_BYTES

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 2.0
Writer = Callable[[asyncio.StreamWriter], Awaitable[None]]


async def _endless(w: asyncio.StreamWriter) -> None:
    w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (1 << 20, b"x" * (1 << 20))
    for _ in range(20_000):  # 20 GB at most; the prober must hang up long before
        w.write(chunk)
        await w.drain()


async def _huge_length(w: asyncio.StreamWriter) -> None:
    w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n{")
    await w.drain()
    await asyncio.sleep(30)


async def _trickle(w: asyncio.StreamWriter) -> None:
    w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
    for _ in range(1000):
        w.write(b" ")
        await w.drain()
        await asyncio.sleep(0.2)


async def _bad_status_line(w: asyncio.StreamWriter) -> None:
    w.write(b"HTTP/1.1 two hundred OK\r\nContent-Length: 2\r\n\r\n{}")
    await w.drain()


async def _broken_chunks(w: asyncio.StreamWriter) -> None:
    w.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n"
    )
    await w.drain()


async def _oversized_header(w: asyncio.StreamWriter) -> None:
    w.write(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000 + b"\r\nContent-Length: 2\r\n\r\n{}")
    await w.drain()


async def _hang_up(w: asyncio.StreamWriter) -> None:
    w.write(b'HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{"choices":')
    await w.drain()


CASES: dict[str, tuple[Writer, str]] = {
    "endless-body": (_endless, f"at most {MAX_REPLY_BYTES:,} bytes"),
    "huge-declared-length": (_huge_length, f"at most {MAX_REPLY_BYTES:,} bytes"),
    "trickling-body": (_trickle, f"within {TIMEOUT_S:g}s; it timed out"),
    "bad-status-line": (_bad_status_line, "expected a well-formed HTTP reply"),
    "broken-chunked-body": (_broken_chunks, "expected a well-formed HTTP reply"),
    "oversized-header": (_oversized_header, "expected a well-formed HTTP reply"),
    "hang-up-mid-body": (_hang_up, "expected a well-formed HTTP reply"),
}


@asynccontextmanager
async def _broken_agent(write: Writer) -> AsyncIterator[str]:
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
            await write(writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for (
            task
        ) in handlers:  # stop writers still feeding a client that hung up (Python 3.11 has no abort_clients)
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load_spec(ROOT / "examples" / "cx-support.slo.yaml")


@pytest.fixture(scope="module")
def scenario(spec: Spec) -> Scenario:
    return next(s for s in load_scenarios(spec) if s.name == "order-status-shipped")


def _target(spec: Spec, kind: str, base: str) -> tuple[Target, str]:
    assert spec.synthetic is not None
    if kind == "openai-chat":
        return spec.synthetic.target.model_copy(update={"timeout": TIMEOUT_S}), f"{base}/v1"
    config = Target(type="http", url=f"{base}/chat", response_text="reply", timeout=TIMEOUT_S)
    return config, f"{base}/chat"


@pytest.mark.parametrize("kind", ["openai-chat", "http"])
@pytest.mark.parametrize("case", sorted(CASES))
async def test_a_broken_answer_fails_the_scenario_and_counts_against_the_agent(
    spec: Spec, scenario: Scenario, kind: str, case: str
) -> None:
    write, expected = CASES[case]
    events: list[dict[str, Any]] = []
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    async with _broken_agent(write) as base:
        config, url = _target(spec, kind, base)
        started = time.perf_counter()
        (result,) = await run_cycle(
            spec, [scenario], config, target_url=url, sink=CallableSink(events.extend)
        )
        elapsed = time.perf_counter() - started
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert not result.passed and not result.internal
    assert result.error is not None and expected in result.error, result.error
    assert [(e["scenario"], e["passed"]) for e in events] == [(scenario.name, False)]
    assert "exclude" not in events[0]
    assert elapsed < TIMEOUT_S + 3
    assert grown_mib < 64, f"the prober grew {grown_mib:.0f} MiB"
