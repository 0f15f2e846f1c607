"""Where a usual OTLP trace request's time goes, stage by stage: one process, one thread, no HTTP.

    python benchmarks/otlp_stages.py [--requests 1200] [--group 4] [--repeats 5] [--sync full] [--previous D]

`benchmarks/otlp_ingest.py` measures the throughput; on a shared two-core box its rounds vary by
±20%, which hides a change worth a few percent. This harness times the same work as the server does
for a binary 1,000-span request (the ingest benchmark's requests, fresh ids each), without the
threads and sockets around it, so a change to one stage shows in that stage. Per request, the
median of `--repeats` passes (each in a fresh process, after as many requests again as warm-up, so
that the span index has its generations, the trace memory is full and SQLite's upkeep runs):

- map: the C++ mapper's reading and tally of the body (on a worker thread in the server, GIL released)
- count: `OtlpReceiver.count_fast` over groups of `--group` requests (on the event loop in the server,
  holding the GIL except in SQLite's steps), wall and CPU time, and within it:
  - classify: `Classifier.run_decoded` and `Deltas.finish`, the events into counter deltas (once the
    plan table knows a request's keys, the counts the mapper made on its worker, added up)
  - span index: `SpanIndex.add`, the counted spans' keys
  - trace memory: `TraceMemory.hold_unread`
  - SQLite commit: `Persistence.commit` (its upkeep apart)
  - SQLite upkeep: `Persistence.tidy` (folding the journal, forgetting old keys and span-key rows)
  - the rest: the checks, batches, answers and counters around them

With `--previous D` (a tree of earlier code with its extensions built) each pass runs for both
trees, interleaved, and the ratios of their medians are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("classify", "span index", "trace memory", "SQLite commit", "SQLite upkeep")


def one_pass(requests: int, group: int, sync: Literal["full", "normal"]) -> dict[str, float]:
    """Milliseconds per request of each stage, in this process (its `agentslo` first on the path)."""
    from agentslo.exporter import classify, persist
    from agentslo.exporter.config import ExporterConfig
    from agentslo.exporter.ingest import Ingestor
    from agentslo.exporter.otlp import memory
    from agentslo.exporter.otlp.receiver import OtlpReceiver
    from agentslo.spec import load_spec
    from benchmarks.exporter_common import EXAMPLE
    from benchmarks.otlp_ingest import bodies, template

    spent = dict.fromkeys(STAGES, 0.0)
    counting = False

    def timed(stage: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                if counting:
                    spent[stage] += time.perf_counter() - start

        return run

    def commit_alone(call: Callable[..., Any]) -> Callable[..., Any]:
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:  # its upkeep (tidy) is timed apart
            before = spent["SQLite upkeep"]
            start = time.perf_counter()
            try:
                return call(self, *args, **kwargs)
            finally:
                if counting:
                    spent["SQLite commit"] += time.perf_counter() - start - (spent["SQLite upkeep"] - before)

        return run

    classifier, deltas = classify.Classifier, classify.Deltas
    classifier.run_decoded = timed("classify", classifier.run_decoded)  # type: ignore[method-assign]
    deltas.finish = timed("classify", deltas.finish)  # type: ignore[method-assign]
    memory.TraceMemory.hold_unread = timed("trace memory", memory.TraceMemory.hold_unread)  # type: ignore[method-assign]
    persist.Persistence.tidy = timed("SQLite upkeep", persist.Persistence.tidy)  # type: ignore[method-assign]
    persist.Persistence.commit = commit_alone(persist.Persistence.commit)  # type: ignore[method-assign]

    with tempfile.TemporaryDirectory() as tmp:
        spec = load_spec(EXAMPLE)
        ingestor = Ingestor([spec], ExporterConfig(db_path=f"{tmp}/stages.db", synchronous=sync))
        receiver = OtlpReceiver(ingestor, [spec])
        index = receiver.seen

        class Index:  # the C++ index's methods cannot be replaced: its add() is timed through this
            def __getattr__(self, name: str) -> Any:
                return getattr(index, name)

            add = staticmethod(timed("span index", index.add))

        receiver.seen = Index()
        payloads = bodies(template(1000), 2 * requests, seed=int.from_bytes(os.urandom(2), "big"))
        warm, measured = payloads[:requests], payloads[requests:]
        for at in range(0, requests, group):
            fast = [receiver.map_fast(body) for body in warm[at : at + group]]
            receiver.count_fast(fast)  # type: ignore[arg-type]
        start = time.perf_counter()
        read = [receiver.map_fast(body) for body in measured]
        mapped = time.perf_counter() - start
        assert all(fast is not None for fast in read), "the C++ mapper declined a usual request"
        counting = True
        wall, cpu = time.perf_counter(), time.thread_time()
        for at in range(0, requests, group):
            replies = receiver.count_fast(read[at : at + group])  # type: ignore[arg-type]
            assert replies is not None and all(r is not None for r in replies), "not counted"
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        ingestor.close()
    out = {"map": mapped, "count": wall, "count CPU": cpu, **spent}
    out["the rest"] = wall - sum(spent.values())
    return {name: seconds / requests * 1000 for name, seconds in out.items()}


def run_pass(tree: Path | None, args: argparse.Namespace) -> dict[str, float]:
    """One pass in a fresh process, with `tree`'s code (or this one's)."""
    cmd = [sys.executable, __file__, "--one", "--requests", str(args.requests), "--group", str(args.group)]
    cmd += ["--sync", args.sync]
    path = [str(tree.resolve())] if tree is not None else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*path, str(ROOT)])}
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, cwd=tree or ROOT)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1200, help="requests measured per pass")
    parser.add_argument("--group", type=int, default=4, help="requests per commit (the server's group)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sync", choices=("full", "normal"), default="full")
    parser.add_argument("--previous", type=Path, metavar="D", help="earlier code, in the same passes")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # the tree's code first on the path (PYTHONPATH, set by `run_pass`)
        print(json.dumps(one_pass(args.requests, args.group, args.sync)))
        return 0
    trees: dict[str, Path | None] = {"this code": None}
    if args.previous is not None:
        trees["previous code"] = args.previous
    passes: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(args.repeats):
        for name, tree in trees.items():
            passes[name].append(run_pass(tree, args))
    print(
        f"{args.requests} requests of 1,000 spans per pass, groups of {args.group}, SQLite synchronous="
        f"{args.sync}; ms per request, median of {args.repeats} passes (range)"
    )
    print(f"{'ms per request':18s}" + "".join(f"{name:>26s}" for name in trees))
    for stage in ["map", "count", "count CPU", *STAGES, "the rest"]:
        medians, cells = [], []
        for name in trees:
            values = [p[stage] for p in passes[name]]
            medians.append(statistics.median(values))
            cells.append(f"{medians[-1]:.3f} ({min(values):.3f}-{max(values):.3f})")
        label = stage if stage in ("map", "count") else f"  {stage}"
        ratio = f"   previous/this {medians[1] / medians[0]:.2f}x" if len(medians) > 1 and medians[0] else ""
        print(f"{label:18s}" + "".join(f"{cell:>26s}" for cell in cells) + ratio)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
