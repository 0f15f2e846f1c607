"""The reading of spans (`exporter.otlp.mapping`): bounds of the trace memory and the waiting room,
and the spec's `otel:` section as `validate` checks it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentslo.exporter.otlp.mapping import map_spans
from agentslo.exporter.otlp.memory import SpanNote, TraceMemory
from agentslo.spec import SpecError, parse_spec
from tests.doubles.sdk_backends import Exporter
from tests.test_otlp_bad_inputs import SPEC, request, span
from tests.test_otlp_ingest import OTEL_SPEC, post_raw


def specs() -> dict[str, object]:
    spec = parse_spec(SPEC)
    return {spec.agent: spec}


def test_the_trace_memory_keeps_at_most_its_traces_and_spans_per_trace() -> None:
    memory = TraceMemory(max_traces=3, max_spans=2)
    for t in range(5):
        for s in range(4):
            memory.note(bytes([t]) * 16, bytes([s]) * 8, SpanNote(b"", "chat", {}), now=0.0)
    assert len(memory.traces) == 3
    assert all(len(spans) == 2 for _, spans in memory.traces.values())


def test_old_traces_are_forgotten_when_new_ones_come() -> None:
    memory = TraceMemory(max_age_s=10)
    memory.trace(b"a" * 16, now=0.0)
    memory.trace(b"b" * 16, now=11.0)
    assert list(memory.traces) == [b"b" * 16]


def test_a_full_waiting_room_refuses_instead_of_growing() -> None:
    memory = TraceMemory(max_deferred=1)
    orphans = [
        span(parent=os.urandom(8), **{"agent_slo.flow": None, "gen_ai.agent.name": None}) for _ in range(2)
    ]
    mapped = map_spans(request(*orphans), specs(), memory)  # type: ignore[arg-type]
    assert len(mapped.deferred) == 1
    assert sum(len(v) for v in mapped.rejected.values()) == 1


def test_a_waiting_span_whose_ancestors_never_come_expires_and_is_counted() -> None:
    memory = TraceMemory(max_age_s=60)
    orphan = span(parent=os.urandom(8), **{"agent_slo.flow": None, "gen_ai.agent.name": None})
    map_spans(request(orphan), specs(), memory, now=1000.0)  # type: ignore[arg-type]
    assert memory.deferred_count == 1
    later = map_spans(ExportTraceServiceRequest(), specs(), memory, now=1061.0)  # type: ignore[arg-type]
    assert later.expired == 1 and memory.deferred_count == 0


def test_a_span_without_its_parent_but_with_a_flow_counts_at_once() -> None:
    orphan = span(parent=os.urandom(8))
    mapped = map_spans(request(orphan), specs(), TraceMemory())  # type: ignore[arg-type]
    assert [e["type"] for e in mapped.events] == ["tool_call"] and not mapped.deferred


def test_resource_attributes_reach_a_waiting_span() -> None:
    memory = TraceMemory()
    trace = os.urandom(16)
    parent = span(op="invoke_agent", trace=trace, **{"agent_slo.flow": None})
    child = span(trace=trace, parent=parent.span_id, **{"agent_slo.flow": None, "gen_ai.agent.name": None})
    resource = {"agent_slo.flow": "refund"}
    assert map_spans(request(child, resource=resource), specs(), memory).deferred  # type: ignore[arg-type]
    later = map_spans(request(parent, resource=resource), specs(), memory)  # type: ignore[arg-type]
    assert sorted(e["type"] for e in later.events) == ["task", "tool_call"]
    assert all(e["flow"] == "refund" for e in later.events)


def test_a_flow_attribute_the_spec_names_is_read_on_the_span_and_inherited_by_its_children() -> None:
    """`otel.flow_attributes` may name an attribute of the application's own (`app.flow`): it is read
    on the span, on its ancestors (a child arriving with or after its parent) and on the resource."""
    spec = parse_spec(SPEC.replace("otel:\n", "otel:\n  flow_attributes: [app.flow, agent_slo.flow]\n"))
    trace = os.urandom(16)
    parent = span(op="invoke_agent", trace=trace, **{"agent_slo.flow": None, "app.flow": "order-status"})
    child = span(trace=trace, parent=parent.span_id, **{"agent_slo.flow": None})
    own = span(**{"agent_slo.flow": None, "app.flow": "refund"})
    mapped = map_spans(request(child, parent, own), {"bot": spec}, TraceMemory())  # type: ignore[arg-type]
    assert not mapped.rejected and not mapped.deferred
    assert [(e["type"], e["flow"]) for e in mapped.events] == [
        ("tool_call", "order-status"),
        ("task", "order-status"),
        ("tool_call", "refund"),
    ]


@pytest.mark.parametrize(
    ("otel", "problem"),
    [
        ("{flow_rules: [{attribute: a, equals: b, flow: nowhere}]}", "flow `nowhere` is not declared"),
        ("{flow_rules: [{attribute: a, flow: refund}]}", "exactly one of equals or matches"),
        ("{flow_rules: [{attribute: a, matches: '(?=x)', flow: refund}]}", "RE2"),
        ("{prices: {m: {input_per_mtok: -1, output_per_mtok: 1}}}", "input_per_mtok"),
        ("{flow_attribute: [x]}", "flow_attribute"),
    ],
)
def test_validate_names_what_is_wrong_in_the_otel_section(otel: str, problem: str) -> None:
    text = SPEC.split("otel:")[0] + f"otel: {otel}\n"
    with pytest.raises(SpecError) as caught:
        parse_spec(text)
    assert problem in str(caught.value)


def test_a_span_parked_before_a_kill_9_is_counted_when_its_parent_comes_after_the_restart(
    tmp_path: Path,
) -> None:
    trace = os.urandom(16)
    parent = span(op="invoke_agent", trace=trace, **{"gen_ai.agent.name": "bot"})
    child = span(trace=trace, parent=parent.span_id, **{"agent_slo.flow": None, "gen_ai.agent.name": None})
    child.attributes.add(key="gen_ai.tool.name").value.string_value = "get_order"
    pb = "application/x-protobuf"
    with Exporter(tmp_path, OTEL_SPEC) as otlp:
        assert post_raw(otlp, "/v1/traces", request(child).SerializeToString(), pb)[0] == 200
        otlp.kill()
        otlp.start()
        assert post_raw(otlp, "/v1/traces", request(parent).SerializeToString(), pb)[0] == 200
        assert otlp.value("agent_slo_tool_calls_total", tool="get_order", outcome="ok", flow="refund") == 1
        assert otlp.value("agent_slo_events_total", slo="task-success", flow="refund", outcome="good") == 1


def test_conversation_content_is_held_within_the_memory_budget() -> None:
    memory = TraceMemory(max_content_bytes=500)
    trace = os.urandom(16)
    chats = []
    for _ in range(5):
        chat = span(op="chat", trace=trace)
        chat.attributes.add(key="gen_ai.input.messages").value.string_value = (
            '[{"role": "user", "parts": [{"type": "text", "content": "' + "x" * 150 + '"}]}]'
        )
        chats.append(chat)
    map_spans(request(*chats), specs(), memory)  # type: ignore[arg-type]
    map_spans(request(*chats), specs(), memory)  # the same spans again hold nothing more
    assert 0 < memory.content_bytes <= 500
    held = sum(n.content is not None for n in memory.traces[trace][1].values())
    assert 1 <= held < 5
