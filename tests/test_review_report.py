"""`agent-slo report` over a real Prometheus holding four weeks of known history (tests/doubles/history.py).

The report is built once per module (HTML and Markdown, over the whole 28-day history, so the
outage of day 17, the release of day 7, the drift after it and the quiet flow are all in the
window) and then read: as text, parsed, and opened in headless Chromium driven over the DevTools
protocol (aiohttp's websocket client; no browser download, no JavaScript in the page).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import io
import itertools
import json
import math
import re
import subprocess
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from agentslo import names
from agentslo.cli import main
from agentslo.demo.backfill import create_blocks
from agentslo.demo.servers import Prometheus, free_port
from agentslo.demo.traffic import history_openmetrics
from agentslo.prometheus import PrometheusClient
from agentslo.review import report
from agentslo.review.history import DAY, History
from agentslo.review.report_model import FlowReview, Report, fmt_duration
from agentslo.review.report_render import render_html, render_markdown
from agentslo.spec import load_spec
from tests.doubles import history as h
from tests.doubles.history import ReviewHistory, needs_prometheus

pytestmark = needs_prometheus()
review_history = h.review_history  # the shared module-scoped fixture: four weeks in a real Prometheus

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def built(review_history: ReviewHistory) -> Report:
    history = History(PrometheusClient(review_history.url))
    return report.build_report(history, [review_history.spec], h.DAYS, end=review_history.end)


@pytest.fixture(scope="module")
def html_file(built: Report, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "review.html"
    path.write_text(render_html(built), encoding="utf-8")
    return path


def _flow(built: Report, name: str) -> Any:
    return next(f for f in built.flows if f.flow == name)


# --- what the report says about the known history ---


def test_the_outage_shows_as_its_page_with_start_and_duration(
    built: Report, review_history: ReviewHistory
) -> None:
    outage = _flow(built, "outage").slos[0]
    [alert] = outage.alerts
    assert (alert.alertname, alert.burn_tier, alert.severity) == ("AgentSLOBurnRate", "page_fast", "critical")
    step = report.ALERTS_STEP_S  # ALERTS are read at this step
    assert abs(alert.start - review_history.at(h.OUTAGE_ALERT[0])) <= step
    assert abs(alert.duration(built.end) - (h.OUTAGE_ALERT[1] - h.OUTAGE_ALERT[0])) <= step
    # the burn rate chart's series crosses the page threshold during the outage, and only then
    page = next(t.burn for t in outage.thresholds if t.tier == "page_fast")
    over = [t for t, v in outage.burn_rate if v >= page]
    assert over and all(
        review_history.at(h.OUTAGE[0]) <= t <= review_history.at(h.OUTAGE[1]) + 3600 for t in over
    )
    md = render_markdown(built)
    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime(alert.start))
    assert f"| AgentSLOBurnRate | page_fast | critical | {started} |" in md
    assert fmt_duration(alert.duration(built.end)) in md
    # the autonomy timeline the rules recorded: critical during the outage
    assert [a.state for a in _flow(built, "outage").autonomy] == ["healthy", "critical", "healthy"]


def test_the_window_and_period_numbers_are_the_histories_counts(
    built: Report, review_history: ReviewHistory
) -> None:
    steady = _flow(built, "steady").slos[0]
    good, bad = h.expected_counts("steady", 0, h.DAYS * DAY)
    assert steady.week.total == pytest.approx(good + bad, rel=0.002)
    assert steady.week.sli == pytest.approx(100 * good / (good + bad), abs=0.01)
    # spent: 0.3% failures against a 1% budget
    assert steady.budget_spent == pytest.approx(0.3, abs=0.01)
    assert steady.burn_down[-1][1] == pytest.approx(steady.budget_left, abs=0.01)


def test_the_drift_shows_as_a_climbing_sli_and_a_spent_budget(built: Report) -> None:
    drift = _flow(built, "drift").slos[0]
    daily = [v for _, v in drift.daily_sli]
    assert daily[0] > 99.4 and daily[-1] < 89, daily
    after_release = daily[h.RELEASE_AT // DAY :]
    assert all(b < a for a, b in itertools.pairwise(after_release))  # falls every day after the release
    assert drift.budget_left is not None and drift.budget_left < -3  # overspent more than four times
    decisions = {(d.kind, d.flow) for d in built.decisions}
    assert ("investigate", "drift") in decisions
    assert [a.state for a in _flow(built, "drift").autonomy] == ["healthy", "warning"]


def test_the_release_is_a_marker_and_in_the_releases_list(
    built: Report, html_file: Path, review_history: ReviewHistory
) -> None:
    [release] = built.releases
    assert release.version == "1.1.0"
    assert abs(release.at - review_history.at(h.RELEASE_AT)) <= 1800
    html = html_file.read_text(encoding="utf-8")
    assert html.count('class="marker"') >= 4  # on every flow's burn-down and burn-rate charts
    assert "1.1.0 / p1 / gpt-4o-mini" in html and "1.1.0 / p1 / gpt-4o-mini" in render_markdown(built)


def test_the_quiet_flow_is_flagged_as_too_thin_for_its_alerts(built: Report) -> None:
    low = [d for d in built.decisions if d.kind == "low_traffic"]
    assert [d.flow for d in low] == ["quiet"]
    assert "20 events/day" in low[0].text and "min_events" in low[0].text
    tighten = {d.flow for d in built.decisions if d.kind == "tighten"}
    assert tighten == {"steady"}  # 0.3% against 1%; not the quiet flow, whose clean weeks prove little


def test_a_period_longer_than_the_history_is_said(built: Report) -> None:
    assert any("30d period" in n and "28.0 days" in n for n in built.notes), built.notes


# --- what explains the SLIs: failure modes, judges, probes; autonomy where the rules never ran ---

EXTRAS_DAYS = 3
EXTRAS_STEP_S = 300
EXTRAS_OUTAGE_H = 36  # the hour (from the start) in which half the tasks fail
EXTRAS_DRIFT_ALERT_H = 50  # the judge drift alert fires for two hours from here: an alert of no one SLO
EXTRAS_SPEC = """\
version: agent-slo/v1
agent: review-extras
owners: {product: {team: product}}
flows: {refund: {risk: billing}}
slos:
  task-success: {sli: {task: {}}, objective: 97, owner: product}
