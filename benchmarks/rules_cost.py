"""Rule evaluation cost on a real Prometheus: the generated rules vs a naive rule set, same data, same run.

    python benchmarks/rules_cost.py            # 100 SLO x flow pairs, 5 replicas, 31 days (~3 min)
    python benchmarks/rules_cost.py --help     # sizes, history resolution, measurement length

Setup: one spec with 25 SLOs x 4 flows (100 pairs). Five exporter replicas (small HTTP servers on
127.0.0.1) expose `agent_slo_events_total` for every pair, outcome and exclusion value (counted, plus
three exclusion reasons, as the exporter pre-creates them), and Prometheus 2.42 scrapes them every
15s. Their history (31 days, one sample per `--history-step`, 5 minutes by default) is backfilled
with `promtool tsdb create-blocks-from openmetrics`, together with the history of the one series the
generated rules keep for the long windows (`agent_slo:events_bucket:increase5m`, one sample per 5
minutes, computed here from the same traffic as the rule records it; the live rule adds stale markers
this history leaves out).

Both rule sets evaluate every 15s in the same Prometheus:
- generated: everything `rules.generate_files` writes for the spec (recordings, alerts, states);
- naive: only the error ratio of every window, each from raw counters
  (`sum(rate(agent_slo_events_total{exclusion=""}[w])) by (...)` for 5m ... 3d and 30d).

Printed: rule counts, the median of `prometheus_rule_group_last_duration_seconds` summed per rule set
over the measurement, their ratio (target <= 0.5), and each set's 30d error ratio against the exact
count of the traffic model. The raw history is coarser than a real 15s scrape (counted series every
5 minutes, 20x fewer samples; excluded-reason series hourly), which understates the naive set's 30d
range reads by about that factor; the generated set's bucket history lacks the stale markers the live
rule writes after each bucket (at most 2x its 30d read). The generated 30d ratio lags by up to one
5m bucket at both ends of its window, which the error against the exact (unlagged) count includes.

Measured on 2 shared cores (2026-11-22): 287 generated rules 0.59s vs 8 naive rules 2.48s per
evaluation (ratio 0.24); 30d ratio error median 0.01% / max 0.88% (generated), 0.00% / 0.09% (naive).
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agentslo import names  # noqa: E402
from agentslo.rules import generate_files  # noqa: E402
from agentslo.spec import Spec, parse_spec  # noqa: E402

AGENT = "bench"
JOB = "agent-slo"
EXCLUSIONS = ("", "synthetic", "test_call", "abuse")  # "" counts for the budget
HOUR, DAY = 3600, 86400
BUCKET = 300
INTERVAL = "15s"  # scrape and rule evaluation interval
NAIVE_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")


@dataclass(frozen=True)
class Traffic:
    """Hourly event rates per pair (events/s over all replicas) and error ratios, with bad hours."""

    pairs: list[tuple[str, str]]
    start: int
    hours: int
    seed: int = 7

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        rates, errors = {}, {}
        for pair in self.pairs:
            base = rng.uniform(0.5, 5.0)
            rates[pair] = [
                base * (0.3 + 0.7 * (math.sin(2 * math.pi * (h % 24) / 24) + 1) / 2)
                for h in range(self.hours)
            ]
            errors[pair] = [
                0.3 if rng.random() < 0.01 else rng.uniform(0.0, 0.004) for _ in range(self.hours)
            ]
        object.__setattr__(self, "_rates", rates)
        object.__setattr__(self, "_errors", errors)
        prefix: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
        for pair in self.pairs:
            good, bad = [0.0], [0.0]
            for h in range(self.hours):
                rate, error = rates[pair][h], errors[pair][h]
                good.append(good[-1] + rate * (1 - error) * HOUR)
                bad.append(bad[-1] + rate * error * HOUR)
            prefix[pair] = (good, bad)
        object.__setattr__(self, "_prefix", prefix)

    def count(self, pair: tuple[str, str], outcome: str, t: float) -> float:
        """Events of an outcome from the start of the model to t (all replicas)."""
        good, bad = self._prefix[pair]  # type: ignore[attr-defined]
        table = good if outcome == "good" else bad
        offset = max(0.0, min(t - self.start, self.hours * HOUR - 1e-6))
        hour = int(offset // HOUR)
        rate = self._rates[pair][hour]  # type: ignore[attr-defined]
        error = self._errors[pair][hour]  # type: ignore[attr-defined]
        share = (1 - error) if outcome == "good" else error
        return table[hour] + rate * share * (offset - hour * HOUR)


def _spec(slos: int, flows: int) -> Spec:
    data = {
        "version": "agent-slo/v1",
        "agent": AGENT,
        "owners": {"sre": {"team": "sre"}},
        "exclusions": list(EXCLUSIONS[2:]),
        "flows": {f"f{i}": {} for i in range(flows)},
        "slos": {f"s{i:02d}": {"sli": {"task": {}}, "objective": 99.5, "owner": "sre"} for i in range(slos)},
    }
    return parse_spec(yaml.safe_dump(data))


def _naive_rules() -> str:
    events = f'{names.EVENTS_TOTAL}{{agent="{AGENT}", exclusion=""}}'
    rules = []
    for window in NAIVE_WINDOWS:
        bad = f'sum by (agent, slo, flow) (rate({events[:-1]}, outcome="bad"}}[{window}]))'
        total = f"sum by (agent, slo, flow) (rate({events}[{window}]))"
        rules.append({"record": f"naive:sli_error:ratio_rate{window}", "expr": f"{bad} / {total}"})
    return yaml.safe_dump(
        {"groups": [{"name": "naive", "interval": INTERVAL, "rules": rules}]}, sort_keys=False
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _labels(pair: tuple[str, str], outcome: str, exclusion: str) -> str:
    slo, flow = pair
    return f'agent="{AGENT}",exclusion="{exclusion}",flow="{flow}",outcome="{outcome}",slo="{slo}"'


def _replica_value(
    traffic: Traffic,
    pair: tuple[str, str],
    outcome: str,
    exclusion: str,
    replica: int,
    replicas: int,
    t: float,
) -> float:
    if exclusion == "":
        return round(traffic.count(pair, outcome, t) / replicas, 3)
    if exclusion == "synthetic" and outcome == "good":  # probes: one a minute per pair and replica
        return float(int((t - traffic.start) // 60))
    return 0.0


def _exporter(traffic: Traffic, replica: int, replicas: int, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            now = time.time()
            lines = [f"# TYPE {names.EVENTS_TOTAL} counter"]
            for pair in traffic.pairs:
                for outcome in ("good", "bad"):
                    for exclusion in EXCLUSIONS:
                        value = _replica_value(traffic, pair, outcome, exclusion, replica, replicas, now)
                        lines.append(f"{names.EVENTS_TOTAL}{{{_labels(pair, outcome, exclusion)}}} {value}")
            body = ("\n".join(lines) + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _history(path: Path, traffic: Traffic, ports: list[int], end: int, step: int, excluded_step: int) -> int:
    """OpenMetrics history of every replica's counters and of the 5m buckets; returns the sample count."""
    samples = 0
    family = names.EVENTS_TOTAL[: -len("_total")]
    with path.open("w") as out:
        out.write(f"# TYPE {family} counter\n")
        # Every replica counts the same share, so each value series is computed once and written 5 times.
        for pair in traffic.pairs:
            for outcome in ("good", "bad"):
                for exclusion in EXCLUSIONS:
                    every = step if exclusion == "" else excluded_step
                    times = range(traffic.start + every, end, every)
                    values = [
                        _replica_value(traffic, pair, outcome, exclusion, 0, len(ports), t) for t in times
                    ]
                    points = [f" {v} {t}\n" for t, v in zip(times, values, strict=True)]
                    for replica in range(len(ports)):
                        instance = f'instance="r{replica}",job="{JOB}"'
                        name = f"{names.EVENTS_TOTAL}{{{_labels(pair, outcome, exclusion)},{instance}}}"
                        out.writelines(name + point for point in points)
                        samples += len(points)
        bucket = names.events_bucket("5m")
        slots = list(range(traffic.start + BUCKET, end, BUCKET))
        for pair in traffic.pairs:
            for outcome in ("good", "bad"):
                slo, flow = pair
                name = f'{bucket}{{agent="{AGENT}",flow="{flow}",outcome="{outcome}",slo="{slo}"}}'
                for t in slots:
                    value = traffic.count(pair, outcome, t) - traffic.count(pair, outcome, t - BUCKET)
                    out.write(f"{name} {value:.6f} {t}\n")
                samples += len(slots)
        out.write("# EOF\n")
    return samples


