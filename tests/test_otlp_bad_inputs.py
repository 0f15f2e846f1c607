"""OTLP/HTTP refusals: undecodable bodies are 400 (nothing counted), unusable spans are refused in
`partial_success` with their reason and counted by reason, and nothing answers 5xx."""

from __future__ import annotations

import gzip
import os
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from agentslo import names
from agentslo.explain import explain_otel
from agentslo.exporter.app import INGESTOR, create_app
from agentslo.exporter.config import ExporterConfig
from agentslo.exporter.otlp.receiver import counts
from agentslo.spec import parse_spec

SPEC = """
version: agent-slo/v1
agent: bot
owners: {team: {team: t}}
flows: {refund: {risk: billing}, order-status: {risk: faq}}
tools: [get_order]
judges:
  faith: {type: llm, model: m1, version: "3", rubric: "grounded?", pass_threshold: 0.8}
slos:
  task: {sli: {task: {}}, objective: auto, owner: team}
  tools: {sli: {tool_calls: {}}, objective: 95, owner: team}
  faith: {sli: {judge: faith}, objective: auto, owner: team}
otel:
  flow_rules:
    - {attribute: http.route, equals: /refund, flow: refund}
    - {attribute: http.route, matches: "/orders/.*", flow: order-status}
"""
PB = {"Content-Type": "application/x-protobuf"}


def kv(key: str, value: Any) -> KeyValue:
    out = KeyValue(key=key)
    if isinstance(value, bool):
        out.value.bool_value = value
    elif isinstance(value, int):
        out.value.int_value = value
    elif isinstance(value, float):
        out.value.double_value = value
    else:
        out.value.string_value = value
    return out


def span(op: str = "execute_tool", trace: bytes | None = None, parent: bytes = b"", **attrs: Any) -> Span:
    base = {"gen_ai.operation.name": op, "gen_ai.agent.name": "bot", "agent_slo.flow": "refund"}
    if op == "execute_tool":
        base["gen_ai.tool.name"] = "get_order"
    base.update(attrs)
    return Span(
        trace_id=trace or os.urandom(16),
        span_id=os.urandom(8),
        parent_span_id=parent,
        name=f"{op} x",
        start_time_unix_nano=1,
        end_time_unix_nano=2 * 10**8,
        attributes=[kv(k, v) for k, v in base.items() if v is not None],
    )


def request(*spans: Span, resource: dict[str, Any] | None = None) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(kv(k, v) for k, v in (resource or {}).items())
    rs.scope_spans.add().spans.extend(spans)
    return req


@pytest.fixture
async def client(aiohttp_client: Any) -> Any:
    return await aiohttp_client(create_app([parse_spec(SPEC)], ExporterConfig()))


def tool_calls(client: Any) -> float:
    store = client.app[INGESTOR].store
    return sum(
        store.value(names.TOOL_CALLS_TOTAL, ("bot", flow, "get_order", o)) or 0.0
        for flow in ("refund", "order-status")
        for o in ("ok", "error")
    )


async def post(client: Any, req: ExportTraceServiceRequest) -> ExportTraceServiceResponse:
    resp = await client.post("/v1/traces", data=req.SerializeToString(), headers=PB)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/x-protobuf"
    return ExportTraceServiceResponse.FromString(await resp.read())


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"\xff\xff\xff\xff", "application/x-protobuf", 400),  # malformed protobuf
        (b"[1, 2]", "application/json", 400),  # wrong JSON shape
        (b'{"resourceSpans": 7}', "application/json", 400),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', "application/json", 400),
        (b"{not json", "application/json", 400),
        (b"spans", "text/plain", 415),
    ],
)
async def test_an_undecodable_request_is_refused_whole_and_counts_nothing(
    client: Any, body: bytes, content_type: str, status: int
) -> None:
    resp = await client.post("/v1/traces", data=body, headers={"Content-Type": content_type})
    assert resp.status == status
    assert tool_calls(client) == 0


