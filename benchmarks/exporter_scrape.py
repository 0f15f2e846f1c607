"""Scrape cost: rendering ~10,000 series, against prometheus_client.generate_latest over the same series.

    python benchmarks/exporter_scrape.py [--flows 28] [--renders 40]

Builds an exporter for a spec wide enough to expose about 10,000 series (every series the spec
implies, created at 0, then filled by 200,000 events), mirrors every series and value into a
prometheus_client registry (counters, gauges and histograms with the same names, labels and
buckets; `_created` disabled so both outputs carry the same samples; the same process collector and
exporter build info the exporter appends), and times full renders of both in the same process, and
the exporter's gzipped render (what Prometheus, which sends `Accept-Encoding: gzip`, receives).
Between renders a small batch is applied, so nothing can be served from a cache.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from agentslo import __version__, names
from agentslo.exporter.config import ExporterConfig
from agentslo.exporter.exposition import render
from agentslo.exporter.ingest import Ingestor
from agentslo.exporter.store import Store
from benchmarks.exporter_common import events, wide_spec


def mirror(store: Store) -> CollectorRegistry:
    """The same series and values in a prometheus_client registry."""
    disable_created_metrics()
    registry = CollectorRegistry()
    values = store.values
    for fam in store.families.values():
        if fam.kind == "counter":
            metric = Counter(fam.name, fam.help, fam.labels, registry=registry)
            for base, labels, _ in fam.series:
                metric.labels(*labels).inc(values[base])
        elif fam.kind == "gauge":
            metric = Gauge(fam.name, fam.help, fam.labels, registry=registry)
            for base, labels, _ in fam.series:
                metric.labels(*labels).set(values[base])
            if fam.name == names.BUILD_INFO:
                for agent, build in store.build_info.items():
                    metric.labels(agent, *build).set(1)
        else:
            metric = Histogram(fam.name, fam.help, fam.labels, buckets=fam.bounds, registry=registry)
            for base, labels, _ in fam.series:
                child = metric.labels(*labels)
                for i in range(len(fam.bounds) + 1):
                    child._buckets[i].set(values[base + i])
                child._sum.set(values[base + len(fam.bounds) + 1])
    ProcessCollector(registry=registry)
    own = Gauge(
        names.EXPORTER_BUILD_INFO, "build", (names.L_VERSION, names.L_PYTHON_VERSION), registry=registry
    )
    own.labels(__version__, platform.python_version()).set(1)
    return registry


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample but the process metrics' values, which move between two renders."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): 0.0 if s.name.startswith(names.PROCESS_PREFIX) else s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def timed(fn: object, renders: int, between: object) -> list[float]:
    out = []
    for _ in range(renders):
        between()  # type: ignore[operator]
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--flows", type=int, default=28, help="flows in the spec (28 gives about 10,000 series)"
    )
    parser.add_argument("--renders", type=int, default=40)
    args = parser.parse_args()
    spec = wide_spec(args.flows)
    ingestor = Ingestor([spec], ExporterConfig())
    for seed in range(200):
        ingestor.apply(events(spec, 1000, seed=seed))
    small = events(spec, 50, seed=999)
    text = render(ingestor.store).decode()
    series = sum(len(f.samples) for f in text_string_to_metric_families(text))
    registry = mirror(ingestor.store)
    theirs_text = generate_latest(registry).decode()
    theirs = sum(len(f.samples) for f in text_string_to_metric_families(theirs_text))
    same = samples(text) == samples(theirs_text)

    def touch() -> None:
        ingestor.apply(small)

    mine = timed(lambda: render(ingestor.store), args.renders, touch)
    mine_om = timed(lambda: render(ingestor.store, openmetrics=True), args.renders, touch)
    mine_gz = timed(lambda: render(ingestor.store, gzipped=True), args.renders, touch)
    baseline = timed(lambda: generate_latest(registry), args.renders, lambda: None)
    m, mo, b = statistics.median(mine), statistics.median(mine_om), statistics.median(baseline)
    mg = statistics.median(mine_gz)
    plain, packed = len(render(ingestor.store)), len(render(ingestor.store, gzipped=True))
    print(
        f"series exposed: {series:,} (prometheus_client mirror: {theirs:,}, "
        f"same samples and values: {same}); "
        f"{args.renders} renders each"
    )
    p90 = sorted(mine)[int(0.9 * len(mine))]
    print(f"exporter text/plain        median {m * 1000:7.2f} ms   p90 {p90 * 1000:7.2f} ms")
    print(f"exporter OpenMetrics       median {mo * 1000:7.2f} ms   (with exemplars)")
    print(
        f"exporter text/plain + gzip median {mg * 1000:7.2f} ms   "
        f"({plain / 1024:,.0f} KiB sent as {packed / 1024:,.0f} KiB)"
    )
    print(f"prometheus_client          median {b * 1000:7.2f} ms   generate_latest")
    print(f"speed-up: {b / m:.1f}x (text), {b / mo:.1f}x (OpenMetrics)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
