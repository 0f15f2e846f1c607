"""The spec loader: examples load, every kind of mistake is reported with file, line and key path."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from agentslo.schema import spec_schema
from agentslo.spec import SpecError, load_spec, load_specs, parse_spec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.slo.yaml"))

BASE = textwrap.dedent(
    """\
    version: agent-slo/v1
    agent: shop
    owners:
      product: {team: shop}
    exclusions: [test_call]
    flows:
      refund: {risk: billing}
      browse: {}
    tools: [get_order]
    judges:
      grounded:
        type: llm
        model: gpt-4o-mini
        version: "1"
        rubric: "Score 0-1: grounded?"
        pass_threshold: 0.8
        sample_rate: 0.1
    slos:
      task-success: {sli: {task: {}}, objective: 99, owner: product}
      grounded: {sli: {judge: grounded}, objective: 95, owner: product}
    """
)


def test_base_spec_is_valid() -> None:
    spec = parse_spec(BASE, "base.yaml")
    assert spec.agent == "shop"
    assert spec.flows_of("task-success") == ("refund", "browse")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_loads_and_matches_json_schema(path: Path) -> None:
    spec = load_spec(path)
    assert spec.slos
    jsonschema.validate(yaml.safe_load(path.read_text()), spec_schema())


def test_committed_schema_is_current() -> None:
    committed = json.loads((ROOT / "schema" / "agent-slo.schema.json").read_text())
    assert committed == spec_schema(), "regenerate with: agent-slo schema -o schema/agent-slo.schema.json"


def test_cx_example_resolves_auto_objectives_by_risk_tier() -> None:
    spec = load_spec(ROOT / "examples" / "cx-support.slo.yaml")
    assert spec.objective_for("task-success", "refund") == 97.0
    assert spec.objective_for("task-success", "order-status") == 90.0
    assert spec.objective_for("hallucination", "password-reset") == 97.0
    assert spec.objective_for("tool-call-accuracy", "refund") == 92.0
    assert spec.flows_of("refund-policy") == ("refund",)
    assert spec.alerting_for("refund-policy").any_bad == "page"
    assert spec.exclusions_of("task-success")[0] == "synthetic"


def _replace(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


# (case id, spec text, substring of the offending line, key path, message fragment)
INVALID: list[tuple[str, str, str, str, str]] = [
    (
        "unknown-key-suggests",
        _replace("objective: 99, owner", "objectiv: 99, owner"),
        "task-success:",
        "slos.task-success.objectiv",
        "did you mean `objective`",
    ),
    (
        "duplicate-slo",
        BASE + "  task-success: {sli: {task: {}}, objective: 98, owner: product}\n",
        "objective: 98",
        "slos.task-success",
        "duplicate key",
    ),
    (
        "duplicate-flow",
        _replace("  browse: {}\n", "  browse: {}\n  browse: {risk: faq}\n"),
        "browse: {risk: faq}",
        "flows.browse",
        "duplicate key",
    ),
    (
        "objective-zero",
        _replace("objective: 99, owner", "objective: 0, owner"),
        "task-success:",
        "slos.task-success.objective",
        "strictly between 0 and 100",
    ),
    (
        "objective-100",
        _replace("objective: 99, owner", "objective: 100, owner"),
        "task-success:",
        "slos.task-success.objective",
        "strictly between 0 and 100",
    ),
    (
        "objective-101",
        _replace("objective: 99, owner", "objective: 101, owner"),
        "task-success:",
        "slos.task-success.objective",
        "strictly between 0 and 100",
    ),
    (
        "objective-negative",
        _replace("objective: 99, owner", "objective: -1, owner"),
        "task-success:",
        "slos.task-success.objective",
        "strictly between 0 and 100",
    ),
    (
        "objective-text",
        _replace("objective: 99, owner", "objective: abc, owner"),
        "task-success:",
        "slos.task-success.objective",
        "'abc'",
    ),
    (
        "auto-without-risk-tier",
        _replace("objective: 99, owner", "objective: auto, owner"),
        "task-success:",
        "slos.task-success.objective",
        "risk tier on flow `browse`",
    ),
    (
        "auto-on-latency",
        BASE + "  fast: {sli: {latency: {of: turn, under: 1.2s}}, objective: auto, owner: product}\n",
        "fast:",
        "slos.fast.objective",
        "only for task and judge",
    ),
    (
        "auto-on-cost",
        BASE + "  cheap: {sli: {cost: {under_usd: 0.2}}, objective: auto, owner: product}\n",
        "cheap:",
        "slos.cheap.objective",
        "only for task and judge",
    ),
    (
        "judge-not-declared",
        _replace("{judge: grounded}", "{judge: grounder}"),
        "{judge: grounder}",
        "slos.grounded.sli.judge",
        "judge `grounder` is not declared; did you mean `grounded`",
    ),
    (
        "flow-not-declared",
        _replace("objective: 99, owner: product}", "objective: 99, owner: product, flows: [refnud]}"),
        "task-success:",
        "slos.task-success.flows[0]",
        "flow `refnud` is not declared",
    ),
    (
        "owner-missing",
        _replace("objective: 99, owner: product}", "objective: 99}"),
        "task-success:",
        "slos.task-success.owner",
        "`owner` is required",
    ),
    (
        "owner-not-declared",
        _replace("objective: 99, owner: product}", "objective: 99, owner: platform}"),
        "task-success:",
        "slos.task-success.owner",
        "owner `platform` is not declared",
    ),
    ("invalid-duration", "period: 30days\n" + BASE, "period:", "period", "not a Prometheus duration"),
    (
        "decimal-window",
        BASE + "  p: {sli: {task: {}}, objective: 99, owner: product, period: 1.5d}\n",
        "p: {",
        "slos.p.period",
        "not a Prometheus duration",
    ),
    (
        "decimal-drift-window",
        BASE + "drift: {window: 0.5h}\n",
        "drift:",
        "drift.window",
        "not a Prometheus duration",
    ),
    (
        "unknown-sli-kind",
        _replace("{sli: {task: {}}", "{sli: {tsak: {}}"),
        "task-success:",
        "slos.task-success.sli.tsak",
        "unknown SLI kind `tsak`; did you mean `task`",
    ),
    (
        "latency-without-threshold",
        BASE + "  fast: {sli: {latency: {of: turn}}, objective: 95, owner: product}\n",
        "fast:",
        "slos.fast.sli.latency.under",
        "`under` is required",
    ),
    (
        "latency-bad-threshold",
        BASE + "  fast: {sli: {latency: {of: turn, under: fast}}, objective: 95, owner: product}\n",
        "fast:",
        "slos.fast.sli.latency.under",
        "not a threshold",
    ),
    (
        "sample-rate-above-1",
        _replace("sample_rate: 0.1", "sample_rate: 1.5"),
        "sample_rate:",
        "judges.grounded.sample_rate",
        "less than or equal to 1",
    ),
    (
        "sample-rate-negative",
        _replace("sample_rate: 0.1", "sample_rate: -0.1"),
        "sample_rate:",
        "judges.grounded.sample_rate",
        "greater than or equal to 0",
    ),
    (
        "regex-does-not-compile",
        BASE.replace(
            "slos:\n", "  policy: {type: rule, version: '1', fail_if_matches: ['(unclosed']}\nslos:\n"
        ),
        "policy:",
        "judges.policy.fail_if_matches[0]",
        "does not compile",
    ),
    (
        "exclusion-not-declared",
        _replace("objective: 99, owner: product}", "objective: 99, owner: product, exclusions: [abuse]}"),
        "task-success:",
        "slos.task-success.exclusions[0]",
        "exclusion `abuse` is not declared",
    ),
    (
        "budget-tiers-overspend",
        BASE + "budget_allocation:\n  end_to_end: 99\n  tiers:\n    infrastructure: {objective: 99.5}\n"
        "    quality: {objective: 99.2}\n",
        "tiers:",
        "budget_allocation.tiers",
        "allows only 1%",
    ),
    (
        "wrong-version",
        _replace("agent-slo/v1", "agent-slo/v2"),
        "version:",
        "version",
        "must be `agent-slo/v1`",
    ),
    (
        "agent-name-invalid",
        _replace("agent: shop", "agent: Shop Floor"),
        "agent:",
        "agent",
        "not a valid name",
    ),
    (
        "governed-by-unknown-slo",
        BASE + "autonomy: {governed_by: [task-succes]}\n",
        "autonomy:",
        "autonomy.governed_by[0]",
        "did you mean `task-success`",
    ),
    (
        "reserved-label",
        "labels: {severity: high}\n" + BASE,
        "labels:",
        "labels.severity",
        "set by agent-slo itself",
    ),
    (
        "two-sli-kinds",
        _replace("{sli: {task: {}}", "{sli: {task: {}, escalation: {}}"),
        "task-success:",
        "slos.task-success.sli",
        "exactly one kind",
    ),
    (
        "rule-judge-without-checks",
        BASE.replace("slos:\n", "  policy: {type: rule, version: '1'}\nslos:\n"),
        "policy:",
        "judges.policy",
        "at least one check",
    ),
    (
        "unknown-judge-type",
        _replace("type: llm", "type: human"),
        "type: human",
        "judges.grounded.type",
        "must be one of 'llm', 'rule' (got 'human')",
    ),
    ("no-slos", BASE.split("slos:\n")[0] + "slos: {}\n", "slos:", "slos", "at least one entry"),
]


@pytest.mark.parametrize(("case", "text", "at", "path", "fragment"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_spec_names_file_line_and_key_path(
    case: str, text: str, at: str, path: str, fragment: str
) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(text, f"{case}.yaml")
    expected_line = next(i for i, line in enumerate(text.splitlines(), 1) if at in line)
    matching = [p for p in info.value.problems if p.path == path]
    assert matching, f"no problem at {path}; got:\n{info.value}"
    problem = matching[0]
    assert problem.file == f"{case}.yaml"
    assert problem.line == expected_line, str(info.value)
    assert fragment in problem.message, str(info.value)
    assert str(problem).startswith(f"{case}.yaml:{expected_line}: {path}:")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "the file is empty"),
        ("[1, 2]\n", "must be a mapping"),
        ("a: [1\n", "YAML syntax"),
        ("just text\n", "must be a mapping"),
    ],
    ids=["empty", "list", "syntax", "scalar"],
)
def test_unparseable_documents_are_refused_clearly(text: str, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "x.yaml")
    assert fragment in str(info.value)
    assert str(info.value).startswith("x.yaml:")


def test_every_problem_is_reported_in_one_run() -> None:
    text = (
        _replace("objective: 99, owner: product}", "objectiv: 99, owner: nobody}")
        .replace("{judge: grounded}", "{judge: missing}")
        .replace("sample_rate: 0.1", "sample_rate: 2")
        + "  fast: {sli: {latency: {of: turn}}, objective: auto, owner: product}\n"
    )
    with pytest.raises(SpecError) as info:
        parse_spec(text, "many.yaml")
    paths = {p.path for p in info.value.problems}
    assert {
        "slos.task-success.objectiv",
        "slos.task-success.objective",
        "judges.grounded.sample_rate",
        "slos.fast.sli.latency.under",
    } <= paths
    # A structurally broken judge is set aside, but the SLO that names a missing judge is still checked.
    assert "slos.grounded.sli.judge" in paths
    # A structurally broken SLO is set aside too, and its undeclared owner is still reported.
    owner = next(p for p in info.value.problems if p.path == "slos.task-success.owner")
    assert "owner `nobody` is not declared" in owner.message


def test_structural_and_semantic_problems_of_one_slo_come_in_one_pass() -> None:
    text = BASE + (
        "  broken: {sli: {taks: {}}, objective: 90, owner: nobody, flows: [refnud]}\n"
        "  wrong-judge: {sli: {judge: grounde}, objective: 200, owner: product}\n"
    )
    with pytest.raises(SpecError) as info:
        parse_spec(text, "one-pass.yaml")
    found = {p.path: p.message for p in info.value.problems}
    assert "unknown SLI kind `taks`" in found["slos.broken.sli.taks"]
    assert "owner `nobody` is not declared" in found["slos.broken.owner"]
    assert "did you mean `refund`?" in found["slos.broken.flows[0]"]
    assert "strictly between 0 and 100" in found["slos.wrong-judge.objective"]
    assert "did you mean `grounded`?" in found["slos.wrong-judge.sli.judge"]


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ("  none: {sli: {task: {}}, objective: 90, owner: product, flows: []}\n", "slos.none.flows"),
        # structurally broken as well: still refused for its empty flows in the same run
        ("  none: {sli: {task: {}}, objective: 900, owner: product, flows: []}\n", "slos.none.flows"),
    ],
    ids=["valid-otherwise", "also-broken"],
)
def test_an_slo_that_selects_no_flows_is_refused(extra: str, path: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(BASE + extra, "noflows.yaml")
    problem = next(p for p in info.value.problems if p.path == path)
    assert "selects no flows" in problem.message and problem.line == len(BASE.splitlines()) + 1


def test_an_slo_whose_judge_judges_no_flow_is_refused() -> None:
    text = _replace("sample_rate: 0.1", "sample_rate: 0.1\n    flows: []")
    with pytest.raises(SpecError) as info:
        parse_spec(text, "judge.yaml")
    assert any(
        p.path == "judges.grounded.flows" and "selects no flows" in p.message for p in info.value.problems
    )


def test_duplicate_agents_across_files_are_refused(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(BASE)
    b.write_text(BASE)
    with pytest.raises(SpecError, match="already defined"):
        load_specs([a, b])


def test_load_specs_collects_problems_of_all_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(_replace("agent-slo/v1", "agent-slo/v9"))
    b.write_text(_replace("objective: 99, owner", "objective: 100, owner"))
    with pytest.raises(SpecError) as info:
        load_specs([a, b])
    assert {p.file for p in info.value.problems} == {str(a), str(b)}


def test_spec_is_immutable() -> None:
    spec = parse_spec(BASE)
    with pytest.raises(Exception, match="frozen"):
        spec.agent = "other"  # type: ignore[misc]


def test_spec_hash_ignores_formatting_but_not_content() -> None:
    a = parse_spec(BASE)
    b = parse_spec(yaml.safe_dump(yaml.safe_load(BASE), default_flow_style=True))
    c = parse_spec(_replace("objective: 99, owner", "objective: 98, owner"))
    assert a.spec_hash == b.spec_hash != c.spec_hash


def test_committed_scenario_schema_is_current() -> None:
    from agentslo.scenario import scenario_schema

    committed = json.loads((ROOT / "schema" / "agent-slo-scenarios.schema.json").read_text())
    assert committed == scenario_schema(), (
        "regenerate with: agent-slo probe --schema > schema/agent-slo-scenarios.schema.json"
    )


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*scenarios/*.yaml")), ids=lambda p: p.name)
def test_example_scenarios_match_the_scenario_schema(path: Path) -> None:
    from agentslo.scenario import scenario_schema

    jsonschema.validate(yaml.safe_load(path.read_text()), scenario_schema())


@pytest.mark.parametrize(
    ("hours", "path", "fragment"),
    [
        ("{hours: '17:00-09:00'}", "synthetic.business_hours.hours", "ends before it starts"),
        ("{hours: '9-5'}", "synthetic.business_hours.hours", "HH:MM-HH:MM"),
        ("{time_zone: Mars/Olympus}", "synthetic.business_hours.time_zone", "unknown time zone"),
        ("{days: [monday, monday]}", "synthetic.business_hours.days", "listed once"),
        ("{days: [someday]}", "synthetic.business_hours.days[0]", "must be 'monday'"),
    ],
    ids=["reversed", "not-hh-mm", "time-zone", "repeated-day", "unknown-day"],
)
def test_wrong_business_hours_are_refused_naming_the_key(hours: str, path: str, fragment: str) -> None:
    text = (
        BASE
        + f"synthetic:\n  target: {{type: http, url: 'http://127.0.0.1:1/'}}\n  business_hours: {hours}\n"
    )
    with pytest.raises(SpecError) as info:
        parse_spec(text, "hours.yaml")
    problem = next((p for p in info.value.problems if p.path == path), None)
    assert problem is not None and fragment in problem.message, str(info.value)


def test_a_broken_flows_section_is_one_problem_not_a_cascade() -> None:
    text = BASE.replace("flows:\n  refund: {risk: billing}\n  browse: {}\n", "flows: [refund, browse]\n")
    text = text.replace("owner: product}\n  grounded", "owner: nobody}\n  grounded")
    with pytest.raises(SpecError) as info:
        parse_spec(text, "flows.yaml")
    paths = [p.path for p in info.value.problems]
    assert "flows" in paths and "slos.task-success.owner" in paths
    assert not [p for p in info.value.problems if "selects no flows" in p.message], str(info.value)
