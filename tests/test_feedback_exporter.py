"""The feedback wing inside the real exporter (`exporter.app.create_app`): verdicts feed agent_slo_judge_score
and the judge SLIs, judge failures land in agent_slo_judge_calls_total{outcome}, agreement in
agent_slo_judge_agreement_ratio, and /v1/events keeps answering while a judge provider hangs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from agentslo import feedback, names
from agentslo.exporter.app import create_app
from agentslo.exporter.config import ExporterConfig
from agentslo.feedback.openapi import OPENAPI_PATHS
from agentslo.spec import Spec, parse_spec
from tests.doubles.fake_provider import FakeProvider, Step

SPEC = """
version: agent-slo/v1
agent: cx-support
owners: {{product: {{team: cx}}}}
flows:
  refund: {{risk: billing}}
  order-status: {{risk: faq}}
judges:
  faithfulness: {{type: llm, model: judge-1, version: "3", rubric: "grounded?", pass_threshold: 0.8,
                 sample_rate: 1.0, base_url: "{url}", timeout: 1, max_retries: 1, concurrency: 2,
                 usd_per_1k_input_tokens: 0.5, usd_per_1k_output_tokens: 1.0}}
  refund-policy: {{type: rule, version: "1", flows: [refund],
                  fail_if_matches: ['\\b3\\s*-\\s*5 business days\\b']}}
slos:
  task-success: {{sli: {{task: {{}}}}, objective: auto, owner: product}}
  hallucination: {{sli: {{judge: faithfulness}}, objective: auto, owner: product}}
  refund-policy: {{sli: {{judge: refund-policy}}, objective: 99.5, flows: [refund], owner: product}}
