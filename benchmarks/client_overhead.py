"""The client SDK's cost to the agent and its delivery: `python benchmarks/client_overhead.py`.

Three measurements, each against a local exporter (`agent-slo serve`, its own process):

1. **Caller overhead**: µs per recorded event on the agent's thread (`record_tool_call`, and a
   `task()` holding a `turn()` and a decorated tool: three events), with the background sender
   delivering meanwhile; baseline in the same run: each event sent synchronously with `urllib`
   (one POST per event, as a hand-rolled reporter does). Targets: ≤ 5 µs per event, ≥ 100× less
   caller time than the baseline.
2. **Sustained delivery** from one process: events/s from the first record until the exporter has
   acknowledged them all (the recording thread backs off while the queue holds more than 4 batches,
   so this is the sender's pace, not the queue's); every answer must be 2xx (no retry, no refusal,
   no drop). Target: ≥ 100,000 events/s.
3. **Outage**: the exporter is killed for 60 s while the agent records 10,000 events/s; peak RSS of
   the client process must stay within the configured bound (the default `max_queue`, 10,000 events),
   i.e. flat once the queue is full; drops are counted exactly and what was held is delivered
   after the restart.

Options: --runs N (parts 1 and 2, default 3), --events N (part 2, default 1,000,000),
--outage-s S (default 60), --rate N (default 10,000/s), --skip-outage.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agentslo_client import Client  # noqa: E402

from agentslo import names  # noqa: E402
from tests.doubles.sdk_backends import Exporter  # noqa: E402

TARGET_CALLER_US = 5.0
TARGET_VS_BASELINE = 100.0
TARGET_EVENTS_PER_S = 100_000
CALLER_EVENTS = 200_000
BASELINE_EVENTS = 2_000


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def caller_overhead(exporter: Exporter) -> dict[str, float]:
    client = Client(exporter.url, agent="bot", flow="refund", max_queue=CALLER_EVENTS * 2)
    record = client.record_tool_call
    start = time.perf_counter()
    for _ in range(CALLER_EVENTS):
        record("get_order", "ok", latency_s=0.05)
    single_us = (time.perf_counter() - start) / CALLER_EVENTS * 1e6

    @client.tool("get_order")
    def get_order() -> str:
        return "delivered"

    tasks = CALLER_EVENTS // 3
    start = time.perf_counter()
    for _ in range(tasks):
        with client.task():
            with client.turn():
                pass
            get_order()
    scoped_us = (time.perf_counter() - start) / (tasks * 3) * 1e6
    assert client.close(60), client.stats()
    stats = client.stats()
    assert stats.delivered == CALLER_EVENTS + tasks * 3 and stats.rejected == stats.dropped == 0, stats

    event = {"type": "tool_call", "agent": "bot", "flow": "refund", "tool": "get_order", "outcome": "ok"}
    url = f"{exporter.url}/v1/events"
    start = time.perf_counter()
    for _ in range(BASELINE_EVENTS):
        req = urllib.request.Request(
            url,
            data=json.dumps([{**event, "latency_s": 0.05, "time": time.time()}]).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
    baseline_us = (time.perf_counter() - start) / BASELINE_EVENTS * 1e6
    return {"single_us": single_us, "scoped_us": scoped_us, "baseline_us": baseline_us}


def sustained(exporter: Exporter, events: int) -> dict[str, float]:
    client = Client(exporter.url, agent="bot", flow="refund", max_queue=events)
    high_water = 4_000  # four default batches queued: let the sender catch up
    start = time.perf_counter()
    for i in range(events):
        client.record_tool_call("get_order", "ok", latency_s=0.05)
        if i % 1_000 == 0:
            while client.stats().queued > high_water:
                time.sleep(0.0005)
    assert client.flush(120), client.stats()
    elapsed = time.perf_counter() - start
    stats = client.stats()
    client.close(5)
    all_2xx = stats.delivered == events and stats.retries == stats.rejected == stats.dropped == 0
    return {"events_per_s": events / elapsed, "all_2xx": float(all_2xx), "retries": stats.retries}


def outage(exporter: Exporter, seconds: float, rate: int) -> dict[str, float]:
    client = Client(exporter.url, agent="bot", flow="refund")  # the defaults: max_queue 10,000
    bound = client._sender.max_queue if client._sender else 0
    tick = 0.01
    per_tick = int(rate * tick)
    before = exporter.value(names.TOOL_CALLS_TOTAL, agent="bot", outcome="ok")
    samples: list[tuple[float, int, int]] = []  # (seconds into the outage, RSS KiB, queued)
    stop = threading.Event()

    def sampler(t0: float) -> None:
        while not stop.is_set():
            samples.append((time.perf_counter() - t0, rss_kib(), client.stats().queued))
            time.sleep(0.1)

    for _ in range(100):  # warm up: the sender is running, its connection open
        client.record_tool_call("get_order", "ok", latency_s=0.05)
    assert client.flush(10)
    rss_before = rss_kib()
    exporter.kill()
    t0 = time.perf_counter()
    watcher = threading.Thread(target=sampler, args=(t0,), daemon=True)
    watcher.start()
    recorded = 0
    worst_call = 0.0
    next_tick = t0
    while time.perf_counter() - t0 < seconds:
        for _ in range(per_tick):
            begin = time.perf_counter()
            client.record_tool_call("get_order", "ok", latency_s=0.05)
            worst_call = max(worst_call, time.perf_counter() - begin)
        recorded += per_tick
        next_tick += tick
        time.sleep(max(0.0, next_tick - time.perf_counter()))
    stop.set()
    watcher.join()
    held = client.stats()
    exporter.start()
    assert client.flush(60), client.stats()
    after = client.stats()
    client.close(5)
    delivered = exporter.value(names.TOOL_CALLS_TOTAL, agent="bot", outcome="ok") - before - 100
    full_at = next((t for t, _, q in samples if q >= bound), float("nan"))
    rss_full = max((r for t, r, _ in samples if t <= full_at + 1.0), default=rss_before)
    peak = max(r for _, r, _ in samples)
    return {
        "recorded": recorded,
        "held": held.queued,
        "dropped": held.dropped,
        "delivered_after": delivered,
        "bound": bound,
        "rss_before_mib": rss_before / 1024,
        "rss_peak_mib": peak / 1024,
        "growth_mib": (peak - rss_before) / 1024,
        "after_full_mib": (peak - rss_full) / 1024,
        "full_at_s": full_at,
        "worst_call_ms": worst_call * 1e3,
        "exact": float(
            delivered == held.queued
            and held.dropped == recorded - held.queued
            and after.delivered == 100 + held.queued
        ),
    }


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):,.2f} (min {min(values):,.2f}, max {max(values):,.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--outage-s", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--skip-outage", action="store_true")
    args = parser.parse_args()
    outage_result = None
    if not args.skip_outage:  # first: the later parts' large queues would leave the heap grown
        with tempfile.TemporaryDirectory() as tmp, Exporter(Path(tmp)) as exporter:
            outage_result = outage(exporter, args.outage_s, args.rate)
    with tempfile.TemporaryDirectory() as tmp, Exporter(Path(tmp), persist=False) as exporter:
        overhead = [caller_overhead(exporter) for _ in range(args.runs)]
        single = [o["single_us"] for o in overhead]
        scoped = [o["scoped_us"] for o in overhead]
        baseline = [o["baseline_us"] for o in overhead]
        ratio = [o["baseline_us"] / o["single_us"] for o in overhead]
        print(f"caller overhead, record_tool_call: {spread(single)} µs/event (target ≤ {TARGET_CALLER_US})")
        print(f"caller overhead, task+turn+tool:   {spread(scoped)} µs/event")
        print(f"baseline, urllib POST per event:   {spread(baseline)} µs/event")
        print(f"less caller time than the baseline: {spread(ratio)}× (target ≥ {TARGET_VS_BASELINE:.0f}×)")
        rates = [sustained(exporter, args.events) for _ in range(args.runs)]
        print(
            f"sustained delivery, {args.events:,} events: {spread([r['events_per_s'] for r in rates])} "
            f"events/s (target ≥ {TARGET_EVENTS_PER_S:,}); "
            f"all answers 2xx: {all(r['all_2xx'] for r in rates)}"
        )
    if outage_result is not None:
        o = outage_result
        print(
            f"outage {args.outage_s:.0f} s at {args.rate:,} events/s: recorded {o['recorded']:,.0f}, "
            f"held {o['held']:,.0f} (bound {o['bound']:,.0f}), dropped {o['dropped']:,.0f}, "
            f"delivered after the restart {o['delivered_after']:,.0f}; exact: {bool(o['exact'])}"
        )
        print(
            f"client RSS: {o['rss_before_mib']:.1f} MiB before, peak {o['rss_peak_mib']:.1f} MiB "
            f"(+{o['growth_mib']:.1f}); queue full after {o['full_at_s']:.1f} s, RSS growth after that "
            f"{o['after_full_mib']:.2f} MiB; slowest record call {o['worst_call_ms']:.2f} ms"
        )


if __name__ == "__main__":
    main()
