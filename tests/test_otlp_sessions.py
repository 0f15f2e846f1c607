"""Sessions from traces: a pydantic-ai run with content capture becomes the session document of
POST /v1/sessions when its task span is read, once, and a late or retried span never makes another."""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from agentslo import names
from agentslo.exporter.app import create_app
from agentslo.exporter.config import ExporterConfig
from agentslo.exporter.ingest import Ingestor
from agentslo.exporter.otlp.receiver import OtlpReceiver
from agentslo.feedback.session import Session
from agentslo.spec import parse_spec
from tests.doubles.genai_traces import Trace, Turn, record
from tests.doubles.sdk_backends import SPEC, FakeChat, Reply
from tests.test_otlp_frameworks import _pydantic_agent


def receiver() -> tuple[OtlpReceiver, list[dict[str, Any]]]:
    specs = [parse_spec(SPEC)]
    sessions: list[dict[str, Any]] = []
    return OtlpReceiver(Ingestor(specs, ExporterConfig()), specs, on_session=sessions.append), sessions


def test_a_pydantic_ai_run_with_content_becomes_one_session_of_the_sessions_api() -> None:
    memory = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=Resource({"service.name": "bot", "agent_slo.flow": "refund"}))
    tracer_provider.add_span_processor(SimpleSpanProcessor(memory))
    script = [Reply(tools=[("get_order", {"order_id": "A-1"})]), Reply(text="A-1 was delivered.")]
    with FakeChat(script) as chat:
        _pydantic_agent(chat, tracer_provider).run_sync("Where is A-1?")
    spans = memory.get_finished_spans()
    otlp, sessions = receiver()
    for span in spans:  # one export per span, children first, as the SDK sends them
        otlp.traces(encode_spans([span]))
    assert len(sessions) == 1
    session = Session.model_validate(sessions[0])
    assert (session.agent, session.flow, session.outcome) == ("bot", "refund", "success")
    assert [m.role for m in session.messages][-1] == "assistant"
    assert session.output == "A-1 was delivered."
    assert session.messages[0].content == "Where is A-1?"
    assert [(t.tool, t.input, t.outcome) for t in session.tool_calls] == [
        ("get_order", {"order_id": "A-1"}, "ok")
    ]
    otlp.traces(encode_spans(spans))  # the sender's retry: counted once, judged once
    assert len(sessions) == 1


def test_the_older_message_events_make_a_session_and_no_content_makes_none() -> None:
    otlp, sessions = receiver()
    for convention in ("v1.36", "v1.26"):
        memory = InMemorySpanExporter()
        spans = record([Trace(flow="refund", turns=[Turn(10, 2)])], convention, 10**18, memory)
        otlp.traces(encode_spans(spans))
    assert [m["role"] for m in sessions[0]["messages"]] == ["user"]
    assert len(sessions) == 2
    bare, none = receiver()
    memory = InMemorySpanExporter()
    spans = record([Trace(flow="refund", tools=[])], "latest", 10**18, memory)
    bare.traces(encode_spans(spans))
    assert none == []


RULE_JUDGE = """  promise-check: {type: rule, version: "2", fail_if_contains: ["guaranteed"]}
"""


async def _rule_verdicts(client: Any) -> dict[str, float]:
    """`_count` and `_sum` of `agent_slo_judge_score` for the rule judge, over all flows, from /metrics."""
    text = await (await client.get("/metrics")).text()
    totals = {"count": 0.0, "sum": 0.0}
    for family in text_string_to_metric_families(text):
        for s in family.samples if family.name == names.JUDGE_SCORE else ():
            part = s.name.rpartition("_")[2]
            if s.labels.get("judge") == "promise-check" and part in totals:
                totals[part] += s.value
    return totals


async def test_a_traced_conversation_reaches_the_rule_judge_and_its_verdict_is_counted(
    aiohttp_client,
) -> None:
    spec = parse_spec(SPEC.replace("judges:\n", "judges:\n" + RULE_JUDGE, 1))
    memory = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=Resource({"service.name": "bot", "agent_slo.flow": "refund"}))
    tracer_provider.add_span_processor(SimpleSpanProcessor(memory))
    script = [
        Reply(tools=[("get_order", {"order_id": "A-1"})]),
        Reply(text="A refund is guaranteed by Friday."),
    ]
    with FakeChat(script) as chat:
        await _pydantic_agent(chat, tracer_provider).run("Where is A-1?")
    body = encode_spans(memory.get_finished_spans()).SerializeToString()

    client = await aiohttp_client(create_app([spec], ExporterConfig()))
    assert await _rule_verdicts(client) == {"count": 0.0, "sum": 0.0}
    for _ in range(2):  # the sender's retry: counted once, judged once
        resp = await client.post("/v1/traces", data=body, headers={"Content-Type": "application/x-protobuf"})
        assert resp.status == 200, await resp.text()
    deadline = asyncio.get_running_loop().time() + 10
    while not (await _rule_verdicts(client))["count"]:
        assert asyncio.get_running_loop().time() < deadline, "no verdict of the rule judge within 10 s"
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # a second verdict, were the retry judged again, would be in by now
    # one verdict, and "guaranteed" in the answer: the rule fails (score 0)
    assert await _rule_verdicts(client) == {"count": 1.0, "sum": 0.0}