"""


def _extras_openmetrics(start: float) -> str:
    """Three days of agent `review-extras` on flow `refund`, every 5 minutes: 100 tasks/h, 1% failing
    but half in hour 36; failure modes `loop` (one a step) and `wrong_tool` (one every 4th); the
    `faithfulness` judge v3 scoring 2 verdicts a step, its mean falling from 0.9 to 0.8; agreement
    0.82; a probe passing every step, failing once an hour, a prober error every 4h. No recordings."""
    agent = {names.L_AGENT: "review-extras", names.L_FLOW: "refund"}
    judge = {**agent, names.L_JUDGE: "faithfulness", names.L_JUDGE_VERSION: "3"}
    steps = EXTRAS_DAYS * DAY // EXTRAS_STEP_S
    good = bad = score = 0.0
    rows: list[tuple[float, str, dict[str, str], float]] = []
    for i in range(steps + 1):
        t, n = start + i * EXTRAS_STEP_S, 100 * EXTRAS_STEP_S / 3600
        failing = (
            0.5 if (i - 1) * EXTRAS_STEP_S // 3600 == EXTRAS_OUTAGE_H else 0.01
        )  # of the step ending at t
        good, bad = good + (n * (1 - failing) if i else 0), bad + (n * failing if i else 0)
        score += 2 * (0.9 - 0.1 * i / steps) if i else 0
        for outcome, value in ((names.GOOD, good), (names.BAD, bad)):
            labels = {**agent, names.L_SLO: "task-success", names.L_OUTCOME: outcome, names.L_EXCLUSION: ""}
            rows.append((t, names.EVENTS_TOTAL, labels, value))
        rows.append((t, names.FAILURE_MODES_TOTAL, {**agent, names.L_FAILURE_MODE: "loop"}, i))
        rows.append((t, names.FAILURE_MODES_TOTAL, {**agent, names.L_FAILURE_MODE: "wrong_tool"}, i // 4))
        rows.append((t, f"{names.JUDGE_SCORE}_sum", judge, score))
        rows.append((t, f"{names.JUDGE_SCORE}_count", judge, 2 * i))
        agreement = {
            names.L_AGENT: "review-extras",
            names.L_JUDGE: "faithfulness",
            names.L_JUDGE_VERSION: "3",
        }
        rows.append((t, names.JUDGE_AGREEMENT_RATIO, agreement, 0.82))
        if EXTRAS_DRIFT_ALERT_H * 3600 <= i * EXTRAS_STEP_S < (EXTRAS_DRIFT_ALERT_H + 2) * 3600:
            drift = {
                **judge,
                "alertname": names.ALERT_JUDGE_DRIFT,
                "alertstate": "firing",
                "severity": "warning",
            }
            rows.append((t, names.PROMETHEUS_ALERTS, drift, 1))
        for outcome, value in (
            (names.SYNTHETIC_PASSED, i),
            (names.SYNTHETIC_FAILED, i // 12),
            (names.SYNTHETIC_PROBER_ERROR, i // 48),
        ):
            runs = {**agent, names.L_SCENARIO: "refund-window", names.L_OUTCOME: outcome}
            rows.append((t, names.SYNTHETIC_RUNS_TOTAL, runs, value))
    counters = (names.EVENTS_TOTAL, names.FAILURE_MODES_TOTAL, names.SYNTHETIC_RUNS_TOTAL)
    # the histogram's _sum and _count are written as plain series: Prometheus stores them the same way
    types = dict.fromkeys(counters, "counter") | {
        f"{names.JUDGE_SCORE}_sum": "gauge",
        f"{names.JUDGE_SCORE}_count": "gauge",
        names.JUDGE_AGREEMENT_RATIO: "gauge",
        names.PROMETHEUS_ALERTS: "gauge",
    }
    rows.sort(key=lambda r: r[1])
    return history_openmetrics(rows, types)


@pytest.fixture(scope="module")
def extras(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Report, float]]:
    """The review of `review-extras` over its three days (built once), and the history's start."""
    work = tmp_path_factory.mktemp("review-extras")
    end = math.floor(time.time() / DAY) * DAY
    start = end - EXTRAS_DAYS * DAY
    create_blocks(_extras_openmetrics(start), work / "data")
    (work / "spec.yaml").write_text(EXTRAS_SPEC, encoding="utf-8")
    with Prometheus.start(
        work / "prometheus", {"global": {}}, data_dir=work / "data", retention="30d"
    ) as prom:
        history = History(PrometheusClient(prom.url))
        yield report.build_report(history, [load_spec(work / "spec.yaml")], EXTRAS_DAYS, end=end), start


