"""The rules generator: valid for promtool on every example and on 28d/7d/90%/scaled/promql specs,
deterministic, per-window (not per-SLO) recording rules, and the `agent-slo rules` command."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from agentslo import names
from agentslo.cli import main
from agentslo.rules import generate_files
from agentslo.spec import Spec, load_specs, parse_spec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(str(p) for p in (ROOT / "examples").glob("*.slo.yaml"))


def _spec(period: str = "30d", objective: float = 99.9, slos: int = 2, **extra: object) -> Spec:
    data = {
        "version": "agent-slo/v1",
        "agent": "gen",
        "period": period,
        "owners": {"team-a": {"team": "a"}},
        "flows": {"main": {}, "other": {}},
        "slos": {
            f"slo-{i}": {"sli": {"task": {}}, "objective": objective, "owner": "team-a"} for i in range(slos)
        },
        **extra,
    }
    return parse_spec(yaml.safe_dump(data))


def _promtool_check(tmp_path: Path, files: dict[str, str]) -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool binary not found")
    paths = []
    for rel, content in files.items():
        path = tmp_path / rel
        path.write_text(content)
        paths.append(str(path))
    result = subprocess.run(
        ["promtool", "check", "rules", *paths], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_rules_of_every_example(tmp_path: Path) -> None:
    assert len(EXAMPLES) >= 2
    _promtool_check(tmp_path, generate_files(load_specs(EXAMPLES)))


@pytest.mark.slow
def test_vmalert_accepts_every_expression_and_template_of_the_examples(tmp_path: Path) -> None:
    """The same files load in vmalert (MetricsQL parse of every expression, Go templates of every
    annotation), so the rules also run on a horizontally scalable engine."""
    vmalert = shutil.which("vmalert")
    if vmalert is None:
        pytest.skip("vmalert binary not found")
    paths = []
    for rel, content in generate_files(load_specs(EXAMPLES)).items():
        (tmp_path / rel).write_text(content)
        paths.append(f"-rule={tmp_path / rel}")
    result = subprocess.run([vmalert, "-dryRun", *paths], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize(
    "spec",
    [
        _spec("28d"),
        _spec("7d"),
        _spec("30d", objective=90),
        _spec("28d", objective=90),
        _spec("90d"),  # no design catalog: windows scaled with the period
        _spec("1d"),  # the period is also one of the design's windows
        _spec("30d", slos=1, slos_extra=None)
        if False
        else _spec(
            "30d",
            slos=1,
            burn_rates={
                "page_fast": {"long": "2h", "short": "10m", "factor": 10},
                "page_slow": {"long": "12h", "short": "1h", "factor": 4},
                "ticket_fast": {"long": "2d", "short": "4h", "factor": 2},
                "ticket_slow": {"long": "5d", "short": "12h", "factor": 1},
            },
        ),
    ],
    ids=["28d", "7d", "90pct", "28d-90pct", "90d-scaled", "1d", "custom-catalog"],
)
def test_promtool_accepts_generated_specs(tmp_path: Path, spec: Spec) -> None:
    _promtool_check(tmp_path, generate_files([spec]))


def test_promql_slis_and_per_slo_periods_pass_promtool(tmp_path: Path) -> None:
    spec = _spec(
        "30d",
        slos=1,
        owners={"team-a": {"team": "a"}},
    )
    data = spec.dump()
    data["slos"]["provider"] = {
        "sli": {
            "promql": {
                "total": 'sum(rate(http_requests_total{job="llm"}[$window]))',
                "bad": 'sum(rate(http_requests_total{job="llm", code=~"5.."}[$window]))',
            }
        },
        "objective": 99.5,
        "owner": "team-a",
        "period": "7d",
    }
    files = generate_files([parse_spec(yaml.safe_dump(data))])
    _promtool_check(tmp_path, files)
    text = files["gen.rules.yaml"]
    assert 'http_requests_total{job="llm", code=~"5.."}[5m]' in text
    assert names.sli_error_ratio("1w") in text  # the 7d period, named by its Prometheus duration


def _records(files: dict[str, str]) -> list[dict[str, object]]:
    return [
        r
        for text in files.values()
        for g in yaml.safe_load(text)["groups"]
        for r in g["rules"]
        if "record" in r
    ]


def test_window_rules_do_not_grow_with_slos() -> None:
    def window_rules(n: int) -> int:
        return sum(1 for r in _records(generate_files([_spec(slos=n)])) if r["record"] != names.SLO_INFO)

    assert window_rules(1) == window_rules(40)


def test_every_contract_series_is_recorded() -> None:
    recorded = {r["record"] for r in _records(generate_files([_spec()]))}
    for window in (*names.SLI_WINDOWS, "30d"):
        assert names.sli_error_ratio(window) in recorded
        assert names.burn_rate(window) in recorded
    for name in (
        names.OBJECTIVE_RATIO,
        names.ERROR_BUDGET_RATIO,
        names.PERIOD_SECONDS,
        names.ERROR_BUDGET_REMAINING,
        names.ERROR_BUDGET_EXHAUSTION,
        names.AUTONOMY_STATE,
        names.RELEASE_STATE,
        names.SLO_INFO,
    ):
        assert name in recorded


def test_every_alert_of_the_design_is_generated() -> None:
    files = generate_files(load_specs(EXAMPLES[:1]))
    alerts = {
        r["alert"]
        for text in files.values()
        for g in yaml.safe_load(text)["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    assert alerts == set(names.ALL_ALERTS)


def test_every_group_has_an_explicit_interval_and_output_is_deterministic() -> None:
    specs = load_specs(EXAMPLES)
    first, second = generate_files(specs), generate_files(list(reversed(specs)))
    assert first == second
    for text in first.values():
        assert all(g.get("interval") == "1m" for g in yaml.safe_load(text)["groups"])


def test_numbers_carry_no_float_noise() -> None:
    text = generate_files([_spec(objective=99.9)])["gen.rules.yaml"]
    text += generate_files([_spec("28d", objective=99.7)])["gen.rules.yaml"]
    assert not re.search(r"\d\.\d*(9999|0000)\d", text), "float noise in generated rules"
    assert "0.0144" in text and "0.001 *" in text


def test_objective_too_low_for_a_tier_is_capped_and_said_so() -> None:
    text = generate_files([_spec(objective=90)])["gen.rules.yaml"]
    page_fast = [
        r
        for g in yaml.safe_load(text)["groups"]
        for r in g["rules"]
        if r.get("labels", {}).get(names.L_BURN_TIER) == "page_fast"
    ]
    assert page_fast and all("> 0.5\n" in r["expr"] for r in page_fast)
    assert all("capped at 50%" in r["annotations"]["description"] for r in page_fast)


def test_operator_format_wraps_groups_with_metadata_labels() -> None:
    files = generate_files(load_specs(EXAMPLES[:1]), "prometheus-operator", {"release": "kube-prometheus"})
    ((name, text),) = files.items()
    doc = yaml.safe_load(text)
    assert name.endswith(".prometheusrule.yaml")
    assert doc["kind"] == "PrometheusRule" and doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert doc["metadata"]["labels"]["release"] == "kube-prometheus"
    assert (
        doc["spec"]["groups"]
        == yaml.safe_load(
            generate_files(load_specs(EXAMPLES[:1]))[name.replace(".prometheusrule.yaml", ".rules.yaml")]
        )["groups"]
    )


def test_unknown_format_and_duplicate_agents_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown rules format"):
        generate_files([_spec()], "thanos")
    with pytest.raises(ValueError, match="must divide the 5m event bucket"):
        generate_files([_spec()], eval_interval="7m")
    with pytest.raises(ValueError, match="two specs describe agent 'gen'"):
        generate_files([_spec(), _spec("7d")])


def test_rules_command_writes_then_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rules"
    assert main(["rules", *EXAMPLES, "-o", str(out)]) == 0
    assert main(["rules", *EXAMPLES, "-o", str(out), "--check"]) == 0
    victim = next(out.glob("*.rules.yaml"))
    victim.write_text(victim.read_text().replace("interval: 1m", "interval: 5m", 1))
    assert main(["rules", *EXAMPLES, "-o", str(out), "--check"]) == 1
    assert "differ" in capsys.readouterr().out
    assert (
        main(
            [
                "rules",
                EXAMPLES[0],
                "-o",
                str(out),
                "--format",
                "prometheus-operator",
                "--metadata-label",
                "release=prom",
            ]
        )
        == 0
    )
    assert "release: prom" in next(out.glob("*.prometheusrule.yaml")).read_text()
    assert main(["rules", EXAMPLES[0], "-o", str(out), "--metadata-label", "novalue"]) == 2
