"""Scenario files: examples load, the JSON Schema matches, every mistake has file, line and key path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from agentslo.scenario import ASSERTION_TYPES, load_scenarios, parse_scenarios, scenario_schema
from agentslo.spec import SpecError, load_spec, parse_spec

ROOT = Path(__file__).resolve().parent.parent
CX = ROOT / "examples" / "cx-support.slo.yaml"
SCENARIO_FILES = sorted((ROOT / "examples").glob("*scenarios/*.yaml"))


@pytest.fixture(scope="module")
def spec():
    return load_spec(CX)


def _doc(body: str) -> str:
    return textwrap.dedent(body).lstrip("\n")


VALID = _doc(
    """
    version: agent-slo/scenarios/v1
    agent: cx-support
    scenarios:
      s:
        flow: refund
        turns:
          - user: "refund order A-1001"
            assert:
              - type: tool-called
                value: get_order
    """
)


def test_examples_load_with_their_spec() -> None:
    for spec_path in sorted((ROOT / "examples").glob("*.slo.yaml")):
        spec = load_spec(spec_path)
        if spec.synthetic is None:
            continue
        scenarios = load_scenarios(spec)
        assert scenarios, spec_path
        assert all(s.agent == spec.agent and s.flow in spec.flows for s in scenarios)


def test_cx_examples_cover_refund_order_status_and_password_reset(spec) -> None:
    scenarios = load_scenarios(spec)
    assert {s.flow for s in scenarios} == {"refund", "order-status", "password-reset"}
    refund = next(s for s in scenarios if s.name == "refund-delivered-order")
    assert refund.source == f"{ROOT / 'examples' / 'scenarios' / 'refund.yaml'}:8"
    assert refund.pricing is not None and refund.pricing.usd_per_1k_output_tokens == 0.01
    assert refund.tools["get_order"].answer({"order_id": "A-1001"})["status"] == "delivered"
    assert refund.tools["get_order"].answer({"order_id": "nope"}) == {"error": "order not found"}


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_example_scenarios_match_the_json_schema(path: Path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text()), scenario_schema())


def test_schema_lists_every_assertion_type_and_rejects_unknown_keys() -> None:
    schema = scenario_schema()
    assert schema["$defs"]["Assertion"]["properties"]["type"]["enum"] == list(ASSERTION_TYPES)
    bad = yaml.safe_load(VALID.replace("flow: refund", "flow: refund\n    turnz: []"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_regression_export_shape_runs_unchanged(spec) -> None:
    """A labelled production failure exported as user turns + 'never say X' + 'expect tool Y'."""
    text = _doc(
        """
        scenarios:
          regression-sess-8f2c:
            flow: refund
            tags: [regression, wrong_refund_window]
            description: exported from session 8f2c (labelled real_failure)
            turns:
              - user: "I want my money back for A-1001"
              - user: "how long does it take?"
                assert:
                  - {type: not-regex, value: '\\b3\\s*-\\s*5 business days\\b'}
                  - {type: tool-called, value: issue_refund}
            assert:
              - {type: not-icontains, value: "3-5 business days"}
        """
    )
    (sc,) = parse_scenarios(text, "regression.yaml", spec)
    assert sc.turns[0].assert_ == () and sc.turns[1].assert_[0].negated


# (scenario file text, line, key path, message fragment): one mistake each.
INVALID = [
    (
        "unknown-flow",
        VALID.replace("flow: refund", "flow: refnud"),
        5,
        "scenarios.s.flow",
        "flow `refnud` is not declared in the spec; did you mean `refund`?",
    ),
    (
        "unknown-type",
        VALID.replace("tool-called", "tool-caled"),
        9,
        "scenarios.s.turns[0].assert[0].type",
        "unknown assertion type `tool-caled`; did you mean `tool-called`?",
    ),
    (
        "undeclared-tool",
        VALID.replace("value: get_order", "value: get_ordr"),
        10,
        "scenarios.s.turns[0].assert[0].value",
        "tool `get_ordr` is not declared in the spec; did you mean `get_order`?",
    ),
    (
        "unknown-key",
        VALID.replace("    turns:", "    turn:"),
        6,
        "scenarios.s.turn",
        "unknown key `turn`; did you mean `turns`?",
    ),
    (
        "agent-mismatch",
        VALID.replace("agent: cx-support", "agent: voice-booking"),
        2,
        "agent",
        "scenarios of agent `voice-booking` listed by the spec of agent `cx-support`",
    ),
    (
        "bad-regex",
        VALID.replace(
            "type: tool-called\n            value: get_order", "type: regex\n            value: '(unclosed'"
        ),
        10,
        "scenarios.s.turns[0].assert[0].value",
        "does not compile",
    ),
    (
        "missing-user",
        VALID.replace('- user: "refund order A-1001"', "- say: hi"),
        7,
        "scenarios.s.turns[0].user",
        "`user` is required",
    ),
    (
        "threshold-on-contains",
        VALID.replace("value: get_order", "value: get_order\n            threshold: 0.5"),
        11,
        "scenarios.s.turns[0].assert[0].threshold",
        "threshold applies to llm-rubric and assert-set only",
    ),
    (
        "set-without-checks",
        VALID.replace("type: tool-called\n            value: get_order", "type: assert-set"),
        9,
        "scenarios.s.turns[0].assert[0].assert",
        "assert-set needs a non-empty `assert:` list",
    ),
    (
        "step-count-word",
        VALID.replace(
            "type: tool-called\n            value: get_order", "type: step-count\n            value: many"
        ),
        10,
        "scenarios.s.turns[0].assert[0].value",
        "step-count needs a maximum",
    ),
    (
        "latency-word",
        VALID.replace(
            "type: tool-called\n            value: get_order", "type: latency-under\n            value: fast"
        ),
        10,
        "scenarios.s.turns[0].assert[0].value",
        "'fast' is not a threshold",
    ),
    (
        "json-path-no-path",
        VALID.replace(
            "type: tool-called\n            value: get_order",
            "type: json-path\n            value: {equals: 3}",
        ),
        10,
        "scenarios.s.turns[0].assert[0].value.path",
        "`path` is required",
    ),
    (
        "unknown-judge",
        VALID.replace(
            "type: tool-called\n            value: get_order",
            "type: llm-rubric\n            judge: faithfulnes",
        ),
        10,
        "scenarios.s.turns[0].assert[0].judge",
        "judge `faithfulnes` is not declared",
    ),
    (
        "negated-latency",
        VALID.replace(
            "type: tool-called\n            value: get_order",
            "type: not-latency-under\n            value: 1s",
        ),
        9,
        "scenarios.s.turns[0].assert[0].type",
        "`latency-under` cannot be negated",
    ),
    (
        "wrong-version",
        VALID.replace("scenarios/v1", "scenarios/v2"),
        1,
        "version",
        "must be 'agent-slo/scenarios/v1'",
    ),
    ("yaml-syntax", VALID.replace("flow: refund", "flow: [refund"), 6, "", "YAML syntax"),
    (
        "duplicate-scenario",
        VALID + "  s:\n    flow: refund\n    turns: [{user: hi}]\n",
        11,
        "scenarios.s",
        "duplicate key 's'",
    ),
    (
        "negative-weight",
        VALID.replace("value: get_order", "value: get_order\n            weight: -1"),
        11,
        "scenarios.s.turns[0].assert[0].weight",
        "greater than or equal to 0",
    ),
    (
        "args-missing",
        VALID.replace(
            "type: tool-called\n            value: get_order",
            "type: tool-args-match\n            value: {tool: get_order}",
        ),
        10,
        "scenarios.s.turns[0].assert[0].value",
        "needs {tool: NAME, args: {key: value}}",
    ),
    (
        "contains-any-string",
        VALID.replace(
            "type: tool-called\n            value: get_order", "type: contains-any\n            value: refund"
        ),
        10,
        "scenarios.s.turns[0].assert[0].value",
        "needs a non-empty list of strings",
    ),
    ("bad-name", VALID.replace("  s:", "  Refund Test:"), 4, "scenarios.Refund Test", "is not a valid name"),
    (
        "name-inside",
        VALID.replace("    flow: refund", "    name: other\n    flow: refund"),
        5,
        "scenarios.s.name",
        "a scenario's name is its key",
    ),
    (
        "tool-without-result",
        VALID.replace("    turns:", "    tools:\n      get_order: {description: x}\n    turns:"),
        7,
        "scenarios.s.tools.get_order",
        "needs `result:` or `results:`",
    ),
    (
        "undeclared-scripted-tool",
        VALID.replace("    turns:", "    tools:\n      refund_all: {result: ok}\n    turns:"),
        7,
        "scenarios.s.tools.refund_all",
        "tool `refund_all` is not declared",
    ),
    (
        "no-turns",
        VALID.split("    turns:")[0] + "    turns: []\n",
        6,
        "scenarios.s.turns",
        "`turns` needs at least one entry",
    ),
    ("no-scenarios", "version: agent-slo/scenarios/v1\nscenarios: {}\n", 2, "scenarios", "non-empty mapping"),
]


@pytest.mark.parametrize(
    ("text", "line", "path", "fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_scenario_is_reported_with_file_line_and_path(
    spec, text: str, line: int, path: str, fragment: str
) -> None:
    with pytest.raises(SpecError) as info:
        parse_scenarios(text, "bad.yaml", spec)
    problems = info.value.problems
    assert any(
        p.file == "bad.yaml" and p.line == line and p.path == path and fragment in p.message for p in problems
    ), "\n".join(map(str, problems))


def test_every_problem_is_reported_at_once(spec) -> None:
    text = VALID.replace("flow: refund", "flow: refnud").replace("tool-called", "tool-caled") + (
        "  t:\n    flow: refund\n    turns: [{user: hi, assert: [{type: contains}]}]\n"
    )
    with pytest.raises(SpecError) as info:
        parse_scenarios(text, "many.yaml", spec)
    lines = {p.path: p.line for p in info.value.problems}
    assert lines == {
        "scenarios.s.flow": 5,
        "scenarios.s.turns[0].assert[0].type": 9,
        "scenarios.t.turns[0].assert[0].value": 13,
    }
    assert str(info.value).startswith("many.yaml:5: scenarios.s.flow:")


def _spec_with_scenarios(tmp_path: Path, globs: list[str], extra_slo: str = "") -> Path:
    spec_text = CX.read_text().replace("scenarios: [scenarios/*.yaml]", f"scenarios: {globs}")
    if extra_slo:
        spec_text = spec_text.replace("\nslos:\n", f"\nslos:\n  {extra_slo}\n", 1)
    path = tmp_path / "agent.slo.yaml"
    path.write_text(spec_text)
    return path


def test_globs_resolve_relative_to_the_spec_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "probes").mkdir()
    (tmp_path / "probes" / "a.yaml").write_text(VALID)
    spec = load_spec(_spec_with_scenarios(tmp_path, ["probes/*.yaml"]))
    monkeypatch.chdir("/")
    assert [s.name for s in load_scenarios(spec)] == ["s"]


def test_glob_matching_nothing_points_at_the_spec(tmp_path: Path) -> None:
    spec = load_spec(_spec_with_scenarios(tmp_path, ["nothing/*.yaml"]))
    with pytest.raises(SpecError) as info:
        load_scenarios(spec)
    (problem,) = info.value.problems
    assert problem.file == str(tmp_path / "agent.slo.yaml") and problem.path == "synthetic.scenarios[0]"
    assert problem.line == CX.read_text().splitlines().index("  scenarios: [scenarios/*.yaml]") + 1
    assert "matches no file" in problem.message


def test_same_scenario_name_in_two_files_is_an_error(tmp_path: Path) -> None:
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text(VALID)
    spec = load_spec(_spec_with_scenarios(tmp_path, ["*.yaml"]))
    with pytest.raises(SpecError) as info:
        load_scenarios(spec)
    (problem,) = [p for p in info.value.problems if p.file.endswith("b.yaml")]
    assert problem.line == 4 and "already defined at" in problem.message and "a.yaml:4" in problem.message


def test_synthetic_sli_naming_an_unknown_scenario_is_reported_in_the_spec(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(VALID)
    slo = "probe-pass: {sli: {synthetic: {scenarios: [s, z]}}, objective: 99, owner: product}"
    spec = load_spec(_spec_with_scenarios(tmp_path, ["a.yaml"], slo))
    with pytest.raises(SpecError) as info:
        load_scenarios(spec)
    (problem,) = info.value.problems
    assert problem.path == "slos.probe-pass.sli.synthetic.scenarios[1]"
    assert "scenario `z` is not defined" in problem.message


def test_llm_rubric_without_any_model_is_refused() -> None:
    spec = parse_spec(
        CX.read_text().split("judges:")[0] + "slos:\n  t: {sli: {task: {}}, objective: 99, owner: product}\n"
    )
    text = VALID.replace(
        "type: tool-called\n            value: get_order", "type: llm-rubric\n            value: polite"
    )
    with pytest.raises(SpecError, match="llm-rubric needs `model:`"):
        parse_scenarios(text, "r.yaml", spec)
    (sc,) = parse_scenarios(
        text.replace("value: polite", "value: polite\n            model: gpt-4o-mini"), "r.yaml", spec
    )
    assert sc.turns[0].assert_[0].model == "gpt-4o-mini"


def test_validate_reports_scenario_problems_with_file_line_and_path(tmp_path: Path, capsys) -> None:
    from agentslo import cli

    (tmp_path / "scenarios").mkdir()
    (tmp_path / "cx.slo.yaml").write_text(CX.read_text())
    (tmp_path / "scenarios" / "a.yaml").write_text(VALID.replace("tool-called", "tool-caled"))
    assert cli.main(["validate", str(tmp_path / "cx.slo.yaml")]) == 2
    err = capsys.readouterr().err
    assert (
        f"{tmp_path / 'scenarios' / 'a.yaml'}:9: scenarios.s.turns[0].assert[0].type: "
        "unknown assertion type `tool-caled`; did you mean `tool-called`?"
    ) in err


@pytest.mark.parametrize(
    "pattern", ["../outside/*.yaml", "../outside/a.yaml", "{outside}/a.yaml", "**/../outside/*"]
)
def test_scenario_globs_may_not_reach_outside_the_spec_folder(tmp_path: Path, pattern: str) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "a.yaml").write_text(VALID)
    home = tmp_path / "specs"
    home.mkdir()
    spec = load_spec(_spec_with_scenarios(home, [pattern.format(outside=tmp_path / "outside")]))
    with pytest.raises(SpecError) as info:
        load_scenarios(spec)
    (problem,) = info.value.problems
    assert problem.path == "synthetic.scenarios[0]" and "reaches outside the spec's folder" in problem.message


def test_a_symlink_out_of_the_spec_folder_is_refused_too(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "a.yaml").write_text(VALID)
    home = tmp_path / "specs"
    home.mkdir()
    (home / "link.yaml").symlink_to(tmp_path / "outside" / "a.yaml")
    spec = load_spec(_spec_with_scenarios(home, ["*.yaml"]))
    with pytest.raises(SpecError, match="reaches outside the spec's folder"):
        load_scenarios(spec)


def test_scenario_globs_into_subfolders_still_load(tmp_path: Path) -> None:
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "a.yaml").write_text(VALID)
    spec = load_spec(_spec_with_scenarios(tmp_path, ["deep/**/*.yaml"]))
    assert [s.name for s in load_scenarios(spec)] == ["s"]
