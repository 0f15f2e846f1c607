"""`agent-slo gate` against a real Prometheus holding release states recorded by a fixture rule file
(HA duplicates included), and against no Prometheus at all (fail closed)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from agentslo import cli, names
from agentslo.demo.servers import Prometheus, find_binary, free_port
from agentslo.gate import Reading, decide, scope
from agentslo.prometheus import PrometheusClient
from agentslo.spec import parse_spec
from tests.doubles.serve import serving

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cx-support.slo.yaml"
CHANGE_KINDS = {
    "prompt": ["task-success", "hallucination", "refund-policy"],
    "tool": ["tool-call-accuracy"],
    "cost": ["cost-per-task"],
}
# Non-healthy readings of the fixture; every other pair is healthy, but cost-per-task is never recorded.
FREEZE = ("task-success", "refund")
WATCH = ("tool-call-accuracy", "order-status")
UNRECORDED_SLO = "cost-per-task"


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["release_gate"] = {"change_kinds": CHANGE_KINDS}
    path = tmp_path_factory.mktemp("gate") / "cx.slo.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def spec(spec_file: Path):
    return parse_spec(spec_file.read_text(), str(spec_file))


def _record(name: str, value: float, labels: dict[str, str]) -> dict:
    return {"record": name, "expr": f"vector({value})", "labels": labels}


def fixture_rules(spec) -> str:
    """Constant recordings of release state, budget and burn for every (slo, flow) but the unrecorded SLO.
    The frozen pair also has an HA twin (replica b) that claims healthy: the gate must take the worst."""
    rules = []
    for slo in spec.slos:
        if slo == UNRECORDED_SLO:
            continue
        for flow in spec.flows_of(slo):
            state, remaining, b1, b6 = 0, 0.91, 0.2, 0.3
            if (slo, flow) == FREEZE:
                state, remaining, b1, b6 = 2, 0.12, 3.4, 2.1
            elif (slo, flow) == WATCH:
                state, remaining, b1, b6 = 1, 0.45, 0.8, 1.2
            labels = {names.L_AGENT: spec.agent, names.L_FLOW: flow, names.L_SLO: slo, "replica": "a"}
            rules += [
                _record(names.RELEASE_STATE, state, labels),
                _record(names.ERROR_BUDGET_REMAINING, remaining, labels),
                _record(names.burn_rate("1h"), b1, labels),
                _record(names.burn_rate("6h"), b6, labels),
            ]
            if (slo, flow) == FREEZE:
                twin = labels | {"replica": "b"}
                rules += [
                    _record(names.RELEASE_STATE, 0, twin),
                    _record(names.ERROR_BUDGET_REMAINING, 0.9, twin),
                ]
    return yaml.safe_dump({"groups": [{"name": "gate-fixture", "interval": "1s", "rules": rules}]})


@pytest.fixture(scope="module")
def prometheus(spec, tmp_path_factory):
    if find_binary("prometheus") is None:
        pytest.skip("prometheus not installed")
    directory = tmp_path_factory.mktemp("prom")
    config = {"global": {"evaluation_interval": "1s"}, "rule_files": ["rules.yaml"]}
    with Prometheus.start(directory, config, rule_files={"rules.yaml": fixture_rules(spec)}) as prom:
        deadline = time.monotonic() + 20
        while not PrometheusClient(prom.url).query(names.burn_rate("6h")) and time.monotonic() < deadline:
            time.sleep(0.2)
        yield prom


def gate(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["gate", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_frozen_flow_holds_and_says_which_slo_how_much_budget_and_what_burn(prometheus, spec_file, capsys):
    code, out, _ = gate(
        capsys, str(spec_file), "--prometheus", prometheus.url, "--flow", "refund", "--change-kind", "prompt"
    )
    assert code == 1
    assert out.startswith("HOLD: cx-support: 1 of 3 SLO/flow budgets block this change")
    line = next(ln for ln in out.splitlines() if "refund / task-success" in ln)
    assert "[x]" in line and "freeze" in line
    assert "12.0% of the 30d error budget left" in line  # min over the HA twins (0.12, not 0.9)
    assert "3.4x over 1h" in line and "2.1x over 6h" in line


def test_a_flow_on_watch_ships_because_block_at_defaults_to_freeze(prometheus, spec_file, capsys):
    code, out, _ = gate(
        capsys,
        str(spec_file),
        "--prometheus",
        prometheus.url,
        "--flow",
        "order-status",
        "--change-kind",
        "tool",
    )
    assert code == 0, out
    assert out.startswith("SHIP: cx-support: all 1 SLO/flow budgets")
    assert "order-status / tool-call-accuracy: watch" in out


def test_the_change_kind_limits_the_slos_read(prometheus, spec_file, capsys):
    code, out, _ = gate(capsys, str(spec_file), "--prometheus", prometheus.url, "--change-kind", "prompt")
    assert code == 1
    slos = {ln.split(" / ")[1].split(":")[0] for ln in out.splitlines()[1:]}
    assert slos == {"task-success", "hallucination", "refund-policy"}


def test_an_slo_never_recorded_holds(prometheus, spec_file, capsys):
    code, out, _ = gate(
        capsys,
        str(spec_file),
        "--prometheus",
        prometheus.url,
        "--change-kind",
        "cost",
        "--flow",
        "order-status",
    )
    assert code == 1
    assert "cost-per-task: unknown: no release state recorded" in out


def test_override_ships_and_records_who_and_why(prometheus, spec_file, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("USER", "oncall-alice")
    audit = tmp_path / "overrides.jsonl"
    code, out, err = gate(
        capsys,
        str(spec_file),
        "--prometheus",
        prometheus.url,
        "--flow",
        "refund",
        "--change-kind",
        "prompt",
        "--override",
        "INC-42 hotfix for refund tool",
        "--audit-log",
        str(audit),
    )
    assert code == 0
    assert out.startswith("SHIP (override): cx-support")
    record = json.loads(err.strip().splitlines()[-1])
    assert record["event"] == "release_gate_override"
    assert record["who"] == "oncall-alice"
    assert record["reason"] == "INC-42 hotfix for refund tool"
    assert record["blocked_by"] == ["refund/task-success:freeze"]
    assert json.loads(audit.read_text()) == record


def test_override_with_an_exporter_is_counted_there(prometheus, spec_file, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("GATE_TEST_TOKEN", "t0k")
    with serving(spec_file, "--token", "t0k", log=tmp_path / "exporter.log") as url:
        args = ["--prometheus", prometheus.url, "--change-kind", "prompt", "--override", "INC-42"]
        exporter = ["--exporter", url, "--exporter-token-env", "GATE_TEST_TOKEN"]
        code, _, err = gate(capsys, str(spec_file), *args, "--flow", "refund", *exporter)
        assert code == 0 and "not counted" not in err, err
        metrics = requests.get(f"{url}/metrics", timeout=5).text
        counted = {
            s.labels["flow"]: s.value
            for family in text_string_to_metric_families(metrics)
            for s in family.samples
            if s.name == names.RELEASE_OVERRIDES_TOTAL
        }
        assert counted["refund"] == 1 and counted[""] == 0 and counted["order-status"] == 0
        # a wrong token: the fix still ships, and stderr says the counter missed it
        monkeypatch.setenv("GATE_TEST_TOKEN", "wrong")
        code, _, err = gate(capsys, str(spec_file), *args, "--flow", "refund", *exporter)
        assert code == 0 and "the override ships but was not counted" in err and "401" in err


def test_unreachable_prometheus_fails_closed(spec_file, capsys):
    dead = f"http://127.0.0.1:{free_port()}"
    code, out, _ = gate(capsys, str(spec_file), "--prometheus", dead, "--timeout", "2")
    assert code == 1
    assert out.startswith("HOLD: cx-support: Prometheus at")
    assert "could not be reached" in out and "failing closed" in out


def test_unknown_flow_or_change_kind_is_bad_input(spec_file, capsys):
    assert gate(capsys, str(spec_file), "--prometheus", "http://127.0.0.1:1", "--flow", "nope")[0] == 2
    assert gate(capsys, str(spec_file), "--prometheus", "http://127.0.0.1:1", "--change-kind", "nope")[0] == 2


def test_block_at_exhausted_lets_a_freeze_ship(spec):
    strict = spec.model_copy(
        update={"release_gate": spec.release_gate.model_copy(update={"block_at": "exhausted"})}
    )
    readings = {FREEZE: Reading(state=2, remaining=0.1, burn_1h=3.0)}
    assert decide(strict, readings, [FREEZE]).ship
    assert not decide(spec, readings, [FREEZE]).ship
    assert not decide(strict, {FREEZE: Reading(state=3, remaining=-0.2)}, [FREEZE]).ship


def test_scope_defaults_to_every_slo_on_its_own_flows(spec):
    pairs = scope(spec)
    assert ("refund-policy", "refund") in pairs
    assert ("refund-policy", "order-status") not in pairs  # refund-policy applies to refund only
    assert len(pairs) == sum(len(spec.flows_of(s)) for s in spec.slos)


def test_a_missing_release_state_fails_closed(spec):
    pair = ("task-success", "refund")
    held = decide(spec, {pair: Reading(remaining=0.9, burn_1h=0.1)}, [pair])
    assert not held.ship and held.verdicts[0].state == "unknown"
