"""Four weeks of an agent's SLO history, of known shape, backfilled into a real Prometheus.

The review commands (`report`, `suggest`, `backtest`) read history; their tests need history whose
answers are known in advance. `review_history` (a module-scoped pytest fixture: import it into a test
module) writes it with promtool (`demo.backfill.create_blocks` over `demo.traffic.history_openmetrics`,
the demo's own backfill path) and starts Prometheus on it (`demo.servers.Prometheus`):

    from tests.doubles.history import review_history  # noqa: F401  (a fixture)

    def test_something(review_history: ReviewHistory) -> None:
        client = PrometheusClient(review_history.url)
        ...

Agent `review-cx`, one SLO (`task-success`, 99%, 30d period), `DAYS` days ending at `end`
(midnight UTC today), counters sampled every `STEP_S` seconds, one exporter replica:

| flow | traffic | what happens |
|---|---|---|
| `steady` | 10 tasks/min | 0.3% fail, all along: healthy weeks |
| `outage` | 10 tasks/min | 0.5% fail, except `OUTAGE` (2h on day 17): 40% fail |
| `drift` | 10 tasks/min | 0.5% fail until the release (day 7), then up to 12% on day 28 (3 weeks) |
| `quiet` | 20 tasks/day | never fails: the low-traffic flow |

Besides the counters: `agent_slo_build_info` (release 1.0.0, then 1.1.0 at `RELEASE_AT`), the `ALERTS`
a watching Prometheus recorded for the outage (`OUTAGE_ALERT`), and `agent_slo:autonomy_state:code`
(critical on `outage` during the outage, warning on `drift` from day 10). Counts are whole events
(the running total of the expected events, rounded down), so `expected_counts` is exact and
`counter_samples` is exactly what Prometheus stores (values stay under a million, which the
OpenMetrics writer prints exactly).
"""

from __future__ import annotations

import functools
import math
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from agentslo import names
from agentslo.demo.backfill import create_blocks
from agentslo.demo.servers import Prometheus, Server, find_binary
from agentslo.demo.traffic import history_openmetrics
from agentslo.spec import Spec, load_spec

DAY: Final = 86_400
DAYS: Final = 28
STEP_S: Final = 150  # two samples in every 5m window, as increase() needs (demo.backfill)
AGENT: Final = "review-cx"
SLO: Final = "task-success"
OBJECTIVE: Final = 99.0
PER_MIN: Final = {"steady": 10.0, "outage": 10.0, "drift": 10.0, "quiet": 20 / 1440}
# Offsets from the history's start, in seconds.
OUTAGE: Final = (17 * DAY + 10 * 3600, 17 * DAY + 12 * 3600)
OUTAGE_ERROR: Final = 0.4
RELEASE_AT: Final = 7 * DAY
DRIFT_TO: Final = 0.12
BASE_ERROR: Final = {"steady": 0.003, "outage": 0.005, "drift": 0.005, "quiet": 0.0}
# What the Prometheus that watched the outage recorded (relative to the start), for the report.
OUTAGE_ALERT: Final = (OUTAGE[0] + 600, OUTAGE[1] + 1800)
DRIFT_WARNING_FROM: Final = 10 * DAY

SPEC_YAML: Final = f"""\
# The review tests' agent: four flows with known histories (tests/doubles/history.py).
version: agent-slo/v1
agent: {AGENT}
labels: {{team: review}}
period: 30d
owners:
  product: {{team: review-product}}  # who is paged
flows:
  steady: {{risk: faq}}
  outage: {{risk: faq}}
  drift:  {{risk: faq}}
  quiet:  {{risk: faq}}
slos:
  # the one SLO every flow is measured by
  {SLO}: {{sli: {{task: {{}}}}, objective: {OBJECTIVE:g}, owner: product}}
"""


def error_rate(flow: str, elapsed: float) -> float:
    """The share of failing tasks on `flow` at `elapsed` seconds into the history."""
    if flow == "outage" and OUTAGE[0] <= elapsed < OUTAGE[1]:
        return OUTAGE_ERROR
    if flow == "drift" and elapsed >= RELEASE_AT:
        share = (elapsed - RELEASE_AT) / (DAYS * DAY - RELEASE_AT)
        return BASE_ERROR[flow] + (DRIFT_TO - BASE_ERROR[flow]) * share
    return BASE_ERROR[flow]


