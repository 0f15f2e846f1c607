"""The generated rules under `promtool test rules`: the hand-written suites in tests/promtool/, the
suites `agent-slo build` writes, and scenarios whose input is generated here (spiky traffic, judge
drift, emerging failure modes) with concrete expected values."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentslo.rules import generate_files, generate_promtool_tests
from agentslo.spec import load_spec, load_specs

ROOT = Path(__file__).resolve().parent.parent
SUITES = ROOT / "tests" / "promtool"
SHOP = SUITES / "shop.slo.yaml"
LEAN = SUITES / "lean.slo.yaml"  # the same agent with one SLO, for runs of days of 1m evaluations
EXAMPLES = sorted(str(p) for p in (ROOT / "examples").glob("*.slo.yaml"))
PROMTOOL_TIMEOUT = 240


@pytest.fixture
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool binary not found")
    return path


def _run(promtool: str, directory: Path, test_file: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, "test", "rules", test_file],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT,
    )


def _shop_rules(directory: Path) -> None:
    """shop.rules.yaml from shop.slo.yaml, and lean/shop.rules.yaml from lean.slo.yaml."""
    (directory / "lean").mkdir(exist_ok=True)
    for spec, target in ((SHOP, directory), (LEAN, directory / "lean")):
        for rel, content in generate_files([load_spec(spec)]).items():
            (target / rel).write_text(content)


@pytest.mark.slow
@pytest.mark.parametrize("suite", sorted(p.name for p in SUITES.glob("*.test.yaml")))
def test_hand_written_suite_passes(promtool: str, tmp_path: Path, suite: str) -> None:
    _shop_rules(tmp_path)
    shutil.copy(SUITES / suite, tmp_path / suite)
    result = _run(promtool, tmp_path, suite)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_a_wrong_expectation_fails_the_suite(promtool: str, tmp_path: Path) -> None:
    """The suites can fail: the same burn suite with the page expected one minute early does."""
    _shop_rules(tmp_path)
    text = (SUITES / "burn.test.yaml").read_text()
    wrong = text.replace("eval_time: 62m", "eval_time: 60m", 1)
    assert wrong != text
    (tmp_path / "wrong.test.yaml").write_text(wrong)
    result = _run(promtool, tmp_path, "wrong.test.yaml")
    assert result.returncode != 0 and "page_fast" in result.stdout + result.stderr


@pytest.mark.slow
def test_generated_promtool_tests_pass_and_catch_broken_rules(promtool: str, tmp_path: Path) -> None:
    specs = load_specs(EXAMPLES)
    rules = generate_files(specs)
    for spec in specs:
        rule_file = f"{spec.agent}.rules.yaml"
        tests = generate_promtool_tests([spec], [rule_file])
        ((test_file, content),) = tests.items()
        (tmp_path / rule_file).write_text(rules[rule_file])
        (tmp_path / test_file).write_text(content)
        result = _run(promtool, tmp_path, test_file)
        assert result.returncode == 0, result.stdout + result.stderr
    # Rules whose page thresholds were raised tenfold no longer page in time: the generated tests say so.
    agent = specs[0].agent
    doc = yaml.safe_load(rules[f"{agent}.rules.yaml"])
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("labels", {}).get("burn_tier") == "page_fast":
                rule["expr"] = rule["expr"].replace("> 0.", "> 9.")
    (tmp_path / f"{agent}.rules.yaml").write_text(yaml.safe_dump(doc))
    result = _run(promtool, tmp_path, f"{agent}.rules.test.yaml")
    assert result.returncode != 0


@pytest.mark.slow
def test_generated_promtool_tests_follow_per_slo_options(promtool: str, tmp_path: Path) -> None:
    """`for`, a minimum-events guard above the test's traffic, a ticket-only SLO and a 90d period with
    scaled windows: the generated suite still passes against the generated rules."""
    data = yaml.safe_load(LEAN.read_text())
    data["period"] = "90d"
    data["slos"] = {
        "held": {
            "sli": {"task": {}},
            "objective": 99.5,
            "owner": "oncall",
            "alerting": {"for": "5m", "min_events": 5000},
        },
        "tickets": {
            "sli": {"connection": {}},
            "objective": 95,
            "owner": "oncall",
            "alerting": {"page": False},
        },
    }
    (tmp_path / "options.slo.yaml").write_text(yaml.safe_dump(data))
    spec = load_spec(tmp_path / "options.slo.yaml")
    (tmp_path / "shop.rules.yaml").write_text(generate_files([spec])["shop.rules.yaml"])
    ((test_file, content),) = generate_promtool_tests([spec], ["shop.rules.yaml"]).items()
    suite = yaml.safe_load(content)
    assert (
        len(suite["tests"][0]["promql_expr_test"]) == 2
    )  # only `held` pages; `tickets` is only checked quiet
    (tmp_path / test_file).write_text(content)
    result = _run(promtool, tmp_path, test_file)
    assert result.returncode == 0, result.stdout + result.stderr


def _write_suite(
    directory: Path,
    interval: str,
    series: list[dict[str, str]],
    checks: list[dict[str, Any]],
    alerts: list[dict[str, Any]] | None = None,
    rule_file: str = "shop.rules.yaml",
) -> str:
    _shop_rules(directory)
    group: dict[str, Any] = {"interval": interval, "input_series": series, "promql_expr_test": checks}
    if alerts:
        group["alert_rule_test"] = alerts
    suite = {"rule_files": [rule_file], "evaluation_interval": interval, "tests": [group]}
    (directory / "generated.test.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    return "generated.test.yaml"


def _events(slo: str, outcome: str, values: list[float]) -> dict[str, str]:
    labels = f'agent="shop", flow="checkout", slo="{slo}", outcome="{outcome}"'
    return {"series": f"agent_slo_events_total{{{labels}}}", "values": " ".join(f"{v:g}" for v in values)}


def _cumulative(per_step: list[float]) -> list[float]:
    out, total = [0.0], 0.0
    for x in per_step:
        total += x
        out.append(total)
    return out


BUSY_PER_MINUTE = 1000  # clean events a minute in a busy hour
QUIET_PER_MINUTE = 2  # events a minute in a quiet hour, half of them bad
SPIKY_HOURS = 48


@pytest.mark.slow
def test_period_ratio_on_spiky_traffic_is_event_weighted(promtool: str, tmp_path: Path) -> None:
    """Busy clean hours and quiet bad hours: the recorded period ratio is within 2% of bad / all events
    counted from the raw input (1,440 bad events), where a mean of 5m ratios is off by ~100x."""
    good, bad = [], []
    for hour in range(SPIKY_HOURS):
        busy = hour % 2 == 0
        good += [BUSY_PER_MINUTE if busy else QUIET_PER_MINUTE / 2] * 60
        bad += [0 if busy else QUIET_PER_MINUTE / 2] * 60
    exact = sum(bad) / (sum(good) + sum(bad))
    assert sum(bad) >= 1000
    end = f"{SPIKY_HOURS * 60}m"
    ratio = 'agent_slo:sli_error:ratio_rate30d{slo="availability"}'
    checks = [
        {
            "expr": f"abs({ratio} / {exact!r} - 1) < bool 0.02",
            "eval_time": end,
            "exp_samples": [{"labels": '{agent="shop", slo="availability", flow="checkout"}', "value": 1}],
        },
        # What a mean of short-window ratios (Sloth's period ratio) would report: orders of magnitude off.
        {
            "expr": f'avg_over_time(agent_slo:sli_error:ratio_rate5m{{slo="availability"}}[{end}])'
            f" / {exact!r} > bool 50",
            "eval_time": end,
            "exp_samples": [{"labels": '{agent="shop", slo="availability", flow="checkout"}', "value": 1}],
        },
    ]
    series = [
        _events("availability", "good", _cumulative(good)),
        _events("availability", "bad", _cumulative(bad)),
    ]
    # Evaluated every 5 minutes: the check is on recorded values, and every evaluation then records a bucket.
    suite = _write_suite(tmp_path, "5m", [{**s, "values": _every(s["values"], 5)} for s in series], checks)
    result = _run(promtool, tmp_path, suite)
    assert result.returncode == 0, result.stdout + result.stderr


def _every(values: str, step: int) -> str:
    return " ".join(values.split()[::step])


@pytest.mark.slow
def test_judge_drift_fires_two_sigma_below_baseline(promtool: str, tmp_path: Path) -> None:
    """Version 1 of `policy` drops from ~0.91 to 0.80 in its last hour (sigma 2, 60 verdicts/hour) and
    fires; version 2 keeps its hourly swing of ±0.01 around the same baseline and does not."""
    steps = 8 * 24 * 12  # eight days of 5-minute samples
    per_step = 5  # verdicts per 5 minutes

    def histogram(version: str, drop: bool) -> list[dict[str, str]]:
        counts, sums = [], []
        for step in range(steps):
            hour = step // 12
            mean = 0.90 if hour % 2 == 0 else 0.92
            if drop and step >= steps - 12:
                mean = 0.80
            counts.append(per_step)
            sums.append(per_step * mean)
        labels = f'agent="shop", flow="checkout", judge="policy", judge_version="{version}"'
        return [
            {
                "series": f"agent_slo_judge_score_count{{{labels}}}",
                "values": " ".join(f"{v:g}" for v in _cumulative(counts)),
            },
            {
                "series": f"agent_slo_judge_score_sum{{{labels}}}",
                "values": " ".join(f"{v:.6f}" for v in _cumulative(sums)),
            },
        ]

    end = f"{steps * 5}m"
    alerts = [
        {
            "eval_time": end,
            "alertname": "AgentSLOJudgeScoreDrift",
            "exp_alerts": [
                {
                    "exp_labels": {
                        "agent": "shop",
                        "flow": "checkout",
                        "judge": "policy",
                        "judge_version": "1",
                        "env": "test",
                        "team": "sre",
                        "owner": "oncall",
                        "severity": "warning",
                    },
                    "exp_annotations": {
                        "summary": "A judge's scores of shop drifted from their baseline.",
                        "description": "The 1h mean score of judge policy version 1 on flow checkout"
                        " is 0.800, more than 2 sigma from its 7d baseline"
                        " (at least 30 verdicts in the window).",
                    },
                }
            ],
        },
        {"eval_time": f"{(steps - 13) * 5}m", "alertname": "AgentSLOJudgeScoreDrift", "exp_alerts": []},
    ]
    checks = [
        {
            "expr": 'round(agent_slo:judge_score_baseline:mean{judge_version="2"}, 0.001)',
            "eval_time": end,
            "exp_samples": [
                {
                    "labels": '{agent="shop", flow="checkout", judge="policy", judge_version="2"}',
                    "value": 0.91,
                }
            ],
        }
    ]
    series = [*histogram("1", True), *histogram("2", False)]
    suite = _write_suite(tmp_path, "5m", series, checks, alerts, rule_file="lean/shop.rules.yaml")
    result = _run(promtool, tmp_path, suite)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_failure_mode_new_today_fires_once_eight_days_exist(promtool: str, tmp_path: Path) -> None:
    """Hourly samples over nine days: `loop` appears only today and fires; `wrong_tool` was seen on day
    two and again today and does not; `early` appeared on day four, before 8 days of history, and never
    fires."""
    hours = 9 * 24

    def mode(name: str, active: list[range]) -> dict[str, str]:
        per_hour = [3 if any(h in r for r in active) else 0 for h in range(hours)]
        labels = f'agent="shop", flow="checkout", failure_mode="{name}"'
        return {
            "series": f"agent_slo_failure_modes_total{{{labels}}}",
            "values": " ".join(f"{v:g}" for v in _cumulative(per_hour)),
        }

    today = range(hours - 12, hours)
    series = [
        mode("loop", [today]),
        mode("wrong_tool", [range(30, 40), today]),
        mode("early", [range(96, 108)]),
    ]
    # Hourly evaluations at which each mode's alert was firing over the nine days: `loop` from its first
    # counted hour (205) to the end (216), the others never.
    fired = 'sum by (failure_mode) (count_over_time(ALERTS{alertname="AgentSLOFailureModeEmerged"}[9d]))'
    checks = [
        {
            "expr": fired,
            "eval_time": f"{hours}h",
            "exp_samples": [{"labels": '{failure_mode="loop"}', "value": 12}],
        }
    ]
    suite = _write_suite(tmp_path, "1h", series, checks)
    result = _run(promtool, tmp_path, suite)
    assert result.returncode == 0, result.stdout + result.stderr
