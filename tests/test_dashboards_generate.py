"""The dashboards generator: committed examples, determinism, the CLI, Grafana's model, links, "
"provisioning."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from agentslo import cli, names
from agentslo.dashboards import DASHBOARDS, build_dashboards, generate_files, lint, provisioning_files
from agentslo.output import write_or_check
from agentslo.spec import load_specs, parse_spec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(str(p) for p in (ROOT / "examples").glob("*.slo.yaml"))
COMMITTED = ROOT / "examples" / "dashboards"
LEGACY_TYPES = {"graph", "singlestat", "table-old", "grafana-piechart-panel", "grafana-worldmap-panel"}


@pytest.fixture(scope="module")
def specs():
    return load_specs(EXAMPLES)


@pytest.fixture(scope="module")
def boards(specs):
    return build_dashboards(specs)


def _data_panels(board):
    return [p for p in lint.iter_panels(board) if p["type"] not in ("row", "text")]


def test_committed_example_dashboards_match_the_specs(tmp_path):
    assert cli.main(["dashboards", *EXAMPLES, "-o", str(COMMITTED), "--check"]) == 0


def test_check_fails_when_a_committed_dashboard_drifts(tmp_path, specs):
    shutil.copytree(COMMITTED, tmp_path / "d")
    path = tmp_path / "d" / "agent-slo-overview.json"
    path.write_text(path.read_text().replace("SLO overview", "SLO overview (edited)"))
    assert cli.main(["dashboards", *EXAMPLES, "-o", str(tmp_path / "d"), "--check"]) == 1
    report = io.StringIO()
    assert write_or_check(generate_files(specs), tmp_path / "d", check=True, out=report) == 1
    assert "agent-slo-overview.json" in report.getvalue() and "(edited)" in report.getvalue()


def test_cli_writes_the_four_dashboards(tmp_path):
    assert cli.main(["dashboards", *EXAMPLES, "-o", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(DASHBOARDS)


def test_a_bad_spec_is_exit_2(tmp_path):
    bad = tmp_path / "bad.slo.yaml"
    bad.write_text("version: agent-slo/v1\nagent: x\n")
    assert cli.main(["dashboards", str(bad), "-o", str(tmp_path / "out")]) == 2


def test_generation_is_deterministic_and_sorted_json(specs):
    first, second = generate_files(specs), generate_files(list(reversed(load_specs(EXAMPLES))))
    again = generate_files(load_specs(EXAMPLES))
    assert first == again
    for text in first.values():
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    # The agent variable spans every spec whatever their order; only the catalog order may differ.
    assert set(first) == set(second)


def test_dashboards_stay_within_grafanas_model(boards):
    for name, board in boards.items():
        assert board["schemaVersion"] >= 39, name
        assert board["uid"].startswith("agent-slo-") and len(board["uid"]) <= 40
        assert not set(board) - lint.DASHBOARD_KEYS, name
        types = {p["type"] for p in lint.iter_panels(board)}
        assert types <= lint.MODERN_PANELS and not types & LEGACY_TYPES, (name, types)


def test_every_panel_has_a_description_and_every_data_panel_a_unit_and_a_query(boards):
    for board in boards.values():
        for p in lint.iter_panels(board):
            if p["type"] == "row":
                continue
            assert p["title"] and p["description"], p
            if p["type"] != "text":
                assert p["fieldConfig"]["defaults"]["unit"] in lint.VALID_UNITS, p["title"]
                assert p["targets"] and all(
                    t["expr"] and t["datasource"]["uid"] == "${datasource}" for t in p["targets"]
                ), p["title"]


def test_template_variables_are_datasource_agent_flow_slo(boards):
    for name, board in boards.items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["current"]["value"] == "agent-slo-prometheus"
        wanted = {"agent", "flow"} | ({"slo"} if name != "agent-slo-synthetic.json" else set())
        assert wanted <= set(variables), name
        for var in wanted:
            assert variables[var]["includeAll"] and variables[var]["allValue"] == ".*"
            assert variables[var]["refresh"] == 2


def test_queries_read_the_recording_rules(boards):
    overview = json.dumps(boards["agent-slo-overview.json"])
    for rule in (
        names.ERROR_BUDGET_REMAINING,
        names.ERROR_BUDGET_EXHAUSTION,
        names.OBJECTIVE_RATIO,
        names.AUTONOMY_STATE,
        names.RELEASE_STATE,
        names.burn_rate("1h"),
    ):
        assert rule in overview, rule
    # cx-support runs a 30d period, voice-booking 28d: the period ratio of each is read under its own name.
    assert names.sli_error_ratio("30d") in overview and names.sli_error_ratio("4w") in overview


def test_dashboards_link_to_each_other_and_to_runbooks(boards, specs):
    runbooks = {spec.alerting_for(slo).runbook_url for spec in specs for slo in spec.slos} - {None}
    assert runbooks, "the examples declare at least one runbook"
    for board in boards.values():
        links = board["links"]
        assert any(
            link["type"] == "dashboards" and link["tags"] == ["agent-slo"] and link["includeVars"]
            for link in links
        )
        assert runbooks <= {link["url"] for link in links if link["type"] == "link"}
    overview = boards["agent-slo-overview.json"]
    drill = [
        link
        for p in lint.iter_panels(overview)
        for link in p.get("fieldConfig", {}).get("defaults", {}).get("links", [])
    ]
    assert drill and all(link["url"].startswith("/d/agent-slo-flow?") for link in drill)


def test_data_links_target_existing_dashboards_and_their_variables(boards):
    by_uid = {board["uid"]: board for board in boards.values()}
    checked = 0
    for board in boards.values():
        for p in lint.iter_panels(board):
            for link in p.get("fieldConfig", {}).get("defaults", {}).get("links", []):
                m = re.fullmatch(r"/d/([\w-]+)\?(.*)", link["url"])
                assert m and m.group(1) in by_uid, link["url"]
                target_vars = {v["name"] for v in by_uid[m.group(1)]["templating"]["list"]}
                params = re.findall(r"var-(\w+)=", m.group(2))
                assert params and set(params) <= target_vars, (link["url"], target_vars)
                assert "${__url_time_range}" in link["url"] and "${datasource:queryparam}" in link["url"]
                checked += 1
    assert checked >= 2


def test_runbook_of_a_new_slo_appears_after_regeneration():
    text = (
        (ROOT / "examples" / "cx-support.slo.yaml")
        .read_text()
        .replace(
            "alerting: {any_bad: page}",
            "alerting: {any_bad: page, runbook_url: 'https://runbooks.test/refund'}",
        )
    )
    board = build_dashboards([parse_spec(text)])["agent-slo-overview.json"]
    assert "https://runbooks.test/refund" in {link["url"] for link in board["links"]}
    catalog = next(p for p in board["panels"] if p["type"] == "text")
    assert "[runbook](https://runbooks.test/refund)" in catalog["options"]["content"]


def test_burn_rate_thresholds_follow_the_tier_catalog(boards):
    panel = next(
        p for p in lint.iter_panels(boards["agent-slo-overview.json"]) if p["title"].startswith("Burn rate")
    )
    values = [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]]
    # The lowest factor per tier across the 30d (14.4, 6, 3, 1) and 28d (13.44, 5.6, 2.8, 0.933) catalogs.
    assert values == [0.933, 2.8, 5.6, 13.44]


def test_release_overlay_annotation_marks_new_build_info(boards):
    annotation = next(
        a for a in boards["agent-slo-flow.json"]["annotations"]["list"] if a["name"] == "Releases"
    )
    assert names.BUILD_INFO in annotation["expr"] and " unless " in annotation["expr"]
    assert annotation["datasource"]["uid"] == "${datasource}"


def test_provisioning_declares_the_datasource_uid_the_dashboards_default_to():
    files = provisioning_files("http://prom.test:9090", "/dash")
    assert set(files) == {"provisioning/datasources/agent-slo.yaml", "provisioning/dashboards/agent-slo.yaml"}
    ds = yaml.safe_load(files["provisioning/datasources/agent-slo.yaml"])["datasources"][0]
    assert (ds["uid"], ds["type"], ds["url"]) == (
        "agent-slo-prometheus",
        "prometheus",
        "http://prom.test:9090",
    )
    provider = yaml.safe_load(files["provisioning/dashboards/agent-slo.yaml"])["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"] == "/dash"
    assert provisioning_files() == provisioning_files()


MINIMAL = """
version: agent-slo/v1
agent: tiny
period: {period}
owners: {{ops: {{team: ops}}}}
flows: {{chat: {{risk: faq}}}}
slos:
  task-success: {{sli: {{task: {{}}}}, objective: auto, owner: ops}}
  infra: {{sli: {{promql: {{total: 'sum(rate(http_requests_total[$window]))',
                           bad: 'sum(rate(http_requests_total{{code=~"5.."}}[$window]))'}}}},
           objective: 99.9, owner: ops}}
"""


@pytest.mark.parametrize(("period", "rule_window"), [("7d", "1w"), ("28d", "4w"), ("90d", "90d")])
def test_a_minimal_spec_without_judges_or_probes_gives_clean_dashboards(period, rule_window):
    spec = parse_spec(MINIMAL.format(period=period))
    boards = build_dashboards([spec])
    for name, board in boards.items():
        assert lint.lint_dashboard(board) == [], name
    overview = json.dumps(boards["agent-slo-overview.json"])
    # The period ratio is read under the name the rules give it: the period's shortest duration spelling.
    assert names.sli_error_ratio(rule_window) in overview
    judges = next(v for v in boards["agent-slo-judges.json"]["templating"]["list"] if v["name"] == "slo")
    assert 'slo=~\\"^$\\"' in json.dumps(judges["query"]) or 'slo=~"^$"' in judges["query"]


def test_no_specs_is_an_error():
    with pytest.raises(ValueError, match="at least one spec"):
        generate_files([])
