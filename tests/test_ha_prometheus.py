"""An HA pair of real Prometheus servers with the same generated rules, one real Alertmanager: an
outage pages once, and the gate and the autonomy API read either server alike.

Each server has its own `prometheus_replica` external label (as the Prometheus Operator gives the
servers of one Prometheus object) and drops it from the alerts it sends (as the operator's
`alert_relabel_configs` does), so both send the same alert and Alertmanager merges them into one.
Server A also remote-writes its state recordings into server B, the way a shared long-term store
(Thanos, Mimir) holds both replicas' copies: B then holds every autonomy and release state twice,
differing only in `prometheus_replica`, which the readers' `max by` collapses.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from agentslo import names, rules
from agentslo.bundle import configs
from agentslo.demo.servers import (
    Alertmanager,
    Prometheus,
    Server,
    WebhookSink,
    find_binary,
    free_port,
    http_get,
)
from agentslo.gate import gate
from agentslo.spec import load_spec
from tests.doubles.serve import serving

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "cx-support.slo.yaml"
REPLICA_LABEL = "prometheus_replica"
EVAL = "5s"  # divides the rules' 5m bucket; fast enough for a test
STATES = "agent_slo:(autonomy_state|release_state):code"

pytestmark = pytest.mark.skipif(
    find_binary("prometheus") is None or find_binary("prometheus-alertmanager", "alertmanager") is None,
    reason="needs prometheus and alertmanager (setup.sh installs both)",
)


@dataclass
class Pair:
    exporter: str
    a: Server
    b: Server
    alertmanager: Server
    sink: WebhookSink


def _config(exporter: str, alertmanager: Server, replica: str, remote_write: str | None) -> dict[str, Any]:
    spec = load_spec(SPEC)
    config = configs.prometheus_config(
        [spec],
        rule_files=["rules/*.yaml"],
        exporter_targets=[exporter.removeprefix("http://")],
        alertmanager_targets=[alertmanager.url.removeprefix("http://")],
        scrape_interval="1s",
        evaluation_interval=EVAL,
    )
    config["global"]["external_labels"] = {REPLICA_LABEL: replica}
    config["alerting"]["alert_relabel_configs"] = [{"action": "labeldrop", "regex": REPLICA_LABEL}]
    if remote_write:
        keep = {"source_labels": ["__name__"], "regex": STATES, "action": "keep"}
        config["remote_write"] = [{"url": remote_write, "write_relabel_configs": [keep]}]
    return config


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    work = tmp_path_factory.mktemp("ha")
    spec = load_spec(SPEC)
    rule_files = {f"rules/{k}": v for k, v in rules.generate_files([spec], eval_interval=EVAL).items()}
    port_b = free_port()
    with (
        WebhookSink() as sink,
        serving(
            SPEC, "--prometheus-url", f"http://127.0.0.1:{port_b}", log=work / "exporter.log"
        ) as exporter,
    ):
        am_config = configs.alertmanager_config(
            [spec], webhook_base_url=sink.url, group_wait="1s", group_interval="2s"
        )
        with Alertmanager.start(work / "am", am_config) as am:
            config_b = _config(exporter, am, "b", None)
            config_a = _config(exporter, am, "a", f"http://127.0.0.1:{port_b}/api/v1/write")
            with (
                Prometheus.start(
                    work / "b",
                    config_b,
                    rule_files=rule_files,
                    port=port_b,
                    extra_args=["--web.enable-remote-write-receiver"],
                ) as b,
                Prometheus.start(work / "a", config_a, rule_files=rule_files) as a,
            ):
                yield Pair(exporter, a, b, am, sink)


def _query(server: Server, promql: str) -> list[dict[str, Any]]:
    status, body = http_get(f"{server.url}/api/v1/query?query={urllib.parse.quote(promql)}")
    assert status == 200, body
    return list(json.loads(body)["data"]["result"])


def _firing(server: Server, alertname: str) -> list[dict[str, Any]]:
    status, body = http_get(f"{server.url}/api/v1/alerts")
    assert status == 200
    return [
        a
        for a in json.loads(body)["data"]["alerts"]
        if a["labels"]["alertname"] == alertname and a["state"] == "firing"
    ]


def _wait(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)
    return found


def test_an_outage_seen_by_both_servers_is_one_notification_per_alert(pair: Pair) -> None:
    # Every refund conversation breaks the refund policy: a rare-event SLO, paged on any bad event.
    # Both servers first scrape its (pre-created) zero series: increase() needs a sample before.
    series = f'{names.EVENTS_TOTAL}{{slo="refund-policy", flow="refund", outcome="bad", exclusion=""}} == 0'
    _wait("a first scrape", lambda: _query(pair.a, series) and _query(pair.b, series))
    bad = {"type": "judge", "agent": "cx-support", "flow": "refund", "judge": "refund-policy", "score": 0}
    assert requests.post(f"{pair.exporter}/v1/events", json=[bad] * 5, timeout=10).status_code == 200
    alert = names.ALERT_RARE_EVENT
    _wait("both servers to fire", lambda: _firing(pair.a, alert) and _firing(pair.b, alert))
    _wait("the page", lambda: pair.sink.alerts())
    time.sleep(5)  # more than group_interval: a second, different alert in the group would be sent by now
    received = [(path, a) for path, a in pair.sink.alerts() if a["labels"]["alertname"] == alert]
    assert len(received) == 1, received  # one notification holding the alert once, not one per server
    path, page = received[0]
    assert path.endswith("cx-support.product.page")
    assert REPLICA_LABEL not in page["labels"]
    _, body = http_get(f"{pair.alertmanager.url}/api/v2/alerts")
    assert [a["labels"]["alertname"] for a in json.loads(body)].count(alert) == 1  # merged, not two


def test_gate_and_autonomy_read_either_server_alike_even_with_duplicate_series(pair: Pair) -> None:
    spec = load_spec(SPEC)
    # B holds its own states and A's remote-written copies: two series per agent and flow.
    duplicates = _wait(
        "A's states in B",
        lambda: [
            r
            for r in _query(pair.b, f"count by (agent, flow) ({names.AUTONOMY_STATE})")
            if r["value"][1] == "2"
        ],
    )
    assert duplicates
    states = [
        {(v.flow, v.slo): v.state for v in gate(spec, server.url, flows=["refund"]).verdicts}
        for server in (pair.a, pair.b)
    ]
    assert states[0] and states[0] == states[1]

    # The exporter reads B (the one with duplicates); its answer is A's own state.
    answer = requests.get(
        f"{pair.exporter}/v1/autonomy", params={"agent": "cx-support", "flow": "refund"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    (a_code,) = _query(pair.a, f'max by (agent, flow) ({names.AUTONOMY_STATE}{{flow="refund"}})')
    assert answer.json()["state"] == names.AUTONOMY_STATES[int(a_code["value"][1])]
    assert not answer.json().get("stale")