@functools.cache
def counter_values(flow: str) -> tuple[list[int], list[int]]:
    """The stored good and bad counter values of `flow`, one per `STEP_S` from the start (offset 0)
    to the end inclusive: running totals of the expected events, rounded down."""
    good_total = bad_total = 0.0
    good: list[int] = []
    bad: list[int] = []
    for i in range(DAYS * DAY // STEP_S + 1):
        if i:
            n = PER_MIN[flow] * STEP_S / 60
            p = error_rate(flow, (i - 1) * STEP_S)
            good_total += n * (1 - p)
            bad_total += n * p
        good.append(math.floor(good_total + 1e-9))
        bad.append(math.floor(bad_total + 1e-9))
    return good, bad


def labels(flow: str, outcome: str) -> dict[str, str]:
    """The labels of one stored event counter series (one replica, counted events)."""
    return {
        names.L_AGENT: AGENT,
        names.L_FLOW: flow,
        names.L_SLO: SLO,
        names.L_OUTCOME: outcome,
        names.L_EXCLUSION: "",
        "job": "agent-slo",
        "instance": "replica-0",
    }


def expected_counts(flow: str, start_offset: float, end_offset: float) -> tuple[int, int]:
    """(good, bad) events counted between two offsets that are multiples of STEP_S."""
    good, bad = counter_values(flow)
    a, b = int(start_offset // STEP_S), int(end_offset // STEP_S)
    return good[b] - good[a], bad[b] - bad[a]


def openmetrics(start: float, lo: int = 0, hi: int = DAYS * DAY + 1) -> str:
    """The history between offsets [lo, hi) as OpenMetrics, the history starting at unix time `start`."""

    def samples() -> Iterator[tuple[float, str, dict[str, str], float]]:
        for flow in PER_MIN:
            good, bad = counter_values(flow)
            for outcome, values in ((names.GOOD, good), (names.BAD, bad)):
                series = labels(flow, outcome)
                for i in range(-(-lo // STEP_S), min(len(values), -(-hi // STEP_S))):
                    yield start + i * STEP_S, names.EVENTS_TOTAL, series, values[i]
        build = {names.L_AGENT: AGENT, names.L_PROMPT_VERSION: "p1", names.L_MODEL: "gpt-4o-mini"}
        every_5m = range(-(-lo // 300) * 300, min(DAYS * DAY + 1, hi), 300)
        for t in every_5m:
            version = "1.0.0" if t < RELEASE_AT else "1.1.0"
            yield start + t, names.BUILD_INFO, {**build, names.L_VERSION: version}, 1
        alert = {
            "alertname": names.ALERT_BURN_RATE,
            "alertstate": "firing",
            names.L_AGENT: AGENT,
            names.L_SLO: SLO,
            names.L_FLOW: "outage",
            names.L_SEVERITY: "critical",
            names.L_BURN_TIER: "page_fast",
        }
        for t in range(max(lo, OUTAGE_ALERT[0]), min(hi, OUTAGE_ALERT[1]), 60):
            yield start + t, names.PROMETHEUS_ALERTS, alert, 1
        for flow in PER_MIN:
            for t in every_5m:
                code = 0
                if flow == "outage" and OUTAGE[0] <= t < OUTAGE[1]:
                    code = 2
                elif flow == "drift" and t >= DRIFT_WARNING_FROM:
                    code = 1
                yield start + t, names.AUTONOMY_STATE, {names.L_AGENT: AGENT, names.L_FLOW: flow}, code

    types = {
        names.EVENTS_TOTAL: "counter",
        names.BUILD_INFO: "gauge",
        names.PROMETHEUS_ALERTS: "gauge",
        names.AUTONOMY_STATE: "gauge",
    }
    return history_openmetrics(samples(), types)


@dataclass(frozen=True)
class ReviewHistory:
    """A running Prometheus holding the history, and what the tests need to ask about it."""

    url: str
    spec_path: Path
    spec: Spec
    start: float  # unix time of the first sample
    end: float  # unix time of the last sample (midnight UTC)
    server: Server

    def at(self, offset: float) -> float:
        """Unix time of an offset into the history."""
        return self.start + offset


def needs_prometheus() -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not (find_binary("prometheus") and find_binary("promtool")), reason="needs prometheus and promtool"
    )


_BLOCKS: dict[str, tuple[Path, float]] = {}  # written once per test process, copied per module


def _blocks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """The history's blocks (written on first use) and its start time."""
    if "data" not in _BLOCKS:
        work = tmp_path_factory.mktemp("review-history-blocks")
        end = math.floor(time.time() / DAY) * DAY
        start = end - DAYS * DAY
        # One promtool run per day: it re-reads its whole input for every 2h block it writes, so 29
        # small inputs (two at a time) take seconds where one big one takes most of a minute.
        with ThreadPoolExecutor(max_workers=2) as pool:
            days = [openmetrics(start, d * DAY, (d + 1) * DAY) for d in range(DAYS + 1)]
            list(pool.map(lambda text: create_blocks(text, work / "data"), days))
        _BLOCKS["data"] = (work / "data", start)
    return _BLOCKS["data"]


@pytest.fixture(scope="module")
def review_history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReviewHistory]:
    """Prometheus serving a fresh copy of the history (stopped after the module)."""
    blocks, start = _blocks(tmp_path_factory)
    work = tmp_path_factory.mktemp("review-history")
    shutil.copytree(blocks, work / "data")
    spec_path = work / f"{AGENT}.slo.yaml"
    spec_path.write_text(SPEC_YAML, encoding="utf-8")
    with Prometheus.start(
        work / "prometheus", {"global": {}}, data_dir=work / "data", retention="60d"
    ) as prom:
        yield ReviewHistory(prom.url, spec_path, load_spec(spec_path), start, start + DAYS * DAY, prom)
