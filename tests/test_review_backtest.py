"""`agent-slo backtest` over four weeks of known history in a real Prometheus (tests/doubles/history.py).

The proof of equality: over half a day of the stored history (the outage, with the drift paging on
and off beside it), the backtest's alerts are handed to Prometheus' own rule engine as expectations:
`promtool test rules` evaluates the generated rules (annotations left out: they are templates, not
conditions) over the same raw samples, read back from Prometheus, and checks the firing alerts at
every hour and one evaluation before and at every start and end the backtest reported. It passes
only if both fire exactly the same alerts, with the same labels, at the same evaluations.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from agentslo import cli, names
from agentslo.demo.servers import find_binary, free_port
from agentslo.prometheus import PrometheusClient
from agentslo.review import replay
from agentslo.review.history import DAY, AlertInterval, History
from agentslo.review.options import parse_time
from agentslo.rules.generate import dump, generate_files
from tests.doubles import history as h
from tests.doubles.history import ReviewHistory, needs_prometheus, review_history  # noqa: F401

pytestmark = [needs_prometheus(), pytest.mark.timeout(240)]
PROMTOOL_TIMEOUT_S = 180
SLICE = (17 * DAY + 4 * 3600, 17 * DAY + 16 * 3600)  # the outage, with the drift paging beside it
SLO_ALERTS = (names.ALERT_BURN_RATE, names.ALERT_BUDGET_LOW, names.ALERT_BUDGET_EXHAUSTED)


def backtest(
    capsys: pytest.CaptureFixture[str], history: ReviewHistory, *argv: str, url: str | None = None
) -> tuple[int, str, str]:
    """`agent-slo backtest` of the history's spec, up to the history's end (or against `url`)."""
    prometheus = ["--prometheus", url or history.url, "--end", str(history.end)]
    code = cli.main(["backtest", str(history.spec_path), *prometheus, *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_backtest_finds_the_outage_and_the_drift_and_nothing_in_the_healthy_weeks(
    review_history: ReviewHistory,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = backtest(capsys, review_history, "--days", str(h.DAYS), "--json")
    assert code == 0, err
    alerts = json.loads(out)["alerts"]
    assert alerts and set(alerts[0]) >= {
        "alertname",
        "agent",
        "slo",
        "flow",
        "severity",
        "burn_tier",
        "start",
        "end",
    }
    by_flow: dict[str, list[dict[str, Any]]] = {}
    for a in alerts:
        by_flow.setdefault(a["flow"], []).append(a)
    # the healthy flows never alert; nothing at all in the first week
    assert set(by_flow) == {"outage", "drift"}

    def offset(text: str) -> float:
        return parse_time(text) - review_history.start

    assert min(offset(a["start"]) for a in alerts) > h.RELEASE_AT
    # the outage: every burn tier pages or tickets, from within the outage, over within a day
    outage = by_flow["outage"]
    assert {a["burn_tier"] for a in outage} == {"page_fast", "page_slow", "ticket_fast", "ticket_slow"}
    assert all(h.OUTAGE[0] < offset(a["start"]) < h.OUTAGE[1] for a in outage)
    assert all(a["end"] is not None and offset(a["end"]) < h.OUTAGE[1] + DAY for a in outage)
    page_fast = next(a for a in outage if a["burn_tier"] == "page_fast")
    assert page_fast["severity"] == "critical" and page_fast["alertname"] == names.ALERT_BURN_RATE
    # the drift: a slow ticket first (days after the release), the budget spent, still firing at the end
    drift = sorted(by_flow["drift"], key=lambda a: a["start"])
    assert drift[0]["burn_tier"] == "ticket_slow" and offset(drift[0]["start"]) > h.RELEASE_AT + DAY
    assert any(a["alertname"] == names.ALERT_BUDGET_EXHAUSTED and a["end"] is None for a in drift)
    assert all(a["burn_tier"] != "page_fast" for a in drift)


def _promtool_test(
    work: Path,
    rules: dict[str, Any],
    raw: list[Any],
    origin: float,
    found: list[AlertInterval],
    length: float,
) -> subprocess.CompletedProcess[str]:
    """Prometheus' rule engine over the same samples, expecting exactly `found` at the checked times."""
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (work / "rules.yaml").write_text(dump(rules), encoding="utf-8")
    series = []
    for s in raw:
        values = dict(zip(s.t.tolist(), s.v.tolist(), strict=True))
        steps = range(0, int(length) + 1, h.STEP_S)
        text = " ".join(f"{values[origin + t]:g}" if origin + t in values else "_" for t in steps)
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()) if k != "__name__")
        series.append({"series": f"{names.EVENTS_TOTAL}{{{labels}}}", "values": text})
    times = set(range(3600, int(length) + 1, 3600))
    for a in found:
        for t in (a.start, a.start - 60, a.end, None if a.end is None else a.end - 60):
            if t is not None and origin < t <= origin + length:
                times.add(int(t - origin))
    checks = []
    for t in sorted(times):
        for alertname in SLO_ALERTS:
            firing = [
                {"exp_labels": {k: v for k, v in a.labels.items() if k != "alertname"}}
                for a in found
                if a.alertname == alertname
                and a.start <= origin + t
                and (a.end is None or origin + t < a.end)
            ]
            checks.append({"eval_time": f"{t}s", "alertname": alertname, "exp_alerts": firing})
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": f"{h.STEP_S}s", "input_series": series, "alert_rule_test": checks}],
    }
    (work / "test.yaml").write_text(yaml.safe_dump(test, width=1 << 30), encoding="utf-8")
    return subprocess.run(
        [find_binary("promtool") or "promtool", "test", "rules", "test.yaml"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
    )


def test_backtest_fires_exactly_what_prometheus_rule_engine_fires_over_the_same_samples(
    review_history: ReviewHistory,  # noqa: F811
    tmp_path: Path,
) -> None:
    spec = review_history.spec
    start, end = review_history.at(SLICE[0]), review_history.at(SLICE[1])
    raw = History(PrometheusClient(review_history.url, timeout=60)).raw_counters(spec.agent, start, end)
    found = replay.alerts_of(replay.replay(spec, raw, start, end))
    tiers = {(a.key.flow, a.burn_tier) for a in found}
    # the day holds alerts of both kinds of incident, so the comparison below has something to agree on
    assert ("outage", "page_fast") in tiers and ("drift", "page_slow") in tiers
    rules = yaml.safe_load(next(iter(generate_files([spec]).values())))
    result = _promtool_test(tmp_path, rules, raw, start, found, end - start)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    # and the comparison can fail: one alert less is a difference Prometheus reports
    result = _promtool_test(tmp_path, rules, raw, start, found[1:], end - start)
    assert result.returncode != 0


def test_unreachable_prometheus_is_a_message_and_exit_2(
    review_history: ReviewHistory,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = backtest(capsys, review_history, "--timeout", "2", url=url)
    assert code == 2 and out == ""
    assert "could not be reached" in err and url in err and "Traceback" not in err


def test_history_shorter_than_asked_is_a_message_and_exit_2(
    review_history: ReviewHistory,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = backtest(capsys, review_history, "--days", "40")
    assert code == 2 and out == ""
    assert "28 days of history" in err and "40 days asked" in err and "Traceback" not in err


def test_against_prints_both_specs_side_by_side(
    review_history: ReviewHistory,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    looser = tmp_path / "looser.slo.yaml"
    looser.write_text(h.SPEC_YAML.replace(f"objective: {h.OBJECTIVE:g}", "objective: 95"), encoding="utf-8")
    code, out, err = backtest(capsys, review_history, "--days", "7", "--against", str(looser))
    assert code == 0, err
    assert "side by side:" in out and "pages/week" in out and "tickets/week" in out
    side = out.split("side by side:")[1]
    drift_row = next(line for line in side.splitlines() if "drift: page_slow" in line)
    # at 99% the drift's last week pages on and off; at 95% it never burns 6x the budget
    assert drift_row.split()[-2] != "-" and drift_row.split()[-1] == "-"


def test_increase_is_prometheus_increase_to_the_bit_with_resets_and_gaps(tmp_path: Path) -> None:
    # a counter with a reset (20 → 5, 45 → 2) and a gap, every minute; windows of 2, 5 and 10 minutes
    values = [0, 10, 20, 5, 15, None, None, 30, 40, 45, 2, 4]
    stored = [(i * 60.0, float(v)) for i, v in enumerate(values) if v is not None]
    counter = replay._counter(np.array([t for t, _ in stored]), np.array([v for _, v in stored]))
    at = np.arange(0, 900, 30.0)
    checks = []
    for window in (120, 300, 600):
        value, present = replay.increase(counter, at, float(window))
        for t, x, ok in zip(at, value, present, strict=True):
            expected = [{"labels": "{}", "value": float(x)}] if ok else []
            checks.append(
                {"expr": f"increase(x[{window}s])", "eval_time": f"{int(t)}s", "exp_samples": expected}
            )
    assert sum(1 for c in checks if not c["exp_samples"]) >= 3  # absent where fewer than two samples
    series = " ".join("_" if v is None else str(v) for v in values)
    test = {
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": "x", "values": series}],
                "promql_expr_test": checks,
            }
        ]
    }
    (tmp_path / "increase.yaml").write_text(yaml.safe_dump(test), encoding="utf-8")
    result = subprocess.run(
        [find_binary("promtool") or "promtool", "test", "rules", "increase.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
