"""docker-compose.yml: valid for Debian's docker-compose, pinned images, the bundle's generated config
mounted, Prometheus retention longer than the longest SLO period, and service commands our CLIs accept."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from agentslo.bundle import build, configs
from agentslo.demo import agent as demo_agent
from agentslo.durations import parse_duration
from agentslo.spec import load_specs

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = shutil.which("docker-compose")
pytestmark = pytest.mark.skipif(COMPOSE is None, reason="docker-compose not installed")
SERVICES = {"generate", "exporter", "demo-agent", "prober", "prometheus", "alertmanager", "grafana"}


@pytest.fixture(scope="module")
def compose() -> dict:
    out = subprocess.run(
        [COMPOSE, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def test_docker_compose_config_is_valid() -> None:
    out = subprocess.run(
        [COMPOSE, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr


def test_every_part_of_the_loop_is_a_service(compose: dict) -> None:
    assert set(compose["services"]) == SERVICES


def test_images_are_pinned(compose: dict) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: image {image!r} is not pinned to a version"


def test_prometheus_keeps_data_longer_than_the_longest_example_period(compose: dict) -> None:
    specs = load_specs(sorted(ROOT.glob("examples/*.slo.yaml")))
    flags = compose["services"]["prometheus"]["command"]
    retention = next(f.split("=", 1)[1] for f in flags if f.startswith("--storage.tsdb.retention.time="))
    longest = max(s.period_seconds(slo) for s in specs for slo in s.slos)
    assert parse_duration(retention) > longest
    assert parse_duration(retention) >= parse_duration(configs.retention(specs))


def test_prometheus_alertmanager_and_grafana_read_the_generated_bundle(compose: dict) -> None:
    services = compose["services"]
    generate_out = services["generate"]["command"][services["generate"]["command"].index("-o") + 1]
    assert generate_out == "/generated"
    prom_flags = services["prometheus"]["command"]
    assert "--config.file=/generated/prometheus.yml" in prom_flags
    assert "--config.file=/generated/alertmanager.yml" in services["alertmanager"]["command"]
    # docker-compose 1.29 prints short volume syntax: "host:container[:mode]"
    mounts = [v.split(":") for v in services["grafana"]["volumes"]]
    grafana_mounts = {m[1]: m[0] for m in mounts if m[0].startswith("/")}
    assert grafana_mounts["/etc/grafana/provisioning"].endswith(
        f"deploy/generated/{build.GRAFANA_DIR}/provisioning"
    )
    assert grafana_mounts["/var/lib/grafana/dashboards/agent-slo"].endswith(
        f"deploy/generated/{build.DASHBOARDS_DIR}"
    )
    for name in ("prometheus", "alertmanager", "grafana"):
        assert services[name]["depends_on"]["generate"]["condition"] == "service_completed_successfully"


def _parses(add_arguments, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_arguments(parser)
    return parser.parse_args(argv)


def test_the_build_command_is_one_our_cli_accepts_and_targets_the_compose_services(compose: dict) -> None:
    args = _parses(build.add_arguments, compose["services"]["generate"]["command"][1:])
    assert args.exporter == ["exporter:9120"] and args.alertmanager == ["alertmanager:9093"]
    exporter_port = compose["services"]["exporter"]["command"]
    assert exporter_port[exporter_port.index("--port") + 1] == "9120"


def test_the_prober_command_is_one_our_cli_accepts(compose: dict) -> None:
    synthetic_command = pytest.importorskip("agentslo.synthetic.command")
    args = _parses(synthetic_command.add_arguments, compose["services"]["prober"]["command"][1:])
    assert args.target_url == "http://demo-agent:8090/v1"


def test_the_exporter_command_is_one_our_cli_accepts(compose: dict) -> None:
    exporter_command = pytest.importorskip("agentslo.exporter.command")
    _parses(exporter_command.add_arguments, compose["services"]["exporter"]["command"][1:])


def test_the_demo_agent_command_is_one_it_accepts(compose: dict, monkeypatch) -> None:
    seen = {}
    monkeypatch.setattr(demo_agent.web, "run_app", lambda app, **kw: seen.update(kw))
    monkeypatch.setattr(
        demo_agent, "load_spec", lambda path: load_specs([ROOT / "examples/cx-support.slo.yaml"])[0]
    )
    demo_agent.main(compose["services"]["demo-agent"]["command"])
    assert seen["port"] == 8090 and seen["host"] == "0.0.0.0"
