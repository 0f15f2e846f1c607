"""End to end on real processes: the exporter (`agent-slo serve`), Prometheus 2.42 with the generated
rules, Alertmanager 0.25 with the generated routing, and a webhook receiver served by this test.

One scenario runs once for the module (demo time: 1h period, page_fast 2m/30s; see demo.demotime):
clean traffic, then an outage of every task. It records what each part saw, then the faults: the
exporter is killed with SIGKILL and restarted during traffic, and Prometheus is stopped. Each test
asserts one part of that record.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from agentslo import gate, names
from agentslo.demo.demotime import write_compressed
from agentslo.demo.faults import Faults
from agentslo.demo.servers import WebhookSink, find_binary, http_get
from agentslo.demo.stack import Stack
from agentslo.demo.traffic import EventTraffic, InBackground
from agentslo.prometheus import PrometheusClient

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cx-support.slo.yaml"
WARMUP_S = 10.0
PAGE_TIMEOUT_S = 120.0
FLOW = "order-status"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not (find_binary("prometheus") and find_binary("prometheus-alertmanager", "alertmanager")),
        reason="needs the prometheus and prometheus-alertmanager binaries",
    ),
]


def _autonomy(stack: Stack, flow: str) -> dict[str, Any]:
    status, body = http_get(f"{stack.exporter_url}/v1/autonomy?agent=cx-support&flow={flow}")
    assert status == 200, body
    return json.loads(body)


def _events_total(stack: Stack) -> float:
    result = PrometheusClient(stack.prometheus_url).query(f'sum({names.EVENTS_TOTAL}{{agent="cx-support"}})')
    return result[0].value if result else 0.0


def _wait(predicate, timeout: float, step: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


@pytest.fixture(scope="module")
def record(tmp_path_factory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("e2e-outage")
    spec_path = write_compressed(
        EXAMPLE,
        work / "cx-support.slo.yaml",
        autonomy={"governed_by": ["task-success", "hallucination", "refund-policy"], "cache_seconds": 1},
    )
    out: dict[str, Any] = {}
    with WebhookSink() as sink, Stack([spec_path], work / "stack", webhook_url=sink.url) as stack:
        stack.start()
        spec = stack.specs[0]
        traffic = EventTraffic(spec, stack.exporter_url, rate_per_s=20, seed=11)
        with InBackground(traffic):
            time.sleep(WARMUP_S)
            out["healthy_autonomy"] = _autonomy(stack, FLOW)
            out["healthy_gate"] = gate.gate(spec, stack.prometheus_url, flows=[FLOW], change_kind=None)
            traffic.inject(Faults(task_failure_rate=1.0))
            injected = time.monotonic()

            def paged(path: str, alert: dict) -> bool:
                labels = alert["labels"]
                return (
                    labels.get("alertname") == names.ALERT_BURN_RATE
                    and labels.get("slo") == "task-success"
                    and labels.get("burn_tier") == "page_fast"
                    and labels.get("flow") == FLOW
                )

            out["page"] = sink.wait_for(paged, PAGE_TIMEOUT_S)
            out["time_to_page_s"] = time.monotonic() - injected
            time.sleep(2)  # one more evaluation and cache period
            out["outage_autonomy"] = _autonomy(stack, FLOW)
            out["outage_gate"] = gate.gate(spec, stack.prometheus_url, flows=[FLOW])

            # Fault: SIGKILL the exporter during traffic, restart it on the same counters.
            before_kill = _events_total(stack)
            posted_before_kill = traffic.events_posted
            stack.kill_exporter()
            time.sleep(2)  # traffic keeps posting into the void; Prometheus scrapes fail (up == 0)
            stack.start_exporter()
            out["posted_during_restart"] = traffic.events_posted - posted_before_kill
            time.sleep(5)  # a few scrapes of the restarted exporter
            out["before_kill"], out["after_restart"] = before_kill, _events_total(stack)
            out["resets"] = PrometheusClient(stack.prometheus_url).query(
                f'sum(resets({names.EVENTS_TOTAL}{{agent="cx-support"}}[1m]))'
            )
            out["traffic_errors"] = list(traffic.errors)

            # Fault: Prometheus goes away.
            stack.stop_prometheus()
            time.sleep(1.5)  # past the autonomy cache (1s in this spec)
            out["no_prom_gate"] = gate.gate(spec, stack.prometheus_url, flows=[FLOW], timeout=2)
            out["no_prom_autonomy"] = _autonomy(stack, FLOW)
        out["sink"] = sink.alerts(status=None)
    return out


def test_an_outage_pages_the_owner_through_alertmanager_with_labels_and_annotations(record):
    assert record["page"] is not None, f"no page within {PAGE_TIMEOUT_S}s; received: {record['sink'][:5]}"
    receiver, alert = record["page"]
    assert receiver == "cx-support.product.page"
    labels = alert["labels"]
    assert labels["severity"] == "critical"
    assert labels["team"] == "cx-product" and labels["owner"] == "product"
    assert labels["agent"] == "cx-support"
    assert (
        alert["annotations"]["summary"]
        == "The task-success SLO of cx-support is burning its error budget too fast."
    )
    assert "task-success events failed on flow order-status" in alert["annotations"]["description"]
    assert record["time_to_page_s"] < 90
    print(
        f"\n| outage (every task fails) | AgentSLOBurnRate page_fast (critical) on task-success/{FLOW} "
        f"| {record['time_to_page_s']:.0f} s |"
    )


def test_autonomy_drops_from_healthy_to_critical_or_worse(record):
    assert record["healthy_autonomy"]["state"] == "healthy", record["healthy_autonomy"]
    assert record["healthy_autonomy"]["stale"] is False
    outage = record["outage_autonomy"]
    assert outage["state"] in ("critical", "exhausted"), outage
    assert "autonomous" not in outage["allowed_actions"]
    burns = {s["slo"]: s.get("burn_rate_1h", 0) for s in outage["slos"]}
    assert burns["task-success"] > 5


def test_the_gate_ships_when_healthy_and_holds_during_the_outage_naming_the_slo(record):
    assert record["healthy_gate"].ship, [v for v in record["healthy_gate"].verdicts if v.blocks]
    held = record["outage_gate"]
    assert not held.ship
    blocking = {(v.slo, v.state) for v in held.blocking}
    assert ("task-success", "exhausted") in blocking or ("task-success", "freeze") in blocking
    reason = next(v.reason for v in held.blocking if v.slo == "task-success")
    assert "error budget left" in reason and "over 1h" in reason


def test_kill_9_and_restart_is_no_counter_reset_for_prometheus(record):
    assert record["resets"] and record["resets"][0].value == 0, record["resets"]
    assert record["after_restart"] > record["before_kill"] > 0
    assert record["traffic_errors"], "posting should have failed while the exporter was down"


def test_without_prometheus_the_gate_fails_closed_and_autonomy_fails_safe(record):
    decision = record["no_prom_gate"]
    assert not decision.ship
    assert "could not be reached" in decision.problem and "failing closed" in decision.problem
    autonomy = record["no_prom_autonomy"]
    assert autonomy["stale"] is True
    assert autonomy["state"] == "critical"  # the spec's autonomy.fail_safe default
    assert autonomy["allowed_actions"] == ["escalate"]
    assert "Prometheus" in autonomy["reason"]
