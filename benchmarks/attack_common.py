"""Shared parts of the attack harnesses (`exporter_attacks.py`, `feedback_attack.py`): what a
legitimate client sees while an attack runs (/healthz and a small POST /v1/events, asked every
PROBE_INTERVAL_S) and the exporter's peak memory."""

from __future__ import annotations

import asyncio
import collections
import socket
import statistics
import time
from pathlib import Path

import aiohttp
import orjson

JSON = {"Content-Type": "application/json"}
PROBE_INTERVAL_S = 0.05
PROBE_TIMEOUT_S = 120.0  # a stalled exporter is measured, not given up on
TURN = {"type": "turn", "agent": "cx-support", "flow": "refund", "kind": "turn", "latency_s": 0.5}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), MiB; 0 when /proc is not there."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Prober:
    """Asks /healthz and POST /v1/events every PROBE_INTERVAL_S; keeps each answer's latency and status."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base
        self.latency: dict[str, list[float]] = {"healthz": [], "events": []}
        self.statuses: collections.Counter[int] = collections.Counter()
        self._stop = asyncio.Event()
        self._event = orjson.dumps([TURN])

    async def _one(self, name: str) -> None:
        timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
        started = time.perf_counter()
        if name == "healthz":
            async with self.http.get(f"{self.base}/healthz", timeout=timeout) as r:
                await r.read()
        else:
            async with self.http.post(
                f"{self.base}/v1/events", data=self._event, headers=JSON, timeout=timeout
            ) as r:
                await r.read()
                self.statuses[r.status] += 1
        self.latency[name].append(time.perf_counter() - started)

    async def run(self) -> None:
        while not self._stop.is_set():
            await asyncio.gather(self._one("healthz"), self._one("events"), return_exceptions=True)
            await asyncio.sleep(PROBE_INTERVAL_S)

    def stop(self) -> None:
        self._stop.set()

    def report(self) -> str:
        parts = []
        for name, values in self.latency.items():
            if values:
                worst, median = max(values) * 1000, statistics.median(values) * 1000
                parts.append(f"{name}: worst {worst:.0f} ms, median {median:.1f} ms ({len(values)} asks)")
        parts.append(f"legitimate batches answered {dict(sorted(self.statuses.items()))}")
        return "; ".join(parts)
