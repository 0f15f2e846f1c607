"""Ingest throughput: the exporter (with and without persistence) against a naive prometheus-client handler.

    python benchmarks/exporter_ingest.py [--seconds 15] [--clients 4] [--batch 1000]

Each server runs alone in its own process (one exporter process, as the issue asks) and receives the
same pre-serialised 1,000-event batches from `--clients` closed-loop HTTP clients (each sends its next
batch as soon as the previous one is answered), for `--seconds` after a warm-up. The naive baseline is
a plain aiohttp handler doing `await request.json()` then, per event, one `labels(...).inc()` on a
prometheus-client Counter and one `observe()` on a Histogram when the event has a latency or duration
(no validation, no persistence). Reported: events/s, p50/p99 batch latency, and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.exporter_common import EXAMPLE, events, example_spec

WARMUP_S = 2.0


def naive_server(port: int) -> None:
    """The baseline: what a quick hand-written exporter looks like."""
    from aiohttp import web
    from prometheus_client import Counter, Histogram

    counter = Counter("naive_events_total", "events", ["agent", "flow", "type"])
    latency = Histogram("naive_latency_seconds", "latency", ["agent", "flow", "type"])

    async def handle(request: web.Request) -> web.Response:
        batch = await request.json()
        for e in batch:
            counter.labels(e["agent"], e["flow"], e["type"]).inc()
            value = e.get("latency_s", e.get("duration_s"))
            if value is not None:
                latency.labels(e["agent"], e["flow"], e["type"]).observe(value)
        return web.json_response({"accepted": len(batch)})

    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_post("/v1/events", handle)
    app.router.add_get("/readyz", lambda _: web.json_response({}))
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def load(url: str, body: bytes, clients: int, seconds: float, batch: int, pid: int) -> dict[str, float]:
    latencies: list[float] = []
    counting = False
    stop = False

    async def client(session: aiohttp.ClientSession) -> None:
        while not stop:
            t0 = time.perf_counter()
            async with session.post(
                f"{url}/v1/events", data=body, headers={"Content-Type": "application/json"}
            ) as r:
                await r.read()
                assert r.status == 200, await r.text()
            if counting:
                latencies.append(time.perf_counter() - t0)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        deadline = time.monotonic() + 30
        while True:
            try:
                async with session.get(f"{url}/readyz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.1)
        tasks = [asyncio.create_task(client(session)) for _ in range(clients)]
        await asyncio.sleep(WARMUP_S)
        counting = True
        t0, cpu0 = time.perf_counter(), cpu_seconds(pid)
        await asyncio.sleep(seconds)
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
        counting = False
        stop = True
        await asyncio.gather(*tasks)
    latencies.sort()
    return {
        "events_per_s": len(latencies) * batch / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
        "batches": len(latencies),
        "cpu_us_per_event": cpu / max(1, len(latencies) * batch) * 1e6,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to report server CPU per event."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_server(cmd: list[str], url: str, body: bytes, args: argparse.Namespace) -> dict[str, float]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        result = asyncio.run(load(url, body, args.clients, args.seconds, args.batch, proc.pid))
        return result
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--naive-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_server:
        naive_server(args.naive_server)
        return 0
    body = orjson.dumps(events(example_spec(), args.batch))
    print(
        f"payload: {args.batch} events, {len(body) / 1024:.0f} KiB per batch; "
        f"{args.clients} closed-loop clients, "
        f"{args.seconds:.0f}s measured after {WARMUP_S:.0f}s warm-up; cpus={os.cpu_count()}"
    )
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        serve = [sys.executable, "-m", "agentslo.cli", "serve", EXAMPLE]
        variants = {
            "naive prometheus-client handler": [sys.executable, __file__, "--naive-server"],
            "exporter, no persistence": serve,
            "exporter, SQLite WAL synchronous=full": [*serve, "--db", f"{tmp}/full.db", "--sync", "full"],
            "exporter, SQLite WAL synchronous=normal": [
                *serve,
                "--db",
                f"{tmp}/normal.db",
                "--sync",
                "normal",
            ],
        }
        for name, cmd in variants.items():
            port = free_port()
            cmd = [*cmd, str(port)] if cmd[-1] == "--naive-server" else [*cmd, "--port", str(port)]
            results[name] = run_server(cmd, f"http://127.0.0.1:{port}", body, args)
            r = results[name]
            print(
                f"{name:42s} {r['events_per_s']:>10,.0f} events/s   p50 {r['p50_ms']:6.1f} ms   "
                f"p99 {r['p99_ms']:6.1f} ms   server CPU {r['cpu_us_per_event']:5.2f} us/event "
                f"({r['batches']:.0f} batches)"
            )
    naive = results["naive prometheus-client handler"]["events_per_s"]
    memory = results["exporter, no persistence"]["events_per_s"]
    naive_cpu = results["naive prometheus-client handler"]["cpu_us_per_event"]
    for name in list(results)[1:]:
        print(
            f"{name:42s} {results[name]['events_per_s'] / naive:5.2f}x naive throughput, "
            f"{naive_cpu / results[name]['cpu_us_per_event']:5.2f}x less server CPU per event"
        )
    for name in list(results)[2:]:
        print(f"{name:42s} {results[name]['events_per_s'] / memory:6.1%} of no-persistence throughput")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
