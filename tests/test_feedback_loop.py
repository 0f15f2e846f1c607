"""The whole feedback loop on the real exporter: bad sessions → top contributors → human labels →
dataset export → `agent-slo calibrate` publishes agreement → regression scenarios load in the prober."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from agentslo import feedback, names
from agentslo.exporter.app import create_app
from agentslo.exporter.config import ExporterConfig
from agentslo.scenario import parse_scenarios
from agentslo.spec import load_spec
from tests.doubles.fake_provider import FakeProvider

SPEC = """
version: agent-slo/v1
agent: cx-support
owners: {{product: {{team: cx}}}}
flows:
  refund: {{risk: billing}}
  order-status: {{risk: faq}}
tools: [get_order, issue_refund]
failure_modes: [wrong_refund_window, promo_pricing]
judges:
  faithfulness:
    type: llm
    model: judge-1
    version: "3"
    rubric: "Is every claim grounded in the retrieved context?"
    pass_threshold: 0.5
    sample_rate: 1.0
    base_url: "{url}"
    usd_per_1k_input_tokens: 0.15
    usd_per_1k_output_tokens: 0.6
  refund-policy:
    type: rule
    version: "1"
    flows: [refund]
    fail_if_matches: ['\\b3\\s*-\\s*5 business days\\b']
slos:
  task-success: {{sli: {{task: {{}}}}, objective: auto, owner: product}}
  hallucination: {{sli: {{judge: faithfulness}}, objective: auto, owner: product}}
  refund-policy: {{sli: {{judge: refund-policy}}, objective: 99.5, flows: [refund], owner: product}}
