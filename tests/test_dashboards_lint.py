"""The dashboard-linter port: the generated dashboards are clean, and each rule catches what it is for."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
import yaml

from agentslo.dashboards import build_dashboards, lint
from agentslo.spec import load_specs, parse_spec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(str(p) for p in (ROOT / "examples").glob("*.slo.yaml"))
PROMTOOL = "/usr/bin/promtool"


@pytest.fixture(scope="module")
def boards():
    return build_dashboards(load_specs(EXAMPLES))


@pytest.fixture
def board(boards):
    return copy.deepcopy(boards["agent-slo-overview.json"])


def _first(board, kind):
    return next(p for p in lint.iter_panels(board) if p["type"] == kind)


def _rules(problems):
    return {p.rule for p in problems}


def test_generated_dashboards_are_clean(boards):
    for name, board in boards.items():
        assert lint.lint_dashboard(board) == [], name


def test_missing_templated_datasource(board):
    board["templating"]["list"] = [v for v in board["templating"]["list"] if v["type"] != "datasource"]
    assert "template-datasource-rule" in _rules(lint.lint_dashboard(board))


def test_badly_named_datasource_variable(board):
    board["templating"]["list"][0]["name"] = "ds"
    assert "template-datasource-rule" in _rules(lint.lint_dashboard(board))


def test_variable_that_does_not_reload_on_time_change(board):
    next(v for v in board["templating"]["list"] if v["name"] == "flow")["refresh"] = 1
    assert "template-on-time-change-reload-rule" in _rules(lint.lint_dashboard(board))


def test_panel_with_a_fixed_datasource(board):
    _first(board, "timeseries")["datasource"] = {"type": "prometheus", "uid": "some-uid"}
    assert "panel-datasource-rule" in _rules(lint.lint_dashboard(board))


def test_panel_without_description_or_title(board):
    panel = _first(board, "stat")
    del panel["description"]
    panel["title"] = ""
    found = [p for p in lint.lint_dashboard(board) if p.rule == "panel-title-description-rule"]
    assert {"panel has no title", "panel has no description"} <= {p.message for p in found}


@pytest.mark.parametrize("unit", ["", "events/s", "percent-ish"])
def test_panel_without_a_valid_unit(board, unit):
    _first(board, "bargauge")["fieldConfig"]["defaults"]["unit"] = unit
    assert "panel-units-rule" in _rules(lint.lint_dashboard(board))


def test_panel_without_targets(board):
    _first(board, "state-timeline")["targets"] = []
    assert "panel-no-targets-rule" in _rules(lint.lint_dashboard(board))


@pytest.mark.parametrize(
    "expr",
    [
        'agent_slo_events_total{agent=~"$agent"}',
        'sum(agent_slo_tool_calls_total{agent=~"$agent"})',
        "delta(agent_slo_tool_calls_total[$__rate_interval])",
    ],
)
def test_unaggregated_counter(board, expr):
    _first(board, "timeseries")["targets"][0]["expr"] = expr
    assert "target-counter-agg-rule" in _rules(lint.lint_dashboard(board))


@pytest.mark.parametrize(
    "expr",
    [
        'sum by (tool) (rate(agent_slo_tool_calls_total{agent=~"$agent"}[$__rate_interval]))',
        "sum by (tool) (increase(agent_slo_tool_calls_total[1h])) / on (tool) group_left sum by (tool) (x)",
        "histogram_quantile(0.9, sum by (le) (rate(agent_slo_task_steps_bucket[$__rate_interval])))",
    ],
)
def test_aggregated_counters_pass(board, expr):
    _first(board, "timeseries")["targets"] = [dict(_first(board, "timeseries")["targets"][0], expr=expr)]
    assert not {"target-counter-agg-rule", "target-rate-interval-rule"} & _rules(lint.lint_dashboard(board))


def test_rate_over_a_fixed_window(board):
    _first(board, "timeseries")["targets"][0]["expr"] = "sum(rate(agent_slo_tool_calls_total[5m]))"
    assert "target-rate-interval-rule" in _rules(lint.lint_dashboard(board))


@pytest.mark.parametrize("kind", ["graph", "singlestat", "table-old"])
def test_legacy_panel_types(board, kind):
    _first(board, "stat")["type"] = kind
    assert "panel-legacy-type-rule" in _rules(lint.lint_dashboard(board))


def test_unknown_model_keys(board):
    board["rows"] = []
    _first(board, "stat")["span"] = 4
    _first(board, "timeseries")["fieldConfig"]["defaults"]["calcs"] = ["mean"]
    _first(board, "timeseries")["targets"][0]["metric"] = ""
    messages = {p.message for p in lint.lint_dashboard(board) if p.rule == "dashboard-model-keys-rule"}
    assert {
        "unknown dashboard key 'rows'",
        "unknown panel key 'span'",
        "unknown fieldConfig key 'calcs'",
        "unknown query key 'metric'",
    } <= messages


def test_overlapping_grid_and_duplicate_ids(board):
    panel = _first(board, "stat")
    panel["gridPos"]["x"] = 20
    _first(board, "timeseries")["id"] = panel["id"]
    messages = " ".join(p.message for p in lint.lint_dashboard(board))
    assert "24-column grid" in messages and "used twice" in messages


def test_old_schema_version(board):
    board["schemaVersion"] = 27
    assert "dashboard-schema-version-rule" in _rules(lint.lint_dashboard(board))


def test_substitute_fills_every_variable_form():
    values = {"agent": "a", "__rate_interval": "2m"}
    assert (
        lint.substitute(
            'x{agent=~"$agent"}[$__rate_interval] ${agent} ${agent:regex} [[agent]] $flow', values
        )
        == 'x{agent=~"a"}[2m] a a a $flow'
    )


def _promtool_parses(boards, tmp_path):
    """promtool 2.42 has no PromQL parse command: each query becomes a recording rule's `expr` and
    `promtool check rules` parses it with Prometheus' own parser."""
    groups = []
    for name, board in sorted(boards.items()):
        values = lint.lint_substitutions(board)
        rules = [
            {
                "record": "agent_slo_dashboard:query:check",
                "expr": lint.substitute(expr, values),
                "labels": {"where": where},
            }
            for where, expr in lint.promql_of(board)
        ]
        assert len(rules) > 5, name
        groups.append({"name": name, "rules": rules})
    path = tmp_path / "queries.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in groups)} rules found" in result.stdout


def test_every_query_parses_as_promql(boards, tmp_path):
    _promtool_parses(boards, tmp_path)


def test_queries_parse_with_names_that_are_regex_metacharacters(tmp_path):
    text = (ROOT / "examples" / "cx-support.slo.yaml").read_text()
    spec = parse_spec(
        text.replace("agent: cx-support", "agent: cx.support").replace("hallucination", "halluc.v2")
    )
    boards = build_dashboards([spec, *load_specs(EXAMPLES[1:])])
    exprs = [expr for _, expr in lint.promql_of(boards["agent-slo-judges.json"])]
    # The dot is escaped for the regex, and that backslash once more for PromQL's string syntax.
    assert any(r'agent=~"cx\\.support|voice-booking"' in expr for expr in exprs)
    _promtool_parses(boards, tmp_path)


def test_promtool_check_fails_on_a_broken_query(tmp_path):
    path = tmp_path / "bad.rules.yaml"
    rule = {"record": "x:y:z", "expr": "sum by (flow (rate(agent_slo_events_total[5m]))"}
    path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [rule]}]}))
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
