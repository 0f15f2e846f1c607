"""The generated rules on two real engines over the same backfilled data.

Ten hours of exporter counters (two replicas, one restart, excluded events, error rates changing by
the hour) are loaded into Prometheus 2.42 (`promtool tsdb
create-blocks-from openmetrics`) and into VictoriaMetrics (`/api/v1/import/prometheus`). The
recording rules are then evaluated over the last eight hours, one dependency level at a time, at the
same one-minute instants: by Prometheus' engine (range queries, results backfilled as blocks with
`promtool tsdb create-blocks-from openmetrics`, Prometheus restarted to read them) and by vmalert
(`-replay`, writing into VictoriaMetrics). Every recorded series is compared at eight instants.

Tolerance. With scrapes on the evaluation grid both engines read the same samples for every window,
and every recorded value agrees to 1e-6 relative, state codes exactly. With scrapes 7 seconds off the
grid they read slightly different spans: MetricsQL's `increase()` does not extrapolate and counts
from the last sample before the window, PromQL's extrapolates from the first sample inside it. Where
the error rate changes the two may differ by one scrape interval's worth of events per window (times
1.25, Prometheus' extrapolation). Documented bound off the grid: an error ratio within
2 x (scrape interval / window) x the highest error ratio in the data (burn rates the same divided by
the budget; budget remaining the same over the history), event counts within two scrape intervals' worth
of events. State codes flip where a burn rate sits on a threshold; they are compared on the grid.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentslo import names
from agentslo.durations import parse_duration
from agentslo.rules.generate import groups
from agentslo.spec import Spec, parse_spec

HOURS = 10
STEP = 60  # scrape interval, seconds
MAX_ERROR_RATIO = 0.16  # the highest error ratio in `_traffic` (tools, 2 x 8%)
MAX_EVENTS_PER_STEP = 2 * 90  # two replicas at the highest rate in `_traffic`
BUDGET = {"task": 0.01, "tools": 0.05}  # 1 - objective of the SLOs in SPEC
START_TIMEOUT = 30

SPEC = """
version: agent-slo/v1
agent: dual
labels: {env: test}
owners: {oncall: {team: sre}}
exclusions: [abuse]
flows: {book: {}, cancel: {}}
slos:
  task: {sli: {task: {}}, objective: 99, owner: oncall}
  tools: {sli: {tool_calls: {}}, objective: 95, owner: oncall}
autonomy: {governed_by: [task]}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 10) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body = response.read()
    return json.loads(body) if body else None


def _wait(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args[0]} exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} not ready in {START_TIMEOUT}s: {log.read_text()[-2000:]}")