def test_failure_modes_judges_and_probes_are_read_for_their_flow(extras: tuple[Report, float]) -> None:
    built, _ = extras
    [flow] = built.flows
    assert [m for m, _ in flow.failure_modes] == ["loop", "wrong_tool"]
    steps = EXTRAS_DAYS * DAY / EXTRAS_STEP_S
    assert dict(flow.failure_modes) == pytest.approx({"loop": steps, "wrong_tool": steps / 4}, rel=0.02)
    [judge] = flow.judges
    assert (judge.judge, judge.version) == ("faithfulness", "3")
    assert judge.agreement == pytest.approx(0.82)
    assert len(judge.daily_mean) == EXTRAS_DAYS  # one mean per day
    assert judge.drift is not None and -0.09 < judge.drift < -0.04  # the mean fell by 0.1 over 3 days
    assert flow.synthetic is not None  # prober errors are neither passes nor failures
    assert flow.synthetic.sli == pytest.approx(100 * 12 / 13, abs=0.2)
    md = render_markdown(built)
    assert "| loop | 864 |" in md and "| faithfulness | 3 | 82.0% |" in md and "Synthetic probes: 92.3" in md


def test_an_alert_of_no_one_slo_is_listed_under_its_flow(extras: tuple[Report, float]) -> None:
    built, start = extras
    [flow] = built.flows
    [alert] = flow.alerts
    assert (alert.alertname, alert.severity) == (names.ALERT_JUDGE_DRIFT, "warning")
    assert abs(alert.start - (start + EXTRAS_DRIFT_ALERT_H * 3600)) <= report.ALERTS_STEP_S
    assert all(not s.alerts for s in flow.slos)  # not counted as the SLO's page or ticket
    assert "Other alerts on this flow" in render_html(
        built
    ) and "| AgentSLOJudgeScoreDrift |" in render_markdown(built)


