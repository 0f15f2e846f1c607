"""The shipped Alertmanager config: amtool accepts it, routes by owner and severity, and a real
Alertmanager 0.25 delivers pages to the owner's page receiver while inhibiting the same SLO's tickets."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from agentslo import names
from agentslo.bundle import configs
from agentslo.demo.servers import (
    Alertmanager,
    WebhookSink,
    find_binary,
    http_get,
    http_post_json,
    write_yaml,
)
from agentslo.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cx-support.slo.yaml"
AMTOOL = find_binary("amtool")
pytestmark = pytest.mark.skipif(AMTOOL is None, reason="amtool (prometheus-alertmanager) not installed")


@pytest.fixture(scope="module")
def spec():
    return load_spec(EXAMPLE)


@pytest.fixture()
def config_file(spec, tmp_path: Path) -> Path:
    return write_yaml(tmp_path / "alertmanager.yml", configs.alertmanager_config([spec]))


def route_for(config_file: Path, **labels: str) -> str:
    out = subprocess.run(
        [
            AMTOOL,
            "config",
            "routes",
            "test",
            f"--config.file={config_file}",
            *(f"{k}={v}" for k, v in labels.items()),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return out.stdout.strip()


def test_amtool_check_config_accepts_the_generated_config(config_file: Path) -> None:
    out = subprocess.run(
        [AMTOOL, "check-config", str(config_file)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ({"agent": "cx-support", "team": "cx-product", "severity": "critical"}, "cx-support.product.page"),
        ({"agent": "cx-support", "team": "cx-product", "severity": "warning"}, "cx-support.product.ticket"),
        ({"agent": "cx-support", "team": "cx-product", "severity": "info"}, "cx-support.product.ticket"),
        ({"agent": "cx-support", "team": "platform", "severity": "critical"}, "cx-support.platform.page"),
        ({"agent": "cx-support", "team": "platform", "severity": "warning"}, "cx-support.platform.ticket"),
        ({"agent": "cx-support", "severity": "warning"}, "cx-support.default.ticket"),
        ({"agent": "someone-else", "team": "platform", "severity": "critical"}, configs.DEFAULT_RECEIVER),
    ],
)
def test_routes_follow_agent_owner_labels_and_severity(
    config_file: Path, labels: dict, receiver: str
) -> None:
    assert route_for(config_file, **labels) == receiver


def test_every_owner_used_by_an_slo_has_page_and_ticket_receivers(spec) -> None:
    receivers = {r["name"] for r in configs.alertmanager_config([spec])["receivers"]}
    for owner in {s.owner for s in spec.slos.values()}:
        assert configs.receiver_name(spec.agent, owner, "page") in receivers
        assert configs.receiver_name(spec.agent, owner, "ticket") in receivers


def _alert(slo: str, tier: str, severity: str, team: str = "cx-product", flow: str = "refund") -> dict:
    return {
        "labels": {
            "alertname": names.ALERT_BURN_RATE,
            names.L_AGENT: "cx-support",
            names.L_SLO: slo,
            names.L_FLOW: flow,
            names.L_BURN_TIER: tier,
            names.L_SEVERITY: severity,
            "team": team,
        },
        "annotations": {"summary": f"{slo} is burning its error budget ({tier})."},
    }


@pytest.mark.timeout(60)
def test_real_alertmanager_delivers_pages_and_inhibits_the_same_slos_tickets(spec, tmp_path: Path) -> None:
    with WebhookSink() as sink:
        config = configs.alertmanager_config(
            [spec], webhook_base_url=sink.url, group_wait="1s", group_interval="2s"
        )
        with Alertmanager.start(tmp_path, config) as am:
            alerts = [
                _alert("task-success", "page_fast", "critical"),
                _alert("task-success", "ticket_fast", "warning"),  # same SLO and flow: inhibited
                _alert(
                    "task-success", "ticket_slow", "warning", flow="order-status"
                ),  # other flow: delivered
                _alert("e2e-latency", "ticket_fast", "warning", team="platform"),  # other SLO: delivered
            ]
            status, body = http_post_json(am.url + "/api/v2/alerts", alerts)
            assert status == 200, body

            def got(slo: str, tier: str, flow: str = "refund"):
                return lambda path, a: (
                    a["labels"].get("slo") == slo
                    and a["labels"].get("burn_tier") == tier
                    and a["labels"].get("flow") == flow
                )

            page = sink.wait_for(got("task-success", "page_fast"), timeout=20)
            assert page is not None, "the page never reached the webhook"
            assert page[0] == "cx-support.product.page"
            assert page[1]["labels"]["severity"] == "critical"
            assert page[1]["annotations"]["summary"].startswith("task-success is burning")
            other_flow = sink.wait_for(got("task-success", "ticket_slow", "order-status"), timeout=20)
            assert other_flow is not None and other_flow[0] == "cx-support.product.ticket"
            other_slo = sink.wait_for(got("e2e-latency", "ticket_fast"), timeout=20)
            assert other_slo is not None and other_slo[0] == "cx-support.platform.ticket"

            # Give Alertmanager two more group intervals to (not) send the inhibited ticket.
            time.sleep(4)
            assert not [
                a
                for _, a in sink.alerts()
                if a["labels"].get("burn_tier") == "ticket_fast" and a["labels"].get("slo") == "task-success"
            ]
            status, body = http_get(am.url + "/api/v2/alerts?filter=burn_tier%3D%22ticket_fast%22")
            states = {a["labels"]["slo"]: a["status"] for a in json.loads(body)}
            assert states["task-success"]["state"] == "suppressed"
            assert states["task-success"]["inhibitedBy"], "the ticket should name the page that inhibits it"
            assert states["e2e-latency"]["state"] == "active"
