"""End to end: prober → exporter → generated rules → `promtool test rules`.

The fake agent fails a scenario, passes it once, then fails it three times in a row; after every
cycle the exporter's /metrics is scraped, and the observed `agent_slo_synthetic_consecutive_failures`
values become the input series of a promtool unit test over the rules `rules.generate_files` makes.
AgentSLOSyntheticFailing must fire after the third consecutive failure and not after the second.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from agentslo import names
from agentslo.durations import parse_duration
from agentslo.exporter.app import create_app
from agentslo.exporter.config import ExporterConfig
from agentslo.rules import generate_files
from agentslo.scenario import load_scenarios
from agentslo.spec import load_spec
from agentslo.synthetic.runner import run_cycle
from agentslo.synthetic.sinks import HttpSink
from tests.doubles.cx_agent import running_fake_agent

ROOT = Path(__file__).resolve().parent.parent
CX = ROOT / "examples" / "cx-support.slo.yaml"
SCENARIO = "order-status-shipped"
# One prober cycle per 5 minutes (the spec's interval): fail, fail, pass, fail, fail, fail.
BEHAVIOURS = ["wrong_tool", "wrong_tool", "good", "wrong_tool", "wrong_tool", "wrong_tool"]
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")


async def _observe() -> list[tuple[dict[str, str], float, float]]:
    """Run the cycles against the real exporter; (gauge labels, gauge value, failed runs) after each."""
    spec = load_spec(CX)
    scenarios = [s for s in load_scenarios(spec) if s.name == SCENARIO]
    runner = web.AppRunner(create_app([spec], ExporterConfig()), shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    sink = HttpSink(url)
    observed = []
    try:
        async with running_fake_agent() as agent:
            for behaviour in BEHAVIOURS:
                agent.behaviour = behaviour
                (result,) = await run_cycle(spec, scenarios, target_url=agent.base_url, sink=sink)
                assert result.passed == (behaviour == "good"), result.summary()
                observed.append(await _scrape(sink, url))
    finally:
        await sink.aclose()
        await runner.cleanup()
    return observed


async def _scrape(sink: HttpSink, url: str) -> tuple[dict[str, str], float, float]:
    async with sink._client().get(url + "/metrics") as resp:
        text = await resp.text()
    gauge: tuple[dict[str, str], float] | None = None
    failed = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get(names.L_SCENARIO) != SCENARIO:
                continue
            if s.name == names.SYNTHETIC_CONSECUTIVE_FAILURES:
                gauge = (dict(s.labels), s.value)
            if (
                s.name == names.SYNTHETIC_RUNS_TOTAL
                and s.labels.get(names.L_OUTCOME) == names.SYNTHETIC_FAILED
            ):
                failed = s.value
    assert gauge is not None, f"{names.SYNTHETIC_CONSECUTIVE_FAILURES} for {SCENARIO} is not exposed"
    return gauge[0], gauge[1], failed


def _series(labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{names.SYNTHETIC_CONSECUTIVE_FAILURES}{{{inner}}}"


def _render(template: str, labels: dict[str, str], value: float) -> str:
    """Expand the simple Go templates the annotations use ({{ $labels.x }}, {{ $value }})."""
    out = re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)
    out = re.sub(r"\{\{\s*\$value\s*\}\}", f"{value:g}", out)
    assert "{{" not in out, f"annotation template needs a real renderer: {template}"
    return out


def _alert_rule(rule_text: str) -> dict[str, Any]:
    for group in yaml.safe_load(rule_text)["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == names.ALERT_SYNTHETIC_FAILING:
                return rule
    raise AssertionError(f"{names.ALERT_SYNTHETIC_FAILING} is not generated")


def _test_file(
    rule_file: str,
    labels: dict[str, str],
    values: list[float],
    rule: dict[str, Any],
    fire_at: list[int],
    quiet_at: list[int],
) -> dict[str, Any]:
    step = 5  # minutes between prober cycles
    hold = parse_duration(rule.get("for", "0s")) // 60 if rule.get("for") else 0
    alert_labels = {
        **rule.get("labels", {}),
        **{k: labels[k] for k in (names.L_AGENT, names.L_FLOW, names.L_SCENARIO)},
    }
    cases = []
    for cycle in quiet_at:
        cases.append(
            {
                "eval_time": f"{cycle * step + hold}m",
                "alertname": names.ALERT_SYNTHETIC_FAILING,
                "exp_alerts": [],
            }
        )
    for cycle in fire_at:
        annotations = {
            k: _render(v, alert_labels, values[cycle]) for k, v in rule.get("annotations", {}).items()
        }
        cases.append(
            {
                "eval_time": f"{cycle * step + hold}m",
                "alertname": names.ALERT_SYNTHETIC_FAILING,
                "exp_alerts": [{"exp_labels": alert_labels, "exp_annotations": annotations}],
            }
        )
    return {
        "rule_files": [rule_file],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": f"{step}m",
                "input_series": [{"series": _series(labels), "values": " ".join(f"{v:g}" for v in values)}],
                "alert_rule_test": cases,
            }
        ],
    }


def _promtool(tmp_path: Path, test: dict[str, Any], name: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    return subprocess.run(
        [PROMTOOL, "test", "rules", name], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


async def test_synthetic_failing_fires_after_three_consecutive_failures_not_two(tmp_path: Path) -> None:
    observed = await _observe()
    labels = observed[0][0]
    values = [value for _, value, _ in observed]
    assert values == [1, 2, 0, 1, 2, 3]  # the exporter's streak, as scraped after each cycle
    assert [failed for _, _, failed in observed] == [1, 2, 2, 3, 4, 5]

    files = generate_files([load_spec(CX)])
    (rule_file,) = files
    (tmp_path / rule_file).write_text(files[rule_file])
    rule = _alert_rule(files[rule_file])

    # Cycle index → minutes: 0 → 0m, ..., 5 → 25m. Two in a row (cycles 1 and 4) stay quiet.
    ok = _promtool(
        tmp_path,
        _test_file(rule_file, labels, values, rule, fire_at=[5], quiet_at=[0, 1, 2, 3, 4]),
        "synthetic_test.yaml",
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "SUCCESS" in ok.stdout

    # The same harness fails when told the alert fires after only two consecutive failures.
    wrong = _promtool(
        tmp_path,
        _test_file(rule_file, labels, values, rule, fire_at=[1], quiet_at=[]),
        "synthetic_wrong_test.yaml",
    )
    assert wrong.returncode != 0
    assert names.ALERT_SYNTHETIC_FAILING in wrong.stdout + wrong.stderr