def test_the_autonomy_timeline_is_derived_where_the_rules_never_ran(extras: tuple[Report, float]) -> None:
    built, start = extras
    flow: FlowReview = built.flows[0]
    assert flow.autonomy_derived
    # 50% failing against a 3% budget burns ×16.7 that hour: critical (≥ 5), then healthy again
    assert [(a.state, a.start - start, a.end and a.end - start) for a in flow.autonomy] == [
        ("healthy", 0, EXTRAS_OUTAGE_H * 3600),
        ("critical", EXTRAS_OUTAGE_H * 3600, (EXTRAS_OUTAGE_H + 1) * 3600),
        ("healthy", (EXTRAS_OUTAGE_H + 1) * 3600, None),
    ]
    assert "derived from the SLIs" in render_html(built)


# --- the two formats say the same ---


class _Tables(HTMLParser):
    """Every <table> of a page as (class, rows of cell texts)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[tuple[str, list[list[str]]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append((dict(attrs).get("class") or "", []))
        elif tag == "tr":
            self.tables[-1][1].append([])
        elif tag in {"td", "th"}:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in {"td", "th"} and self._cell is not None:
            self.tables[-1][1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _markdown_tables(text: str) -> list[list[list[str]]]:
    tables: list[list[list[str]]] = []
    previous = ""
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            if not previous.startswith("|"):
                tables.append([])
            cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
            tables[-1].append([c.strip().replace("\\|", "|") for c in cells])
        previous = line
    return tables


def test_markdown_and_html_print_the_same_numbers(built: Report, html_file: Path) -> None:
    parser = _Tables()
    parser.feed(html_file.read_text(encoding="utf-8"))
    html_tables = [rows for _, rows in parser.tables]
    md_tables = _markdown_tables(render_markdown(built))
    assert html_tables == md_tables
    summary = dict(parser.tables)["summary"]
    assert len(summary) == 1 + 4  # header + one row per flow
    assert {row[1] for row in summary[1:]} == {"steady", "outage", "drift", "quiet"}
    assert all(re.fullmatch(r"\d+\.\d{3}%", row[4]) for row in summary[1:])  # SLIs, not n/a


def test_every_string_from_history_is_escaped_in_the_page(built: Report) -> None:
    hostile = "<img src=x onerror=alert(1)>&amp;"
    release = dataclasses.replace(built.releases[0], version=hostile, model='"><script>x()</script>')
    page = render_html(dataclasses.replace(built, releases=(release,)))
    assert "<img" not in page and "<script" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;&amp;amp;" in page  # in the list and on every chart marker


# --- the page in a real browser ---


_CHARTS_JS = """JSON.stringify([...document.querySelectorAll('svg.chart')].map(svg => ({
  title: svg.querySelector('title').textContent,
  points: [...svg.querySelectorAll('polyline.series')].reduce((n, p) => n + p.points.numberOfItems, 0),
  states: svg.querySelectorAll('rect.state').length})))"""

_BREAKS_JS = (
    "JSON.stringify([...document.querySelectorAll('section.flow')].map(s => getComputedStyle(s).breakBefore))"
)


async def _open_in_chromium(
    page: Path, screenshot: Path, profile: Path
) -> tuple[list[dict[str, Any]], Any, bytes, list[str]]:
    """Load `page` in headless Chromium; return the DevTools events seen, the charts' data points, the
    page printed as PDF and, in print media, each flow section's page break (a screenshot is written
    to `screenshot`)."""
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "--window-size=800,3000",
        "about:blank",
    ]
    browser = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + CHROMIUM_TIMEOUT_S
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            assert browser.poll() is None and time.monotonic() < deadline, "chromium did not start"
            await asyncio.sleep(0.05)
        port = port_file.read_text().split()[0]
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
                target = next(t for t in await resp.json() if t["type"] == "page")
            async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                events: list[dict[str, Any]] = []
                ids = iter(range(1, 10_000))

                async def call(method: str, **params: Any) -> Any:
                    sent = next(ids)
                    await ws.send_json({"id": sent, "method": method, "params": params})
                    while True:
                        message = json.loads((await ws.receive(timeout=CHROMIUM_TIMEOUT_S)).data)
                        if message.get("id") == sent:
                            assert "error" not in message, message
                            return message["result"]
                        events.append(message)

                for domain in ("Page", "Runtime", "Log", "Network"):
                    await call(f"{domain}.enable")
                await call("Page.navigate", url=page.as_uri())
                while not any(e.get("method") == "Page.loadEventFired" for e in events):
                    events.append(json.loads((await ws.receive(timeout=CHROMIUM_TIMEOUT_S)).data))
                result = await call("Runtime.evaluate", expression=_CHARTS_JS, returnByValue=True)
                shot = await call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
                screenshot.write_bytes(base64.b64decode(shot["data"]))
                pdf = base64.b64decode((await call("Page.printToPDF"))["data"])
                await call("Emulation.setEmulatedMedia", media="print")
                breaks = await call("Runtime.evaluate", expression=_BREAKS_JS, returnByValue=True)
                return (
                    events,
                    json.loads(result["result"]["value"]),
                    pdf,
                    json.loads(breaks["result"]["value"]),
                )
    finally:
        browser.terminate()
        browser.wait(10)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
def test_the_html_page_renders_in_chromium_offline_with_data_in_every_chart(
    html_file: Path, tmp_path: Path
) -> None:
    screenshot = tmp_path / "review.png"
    events, charts, pdf, breaks = asyncio.run(_open_in_chromium(html_file, screenshot, tmp_path / "profile"))
    requests = [
        e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"
    ]
    assert requests == [html_file.as_uri()]  # the file itself, nothing fetched
    errors = [e for e in events if e.get("method") in {"Runtime.exceptionThrown"}]
    errors += [
        e for e in events if e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error"
    ]
    errors += [
        e for e in events if e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"
    ]
    assert errors == []
    # every flow: a burn-down and a burn-rate chart per SLO and an autonomy timeline, each with data
    assert len(charts) == 4 * 3
    assert all(c["points"] >= 2 or c["states"] >= 1 for c in charts), charts
    # printable: it prints, and in print media each of the four flows starts a page of its own
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page[^s]", pdf)) >= 1 + 4
    assert breaks == ["page"] * 4
    assert screenshot.stat().st_size > 0
    with Image.open(screenshot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
    drawn = sum(n for n, rgb in colours if rgb != (255, 255, 255))
    assert len(colours) > 20 and drawn > 0.02 * sum(n for n, _ in colours)  # not a blank page


# --- the command ---


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_the_command_writes_markdown_for_the_history_it_was_asked_about(
    review_history: ReviewHistory, tmp_path: Path
) -> None:
    out = tmp_path / "review.md"
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(review_history.end))
    code, _, err = _cli(
        "report",
        str(review_history.spec_path),
        "--prometheus",
        review_history.url,
        "--days",
        "28",
        "--end",
        end,
        "--format",
        "markdown",
        "-o",
        str(out),
    )
    assert code == 0, err
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# SLO review: review-cx") and "## review-cx / quiet" in text


def test_history_shorter_than_asked_is_exit_2_or_a_said_note(
    review_history: ReviewHistory, tmp_path: Path
) -> None:
    end = str(review_history.end)
    argv = [
        "report",
        str(review_history.spec_path),
        "--prometheus",
        review_history.url,
        "--days",
        "40",
        "--end",
        end,
    ]
    code, out, err = _cli(*argv, "-o", str(tmp_path / "r.html"))
    assert code == 2 and "less than the 40 days asked" in err and "Traceback" not in err
    assert not (tmp_path / "r.html").exists()
    code, out, err = _cli(*argv, "--allow-short", "--format", "markdown")
    assert code == 0, err
    assert "> **Note:** History is shorter than asked: 28.0 days" in out


def test_an_unreachable_prometheus_is_one_clear_line_and_exit_2(review_history: ReviewHistory) -> None:
    port = free_port()
    code, out, err = _cli(
        "report", str(review_history.spec_path), "--prometheus", f"http://127.0.0.1:{port}", "--timeout", "2"
    )
    assert code == 2 and out == ""
    assert f"Prometheus at http://127.0.0.1:{port} could not be reached" in err and "Traceback" not in err
