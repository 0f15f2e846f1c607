"""The judge provider down, end to end: the exporter's LLM judge points at a dead endpoint while
sessions and task events flow. The outage is visible in Prometheus (the judge's own calls end in
errors), rule judges keep judging, and no agent SLO spends budget because of it."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentslo import names
from agentslo.demo.demotime import write_compressed
from agentslo.demo.servers import find_binary, free_port, http_get, http_post_json
from agentslo.demo.stack import Stack
from agentslo.demo.traffic import generate
from agentslo.prometheus import PrometheusClient

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cx-support.slo.yaml"
SESSIONS = 40
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.skipif(find_binary("prometheus") is None, reason="needs the prometheus binary"),
]


def _value(url: str, promql: str) -> float:
    return sum(s.value for s in PrometheusClient(url).query(promql))


def _session(i: int, flow: str) -> dict[str, Any]:
    answer = "Your refund is on its way; the money reaches your card in 5-10 business days."
    return {
        "session_id": f"judge-outage-{i}",
        "agent": "cx-support",
        "flow": flow,
        "outcome": "success",
        "messages": [
            {"role": "user", "content": "Where is my refund?"},
            {"role": "assistant", "content": answer},
        ],
        "context": ["Refunds reach the card in 5-10 business days."],
        "output": answer,
    }


@pytest.fixture(scope="module")
def outage(tmp_path_factory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("e2e-judge-outage")
    data = yaml.safe_load(EXAMPLE.read_text())
    judges = dict(data["judges"])
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens here: the provider is down
    judges["faithfulness"] = dict(judges["faithfulness"]) | {
        "sample_rate": 1.0,
        "timeout": "2s",
        "max_retries": 0,
        "base_url": dead,
    }
    spec_path = write_compressed(EXAMPLE, work / "cx-support.slo.yaml", judges=judges)
    saved = os.environ.get("OPENAI_API_KEY")
    os.environ["OPENAI_API_KEY"] = "judge-outage-test"  # inherited by the exporter process
    out: dict[str, Any] = {}
    try:
        with Stack([spec_path], work / "stack") as stack:
            stack.start(alertmanager=False)
            spec = stack.specs[0]
            events = [e for e in generate(spec, random.Random(9), 300) if e["type"] != "judge"]
            for e in events:
                if e["type"] == "task":
                    e.update(outcome="success", escalation_required=False)
                elif e["type"] == "workflow_step":
                    e["ok"] = True  # a healthy agent: only the judge provider is down
            status, body = http_post_json(f"{stack.exporter_url}/v1/events", events)
            assert status < 300, body
            flows = ["refund", "order-status", "password-reset"]
            status, body = http_post_json(
                f"{stack.exporter_url}/v1/sessions", [_session(i, flows[i % 3]) for i in range(SESSIONS)]
            )
            out["sessions_status"] = status
            calls = names.JUDGE_CALLS_TOTAL
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                failed = _value(stack.prometheus_url, f'{calls}{{judge="faithfulness",outcome!="ok"}}')
                if failed >= SESSIONS:
                    break
                time.sleep(1)
            time.sleep(3)  # a few more evaluations of the rules
            url = stack.prometheus_url
            out["llm_failed"] = _value(url, f'{calls}{{judge="faithfulness",outcome!="ok"}}')
            out["llm_ok"] = _value(url, f'{calls}{{judge="faithfulness",outcome="ok"}}')
            out["failure_outcomes"] = {
                s.labels["outcome"]
                for s in PrometheusClient(url).query(f'{calls}{{judge="faithfulness"}} > 0')
            }
            out["rule_ok"] = _value(url, f'{calls}{{judge="refund-policy",outcome="ok"}}')
            out["hallucination_events"] = _value(url, f'{names.EVENTS_TOTAL}{{slo="hallucination"}}')
            out["bad_events"] = PrometheusClient(url).query(f'{names.EVENTS_TOTAL}{{outcome="bad"}} > 0')
            out["burning"] = PrometheusClient(url).query(f'ALERTS{{alertname="{names.ALERT_BURN_RATE}"}}')
            status, body = http_get(f"{stack.exporter_url}/v1/autonomy?agent=cx-support&flow=refund")
            out["autonomy"] = json.loads(body)
    finally:
        if saved is None:
            os.environ.pop("OPENAI_API_KEY", None)
        else:
            os.environ["OPENAI_API_KEY"] = saved
    return out


def test_sessions_are_accepted_while_the_judge_provider_is_down(outage):
    assert outage["sessions_status"] == 202, outage


def test_the_judge_outage_is_visible_as_the_judges_own_failed_calls(outage):
    assert outage["llm_failed"] >= SESSIONS, outage
    assert outage["llm_ok"] == 0
    assert outage["failure_outcomes"] <= {"error", "timeout"}, outage["failure_outcomes"]


def test_rule_judges_keep_judging(outage):
    assert outage["rule_ok"] >= SESSIONS // 3  # every refund session


def test_no_agent_slo_spends_budget_because_of_it(outage):
    # LLM judge failures record no verdict: the hallucination SLO counts none of them as bad.
    assert outage["bad_events"] == [], [s.labels for s in outage["bad_events"]]
    assert outage["burning"] == []
    assert outage["autonomy"]["state"] == "healthy" and outage["autonomy"]["stale"] is False