@contextmanager
def _server(args: list[str], ready: str, log: Path) -> Iterator[None]:
    with log.open("ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait(ready, process, log)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _traffic(end: int, offset: int) -> list[tuple[str, list[tuple[int, float]]]]:
    """Counter samples per series: error ratios change every hour, replica b restarts mid-way."""
    start = end - HOURS * 3600
    out = []
    for slo, flow, replica in (
        (s, f, r) for s in ("task", "tools") for f in ("book", "cancel") for r in "ab"
    ):
        totals = {(o, e): 0.0 for o in ("good", "bad") for e in ("", "abuse")}
        samples: dict[tuple[str, str], list[tuple[int, float]]] = {k: [] for k in totals}
        for i in range(HOURS * 3600 // STEP + 1):
            ts = start + i * STEP + offset
            hour = i * STEP // 3600
            rate = 40 + 20 * (hour % 3) + (10 if flow == "book" else 0)
            error = [0.002, 0.03, 0.08, 0.0][hour % 4] * (2 if slo == "tools" else 1)
            if replica == "b" and i == HOURS * 3600 // STEP // 2:
                totals = {k: 0.0 for k in totals}  # exporter restart: counters start again from 0
            if i:
                totals[("good", "")] += rate * (1 - error)
                totals[("bad", "")] += rate * error
                totals[("bad", "abuse")] += 5
            for key, value in totals.items():
                samples[key].append((ts, value))
        for (outcome, exclusion), points in samples.items():
            labels = (
                f'agent="dual",exclusion="{exclusion}",flow="{flow}",instance="{replica}",'
                f'outcome="{outcome}",slo="{slo}"'
            )
            out.append((f"{names.EVENTS_TOTAL}{{{labels}}}", points))
    return out


def _levels(spec: Spec) -> list[list[tuple[str, dict[str, Any]]]]:
    """Recording rules split by dependency depth, each with its group name (alerts left out)."""
    records = [(g["name"], r) for g in groups(spec) for r in g["rules"] if "record" in r]
    level: dict[str, int] = {}
    for _ in records:  # iterate to a fixed point: a name's level is its deepest rule's
        for _, rule in records:
            deps = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", rule["expr"])) & {
                r["record"] for _, r in records
            }
            depth = 1 + max((level.get(d, 0) for d in deps if d != rule["record"]), default=-1)
            level[rule["record"]] = max(level.get(rule["record"], 0), depth)
    out: list[list[tuple[str, dict[str, Any]]]] = [[] for _ in range(max(level.values()) + 1)]
    for group, rule in records:
        out[level[rule["record"]]].append((group, rule))
    return out


def _rule_file(path: Path, rules: list[tuple[str, dict[str, Any]]]) -> Path:
    by_group: dict[str, list[dict[str, Any]]] = {}
    for group, rule in rules:
        by_group.setdefault(group, []).append(rule)
    data = {"groups": [{"name": g, "interval": "1m", "rules": r} for g, r in by_group.items()]}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _binaries() -> dict[str, str]:
    found = {}
    for name in ("prometheus", "promtool", "victoria-metrics", "vmalert"):
        path = shutil.which(name)
        if path is None:
            pytest.skip(f"{name} binary not found")
        found[name] = path
    return found


def _openmetrics(path: Path, families: dict[str, list[str]]) -> Path:
    lines = [line for family in families.values() for line in family]
    path.write_text("\n".join(lines) + "\n# EOF\n")
    return path


def _backfill(bins: dict[str, str], source: Path, data: Path) -> None:
    subprocess.run(
        [bins["promtool"], "tsdb", "create-blocks-from", "openmetrics", "-q", str(source), str(data)],
        check=True,
        timeout=120,
        capture_output=True,
    )


def _prometheus_level(
    url: str, rules: list[tuple[str, dict[str, Any]]], replay: tuple[int, int]
) -> dict[str, list[str]]:
    """One level's rules evaluated by Prometheus' engine over the replay range, as OpenMetrics lines.

    (`promtool tsdb create-blocks-from rules` does the same, but at the group's hashed evaluation
    offset; vmalert evaluates on the minute, and the comparison needs the same instants.)
    """
    families: dict[str, list[str]] = {}
    for _, rule in rules:
        query = urllib.parse.urlencode(
            {"query": rule["expr"], "start": replay[0], "end": replay[1], "step": "60"}
        )
        for item in _get(f"{url}/api/v1/query_range?{query}")["data"]["result"]:
            labels = {k: v for k, v in item["metric"].items() if k != "__name__"} | rule.get("labels", {})
            text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            family = families.setdefault(rule["record"], [])
            family += [f"{rule['record']}{{{text}}} {value} {ts}" for ts, value in item["values"]]
    return families


def _prometheus_values(
    bins: dict[str, str],
    tmp: Path,
    traffic: list[Any],
    levels: list[Any],
    replay: tuple[int, int],
    instants: list[int],
    metrics: list[str],
) -> dict[tuple[str, int, str], float]:
    data = tmp / "prom-data"
    family = names.EVENTS_TOTAL[: -len("_total")]
    raw = {
        family: [f"# TYPE {family} counter"] + [f"{s} {v} {ts}" for s, points in traffic for ts, v in points]
    }
    _backfill(bins, _openmetrics(tmp / "input.om", raw), data)
    (tmp / "prometheus.yml").write_text("global: {scrape_interval: 1m}\n")
    port = _free_port()
    args = [
        bins["prometheus"],
        f"--config.file={tmp / 'prometheus.yml'}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=30d",
    ]
    url = f"http://127.0.0.1:{port}"
    log = tmp / "prometheus.log"
    for depth, rules in enumerate(levels):
        with _server(args, f"{url}/-/ready", log):
            families = _prometheus_level(url, rules, replay)
        _backfill(bins, _openmetrics(tmp / f"level-{depth}.om", families), data)
    with _server(args, f"{url}/-/ready", log):
        return _query_all(url, instants, metrics)


def _victoria_values(
    bins: dict[str, str],
    tmp: Path,
    traffic: list[Any],
    levels: list[Any],
    replay: tuple[int, int],
    instants: list[int],
    metrics: list[str],
) -> dict[tuple[str, int, str], float]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    args = [
        bins["victoria-metrics"],
        f"-storageDataPath={tmp / 'vm-data'}",
        f"-httpListenAddr=127.0.0.1:{port}",
        "-retentionPeriod=1",
        "-search.disableCache",
        "-search.latencyOffset=0s",
    ]
    with _server(args, f"{url}/health", tmp / "vm.log"):
        body = "\n".join(
            f"{series} {value} {ts * 1000}" for series, points in traffic for ts, value in points
        )
        request = urllib.request.Request(f"{url}/api/v1/import/prometheus", data=body.encode(), method="POST")
        urllib.request.urlopen(request, timeout=60).close()
        urllib.request.urlopen(f"{url}/internal/force_flush", timeout=30).close()
        stamp = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
        for depth, rules in enumerate(levels):
            rule_file = _rule_file(tmp / f"vm-level-{depth}.yaml", rules)
            subprocess.run(
                [
                    bins["vmalert"],
                    f"-rule={rule_file}",
                    f"-datasource.url={url}",
                    f"-remoteWrite.url={url}",
                    f"-replay.timeFrom={stamp(replay[0])}",
                    f"-replay.timeTo={stamp(replay[1])}",
                    "-replay.rulesDelay=0s",
                    "-replay.disableProgressBar",
                    f"-httpListenAddr=127.0.0.1:{_free_port()}",
                ],
                check=True,
                timeout=120,
                capture_output=True,
            )
            urllib.request.urlopen(f"{url}/internal/force_flush", timeout=30).close()
            time.sleep(1.5)  # let the flushed parts become searchable before the next level reads them
        return _query_all(url, instants, metrics)


def _window_seconds(metric: str) -> int:
    """The window a recorded series covers (the history for the period and budget remaining)."""
    match = re.search(r"(?:ratio_rate|increase)(\w+)$", metric)
    window = parse_duration(match.group(1)) if match else HOURS * 3600
    return min(window, HOURS * 3600)


def _agree(key: tuple[str, int, str], prom: float, vm: float, offset: int) -> bool:
    metric, _, labels = key
    if offset == 0:  # the same samples in every window: the same values
        return prom == vm if metric.endswith(":code") else math.isclose(prom, vm, rel_tol=1e-6, abs_tol=1e-9)
    share = STEP / _window_seconds(metric)
    slo = re.search(r"slo=(\w+)", labels)
    if metric.endswith(":code"):
        return True
    if metric.startswith(names.events_rate("")):
        return abs(prom - vm) <= 2 * MAX_EVENTS_PER_STEP
    bound = 2 * share * MAX_ERROR_RATIO
    if metric.startswith(names.burn_rate("")) or metric == names.ERROR_BUDGET_REMAINING:
        bound /= BUDGET[slo.group(1)] if slo else 1
    if (
        metric.startswith((names.sli_error_ratio(""), names.burn_rate("")))
        or metric == names.ERROR_BUDGET_REMAINING
    ):
        return abs(prom - vm) <= bound
    return math.isclose(prom, vm, rel_tol=1e-6)


def _query_all(url: str, instants: list[int], metrics: list[str]) -> dict[tuple[str, int, str], float]:
    values = {}
    for metric in metrics:
        for instant in instants:
            query = urllib.parse.urlencode({"query": metric, "time": instant})
            for item in _get(f"{url}/api/v1/query?{query}")["data"]["result"]:
                labels = ",".join(f"{k}={v}" for k, v in sorted(item["metric"].items()) if k != "__name__")
                values[(metric, instant, labels)] = float(item["value"][1])
    return values


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("offset", [0, 7], ids=["on-grid", "off-grid"])
def test_prometheus_and_victoriametrics_record_the_same_values(tmp_path: Path, offset: int) -> None:
    bins = _binaries()
    spec = parse_spec(SPEC)
    end = (int(time.time()) // 3600 - 2) * 3600
    traffic = _traffic(end, offset)
    replay = (end - (HOURS - 2) * 3600, end)
    instants = [end - k * 1800 - 600 for k in range(8)]
    levels = _levels(spec)
    metrics = sorted({r["record"] for level in levels for _, r in level} - {names.events_bucket("5m")})

    prom = _prometheus_values(bins, tmp_path, traffic, levels, replay, instants, metrics)
    vm = _victoria_values(bins, tmp_path, traffic, levels, replay, instants, metrics)

    assert len({k for k in prom if k[0] == names.sli_error_ratio("1h")}) == 4 * len(instants)
    assert set(prom) == set(vm), f"series only in one engine: {set(prom) ^ set(vm)}"
    mismatches = [
        f"{key}: prometheus {expected} victoriametrics {vm[key]}"
        for key, expected in prom.items()
        if not _agree(key, expected, vm[key], offset)
    ]
    assert not mismatches, "\n".join(mismatches[:20])
    # The comparison saw the states move: not every instant is healthy.
    assert {v for k, v in prom.items() if k[0] == names.AUTONOMY_STATE} - {0.0}
