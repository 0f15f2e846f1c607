"""A real Prometheus (Debian package) scrapes the exporter, and feeds the autonomy API from recordings."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import requests
import yaml

from agentslo import names
from agentslo.exporter.app import create_app
from agentslo.exporter.config import ExporterConfig
from agentslo.spec import parse_spec

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs the prometheus binary"),
]

SPEC = """
version: agent-slo/v1
agent: bot
owners: {team: {team: t}}
flows: {refund: {risk: billing}, faq: {risk: faq}}
slos:
  task: {sli: {task: {}}, objective: auto, owner: team}
  conn: {sli: {connection: {}}, objective: 99, owner: team}
autonomy: {governed_by: [task], cache_seconds: 0.5}
"""
SCRAPE_S = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def recording_rules() -> dict[str, Any]:
    """Stand-ins for the rules generator's output: an HA duplicate pair that disagrees (worst wins)."""
    base = {names.L_AGENT: "bot", names.L_FLOW: "refund"}
    return {
        "groups": [
            {
                "name": "autonomy-test",
                "interval": "1s",
                "rules": [
                    {"record": names.AUTONOMY_STATE, "expr": "vector(2)", "labels": {**base, "replica": "a"}},
                    {"record": names.AUTONOMY_STATE, "expr": "vector(1)", "labels": {**base, "replica": "b"}},
                    {
                        "record": names.ERROR_BUDGET_REMAINING,
                        "expr": "vector(0.4)",
                        "labels": {**base, names.L_SLO: "task"},
                    },
                    {
                        "record": names.burn_rate("1h"),
                        "expr": "vector(6)",
                        "labels": {**base, names.L_SLO: "task"},
                    },
                ],
            }
        ]
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("prom")
    exporter_port, prom_port = free_port(), free_port()
    (tmp / "bot.slo.yaml").write_text(SPEC)
    (tmp / "rules.yml").write_text(yaml.safe_dump(recording_rules()))
    (tmp / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": f"{SCRAPE_S}s", "evaluation_interval": "1s"},
                "rule_files": [str(tmp / "rules.yml")],
                "scrape_configs": [
                    {"job_name": "agent-slo", "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}
                ],
            }
        )
    )
    prom_url, exp_url = f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{exporter_port}"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agentslo.cli",
                "serve",
                str(tmp / "bot.slo.yaml"),
                "--port",
                str(exporter_port),
                "--prometheus-url",
                prom_url,
            ],
            stdout=subprocess.DEVNULL,
            env={**os.environ, "AGENT_SLO_JUDGE_PROCESS": "0"},  # these tests send no sessions
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [
                "prometheus",
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=subprocess.DEVNULL,
            env={**os.environ, "AGENT_SLO_JUDGE_PROCESS": "0"},  # these tests send no sessions
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        wait_for(lambda: requests.get(f"{exp_url}/readyz", timeout=2).ok, what="exporter")
        wait_for(lambda: requests.get(f"{prom_url}/-/ready", timeout=2).ok, what="prometheus")
        yield {"prometheus": prom_url, "exporter": exp_url, "prometheus_process": procs[1]}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def query(prom: str, promql: str, at: float | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"query": promql}
    if at is not None:
        params["time"] = at
    payload = requests.get(f"{prom}/api/v1/query", params=params, timeout=5).json()
    assert payload["status"] == "success", payload
    return list(payload["data"]["result"])


BAD = f'{names.EVENTS_TOTAL}{{agent="bot",flow="refund",slo="conn",outcome="bad",exclusion=""}}'


def test_first_bad_event_after_start_is_an_increase_of_one(stack: dict[str, Any]) -> None:
    prom, exp = stack["prometheus"], stack["exporter"]
    # Prometheus has seen the series at 0 (created at start) at least twice before anything happens.
    wait_for(
        lambda: len(query(prom, f"{BAD}[1m]")[0]["values"]) >= 2 if query(prom, f"{BAD}[1m]") else False,
        what="two zero samples",
    )
    resp = requests.post(
        f"{exp}/v1/events",
        timeout=5,
        data=orjson.dumps([{"type": "connection", "agent": "bot", "flow": "refund", "ok": False}]),
    )
    assert resp.status_code == 200, resp.text
    samples = wait_for(
        lambda: [v for v in query(prom, f"{BAD}[5m]")[0]["values"] if float(v[1]) == 1.0],
        what="the bad event to be scraped",
    )
    at = float(samples[0][0])  # evaluate exactly at the first sample showing it: no extrapolation beyond it
    result = query(prom, f"increase({BAD}[5m])", at=at)
    assert float(result[0]["value"][1]) == pytest.approx(1.0)
    # and Prometheus reads the same value as /metrics
    assert float(query(prom, BAD)[0]["value"][1]) == 1.0


def test_autonomy_reads_the_worst_ha_duplicate(stack: dict[str, Any]) -> None:
    prom, exp = stack["prometheus"], stack["exporter"]
    wait_for(lambda: query(prom, names.AUTONOMY_STATE), what="recording rules")
    body = wait_for(
        lambda: (
            (
                r := requests.get(
                    f"{exp}/v1/autonomy", params={"agent": "bot", "flow": "refund"}, timeout=5
                ).json()
            )
            and not r["stale"]
            and r
        ),
        what="fresh autonomy",
    )
    assert body["state"] == "critical" and body["code"] == 2
    assert body["allowed_actions"] == list(names.AUTONOMY_ACTIONS["critical"])
    assert body["slos"] == [{"slo": "task", "error_budget_remaining": 0.4, "burn_rate_1h": 6.0}]


def test_autonomy_without_recordings_fails_safe(stack: dict[str, Any]) -> None:
    body = requests.get(
        f"{stack['exporter']}/v1/autonomy", params={"agent": "bot", "flow": "faq"}, timeout=5
    ).json()
    assert body["stale"] is True and body["state"] == "critical" and body["allowed_actions"] == ["escalate"]
    assert names.AUTONOMY_STATE in body["reason"]


HOSTILE_IDS = ["a\x00b", "\x1b[2J", 'x" } # {y', "back\\slash", "line\nbreak", "\u2028", "é" * 100, "\x7f"]


def test_prometheus_keeps_scraping_after_hostile_ids_and_labels(stack: dict[str, Any]) -> None:
    """Issue 17: one `"trace_id": "a\\u0000b"` in an exemplar made Prometheus fail every scrape. Ids
    and free-text labels of every kind go in (control characters, quotes, `#`, long UTF-8); Prometheus
    (which asks for OpenMetrics) keeps scraping: `up` stays 1 and the samples keep coming."""
    prom, exp = stack["prometheus"], stack["exporter"]
    # each id on a series of its own (the latest id per series is the exemplar shown)
    kinds = [
        {"type": "connection", "ok": False},
        {"type": "connection", "ok": True},
        {"type": "task", "outcome": "failure", "version": 'v"} # {\\'},
        {"type": "task", "outcome": "success", "model": "m\\"},
    ]
    batch = [
        {
            "agent": "bot",
            "flow": ("refund", "faq")[i % 2],
            **kinds[i // 2 % 4],
            "trace_id": t,
            "session_id": t,
        }
        for i, t in enumerate(HOSTILE_IDS)
    ]
    resp = requests.post(f"{exp}/v1/events?partial=true", timeout=5, data=orjson.dumps(batch))
    assert resp.status_code in (200, 207), resp.text
    posted = time.time()
    # three scrapes after the last hostile batch, every one of them a success

    def ups() -> list[Any]:
        result = query(prom, 'up{job="agent-slo"}[10s]')
        return list(result[0]["values"]) if result else []

    wait_for(
        lambda: len(values := ups()) >= 3 and float(values[-3][0]) > posted,
        what="three scrapes after the hostile batches",
    )
    assert all(v[1] == "1" for v in ups()), ups()
    assert float(query(prom, 'scrape_samples_scraped{job="agent-slo"}')[0]["value"][1]) > 50


async def test_autonomy_when_prometheus_is_unreachable(aiohttp_client: Any) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    spec = parse_spec(SPEC.replace("cache_seconds: 0.5", "cache_seconds: 0.5, fail_safe: exhausted"))
    client = await aiohttp_client(create_app([spec], ExporterConfig(prometheus_url=dead)))
    resp = await client.get("/v1/autonomy", params={"agent": "bot", "flow": "refund"})
    body = await resp.json()
    assert resp.status == 200
    assert body["stale"] is True and body["state"] == "exhausted" and body["allowed_actions"] == []
    assert "cannot query Prometheus" in body["reason"]
    resp = await client.get("/v1/autonomy", params={"agent": "bot", "flow": "nowhere"})
    assert resp.status == 404 and (await resp.json())["detail"][0]["field"] == "flow"


def test_stale_after_prometheus_goes_away(stack: dict[str, Any]) -> None:
    """Same exporter, Prometheus gone: after the short cache the answer turns stale and conservative."""
    exp = stack["exporter"]
    fresh = requests.get(f"{exp}/v1/autonomy", params={"agent": "bot", "flow": "refund"}, timeout=5).json()
    assert fresh["stale"] is False
    stack["prometheus_process"].terminate()  # the one this module started, by its handle
    stack["prometheus_process"].wait(timeout=10)
    body = wait_for(
        lambda: (
            (
                r := requests.get(
                    f"{exp}/v1/autonomy", params={"agent": "bot", "flow": "refund"}, timeout=5
                ).json()
            )["stale"]
            and r
        ),
        what="stale answer",
    )
    assert body["state"] == "critical" and "cannot query Prometheus" in body["reason"]
