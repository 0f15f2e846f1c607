"""Sessions from traces: a pydantic-ai run with content capture becomes the session document of
POST /v1/sessions when its task span is read, once, and a late or retried span never makes another."""

from __future__ import annotations

from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

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
