"""OTLP ingest throughput: `POST /v1/traces` of the exporter against a naive OTLP receiver.

    python benchmarks/otlp_ingest.py [--seconds 5] [--rounds 3] [--clients 4[,10,16]] [--spans 1000]
                                     [--previous DIR] [--ceiling [--work-ms 1.0]] [--durability]

Each server is one process. Requests are binary protobuf `ExportTraceServiceRequest`s of `--spans`
spans with the GenAI conventions' attribute sets: agent runs of one `invoke_agent` span, four `chat`
spans (models, token usage, response ids, finish reasons, server address) and five `execute_tool`
spans (tool name, call id, type). Every request carries new trace and span ids (prepared before each
measurement), so the exporter's dedupe finds nothing to skip: each span is decoded, read, validated,
counted and its key committed to SQLite (`synchronous=full`) before the answer. Such requests (new
traces, no content) are what the exporter's C++ mapper takes (`exporter/otlp/_mapper.cpp`); the
"previous code" of `--previous c6e2127` is the Python mapping over the C++ reader's rows, which is
what the exporter still does with the requests the mapper declines.

The naive receiver is a plain aiohttp handler: `ExportTraceServiceRequest.FromString`, then a Python
loop over the spans calling prometheus-client `labels(...).inc()` per span (and `observe()` of its
duration), no validation, no dedupe, no durability. Reported: spans/s, p50/p99 request latency,
server CPU per span (from /proc), and the ratio, per interleaved round. The exporter runs twice:
with the C++ trace reader (as `serve` runs it when built) and with the pure-Python reader; with
`--previous DIR` (a tree of earlier code with its extensions built, e.g. `git archive <commit>` plus
the `.so` files of that commit) also from that tree, so a change is measured against the code before
it in the same sitting (the box is shared: only ratios within one run compare).

`--durability` adds the exporter with `--sync normal` and without `--db`: what the durable commit
costs. `--ceiling` adds three variants that are not the product: the exporter with its counting
step skipped (every request the C++ mapper reads is answered as counted, and nothing is counted or
committed), which is what the rest of the path (HTTP, parsing and mapping) allows in one process;
and the same with `--work-ms` (1.0) of work per request added on the worker threads, once as Python
(holding the GIL) and once as hashing (CPU without the GIL): how much a millisecond of work per
request costs, and how much more when it holds the GIL. The benchmark patches the receiver in its
own server process; the exporter has no such switch.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.exporter_common import EXAMPLE, closed_loop
from benchmarks.exporter_ingest import free_port

PROTOBUF = {"Content-Type": "application/x-protobuf"}
TOOLS = ("get_order", "issue_refund", "get_account_balance", "reset_password", "get_credit_limit")
FLOWS = ("refund", "order-status", "password-reset")


def naive_server(port: int) -> None:
    """The baseline: what a quick hand-written OTLP receiver looks like."""
    from aiohttp import web
    from prometheus_client import Counter, Histogram

    counter = Counter("naive_spans_total", "spans", ["service", "operation"])
    latency = Histogram("naive_span_seconds", "span durations", ["service", "operation"])

    async def handle(request: web.Request) -> web.Response:
        req = ExportTraceServiceRequest.FromString(await request.read())
        for rs in req.resource_spans:
            service = next(
                (a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), ""
            )
            for ss in rs.scope_spans:
                for span in ss.spans:
                    op = span.name.partition(" ")[0]
                    counter.labels(service, op).inc()
                    latency.labels(service, op).observe(
                        (span.end_time_unix_nano - span.start_time_unix_nano) / 1e9
                    )
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_post("/v1/traces", handle)
    app.router.add_get("/readyz", lambda _: web.json_response({}))
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _kv(key: str, value: object) -> KeyValue:
    out = KeyValue(key=key)
    if isinstance(value, int):
        out.value.int_value = value
    elif isinstance(value, tuple):
        out.value.array_value.values.add().string_value = value[0]
    else:
        out.value.string_value = str(value)
    return out


def template(spans: int) -> ExportTraceServiceRequest:
    """One request of `spans` spans: agent runs of 10 spans each (ids filled in by `bodies`)."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(
        [_kv("service.name", "cx-support"), _kv("telemetry.sdk.language", "python")]
    )
    out = rs.scope_spans.add()
    out.scope.name = "opentelemetry.instrumentation.openai_v2"
    start = time.time_ns() - 60 * 10**9
    for run in range(spans // 10):
        flow = FLOWS[run % len(FLOWS)]
        at = start + run * 10**7
        children = []
        for i in range(9):
            child = out.spans.add(start_time_unix_nano=at, end_time_unix_nano=at + 3 * 10**8)
            if i % 2 == 0:
                model = "gpt-4o" if i else "gpt-4o-mini"
                child.name = f"chat {model}"
                child.attributes.extend(
                    [
                        _kv("gen_ai.operation.name", "chat"),
                        _kv("gen_ai.provider.name", "openai"),
                        _kv("gen_ai.request.model", model),
                        _kv("gen_ai.response.model", model),
                        _kv("gen_ai.response.id", f"chatcmpl-{run}-{i}"),
                        _kv("gen_ai.usage.input_tokens", 800 + i),
                        _kv("gen_ai.usage.output_tokens", 60 + i),
                        _kv("gen_ai.response.finish_reasons", ("tool_calls",)),
                        _kv("server.address", "api.openai.com"),
                        _kv("server.port", 443),
                    ]
                )
            else:
                tool = TOOLS[i // 2 % len(TOOLS)]
                child.name = f"execute_tool {tool}"
                child.attributes.extend(
                    [
                        _kv("gen_ai.operation.name", "execute_tool"),
                        _kv("gen_ai.tool.name", tool),
                        _kv("gen_ai.tool.call.id", f"call_{run}_{i}"),
                        _kv("gen_ai.tool.type", "function"),
                    ]
                )
            at += 3 * 10**8
            children.append(child)
        agent = out.spans.add(
            name="invoke_agent cx-support", start_time_unix_nano=start + run * 10**7, end_time_unix_nano=at
        )
        agent.attributes.extend(
            [
                _kv("gen_ai.operation.name", "invoke_agent"),
                _kv("gen_ai.agent.name", "cx-support"),
                _kv("gen_ai.agent.id", "asst_cx"),
                _kv("gen_ai.provider.name", "openai"),
                _kv("gen_ai.conversation.id", f"conv-{run}"),
                _kv("agent_slo.flow", flow),
            ]
        )
    return req


def bodies(req: ExportTraceServiceRequest, count: int, seed: int) -> list[bytes]:
    """`count` serialised copies of the request, each with fresh trace and span ids."""
    out = []
    spans = req.resource_spans[0].scope_spans[0].spans
    counter = seed << 40
    for _ in range(count):
        for run in range(len(spans) // 10):
            counter += 1
            trace_id, parent = counter.to_bytes(16, "big"), (counter * 16 + 9).to_bytes(8, "big")
            for i, span in enumerate(spans[run * 10 : run * 10 + 10]):  # nine children, then the agent span
                span.trace_id = trace_id
                span.span_id = (counter * 16 + i).to_bytes(8, "big")
                span.parent_span_id = parent if i < 9 else b""
        out.append(req.SerializeToString())
    return out


async def load(
    url: str, payloads: list[bytes], clients: int, seconds: float, spans: int, pid: int
) -> dict[str, float]:
    # the naive receiver may go round the payloads; see `sent` for the exporter
    latencies, elapsed, cpu = await closed_loop(
        f"{url}/v1/traces", itertools.cycle(payloads), PROTOBUF, clients, seconds, pid
    )
    return {
        "spans_per_s": len(latencies) * spans / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
        "cpu_us_per_span": cpu / max(1, len(latencies) * spans) * 1e6,
    }


NAIVE = "naive OTLP receiver (FromString + labels().inc())"
EXPORTER = "exporter, validation + dedupe + SQLite synchronous=full"
PURE = "  the same, pure-Python reader (AGENT_SLO_PURE_PYTHON=1)"
PREVIOUS = "  the same, previous code (--previous)"
CEILING = "  ceiling: counting skipped (not the product)"
SPUN = "  ceiling + {ms:g} ms of Python per request on the workers"
BURNT = "  ceiling + {ms:g} ms of CPU without the GIL per request"
NORMAL = "  the same, --sync normal (no fsync per commit)"
MEMORY = "  the same, no --db (nothing durable)"


def uncounted_server(work: str, serve: list[str]) -> int:
    """`agent-slo serve` with the counting of C++-mapped trace requests skipped (`--ceiling`), and
    `work` done per request on the worker thread that read it: "python:MS" spins MS ms of Python
    (holding the GIL), "native:MS" hashes for MS ms (hashlib releases the GIL), "none" nothing."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    from agentslo import cli
    from agentslo.exporter.otlp.receiver import OtlpReceiver

    kind, _, amount = work.partition(":")
    seconds = float(amount or 0) / 1000
    block, blocks = os.urandom(1 << 16), 0
    if kind == "native":  # how many blocks take `seconds` of this machine's CPU
        start = time.thread_time()
        while time.thread_time() - start < 0.2:
            hashlib.sha256(block).digest()
            blocks += 1
        blocks = round(seconds * blocks / (time.thread_time() - start))
    map_fast = OtlpReceiver.map_fast

    def python(self: OtlpReceiver, body: bytes) -> object:
        fast = map_fast(self, body)
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass
        return fast

    def native(self: OtlpReceiver, body: bytes) -> object:
        fast = map_fast(self, body)
        for _ in range(blocks):
            hashlib.sha256(block).digest()
        return fast

    def uncounted(self: OtlpReceiver, group: list[object], wait: bool = True) -> list[object]:
        return [ExportTraceServiceResponse() for _ in group]

    OtlpReceiver.count_fast = uncounted  # type: ignore[assignment,method-assign]
    if kind in ("python", "native") and seconds:
        OtlpReceiver.map_fast = python if kind == "python" else native  # type: ignore[assignment,method-assign]
    return cli.main(serve)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--clients",
        type=_counts,
        default=[4],
        help="closed-loop clients (default 4); a list such as 4,10,16 measures each in every round, and "
        "compares each server's peak",
    )
    parser.add_argument("--spans", type=int, default=1000)
    parser.add_argument(
        "--requests", type=int, default=1500, help="distinct requests prepared per measurement"
    )
    parser.add_argument("--previous", type=Path, help="a tree of earlier code to run as one more variant")
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="also run the exporter with counting skipped, and with --work-ms of work per request added "
        "(Python holding the GIL; CPU without it)",
    )
    parser.add_argument("--work-ms", type=float, default=1.0, help="with --ceiling (default 1.0)")
    parser.add_argument(
        "--durability", action="store_true", help="also run the exporter with --sync normal, and without --db"
    )
    parser.add_argument("--naive-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--uncounted-server", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()  # the rest: `serve` arguments, for --uncounted-server only
    if args.naive_server:
        naive_server(args.naive_server)
        return 0
    if args.uncounted_server is not None:
        return uncounted_server(args.uncounted_server, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    req = template(args.spans)
    print(
        f"payload: {args.spans} spans, {len(bodies(req, 1, 0)[0]) / 1024:.0f} KiB per request; "
        f"{','.join(map(str, args.clients))} closed-loop clients; {args.rounds} interleaved rounds of "
        f"{args.seconds:.0f}s; "
        f"cpus={os.cpu_count()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        serve = [sys.executable, "-m", "agentslo.cli", "serve", EXAMPLE]
        pure = {**os.environ, "AGENT_SLO_PURE_PYTHON": "1"}
        variants = {
            NAIVE: ([sys.executable, __file__, "--naive-server"], None),
            EXPORTER: ([*serve, "--db", f"{tmp}/full.db", "--sync", "full"], None),
            PURE: ([*serve, "--db", f"{tmp}/pure.db", "--sync", "full"], pure),
        }
        if args.durability:
            variants[NORMAL] = ([*serve, "--db", f"{tmp}/normal.db", "--sync", "normal"], None)
            variants[MEMORY] = (serve, None)
        if args.ceiling:
            ms = args.work_ms
            for name, work in (
                (CEILING, "none"),
                (SPUN.format(ms=ms), f"python:{ms}"),
                (BURNT.format(ms=ms), f"native:{ms}"),
            ):
                uncounted = [sys.executable, __file__, "--uncounted-server", work, "serve", EXAMPLE]
                db = f"{tmp}/{work.replace(':', '-')}.db"
                variants[name] = ([*uncounted, "--db", db, "--sync", "full"], None)
        cwd: dict[str, Path] = {}
        if args.previous is not None:  # its own agentslo first on the path: run from inside the tree
            previous = args.previous.resolve()
            spec = str(Path(EXAMPLE).resolve())
            cmd = [sys.executable, "-m", "agentslo.cli", "serve", spec, "--db", f"{tmp}/previous.db"]
            variants[PREVIOUS] = ([*cmd, "--sync", "full"], {**os.environ, "PYTHONPATH": str(previous)})
            cwd[PREVIOUS] = previous
        procs: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        rounds = {(name, c): list[dict[str, float]]() for c in args.clients for name in variants}
        try:
            for name, (cmd, env) in variants.items():
                port = free_port()
                cmd = [*cmd, str(port)] if cmd[-1] == "--naive-server" else [*cmd, "--port", str(port)]
                procs[name] = (
                    subprocess.Popen(
                        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd.get(name)
                    ),
                    f"http://127.0.0.1:{port}",
                )
            seed = 1
            for _ in range(args.rounds):
                for clients in args.clients:
                    for name, (proc, url) in procs.items():
                        payloads = bodies(req, args.requests, seed)
                        seed += 1
                        rounds[name, clients].append(
                            asyncio.run(load(url, payloads, clients, args.seconds, args.spans, proc.pid))
                        )
        finally:
            for proc, _ in procs.values():
                proc.terminate()
            for proc, _ in procs.values():
                proc.wait(timeout=30)

    report(rounds, list(variants), args.clients)
    return 0


Rounds = dict[tuple[str, int], list[dict[str, float]]]  # (server, clients) → each round's figures


def report(rounds: Rounds, names: list[str], counts: list[int]) -> None:
    """Medians per server and client count, the ratio to the naive receiver per round; with several
    client counts, each server's peak (its best median over the counts) and, per round, the ratio of
    the exporter's best count to the naive receiver's best count."""

    def med(key: tuple[str, int], field: str) -> float:
        return statistics.median(r[field] for r in rounds[key])

    for clients in counts:
        if len(counts) > 1:
            print(f"-- {clients} clients")
        for name in names:
            key = (name, clients)
            print(
                f"{name:56s} {med(key, 'spans_per_s'):>9,.0f} spans/s   p50 {med(key, 'p50_ms'):6.1f} ms   "
                f"p99 {med(key, 'p99_ms'):6.1f} ms   server CPU {med(key, 'cpu_us_per_span'):5.2f} us/span"
            )
        for name in (n for n in names if n != NAIVE):
            speed = [
                r["spans_per_s"] / n["spans_per_s"]
                for r, n in zip(rounds[name, clients], rounds[NAIVE, clients], strict=True)
            ]
            print(
                f"{name.strip():56s} / naive, per round: {', '.join(f'{x:.2f}x' for x in speed)}"
                f"  (median {statistics.median(speed):.2f}x)"
            )
    if len(counts) < 2:
        return
    print("-- peaks: each server at its best client count")

    def best(name: str, i: int) -> float:  # round i's best rate over the client counts
        return max(rounds[name, c][i]["spans_per_s"] for c in counts)

    for name in names:
        peak = max(counts, key=lambda c: med((name, c), "spans_per_s"))
        line = (
            f"{name:56s} {med((name, peak), 'spans_per_s'):>9,.0f} spans/s with {peak} clients"
            f"   p99 {med((name, peak), 'p99_ms'):6.1f} ms"
        )
        if name != NAIVE:
            speed = [best(name, i) / best(NAIVE, i) for i in range(len(rounds[NAIVE, counts[0]]))]
            line += (
                f"   / naive's peak, per round: {', '.join(f'{x:.2f}x' for x in speed)}"
                f"  (median {statistics.median(speed):.2f}x)"
            )
        print(line)


def _counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",")]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("client counts are positive integers, such as 4 or 4,10,16")
    return counts


if __name__ == "__main__":
    raise SystemExit(main())
