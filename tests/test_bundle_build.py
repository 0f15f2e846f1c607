"""`agent-slo build`: the whole bundle from the spec, accepted by promtool and amtool, and `--check`
catching drift."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from agentslo import cli
from agentslo.bundle import build
from agentslo.demo.servers import find_binary

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = str(ROOT / "examples" / "cx-support.slo.yaml")
VOICE = str(ROOT / "examples" / "voice-booking.slo.yaml")
PROMTOOL, AMTOOL = find_binary("promtool"), find_binary("amtool")


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("bundle")
    assert cli.main(["build", EXAMPLE, VOICE, "-o", str(directory)]) == 0
    return directory


def test_build_writes_configs_rules_and_dashboards(out: Path) -> None:
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert {"prometheus.yml", "alertmanager.yml"} <= files
    assert any(f.startswith(f"{build.RULES_DIR}/") for f in files)
    assert any(f.startswith(f"{build.DASHBOARDS_DIR}/") and f.endswith(".json") for f in files)
    assert f"{build.GRAFANA_DIR}/provisioning/datasources/agent-slo.yaml" in files


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed")
def test_promtool_accepts_the_prometheus_config_and_the_rules_it_loads(out: Path) -> None:
    result = subprocess.run(
        [PROMTOOL, "check", "config", str(out / "prometheus.yml")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout  # one per agent


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed")
def test_the_generated_promtool_tests_pass(out: Path) -> None:
    # The cx-support suite (the rules package's own tests cover the generator across specs).
    tests = sorted((out / build.RULES_TESTS_DIR).glob("cx-support*.yaml"))
    if not tests:
        pytest.skip("the rules package generates no promtool tests yet")
    result = subprocess.run(
        [PROMTOOL, "test", "rules", *map(str, tests)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=out / build.RULES_TESTS_DIR,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.skipif(AMTOOL is None, reason="amtool not installed")
def test_amtool_accepts_the_alertmanager_config(out: Path) -> None:
    result = subprocess.run(
        [AMTOOL, "check-config", str(out / "alertmanager.yml")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_scrapes_the_exporter_job_and_alerts_to_alertmanager(out: Path) -> None:
    config = yaml.safe_load((out / "prometheus.yml").read_text())
    assert [j["job_name"] for j in config["scrape_configs"]] == ["agent-slo"]
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == ["exporter:9120"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_check_passes_on_a_fresh_build_and_fails_after_an_edit(out: Path, capsys) -> None:
    assert cli.main(["build", EXAMPLE, VOICE, "-o", str(out), "--check"]) == 0
    target = out / "alertmanager.yml"
    original = target.read_text()
    try:
        target.write_text(original.replace("agent-slo-default", "someone-else", 1))
        assert cli.main(["build", EXAMPLE, VOICE, "-o", str(out), "--check"]) == 1
        assert "alertmanager.yml" in capsys.readouterr().out
    finally:
        target.write_text(original)