async def test_a_400_answers_a_google_rpc_status_in_the_request_encoding(client: Any) -> None:
    resp = await client.post("/v1/traces", data=b"{", headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert orjson.loads(await resp.read())["code"] == 3


async def test_unusable_spans_are_refused_by_reason_and_the_rest_counted(client: Any) -> None:
    good = span()
    reply = await post(
        client,
        request(
            good,
            span(**{"gen_ai.agent.name": "stranger"}),
            span(**{"agent_slo.flow": None}),
            span(**{"agent_slo.flow": "nowhere"}),
            Span(name="execute_tool get_order"),  # no ids
            span(op="GET /health", **{"agent_slo.flow": None}),  # not GenAI: ignored, not refused
        ),
    )
    assert reply.partial_success.rejected_spans == 4
    message = reply.partial_success.error_message
    for reason in ("unknown_agent", "no_flow", "invalid", "missing_ids"):
        assert reason in message
    assert tool_calls(client) == 1
    store = client.app[INGESTOR].store
    for reason in ("unknown_agent", "no_flow", "invalid", "missing_ids"):
        assert store.value(names.OTLP_REJECTED_TOTAL, ("traces", reason)) == 1
    assert counts(store, "traces") | {"rejected": 4.0} == {
        "counted": 1.0,
        "duplicate": 0.0,
        "ignored": 1.0,
        "rejected": 4.0,
        "deferred": 0.0,
        "expired": 0.0,
    }


async def test_the_same_spans_twice_count_once(client: Any) -> None:
    req = request(span(), span())
    await post(client, req)
    reply = await post(client, req)
    assert not reply.HasField("partial_success") or reply.partial_success.rejected_spans == 0
    assert tool_calls(client) == 2
    assert counts(client.app[INGESTOR].store, "traces")["duplicate"] == 2


async def test_flow_rules_of_the_spec_name_the_flow_when_no_attribute_does(client: Any) -> None:
    await post(client, request(span(**{"agent_slo.flow": None, "http.route": "/orders/42"})))
    store = client.app[INGESTOR].store
    assert store.value(names.TOOL_CALLS_TOTAL, ("bot", "order-status", "get_order", "ok")) == 1


async def test_a_flow_on_the_resource_and_the_agent_from_service_name(client: Any) -> None:
    s = span(**{"agent_slo.flow": None, "gen_ai.agent.name": None})
    await post(client, request(s, resource={"service.name": "bot", "agent_slo.flow": "refund"}))
    assert tool_calls(client) == 1


async def test_attributes_of_the_wrong_type_and_ten_thousand_attributes_are_refused_or_ignored_not_5xx(
    client: Any,
) -> None:
    wrong = span(**{"gen_ai.tool.name": 7, "agent_slo.flow": 3})
    many = span()
    many.attributes.extend(kv(f"x.{i}", i) for i in range(10_000))
    reply = await post(client, request(wrong, many))
    assert reply.partial_success.rejected_spans == 1
    assert tool_calls(client) == 1


async def test_list_and_bytes_values_where_names_or_content_go_are_refused_or_kept_not_5xx(
    client: Any,
) -> None:
    """An array agent name (unhashable: once a 503) and bytes tool arguments (once unserialisable)."""
    listed = span()
    listed.attributes.append(KeyValue(key="gen_ai.agent.name", value=AnyValue(array_value={"values": []})))
    raw = span(**{"gen_ai.tool.call.arguments": None})
    raw.attributes.append(KeyValue(key="gen_ai.tool.call.arguments", value=AnyValue(bytes_value=b"\xff{")))
    reply = await post(client, request(listed, raw))
    assert reply.partial_success.rejected_spans == 1
    assert "unknown_agent" in reply.partial_success.error_message
    assert tool_calls(client) == 1


async def test_a_child_that_arrives_before_its_parent_waits_for_the_parents_flow(client: Any) -> None:
    trace = os.urandom(16)
    parent = span(op="invoke_agent", trace=trace)
    child = span(trace=trace, parent=parent.span_id, **{"agent_slo.flow": None, "gen_ai.agent.name": None})
    reply = await post(client, request(child))
    assert reply.partial_success.rejected_spans == 0
    assert tool_calls(client) == 0
    await post(client, request(parent))
    assert tool_calls(client) == 1
    store = client.app[INGESTOR].store
    assert store.value(names.EVENTS_TOTAL, ("bot", "refund", "task", "good", "")) == 1


async def test_an_undeclared_judge_is_refused_and_a_declared_one_counted(client: Any) -> None:
    s = span(op="chat")
    for judge, score in (("faith", 0.9), ("nobody", 0.5)):
        event = s.events.add(name="gen_ai.evaluation.result", time_unix_nano=5)
        event.attributes.extend(
            [kv("gen_ai.evaluation.name", judge), kv("gen_ai.evaluation.score.value", score)]
        )
    reply = await post(client, request(s))
    assert "undeclared_judge" in reply.partial_success.error_message
    store = client.app[INGESTOR].store
    assert store.value(names.EVENTS_TOTAL, ("bot", "refund", "faith", "good", "")) == 1


async def test_gzip_json_and_the_answer_in_json(client: Any) -> None:
    body = b'{"resourceSpans": [{"scopeSpans": [{"spans": []}]}]}'
    resp = await client.post(
        "/v1/traces",
        data=gzip.compress(body),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert resp.status == 200
    assert orjson.loads(await resp.read()) == {}


async def test_evaluation_log_records_become_judge_events(client: Any) -> None:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.extend([kv("service.name", "bot"), kv("agent_slo.flow", "refund")])
    records = rl.scope_logs.add().log_records
    for judge, score in (("faith", 0.5), ("nobody", 0.9)):
        record = records.add(event_name="gen_ai.evaluation.result", time_unix_nano=10**9)
        record.attributes.extend(
            [kv("gen_ai.evaluation.name", judge), kv("gen_ai.evaluation.score.value", score)]
        )
    records.add().body.string_value = "an ordinary log line"
    for _ in range(2):  # the second is the sender's retry
        resp = await client.post("/v1/logs", data=req.SerializeToString(), headers=PB)
        assert resp.status == 200
        reply = ExportLogsServiceResponse.FromString(await resp.read())
        assert reply.partial_success.rejected_log_records == 1
    store = client.app[INGESTOR].store
    assert store.value(names.EVENTS_TOTAL, ("bot", "refund", "faith", "bad", "")) == 1


def test_explain_says_how_spans_are_read() -> None:
    lines = "\n".join(explain_otel(parse_spec(SPEC)))
    assert "flow from `agent_slo.flow`" in lines
    assert "else flow order-status when `http.route` matches '/orders/.*'" in lines
    assert "no otel.prices" in lines


async def test_overload_is_a_429_with_retry_after_and_a_missing_token_a_401(aiohttp_client: Any) -> None:
    busy = await aiohttp_client(create_app([parse_spec(SPEC)], ExporterConfig(max_pending_batches=0)))
    resp = await busy.post("/v1/traces", data=request(span()).SerializeToString(), headers=PB)
    assert resp.status == 429 and resp.headers["Retry-After"] == "1"
    assert tool_calls(busy) == 0
    locked = await aiohttp_client(create_app([parse_spec(SPEC)], ExporterConfig(token="t0ken")))
    resp = await locked.post("/v1/traces", data=request(span()).SerializeToString(), headers=PB)
    assert resp.status == 401
    assert tool_calls(locked) == 0


async def test_a_body_over_the_limit_is_a_413_with_a_status_in_the_request_encoding(
    aiohttp_client: Any,
) -> None:
    small = await aiohttp_client(create_app([parse_spec(SPEC)], ExporterConfig(max_body_bytes=1000)))
    body = request(*[span() for _ in range(30)]).SerializeToString()
    resp = await small.post("/v1/traces", data=body, headers=PB)
    assert resp.status == 413
    assert resp.content_type == "application/x-protobuf"
    assert tool_calls(small) == 0


async def test_a_gzip_body_inflating_past_the_limit_is_a_413_and_a_chunked_one_counts_whole(
    aiohttp_client: Any,
) -> None:
    """The body limit holds for what a gzip body inflates to; a body sent in HTTP chunks is read whole."""
    small = await aiohttp_client(create_app([parse_spec(SPEC)], ExporterConfig(max_body_bytes=2000)))
    spans = [span() for _ in range(30)]
    body = request(*spans).SerializeToString()
    packed = gzip.compress(body)
    assert len(packed) < 2000 < len(body)
    resp = await small.post("/v1/traces", data=packed, headers={**PB, "Content-Encoding": "gzip"})
    assert resp.status == 413
    assert tool_calls(small) == 0

    async def pieces() -> Any:
        for at in range(0, len(body), 100):
            yield body[at : at + 100]

    roomy = await aiohttp_client(create_app([parse_spec(SPEC)], ExporterConfig()))
    resp = await roomy.post("/v1/traces", data=pieces(), headers=PB)
    assert resp.status == 200 and resp.headers.get("Content-Type") == "application/x-protobuf"
    assert tool_calls(roomy) == 30


@pytest.mark.timeout(30)
async def test_requests_without_a_body_are_answered_one_after_another(aiohttp_client: Any) -> None:
    """aiohttp shares one empty body between requests: reading it must end every time, not only once."""
    client = await aiohttp_client(create_app([parse_spec(SPEC)], ExporterConfig()))
    for route in ("/v1/logs", "/v1/traces", "/v1/logs"):
        for headers in ({}, PB):  # an empty body has no content type
            assert (await client.post(route, headers=headers)).status == 415


async def test_more_spans_than_a_batch_may_hold_is_a_413(aiohttp_client: Any) -> None:
    few = await aiohttp_client(create_app([parse_spec(SPEC)], ExporterConfig(max_batch_events=3)))
    resp = await few.post(
        "/v1/traces", data=request(*[span() for _ in range(4)]).SerializeToString(), headers=PB
    )
    assert resp.status == 413
    assert tool_calls(few) == 0
