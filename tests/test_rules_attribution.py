"""The practice signals' rules (rules/attribution.py) under `promtool test rules`: the workflow chain
(10 steps at 99% → 90.4%), each escalation SLI's own burn alerts, the health score arithmetic and
budget-tier consumption (tests/promtool/practice/), plus what is generated for which spec."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from agentslo import names
from agentslo.rules import generate_files
from agentslo.rules.generate import groups
from agentslo.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "tests" / "promtool" / "practice"
DESK = SUITE / "desk.slo.yaml"
PROMTOOL_TIMEOUT = 240


@pytest.mark.slow
def test_practice_suite_passes_under_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool binary not found")
    for rel, content in generate_files([load_spec(DESK)]).items():
        (tmp_path / rel).write_text(content)
    shutil.copy(SUITE / "practice.test.yaml", tmp_path / "practice.test.yaml")
    result = subprocess.run(
        [promtool, "test", "rules", "practice.test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_attribution_group_only_for_specs_with_a_pipeline_or_workflows() -> None:
    desk = {g["name"]: g for g in groups(load_spec(DESK))}
    records = [r.get("record") for r in desk["agent-slo:desk:attribution"]["rules"]]
    assert records == [
        *(names.stage_latency_quantile(q) for q in names.STAGE_QUANTILES),
        names.STAGE_LATENCY_SHARE,
        names.WORKFLOW_STEP_SUCCESS,
        names.WORKFLOW_CHAIN_SUCCESS,
    ]
    shop = {g["name"] for g in groups(load_spec(ROOT / "tests" / "promtool" / "shop.slo.yaml"))}
    assert "agent-slo:shop:attribution" not in shop


def test_health_and_budget_tiers_evaluate_in_the_slo_group_and_never_page() -> None:
    (text,) = generate_files([load_spec(DESK)]).values()
    rules = [
        r for g in yaml.safe_load(text)["groups"] if g["name"] == "agent-slo:desk:slo" for r in g["rules"]
    ]
    recorded = [r.get("record") for r in rules]
    # each reads what is recorded before it in the same group, so none lags its inputs
    assert recorded.index(names.HEALTH_SCORE) > recorded.index(names.HEALTH_COMPONENT)
    assert recorded.index(names.HEALTH_COMPONENT) > recorded.index(names.sli_error_ratio("1h"))
    assert recorded.index(names.BUDGET_TIER_CONSUMED) > recorded.index(names.sli_error_ratio("30d"))
    alerts = [r for g in yaml.safe_load(text)["groups"] for r in g["rules"] if "alert" in r]
    assert not [a for a in alerts if names.HEALTH_SCORE in a["expr"] or names.HEALTH_COMPONENT in a["expr"]]
    (tier,) = [a for a in alerts if a["alert"] == names.ALERT_BUDGET_TIER_SPENT]
    assert tier["labels"]["severity"] == "warning"
    assert {"summary", "description"} <= set(tier["annotations"])
    weights = [r for r in rules if r.get("record") == names.HEALTH_WEIGHT]
    assert {w["labels"]["component"]: w["expr"] for w in weights} == {
        "task_completion": "vector(0.3)",
        "synthetic_pass_rate": "vector(0.3)",
        "step_count": "vector(0.2)",
        "escalation": "vector(0.1)",
        "llm_latency": "vector(0.1)",
    }
