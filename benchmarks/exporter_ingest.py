"""Ingest throughput: the exporter (with and without persistence) against a naive prometheus-client handler.

    python benchmarks/exporter_ingest.py [--seconds 5] [--rounds 3] [--clients 4] [--batch 1000]

Each server is one process (one exporter process, as the issue asks); all four are started, then
measured in turn for `--rounds` interleaved rounds (so a busy neighbour on a shared machine hits all
variants alike), each receiving the same pre-serialised 1,000-event batches from `--clients`
closed-loop HTTP clients (each sends its next batch as soon as the previous one is answered).
Every event has its own RFC 3339 time (one per millisecond), as real agents send. The exporter
runs as `agent-slo serve` does: with the C++ ingest scanner when it is built, and once more with
AGENT_SLO_PURE_PYTHON=1 (msgspec and numpy only) to show what the scanner is worth.
The naive baseline is a plain aiohttp handler doing `await request.json()` then, per event, one
`labels(...).inc()` on a prometheus-client Counter and one `observe()` on a Histogram when the event
has a latency or duration (no validation, no persistence). Reported: events/s, p50/p99 batch
latency, server CPU per event (from /proc), and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.exporter_common import EXAMPLE, WARMUP_S, closed_loop, events, example_spec


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
    headers = {"Content-Type": "application/json"}
    latencies, elapsed, cpu = await closed_loop(
        f"{url}/v1/events", itertools.repeat(body), headers, clients, seconds, pid
    )
    return {
        "events_per_s": len(latencies) * batch / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
        "batches": len(latencies),
        "cpu_us_per_event": cpu / max(1, len(latencies) * batch) * 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
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
        f"{args.clients} closed-loop clients; {args.rounds} interleaved rounds of {args.seconds:.0f}s "
        "per variant "
        f"(after {WARMUP_S:.0f}s warm-up each); cpus={os.cpu_count()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        serve = [sys.executable, "-m", "agentslo.cli", "serve", EXAMPLE]
        variants = {
            NAIVE: [sys.executable, __file__, "--naive-server"],
            MEMORY: serve,
            PURE: serve,
            "exporter, SQLite WAL synchronous=full": [*serve, "--db", f"{tmp}/full.db", "--sync", "full"],
            "exporter, SQLite WAL synchronous=normal": [
                *serve,
                "--db",
                f"{tmp}/normal.db",
                "--sync",
                "normal",
            ],
        }
        procs: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        try:
            for name, cmd in variants.items():  # all start now; each is idle while another is measured
                port = free_port()
                cmd = [*cmd, str(port)] if cmd[-1] == "--naive-server" else [*cmd, "--port", str(port)]
                env = {**os.environ, "AGENT_SLO_PURE_PYTHON": "1" if name == PURE else "0"}
                procs[name] = (
                    subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env),
                    f"http://127.0.0.1:{port}",
                )
            rounds: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
            for _ in range(args.rounds):
                for name, (proc, url) in procs.items():
                    rounds[name].append(
                        asyncio.run(load(url, body, args.clients, args.seconds, args.batch, proc.pid))
                    )
        finally:
            for proc, _ in procs.values():
                proc.terminate()
            for proc, _ in procs.values():
                proc.wait(timeout=30)
    report(rounds)
    return 0


NAIVE = "naive prometheus-client handler"
MEMORY = "exporter, no persistence"
PURE = "exporter, no persistence, pure Python"  # AGENT_SLO_PURE_PYTHON=1: no C++ scanner


def report(rounds: dict[str, list[dict[str, float]]]) -> None:
    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in rounds[name])

    for name in rounds:
        print(
            f"{name:42s} {med(name, 'events_per_s'):>10,.0f} events/s   p50 {med(name, 'p50_ms'):6.1f} ms   "
            f"p99 {med(name, 'p99_ms'):6.1f} ms   server CPU {med(name, 'cpu_us_per_event'):5.2f} us/event"
        )
    print("ratios per round (same conditions), median over rounds:")
    for name in list(rounds)[1:]:
        speed = [
            r["events_per_s"] / n["events_per_s"] for r, n in zip(rounds[name], rounds[NAIVE], strict=True)
        ]
        cpu = [
            n["cpu_us_per_event"] / r["cpu_us_per_event"]
            for r, n in zip(rounds[name], rounds[NAIVE], strict=True)
        ]
        print(
            f"  {name:40s} {statistics.median(speed):5.2f}x naive throughput, "
            f"{statistics.median(cpu):5.2f}x less server CPU per event"
        )
    for name in [n for n in rounds if "SQLite" in n]:
        share = [
            r["events_per_s"] / m["events_per_s"] for r, m in zip(rounds[name], rounds[MEMORY], strict=True)
        ]
        print(f"  {name:40s} {statistics.median(share):6.1%} of no-persistence throughput")


if __name__ == "__main__":
    raise SystemExit(main())