"""

Client = Callable[..., Awaitable[TestClient[Any, Any]]]


def session(sid: str, flow: str, user: str, answer: str, **extra: Any) -> dict[str, Any]:
    return {
        "session_id": sid,
        "agent": "cx-support",
        "flow": flow,
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
        "context": ["Refunds are issued within ten business days after approval."],
        "tool_calls": [
            {
                "tool": "issue_refund",
                "input": {"order_id": f"A-{sid}"},
                "output": {"status": "accepted"},
                "outcome": "ok",
            }
        ],
        "version": "2026-11-20",
        **extra,
    }


@pytest.fixture
async def provider() -> AsyncIterator[FakeProvider]:
    async with FakeProvider() as p:
        yield p


async def test_bad_sessions_to_labels_to_datasets_to_calibration_to_regression_scenarios(
    aiohttp_client: Client, provider: FakeProvider, tmp_path: Path
) -> None:
    spec_path = tmp_path / "cx.slo.yaml"
    spec_path.write_text(SPEC.format(url=provider.base_url))
    spec = load_spec(spec_path)
    client = await aiohttp_client(create_app([spec], ExporterConfig()))
    pipeline = client.app[feedback.PIPELINE]

    # 1. Traffic: 12 promotional-pricing refunds quoting the retired window (rule judge fails them, and
    #    the grounding judge too), 4 order-status failures, 14 good refunds.
    batch = [
        session(
            f"promo-{i}",
            "refund",
            f"Is the promotional pricing on order {i} refundable?",
            "Promotional purchases are refunded in 3-5 business days.",
            failure_mode="promo_pricing",
        )
        for i in range(12)
    ]
    batch += [
        session(f"late-{i}", "order-status", "Where is my parcel?", "It is lost, sorry.", outcome="failure")
        for i in range(4)
    ]
    batch += [
        session(
            f"good-{i}",
            "refund",
            "Refund please",
            "Refunds are issued within ten business days.",
            outcome="success",
        )
        for i in range(14)
    ]
    assert (await client.post("/v1/sessions", json=batch)).status == 202
    await pipeline.drained(timeout=30)

    # 2. Top contributors: the 12 promotional-pricing sessions are one group, and say what they are about.
    top = await (await client.get("/v1/sessions/top", params={"slo": "refund-policy", "window": "1h"})).json()
    assert top["total_sessions"] == 12
    (group,) = top["groups"]
    assert group["by"] == {
        "flow": "refund",
        "failure_mode": "promo_pricing",
        "tool": "issue_refund",
        "version": "2026-11-20",
    }
    assert group["sessions"] == 12 and group["share"] == 1.0
    assert {"promotional", "pricing", "refundable"} <= set(group["common_terms"])
    task_top = await (await client.get("/v1/sessions/top", params={"slo": "task-success"})).json()
    assert task_top["groups"][0]["by"]["flow"] == "order-status" and task_top["groups"][0]["sessions"] == 4

    # 3. Humans review the faithfulness verdicts: the judge was right on 10 of 12 failures and 9 of 10 passes.
    queue = (await (await client.get("/v1/review", params={"judge": "faithfulness", "limit": 100})).json())[
        "items"
    ]
    failed = [i for i in queue if not i["passed"]]
    passed = [i for i in queue if i["passed"]]
    assert len(failed) >= 12 and len(passed) >= 10
    labels = [(i, "correct") for i in failed[:10]] + [(i, "false_positive") for i in failed[10:12]]
    labels += [(i, "correct") for i in passed[:9]] + [(i, "real_failure") for i in passed[9:10]]
    for item, label in labels:
        resp = await client.post(f"/v1/review/{item['id']}/label", json={"label": label, "reviewer": "ann"})
        assert resp.status == 200
    for item in (await (await client.get("/v1/review", params={"judge": "refund-policy"})).json())["items"][
        :3
    ]:
        await client.post(
            f"/v1/review/{item['id']}/label", json={"label": "real_failure", "note": "old window"}
        )

    # 4. The balanced calibration set: as many human passes as human failures.
    resp = await client.get("/v1/datasets/calibration.jsonl", params={"judge": "faithfulness"})
    assert resp.headers["X-Agent-SLO-Balanced"] == "true"
    lines = [json.loads(x) for x in (await resp.text()).splitlines()]
    humans = [x["human_pass"] for x in lines]
    assert humans.count(True) == humans.count(False) == 11
    dataset = tmp_path / "calibration.jsonl"
    dataset.write_text(await resp.text())

    # 5. calibrate re-runs the judge on the set and publishes its agreement to the exporter.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentslo.cli",
        "calibrate",
        str(spec_path),
        "--judge",
        "faithfulness",
        "--dataset",
        str(dataset),
        "--exporter",
        str(client.make_url("/")),
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    report = json.loads(out)
    assert report["judged"] == 22, err.decode()
    agreement = report["at_pass_threshold"]["agreement"]
    assert agreement == pytest.approx(19 / 22)  # the same judge on the same sessions agrees as before
    metrics = await (await client.get("/metrics")).text()
    assert (
        f'{names.JUDGE_AGREEMENT_RATIO}{{agent="cx-support",judge="faithfulness",judge_version="3"}}'
        in metrics
    )
    gauge = next(line for line in metrics.splitlines() if line.startswith(names.JUDGE_AGREEMENT_RATIO + "{"))
    assert float(gauge.rsplit(" ", 1)[1]) == pytest.approx(agreement)

    # 6. Regression: every real failure with a user turn becomes a scenario the prober can load.
    regression = [
        json.loads(x) for x in (await (await client.get("/v1/datasets/regression.jsonl")).text()).splitlines()
    ]
    assert len(regression) == 4  # the good-* session the judge passed wrongly, three promo rule failures
    text = await (await client.get("/v1/datasets/regression.yaml")).text()
    scenarios = parse_scenarios(text, "regression.yaml", spec)
    assert {s.name for s in scenarios} == {f"regression-{r['session_id']}" for r in regression}
    assert all(s.tags == ("regression",) and s.turns and s.assert_ for s in scenarios)
    promo = [s for s in scenarios if "promo" in s.name]
    assert promo and all(a.judge == "refund-policy" for s in promo for a in s.assert_)
    assert all("issue_refund" in s.tools for s in promo)
