"""Aggregate ingest of three exporter replicas behind the shipped nginx config, against one replica alone.

    python benchmarks/replicas_ingest.py [--seconds 5] [--rounds 3] [--clients 8] [--batch 1000]

Three `agent-slo serve` replicas (each with its own SQLite file, as the StatefulSet runs them) and
nginx with deploy/nginx/agent-slo.conf (tests/doubles/replicas.py starts both) are measured in
interleaved rounds against replica 0 addressed directly, with the same closed-loop client
(`exporter_common.closed_loop`: `--clients` senders, each posting its next pre-serialised
`--batch`-event batch as soon as the last is answered). The batches carry no Idempotency-Key, so
nginx spreads them by request id, which is the spread distinct keys give. Reported per round:
events/s and p50/p99 batch latency of each, and the scaling factor (three behind nginx / one alone).

On a machine with fewer cores than replicas + nginx + client the factor says what routing costs, not
what replicas gain: every process shares the same cores. Read it with the core count printed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import tempfile
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.exporter_common import EXAMPLE, closed_loop, events, example_spec
from tests.doubles.replicas import ExporterReplicas, nginx_router


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()

    spec = example_spec()
    batches = [orjson.dumps(events(spec, args.batch, seed=s)) for s in range(16)]
    headers = {"Content-Type": "application/json"}
    extra = ("--max-pending", "256")
    print(
        f"{os.cpu_count()} cores; {args.clients} clients; {args.batch}-event batches; "
        f"{args.seconds:.0f}s rounds"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with ExporterReplicas(Path(EXAMPLE), work / "exporters", 3, *extra) as replicas:
            with nginx_router(replicas.addresses, work) as router:
                one, three = [], []
                for r in range(args.rounds):
                    for name, url, out in (
                        ("one replica", replicas[0].url, one),
                        ("three behind nginx", router.url, three),
                    ):
                        pid = replicas[0].proc.pid if replicas[0].proc else router.proc.pid
                        lat, elapsed, _ = asyncio.run(
                            closed_loop(
                                f"{url}/v1/events",
                                itertools.cycle(batches),
                                headers,
                                args.clients,
                                args.seconds,
                                pid,
                            )
                        )
                        rate = len(lat) * args.batch / elapsed
                        out.append(rate)
                        p50, p99 = lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3
                        print(
                            f"round {r + 1}: {name:>18}: {rate:>9,.0f} events/s  "
                            f"p50 {p50:.1f} ms  p99 {p99:.1f} ms"
                        )
                    print(f"round {r + 1}: scaling {three[-1] / one[-1]:.2f}x")
    factors = [t / o for t, o in zip(three, one, strict=True)]
    print(
        f"median: one {statistics.median(one):,.0f} events/s, "
        f"three behind nginx {statistics.median(three):,.0f} events/s; "
        f"scaling {statistics.median(factors):.2f}x (rounds {', '.join(f'{f:.2f}' for f in factors)})"
    )


if __name__ == "__main__":
    main()
