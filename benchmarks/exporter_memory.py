"""Memory: resident set size of an exporter holding ~10,000 series after 10 million events.

    python benchmarks/exporter_memory.py [--events 10000000] [--flows 28]

One ingestor with persistence on (SQLite WAL in a temporary directory), fed 1,000-event JSON batches
(parsed each time as the API does: the C++ scanner when built) cycling through 50 distinct
pre-serialised batches with unique trace and session ids, until `--events` have been applied;
RSS and peak RSS (VmHWM) are read from /proc, and /metrics is rendered at the end to check the
series count.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from agentslo.exporter.config import ExporterConfig
from agentslo.exporter.exposition import render
from agentslo.exporter.ingest import Ingestor
from agentslo.exporter.wire import decode
from benchmarks.exporter_common import events, wide_spec

LIMIT_MB = 200


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size in MiB."""
    status = dict(
        line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line
    )
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--flows", type=int, default=28)
    args = parser.parse_args()
    spec = wide_spec(args.flows)
    bodies = [orjson.dumps(events(spec, 1000, seed=seed)) for seed in range(50)]
    with tempfile.TemporaryDirectory() as tmp:
        ingestor = Ingestor([spec], ExporterConfig(db_path=f"{tmp}/counters.db", synchronous="normal"))
        start_rss, _ = rss_mb()
        t0 = time.perf_counter()
        done = 0
        while done < args.events:
            result = ingestor.apply(decode(bodies[(done // 1000) % len(bodies)]))  # type: ignore[arg-type]
            assert result.status == 200, result.body
            done += 1000
            if done % 1_000_000 == 0:
                now, peak = rss_mb()
                print(
                    f"{done:>12,} events  {time.perf_counter() - t0:6.1f}s  "
                    f"RSS {now:6.1f} MiB  peak {peak:6.1f} MiB",
                    flush=True,
                )
        elapsed = time.perf_counter() - t0
        text = render(ingestor.store).decode()
        series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        now, peak = rss_mb()
        ingestor.close()
    print(
        f"{done:,} events in {elapsed:.0f}s ({done / elapsed:,.0f} events/s in process, persistence on); "
        f"{series:,} series; RSS {now:.1f} MiB (at start {start_rss:.1f}), peak {peak:.1f} MiB; "
        f"limit {LIMIT_MB} MiB: {'ok' if peak <= LIMIT_MB else 'EXCEEDED'}"
    )
    return 0 if peak <= LIMIT_MB else 1


if __name__ == "__main__":
    raise SystemExit(main())