"""

Client = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def provider() -> AsyncIterator[FakeProvider]:
    async with FakeProvider() as p:
        yield p


def spec_for(provider: FakeProvider) -> Spec:
    return parse_spec(SPEC.format(url=provider.base_url))


def session(sid: str, flow: str, answer: str) -> dict[str, Any]:
    return {
        "session_id": sid,
        "agent": "cx-support",
        "flow": flow,
        "context": ["Refunds take 10 days."],
        "messages": [{"role": "user", "content": "refund?"}, {"role": "assistant", "content": answer}],
    }


async def metrics(client: TestClient[Any, Any]) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = await (await client.get("/metrics")).text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(m: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in m.items() if n == name and set(labels.items()) <= ls)


async def test_create_app_wires_the_sessions_routes_and_openapi(
    aiohttp_client: Client, provider: FakeProvider
) -> None:
    client = await aiohttp_client(create_app([spec_for(provider)], ExporterConfig()))
    assert feedback.PIPELINE in client.app
    paths = (await (await client.get("/openapi.json")).json())["paths"]
    for path in OPENAPI_PATHS:
        assert path in paths
    assert (await client.get("/v1/review")).status == 200


async def test_verdicts_feed_judge_score_and_judge_slis_and_failures_the_judge_outcome(
    aiohttp_client: Client, provider: FakeProvider
) -> None:
    client = await aiohttp_client(create_app([spec_for(provider)], ExporterConfig()))
    provider.script.extend([Step(verdict={"score": 0.9}, usage=(1000, 1000)), Step(delay_s=3)])
    for s in (
        session("a", "refund", "Refunds take 3-5 business days."),
        session("b", "order-status", "Shipped."),
    ):
        assert (await client.post("/v1/sessions", json=s)).status == 202
    await client.app[feedback.PIPELINE].drained(timeout=20)
    m = await metrics(client)
    # The rule judge failed a (a bad refund-policy event); faithfulness judged a (0.9), timed out on b.
    assert value(m, names.EVENTS_TOTAL, slo="refund-policy", outcome="bad", flow="refund") == 1
    assert value(m, names.EVENTS_TOTAL, slo="hallucination", outcome="good") == 1
    assert value(m, names.EVENTS_TOTAL, slo="hallucination", outcome="bad") == 0
    assert value(m, names.JUDGE_SCORE + "_count", judge="faithfulness", judge_version="3") == 1
    assert value(m, names.JUDGE_CALLS_TOTAL, judge="faithfulness", outcome="ok") == 1
    assert value(m, names.JUDGE_CALLS_TOTAL, judge="faithfulness", outcome="timeout") == 1
    assert value(m, names.JUDGE_CALLS_TOTAL, judge="refund-policy", outcome="ok") == 1
    assert value(m, names.JUDGE_COST_USD_TOTAL, judge="faithfulness") == pytest.approx(1.5)
    # Nothing about the judges' own trouble shows up as an agent SLI event.
    assert value(m, names.EVENTS_TOTAL, slo="task-success") == 0


async def test_events_ingest_answers_while_the_judge_provider_hangs(
    aiohttp_client: Client, provider: FakeProvider
) -> None:
    client = await aiohttp_client(create_app([spec_for(provider)], ExporterConfig()))
    provider.delay_s = 5
    for i in range(20):
        await client.post("/v1/sessions", json=session(f"h{i}", "order-status", "ok"))
    event = {"type": "task", "agent": "cx-support", "flow": "refund", "outcome": "success"}
    started = time.monotonic()
    for _ in range(20):
        assert (await client.post("/v1/events", json=[event])).status == 200
    assert time.monotonic() - started < 2.0
    m = await metrics(client)
    assert value(m, names.EVENTS_TOTAL, slo="task-success", outcome="good") == 20


async def test_a_review_label_publishes_the_agreement_ratio(
    aiohttp_client: Client, provider: FakeProvider
) -> None:
    client = await aiohttp_client(create_app([spec_for(provider)], ExporterConfig()))
    provider.script.extend([Step(verdict={"score": 0.2}), Step(verdict={"score": 0.3})])
    for sid in ("x", "y"):
        await client.post("/v1/sessions", json=session(sid, "order-status", "Shipped."))
    await client.app[feedback.PIPELINE].drained(timeout=20)
    items = (await (await client.get("/v1/review", params={"judge": "faithfulness"})).json())["items"]
    assert len(items) == 2
    first = await client.post(f"/v1/review/{items[0]['id']}/label", json={"label": "correct"})
    assert (await first.json())["agreement"] == {"ratio": 1.0, "n": 1}
    second = await client.post(f"/v1/review/{items[1]['id']}/label", json={"label": "false_positive"})
    assert (await second.json())["agreement"] == {"ratio": 0.5, "n": 2}
    await asyncio.sleep(0.05)
    m = await metrics(client)
    assert value(m, names.JUDGE_AGREEMENT_RATIO, judge="faithfulness", judge_version="3") == 0.5


async def test_refused_sessions_show_in_the_exporters_health_counters(
    aiohttp_client: Client, provider: FakeProvider
) -> None:
    client = await aiohttp_client(create_app([spec_for(provider)], ExporterConfig()))
    bad = session("bad", "nowhere", "x")
    assert (await client.post("/v1/sessions", json=[bad, session("ok", "refund", "y")])).status == 400
    assert (
        await client.post("/v1/sessions", data=b"{", headers={"Content-Type": "application/json"})
    ).status == 400
    await asyncio.sleep(0.1)
    m = await metrics(client)
    assert value(m, names.INGEST_REJECTED_TOTAL, reason="invalid_event") == 1
    assert value(m, names.INGEST_REJECTED_TOTAL, reason="invalid_body") == 1


# --- a hostile session never stalls the exporter (issue 17: 2) ---

HOSTILE_CHARS = 250_000
HOSTILE = {
    "long-word": {"answer": "a" * HOSTILE_CHARS},  # the example: froze the exporter for 43 s
    "at-signs": {"answer": "a@" * (HOSTILE_CHARS // 2)},
    "digit-groups": {"answer": "1 " * (HOSTILE_CHARS // 2)},
    "plus-digits": {"answer": "+1 " * (HOSTILE_CHARS // 3)},
    "in-tool-output-and-context": {
        "answer": "ok",
        "tool_calls": [{"tool": "issue_refund", "output": {"note": "b." * (HOSTILE_CHARS // 2)}}],
        "context": ["c-" * (HOSTILE_CHARS // 2)],
    },
}
ANSWER_WITHIN_S = 2.0


@pytest.mark.parametrize("shape", HOSTILE.values(), ids=HOSTILE.keys())
async def test_healthz_and_ingest_keep_answering_while_a_hostile_session_is_judged_and_stored(
    aiohttp_client: Client, provider: FakeProvider, shape: dict[str, Any]
) -> None:
    client = await aiohttp_client(create_app([spec_for(provider)], ExporterConfig()))
    pipeline = client.app[feedback.PIPELINE]
    hostile = session("hostile", "refund", shape["answer"]) | {"outcome": "failure"}  # failed: stored
    hostile |= {k: v for k, v in shape.items() if k != "answer"}
    event = {"type": "task", "agent": "cx-support", "flow": "refund", "outcome": "success"}

    async def timed(call: Awaitable[Any]) -> float:
        started = time.monotonic()
        response = await call
        assert response.status == 200
        return time.monotonic() - started

    assert (await client.post("/v1/sessions", json=hostile)).status == 202
    worst = 0.0
    for _ in range(10):  # the first asks overlap the rule judge and redaction of the session
        worst = max(
            worst, await timed(client.get("/healthz")), await timed(client.post("/v1/events", json=[event]))
        )
    assert worst < ANSWER_WITHIN_S
    await pipeline.drained(timeout=20)
    assert await pipeline.db(pipeline.store.count) == 1  # judged, redacted and stored, not dropped
    m = await metrics(client)
    assert value(m, names.JUDGE_CALLS_TOTAL, judge="refund-policy", outcome="ok") == 1
    assert value(m, names.EVENTS_TOTAL, slo="task-success", outcome="good") == 10