def _get(url: str) -> Any:
    import json

    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())


def _query(base: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    params = {"query": expr} | ({"time": str(at)} if at is not None else {})
    return _get(f"{base}/api/v1/query?{urllib.parse.urlencode(params)}")["data"]["result"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slos", type=int, default=25)
    parser.add_argument("--flows", type=int, default=4)
    parser.add_argument("--replicas", type=int, default=5)
    parser.add_argument("--days", type=int, default=31, help="history to backfill (the period is 30d)")
    parser.add_argument(
        "--history-step", type=int, default=300, help="seconds between backfilled counted samples"
    )
    parser.add_argument("--excluded-step", type=int, default=3600, help="the same for excluded-reason series")
    parser.add_argument("--evaluations", type=int, default=6, help="evaluations to measure (15s apart)")
    parser.add_argument("--top", type=int, default=5, help="print the slowest rules of each set")
    args = parser.parse_args(argv)
    for binary in ("prometheus", "promtool"):
        if shutil.which(binary) is None:
            print(f"{binary} binary not found", file=sys.stderr)
            return 2

    spec = _spec(args.slos, args.flows)
    pairs = [(slo, flow) for slo in spec.slos for flow in spec.flows_of(slo)]
    now = int(time.time())
    end = now - now % BUCKET
    traffic = Traffic(pairs, end - args.days * DAY, args.days * 24 + 2)
    ports = [_free_port() for _ in range(args.replicas)]
    work = Path(tempfile.mkdtemp(prefix="rules-cost-"))
    servers = []
    prometheus = None
    try:
        t0 = time.monotonic()
        history = work / "history.om"
        samples = _history(history, traffic, ports, end, args.history_step, args.excluded_step)
        generated = time.monotonic() - t0
        data = work / "data"
        subprocess.run(
            [
                "promtool",
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "-q",
                "--max-block-duration=8760h",
                str(history),
                str(data),
            ],
            check=True,
            capture_output=True,
            timeout=900,
        )
        history.unlink()
        loaded = time.monotonic() - t0
        rules = generate_files([spec], eval_interval=INTERVAL)
        for rel, text in rules.items():
            (work / rel).write_text(text)
        (work / "naive.rules.yaml").write_text(_naive_rules())
        # Each replica's `instance` is a short name (r0...), the same in the backfilled history.
        replicas = [
            {"targets": [f"127.0.0.1:{p}"], "labels": {"instance": f"r{i}"}} for i, p in enumerate(ports)
        ]
        config = {
            "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL},
            "rule_files": [*rules, "naive.rules.yaml"],
            "scrape_configs": [
                {"job_name": JOB, "static_configs": replicas},
                {"job_name": "prometheus", "static_configs": [{"targets": ["PROMETHEUS"]}]},
            ],
        }
        port = _free_port()
        (work / "prometheus.yml").write_text(
            yaml.safe_dump(config).replace("PROMETHEUS", f"127.0.0.1:{port}")
        )
        servers = [_exporter(traffic, i, args.replicas, p) for i, p in enumerate(ports)]
        base = f"http://127.0.0.1:{port}"
        prometheus = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=90d",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(work / "prometheus.log").open("w"),
            cwd=work,
        )
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{base}/-/ready", timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        generated_groups = [g["name"] for text in rules.values() for g in yaml.safe_load(text)["groups"]]
        durations: dict[str, list[float]] = {"generated": [], "naive": []}
        last: dict[str, tuple[str, ...]] = {}
        deadline = time.monotonic() + 15 * (args.evaluations + 4) + 120
        while min(len(v) for v in durations.values()) < args.evaluations and time.monotonic() < deadline:
            time.sleep(3)
            groups = {g["name"]: g for g in _get(f"{base}/api/v1/rules")["data"]["groups"]}
            for name, wanted in (("generated", generated_groups), ("naive", ["naive"])):
                stamps = tuple(groups[n]["lastEvaluation"] for n in wanted)
                fresh = name not in last or all(a != b for a, b in zip(stamps, last[name], strict=True))
                if fresh and not any(s.startswith("0001") for s in stamps):
                    durations[name].append(sum(groups[n]["evaluationTime"] for n in wanted))
                    last[name] = stamps
        metric = _query(base, "prometheus_rule_group_last_duration_seconds")
        by_group = {m["metric"]["rule_group"].split(";")[-1]: float(m["value"][1]) for m in metric}
        rule_count = {
            "generated": sum(len(groups[n]["rules"]) for n in generated_groups),
            "naive": len(groups["naive"]["rules"]),
        }
        at = time.time()
        ours = _query(base, f'{names.sli_error_ratio("30d")}{{agent="{AGENT}"}}', at)
        naive = _query(base, f'naive:sli_error:ratio_rate30d{{agent="{AGENT}"}}', at)

        def errors(result: list[dict[str, Any]]) -> list[float]:
            out = []
            for item in result:
                pair = (item["metric"]["slo"], item["metric"]["flow"])
                bad = traffic.count(pair, "bad", at) - traffic.count(pair, "bad", at - 30 * DAY)
                total = bad + traffic.count(pair, "good", at) - traffic.count(pair, "good", at - 30 * DAY)
                out.append(abs(float(item["value"][1]) / (bad / total) - 1))
            return out

        print(
            f"pairs: {len(pairs)} SLO x flow, {args.replicas} replicas, "
            f"{len(pairs) * 2 * len(EXCLUSIONS) * args.replicas} raw series"
        )
        print(
            f"history: {args.days} days, counted series every {args.history_step}s, excluded every"
            f" {args.excluded_step}s, {samples:,} samples (written in {generated:.0f}s, loaded by promtool"
            f" in {loaded - generated:.0f}s)"
        )
        print(
            f"evaluations measured: generated {len(durations['generated'])}, naive {len(durations['naive'])}"
        )
        med = {k: statistics.median(v) if v else float("nan") for k, v in durations.items()}
        print(
            f"{'rule set':<10} {'rules':>6} {'eval time (median, s)':>22}"
            f" {'30d ratio error (median / max)':>32}"
        )
        for name, result in (("generated", ours), ("naive", naive)):
            err = errors(result)
            summary = f"{statistics.median(err):.2%} / {max(err):.2%}" if err else "n/a"
            print(f"{name:<10} {rule_count[name]:>6} {med[name]:>22.4f} {summary:>32}")
        print(
            f"ratio generated / naive evaluation time: {med['generated'] / med['naive']:.2f} (target <= 0.5)"
        )
        print(
            "prometheus_rule_group_last_duration_seconds:",
            {k: round(v, 4) for k, v in sorted(by_group.items())},
        )
        for name in [*generated_groups, "naive"]:
            slow = sorted(groups[name]["rules"], key=lambda r: -r["evaluationTime"])[: args.top]
            for rule in slow:
                print(f"  {name:<24} {rule['evaluationTime']:.4f}s  {rule['name']}  {rule['query'][:90]}")
        return 0
    finally:
        if prometheus is not None:
            prometheus.terminate()
            try:
                prometheus.wait(timeout=30)
            except subprocess.TimeoutExpired:
                prometheus.kill()
        for server in servers:
            server.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
