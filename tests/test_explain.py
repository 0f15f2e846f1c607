"""`agent-slo validate`: the arithmetic it prints, and its exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentslo import burn
from agentslo.cli import main
from agentslo.spec import parse_spec

ROOT = Path(__file__).resolve().parent.parent
CX = str(ROOT / "examples" / "cx-support.slo.yaml")

SPEC = """\
version: agent-slo/v1
agent: shop
owners: {product: {team: shop}}
flows: {checkout: {}}
slos:
  tight: {sli: {task: {}}, objective: 99.9, owner: product}
  loose: {sli: {task: {}}, objective: 96, owner: product}
  lax: {sli: {task: {}}, objective: 90, owner: product}
"""


def test_validate_prints_budget_in_events_at_volume(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", CX, "--volume", "10000/day"]) == 0
    out = capsys.readouterr().out
    # refund is a billing flow: auto → 97%: 3% of 10,000 a day, 9,000 over 30 days.
    assert "at 10,000 tasks/day, 97% allows 300 bad tasks/day, 9,000 per 30d" in out
    assert "cx-support: 10 SLOs over 3 flows, OK" in out


def test_validate_explains_tiers_and_caps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(SPEC)
    assert main(["validate", str(path), "--volume", "10000"]) == 0
    out = capsys.readouterr().out
    assert "at 10,000 tasks/day, 96% allows 400 bad tasks/day, 12,000 per 30d" in out
    # 99.9%: page_fast fires at 14.4 × 0.1% = 1.44% errors;
    # a full outage crosses that after 0.0144 h = 51.8 s.
    assert "error ratio > 1.44%; a full outage fires after 51.8 s" in out
    # 90%: 14.4 × 10% = 144% can never happen, so the tier is capped at 50% and says so.
    assert "capped: 14.4 x 10% would need more than 50% errors" in out


def test_tier_thresholds_follow_the_catalog() -> None:
    spec = parse_spec(SPEC.replace("owners:", "period: 28d\nowners:"))
    tiers = {t.name: t for t in burn.tiers(spec, "tight", 99.9)}
    assert tiers["page_fast"].factor == 13.44
    assert tiers["ticket_slow"].factor == 0.933
    assert round(tiers["page_slow"].error_ratio, 6) == 0.0056
    assert not any(t.capped for t in tiers.values())


def test_other_periods_scale_the_30d_windows() -> None:
    spec = parse_spec(SPEC.replace("owners:", "period: 14d\nowners:"))
    tiers = {t.name: t for t in burn.tiers(spec, "tight", 99.9)}
    assert (tiers["page_fast"].long, tiers["page_fast"].factor) == ("28m", 14.4)


def test_validate_exits_2_and_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        SPEC.replace("objective: 99.9", "objective: 100").replace("objective: 96", "objectiv: 96")
    )
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:6: slos.tight.objective:" in err
    assert f"{path}:7: slos.loose.objectiv: unknown key `objectiv`; did you mean `objective`?" in err


def test_schema_command_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"].startswith("agent-slo")
    assert "slos" in schema["properties"]


def test_bad_volume_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        main(["validate", CX, "--volume", "lots"])
    assert info.value.code == 2


def test_validate_prints_the_compound_arithmetic_of_a_workflow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    steps = ", ".join(f"s{i}" for i in range(10))
    spec = tmp_path / "chain.slo.yaml"
    spec.write_text(
        "version: agent-slo/v1\nagent: chain\nowners: {o: {team: t}}\nflows: {f: {}}\n"
        f"workflows: {{w: {{steps: [{steps}]}}}}\n"
        "slos:\n"
        "  e2e: {sli: {workflow: {name: w}}, objective: 95, owner: o}\n"
        "  s3: {sli: {workflow: {name: w, step: s3}}, objective: 99, owner: o}\n"
    )
    assert main(["validate", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "10 steps at 99% each succeed 90.44% of the time end to end" in out
    # 0.95 ** (1/10) = 0.994883...: what every step needs for a 95% end-to-end objective
    assert "end-to-end objective 95% (SLO e2e) needs every step at 99.488% or better" in out


def test_a_workflow_sli_naming_an_undeclared_step_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "bad.slo.yaml"
    spec.write_text(
        "version: agent-slo/v1\nagent: chain\nowners: {o: {team: t}}\nflows: {f: {}}\n"
        "workflows: {w: {steps: [a, b]}}\n"
        "slos:\n  s: {sli: {workflow: {name: w, step: c}}, objective: 99, owner: o}\n"
    )
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "slos.s.sli.workflow.step" in err and "step `c` is not declared" in err


def test_validate_says_which_health_components_have_no_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "health.slo.yaml"
    spec.write_text(
        "version: agent-slo/v1\nagent: h\nowners: {o: {team: t}}\nflows: {f: {}}\nhealth: {}\n"
        "slos:\n  t: {sli: {task: {}}, objective: 90, owner: o}\n"
    )
    assert main(["validate", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "task_completion 30%, synthetic_pass_rate 30%, step_count 20%" in out
    assert "no source for synthetic_pass_rate, escalation" in out
