"""The shipped Alertmanager config: amtool accepts it, routes by owner and severity, and a real
Alertmanager 0.25 delivers pages to the owner's page receiver while inhibiting the same SLO's tickets."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

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
from agentslo.spec import load_spec, parse_spec

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


ZONE = "Asia/Kolkata"  # UTC+05:30: the hours are read in the spec's zone, not the machine's


def _hours_spec(agent: str, hours: str):
    """The example under another agent name, with business hours every day at `hours` in ZONE."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["agent"] = agent
    days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
    data["synthetic"]["business_hours"] = {"days": days, "hours": hours, "time_zone": ZONE}
    return parse_spec(yaml.safe_dump(data, sort_keys=False), f"{agent}.yaml")


def _around_now() -> tuple[str, str]:
    """(hours holding now, hours an hour or more away from now), in ZONE, from the test's own clock."""
    hour = datetime.now(ZoneInfo(ZONE)).hour
    inside = f"{max(hour - 1, 0):02d}:00-{min(hour + 2, 24):02d}:00"
    away = hour + 2 if hour < 12 else hour - 3
    return inside, f"{away:02d}:00-{away + 1:02d}:00"


def test_business_hours_become_time_intervals_that_amtool_accepts(tmp_path: Path) -> None:
    spec = _hours_spec("voice-bot", "08:30-18:00")
    config = configs.alertmanager_config([spec])
    assert config["time_intervals"] == [
        {
            "name": "voice-bot.business-hours",
            "time_intervals": [
                {
                    "weekdays": [
                        "monday",
                        "tuesday",
                        "wednesday",
                        "thursday",
                        "friday",
                        "saturday",
                        "sunday",
                    ],
                    "times": [{"start_time": "08:30", "end_time": "18:00"}],
                    "location": ZONE,
                }
            ],
        }
    ]
    path = write_yaml(tmp_path / "alertmanager.yml", config)
    out = subprocess.run([AMTOOL, "check-config", str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    # amtool ignores time: a synthetic failure goes to both children (the page one continues)
    labels = {"agent": "voice-bot", "alertname": names.ALERT_SYNTHETIC_FAILING, "severity": "critical"}
    assert route_for(path, **labels) == "voice-bot.synthetic.page,voice-bot.synthetic.ticket"
    assert route_for(path, **{**labels, "alertname": names.ALERT_BURN_RATE, "team": "cx-product"}) == (
        "voice-bot.product.page"
    )


@pytest.mark.timeout(60)
def test_real_alertmanager_pages_synthetic_failures_in_business_hours_and_tickets_them_outside(
    tmp_path: Path,
) -> None:
    inside, outside = _around_now()
    specs = [_hours_spec("open-bot", inside), _hours_spec("closed-bot", outside)]
    with WebhookSink() as sink:
        config = configs.alertmanager_config(
            specs, webhook_base_url=sink.url, group_wait="1s", group_interval="2s"
        )
        with Alertmanager.start(tmp_path, config) as am:
            failing = [
                {"labels": {"alertname": names.ALERT_SYNTHETIC_FAILING, "agent": agent, "flow": "refund",
                            "scenario": "refund-delivered-order", "severity": "critical"},
                 "annotations": {"summary": "a scenario keeps failing"}}
                for agent in ("open-bot", "closed-bot")
            ]  # fmt: skip
            status, body = http_post_json(am.url + "/api/v2/alerts", failing)
            assert status == 200, body
            for agent, receiver in (("open-bot", "page"), ("closed-bot", "ticket")):
                got = sink.wait_for(lambda _, a, agent=agent: a["labels"]["agent"] == agent, timeout=20)
                assert got is not None and got[0] == f"{agent}.synthetic.{receiver}", (inside, outside, got)
            time.sleep(3)  # a group interval more: the muted twin of each must still be silent
            paths = sorted({path for path, _ in sink.alerts()})
            assert paths == ["closed-bot.synthetic.ticket", "open-bot.synthetic.page"], (inside, outside)
