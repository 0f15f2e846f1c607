"""Every panel query, with its template variables filled in, returns data from a real Prometheus 2.42
holding two hours of exporter-like history for the example specs (cx-support, 30d period, and
voice-booking, 28d) and the rules generated from them.

How the history gets there: the exporter's series are written as OpenMetrics and backfilled with
`promtool tsdb create-blocks-from openmetrics`; the generated recording rules are then backfilled
level by level (a rule only after the rules it reads) with `promtool tsdb create-blocks-from rules`
against the running Prometheus, because the long windows sum five-minute buckets that a freshly
started Prometheus would only record minutes later. Finally Prometheus runs the generated rule files
themselves (group intervals shortened to 5s), so alerts and the newest recordings are live.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentslo import names
from agentslo.dashboards import build_dashboards, lint
from agentslo.spec import Spec, load_spec

ROOT = Path(__file__).resolve().parent.parent
SPECS = (ROOT / "examples" / "cx-support.slo.yaml", ROOT / "examples" / "voice-booking.slo.yaml")
BURNING = {("task-success", "refund"), ("task-completion", "book")}  # (slo, flow) burning in the last hour
PROMETHEUS, PROMTOOL = "/usr/bin/prometheus", "/usr/bin/promtool"
HISTORY = 2 * 3600  # seconds of backfilled history
STEP = 30  # seconds between backfilled samples: the "scrape interval" of the history
BUCKET_ALIGN = 300  # start on a 5m boundary so the rules' 5m buckets fall on evaluation steps
LIVE_INTERVAL = "5s"  # rule group interval while the test runs (the generated groups use 1m)
GRAFANA_GLOBALS = {  # what Grafana would substitute at a 30s scrape interval over the last hour
    "__rate_interval": "2m",
    "__interval": "30s",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
RANGE_WINDOW = 3600  # range queries (time-series panels) cover the last hour

pytestmark = [pytest.mark.slow, pytest.mark.timeout(280)]

try:
    from agentslo.rules import generate_files as rule_files
except ImportError:  # pragma: no cover - only while rules/ has not landed
    rule_files = None


# --- exporter-like history -------------------------------------------------------------------


class OpenMetrics:
    """Collects samples per metric family and writes them in OpenMetrics text (families contiguous)."""

    def __init__(self) -> None:
        self.types: dict[str, str] = {}
        self.samples: dict[str, list[str]] = defaultdict(list)

    def add(
        self, family: str, kind: str, name: str, labels: dict[str, str], points: list[tuple[int, float]]
    ) -> None:
        self.types[family] = kind
        text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        self.samples[family] += [f"{name}{{{text}}} {v:.6g} {t}" for t, v in points]

    def counter(self, metric: str, labels: dict[str, str], per_step: list[float], times: list[int]) -> None:
        total, points = 0.0, []
        for t, inc in zip(times, per_step, strict=True):
            total += inc
            points.append((t, total))
        self.add(metric.removesuffix("_total"), "counter", metric, labels, points)

    def gauge(self, metric: str, labels: dict[str, str], points: list[tuple[int, float]]) -> None:
        self.add(metric, "gauge", metric, labels, points)

    def histogram(
        self,
        metric: str,
        labels: dict[str, str],
        cdf: dict[str, float],
        mean: float,
        per_step: list[float],
        times: list[int],
    ) -> None:
        count = [sum(per_step[: i + 1]) for i in range(len(per_step))]
        for le, share in cdf.items():
            self.add(
                metric,
                "histogram",
                f"{metric}_bucket",
                {**labels, "le": le},
                [(t, c * share) for t, c in zip(times, count, strict=True)],
            )
        self.add(metric, "histogram", f"{metric}_count", labels, list(zip(times, count, strict=True)))
        self.add(
            metric,
            "histogram",
            f"{metric}_sum",
            labels,
            [(t, c * mean) for t, c in zip(times, count, strict=True)],
        )

    def text(self) -> str:
        out = []
        for family, kind in self.types.items():
            out.append(f"# TYPE {family} {kind}")
            out += self.samples[family]
        return "\n".join(out) + "\n# EOF\n"


SCORE_CDF = {"0.2": 0.02, "0.4": 0.04, "0.6": 0.07, "0.8": 0.15, "0.9": 0.4, "1.0": 1.0, "+Inf": 1.0}
SECONDS_CDF = {"0.5": 0.2, "1.2": 0.7, "2.5": 0.9, "4.5": 0.97, "10.0": 0.995, "+Inf": 1.0}
COST_CDF = {"0.05": 0.3, "0.1": 0.6, "0.18": 0.92, "0.5": 0.99, "+Inf": 1.0}
STEPS_CDF = {"2": 0.2, "4": 0.6, "8": 0.9, "16": 0.99, "+Inf": 1.0}


def exporter_history(spec: Spec, times: list[int]) -> str:
    """Series shaped like the exporter's /metrics for `spec`: steady traffic with ~1% bad events,
    the refund flow's task SLO burning in the last hour, a release an hour ago, probes every 5 minutes."""
    om = OpenMetrics()
    n = len(times)
    agent = {names.L_AGENT: spec.agent}
    recent = [i >= n - 3600 // STEP for i in range(n)]  # the last hour
    for slo in spec.slos:
        for flow in spec.flows_of(slo):
            burning = (slo, flow) in BURNING
            for exclusion in ("", "synthetic", "test_call"):
                scale = 1.0 if exclusion == "" else 0.1
                labels = {**agent, names.L_FLOW: flow, names.L_SLO: slo, names.L_EXCLUSION: exclusion}
                bad = [scale * (4.0 if burning and r else 0.2) for r in recent]
                om.counter(
                    names.EVENTS_TOTAL, {**labels, names.L_OUTCOME: names.GOOD}, [scale * 20.0] * n, times
                )
                om.counter(names.EVENTS_TOTAL, {**labels, names.L_OUTCOME: names.BAD}, bad, times)
    for flow in spec.flows:
        f = {**agent, names.L_FLOW: flow}
        om.histogram(names.TASK_DURATION_SECONDS, f, SECONDS_CDF, 1.4, [5.0] * n, times)
        om.histogram(names.TASK_COST_USD, f, COST_CDF, 0.09, [5.0] * n, times)
        om.histogram(names.TASK_STEPS, f, STEPS_CDF, 4.5, [5.0] * n, times)
        for kind in ("turn", "first_response", "tool_turn"):
            om.histogram(
                names.TURN_LATENCY_SECONDS, {**f, names.L_KIND: kind}, SECONDS_CDF, 0.8, [12.0] * n, times
            )
        for model in spec.models:
            for kind in ("input", "output"):
                om.counter(
                    names.TOKENS_TOTAL, {**f, names.L_MODEL: model, names.L_TYPE: kind}, [900.0] * n, times
                )
        for tool in spec.tools:
            om.histogram(
                names.TOOL_CALL_LATENCY_SECONDS, {**f, names.L_TOOL: tool}, SECONDS_CDF, 0.6, [6.0] * n, times
            )
            for outcome, rate in ((names.TOOL_OK, 6.0), ("wrong_tool", 0.2), ("error", 0.1)):
                om.counter(
                    names.TOOL_CALLS_TOTAL,
                    {**f, names.L_TOOL: tool, names.L_OUTCOME: outcome},
                    [rate] * n,
                    times,
                )
        for mode in spec.failure_modes:
            om.counter(names.FAILURE_MODES_TOTAL, {**f, names.L_FAILURE_MODE: mode}, [0.1] * n, times)
        for stage in spec.pipeline.stages if spec.pipeline is not None else ():
            om.histogram(
                names.STAGE_LATENCY_SECONDS, {**f, names.L_STAGE: stage}, SECONDS_CDF, 0.3, [12.0] * n, times
            )
        for workflow, w in spec.workflows.items():
            if flow not in spec.workflow_flows(workflow):
                continue
            for step in w.steps:
                for outcome, rate in ((names.GOOD, 5.0), (names.BAD, 0.05)):
                    labels = {**f, names.L_WORKFLOW: workflow, names.L_STEP: step, names.L_OUTCOME: outcome}
                    om.counter(names.WORKFLOW_STEPS_TOTAL, labels, [rate] * n, times)
        for judge, j in spec.judges.items():
            if j.flows is None or flow in j.flows:
                om.histogram(
                    names.JUDGE_SCORE,
                    {**f, names.L_JUDGE: judge, names.L_JUDGE_VERSION: j.version},
                    SCORE_CDF,
                    0.86,
                    [2.0] * n,
                    times,
                )
        scenario = {**f, names.L_SCENARIO: f"{flow}-smoke"}
        runs = [1.0 if (i * STEP) % 300 == 0 else 0.0 for i in range(n)]
        failing = any(flow == f for _, f in BURNING)
        failed = [r if failing and recent[i] else 0.0 for i, r in enumerate(runs)]
        om.counter(
            names.SYNTHETIC_RUNS_TOTAL, {**scenario, names.L_OUTCOME: names.SYNTHETIC_FAILED}, failed, times
        )
        om.counter(
            names.SYNTHETIC_RUNS_TOTAL,
            {**scenario, names.L_OUTCOME: names.SYNTHETIC_PASSED},
            [r - x for r, x in zip(runs, failed, strict=True)],
            times,
        )
        om.gauge(
            names.SYNTHETIC_CONSECUTIVE_FAILURES, scenario, [(t, 3.0 if failing else 0.0) for t in times]
        )
        ran_at = (float(t) if r else 0.0 for t, r in zip(times, runs, strict=True))
        last_run = zip(times, itertools.accumulate(ran_at, max), strict=True)
        om.gauge(names.SYNTHETIC_LAST_RUN_TIMESTAMP_SECONDS, scenario, list(last_run))
    for judge, j in spec.judges.items():
        labels = {**agent, names.L_JUDGE: judge, names.L_JUDGE_VERSION: j.version}
        om.gauge(names.JUDGE_AGREEMENT_RATIO, labels, [(t, 0.91) for t in times])
        for outcome, rate in (("ok", 3.0), ("error", 0.05)):
            om.counter(names.JUDGE_CALLS_TOTAL, {**labels, names.L_OUTCOME: outcome}, [rate] * n, times)
            om.counter(
                names.JUDGE_COST_USD_TOTAL,
                {**labels, names.L_OUTCOME: outcome},
                [rate * 0.002 if j.type == "llm" else 0.0] * n,
                times,
            )
    release = n - 3600 // STEP
    for version, span in (("1.4.0", times[:release]), ("1.5.0", times[release:])):
        build = {
            **agent,
            names.L_VERSION: version,
            names.L_PROMPT_VERSION: "7",
            names.L_MODEL: spec.models[0],
        }
        om.gauge(names.BUILD_INFO, build, [(t, 1.0) for t in span])
    om.gauge(names.SPEC_INFO, {**agent, names.L_SPEC_HASH: spec.spec_hash}, [(t, 1.0) for t in times])
    return om.text()


# --- a real Prometheus -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(base: str, path: str, **params: Any) -> Any:
    url = f"{base}{path}?{urllib.parse.urlencode(params, doseq=True)}"
    with urllib.request.urlopen(url, timeout=30) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return body["data"]


class Prometheus:
    """Starts and stops /usr/bin/prometheus on a free port over one data directory."""

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.data = workdir, workdir / "data"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, rule_glob: str | None = None) -> None:
        config = {
            "global": {"evaluation_interval": LIVE_INTERVAL},
            "rule_files": [rule_glob] if rule_glob else [],
        }
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        with (self.workdir / "prometheus.log").open("ab") as log:  # the child keeps its own handle
            self.proc = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={self.workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.data}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=30d",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.workdir / "prometheus.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("Prometheus did not become ready in 30s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None


def _promtool(*args: str) -> None:
    result = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (
        f"promtool {' '.join(args[:3])}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    )


def _recording_levels(rule_texts: list[str]) -> list[list[dict[str, Any]]]:
    """Recording rules grouped so that each level reads only raw series and rules of earlier levels."""
    rules = [
        r for text in rule_texts for g in yaml.safe_load(text)["groups"] for r in g["rules"] if "record" in r
    ]
    recorded = {r["record"] for r in rules}

    def reads(rule: dict[str, Any]) -> set[str]:
        return {
            m
            for m in recorded
            if m != rule["record"] and re.search(rf"(?<![\w:]){re.escape(m)}(?![\w:])", rule["expr"])
        }

    level: dict[str, int] = {}
    while len(level) < len(recorded):
        progressed = False
        for name in sorted(recorded - set(level)):
            deps = set().union(*(reads(r) for r in rules if r["record"] == name))
            if deps <= set(level):
                level[name] = 1 + max((level[d] for d in deps), default=-1)
                progressed = True
        assert progressed, f"recording rules read each other in a cycle: {sorted(recorded - set(level))}"
    out: list[list[dict[str, Any]]] = [[] for _ in range(max(level.values()) + 1)]
    for r in rules:
        out[level[r["record"]]].append(r)
    return out


@pytest.fixture(scope="module")
def specs() -> list[Spec]:
    return [load_spec(path) for path in SPECS]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, specs: list[Spec]) -> Iterator[str]:
    if rule_files is None:
        pytest.skip("rules.generate_files is not available yet (rules/ has not landed): nothing to query")
    work = tmp_path_factory.mktemp("prometheus")
    end = int(time.time()) // STEP * STEP
    start = (end - HISTORY) // BUCKET_ALIGN * BUCKET_ALIGN
    times = list(range(start, end + 1, STEP))
    (work / "history.om").write_text(
        "".join(exporter_history(s, times) for s in specs).replace("# EOF\n", "") + "# EOF\n"
    )
    _promtool("tsdb", "create-blocks-from", "openmetrics", str(work / "history.om"), str(work / "data"))

    generated = rule_files(specs)
    prom = Prometheus(work)
    try:
        for i, level in enumerate(_recording_levels(list(generated.values()))):
            path = work / f"level{i}.yaml"
            path.write_text(
                yaml.safe_dump({"groups": [{"name": f"level{i}", "interval": "1m", "rules": level}]})
            )
            prom.start()
            _promtool(
                "tsdb",
                "create-blocks-from",
                "rules",
                f"--url={prom.url}",
                f"--start={start}",
                f"--end={end}",
                f"--output-dir={work / f'blocks{i}'}",
                "--quiet",
                str(path),
            )
            prom.stop()
            for block in (work / f"blocks{i}").iterdir():
                shutil.move(str(block), work / "data" / block.name)
        live = work / "rules"
        live.mkdir()
        for rel, text in generated.items():
            data = yaml.safe_load(text)
            for group in data["groups"]:
                group["interval"] = LIVE_INTERVAL
            (live / Path(rel).name).write_text(yaml.safe_dump(data, sort_keys=False))
        prom.start(str(live / "*.yaml"))
        _wait_for_alerts(prom.url, specs)
        yield prom.url
    finally:
        prom.stop()


def _wait_for_alerts(url: str, specs: list[Spec]) -> None:
    """Until the live rules have evaluated: each agent's burning SLO makes a burn-rate alert pending
    (every agent's groups run at their own offset within the interval)."""
    deadline = time.monotonic() + 60
    waiting = {s.agent for s in specs}
    while waiting and time.monotonic() < deadline:
        for agent in sorted(waiting):
            query = f'{names.PROMETHEUS_ALERTS}{{agent="{agent}", alertname="{names.ALERT_BURN_RATE}"}}'
            if _get(url, "/api/v1/query", query=query)["result"]:
                waiting.discard(agent)
        time.sleep(0.5)
    assert not waiting, f"no burn-rate alert became pending within 60s for {sorted(waiting)}"


# --- the check -------------------------------------------------------------------------------


def _resolve(url: str, board: dict[str, Any], mode: str) -> dict[str, str]:
    """Template variables as Grafana would fill them: `All` (the regex .*), or each one's first or last
    value, in dashboard order so that later variables see the earlier ones' choice."""
    values = dict(GRAFANA_GLOBALS)
    for v in board["templating"]["list"]:
        if v["type"] == "datasource":
            values[v["name"]] = "agent-slo-prometheus"
        elif v["type"] == "textbox":
            values[v["name"]] = v["query"]
        elif v["type"] == "query":
            if mode == "all":
                values[v["name"]] = v["allValue"]
                continue
            selector = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", v["query"])
            assert selector, v["query"]
            found = _get(
                url,
                f"/api/v1/label/{selector.group(2)}/values",
                **{"match[]": lint.substitute(selector.group(1), values)},
            )
            assert found, f"variable {v['name']} has no values: {v['query']}"
            values[v["name"]] = _promql_regex(sorted(found)[0 if mode == "first" else -1])
    return values


def _promql_regex(value: str) -> str:
    """A value as a regex inside a PromQL string, as Grafana escapes it (`a.b` → `a\\\\.b`)."""
    return re.sub(r"([.*+?^${}()|\[\]\\])", r"\\\\\1", value)


def _has_data(result: dict[str, Any]) -> bool:
    if result["resultType"] == "matrix":
        return any(series["values"] for series in result["result"])
    return bool(result["result"])


def _queries(board: dict[str, Any]) -> Iterator[tuple[str, str, bool]]:
    """(where, expr, instant) of every panel query and annotation query."""
    for p in lint.iter_panels(board):
        for t in p.get("targets", []):
            yield f"{p['title']} / {t['refId']}", t["expr"], bool(t.get("instant"))
    for a in board["annotations"]["list"]:
        if a.get("expr"):
            yield f"annotation {a['name']}", a["expr"], False


@pytest.mark.parametrize("mode", ["all", "first", "last"])
@pytest.mark.parametrize(
    "dashboard",
    ["agent-slo-overview.json", "agent-slo-flow.json", "agent-slo-judges.json", "agent-slo-synthetic.json"],
)
def test_every_panel_query_returns_data(
    prometheus: str, specs: list[Spec], dashboard: str, mode: str
) -> None:
    board = build_dashboards(specs)[dashboard]
    values = _resolve(prometheus, board, mode)
    now = time.time()
    empty, checked = [], 0
    for where, expr, instant in _queries(board):
        query = lint.substitute(expr, values)
        assert "$" not in query, f"{where}: unfilled variable in {query}"
        if instant:
            result = _get(prometheus, "/api/v1/query", query=query, time=now)
        else:
            # Annotations span the whole history (the release was an hour ago); panels the last hour.
            start = now - (HISTORY if where.startswith("annotation") else RANGE_WINDOW)
            result = _get(prometheus, "/api/v1/query_range", query=query, start=start, end=now, step=60)
        checked += 1
        if not _has_data(result):
            empty.append(f"{where}: {query}")
    assert checked >= 5
    assert not empty, f"{len(empty)} of {checked} queries returned no data with {mode} values:\n" + "\n".join(
        empty
    )


def test_values_are_the_ones_the_history_implies(prometheus: str, specs: list[Spec]) -> None:
    """Not just present: the refund task SLO is the one burning, and the release is marked once."""
    burn = _get(prometheus, "/api/v1/query", query=f'{names.burn_rate("1h")}{{slo="task-success"}}')["result"]
    by_flow = {r["metric"]["flow"]: float(r["value"][1]) for r in burn}
    assert by_flow["refund"] > 1 > by_flow["order-status"], by_flow
    board = build_dashboards(specs)["agent-slo-flow.json"]
    release = next(a for a in board["annotations"]["list"] if a["name"] == "Releases")
    query = lint.substitute(release["expr"], {"agent": specs[0].agent})
    now = time.time()
    # From 15 minutes into the history (its first 5 minutes mark every build as new): only the release.
    result = _get(prometheus, "/api/v1/query_range", query=query, start=now - HISTORY + 900, end=now, step=60)
    assert {s["metric"]["version"] for s in result["result"]} == {"1.5.0"}
    marked = [float(t) for t, _ in result["result"][0]["values"]]
    assert max(marked) - min(marked) < 6 * 60 and abs(min(marked) - (now - 3600)) < 3 * 60, marked
