"""The two readers of a trace request (`exporter.otlp.rows`) make the same rows, and so the same counts:
the C++ reader (protobuf's generated C++ classes) and the pure-Python one (the generated Python
classes), on requests the real OpenTelemetry SDK produced, then mutated (attributes of every value
type, repeated keys, ids, status codes, names; and raw bytes)."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from agentslo.exporter.otlp import rows
from agentslo.exporter.otlp.decode import OtlpError
from agentslo.exporter.otlp.mapping import map_spans
from agentslo.exporter.otlp.memory import TraceMemory
from agentslo.spec import parse_spec
from tests.doubles.genai_traces import Tool, Trace, Turn, protobuf
from tests.doubles.sdk_backends import SPEC

pytestmark = pytest.mark.skipif(rows._native is None, reason="the C++ OTLP reader is not built")

# the spec's otel: section adds attribute names the reader must keep (a flow attribute and a rule's)
OTEL_SPEC = (
    SPEC
    + """
otel:
  flow_attributes: [app.flow, agent_slo.flow]
  flow_rules: [{attribute: http.route, equals: /refund, flow: refund}]
"""
)
SPECS = {"bot": parse_spec(OTEL_SPEC)}
WANTED = rows.wanted(SPECS.values())
NOW = time.time()
RUNS = [
    Trace(
        flow="refund",
        conversation="conv-1",
        turns=[Turn(100, 20, 0.8), Turn(150, 30, 0.6, model="gpt-4o-mini")],
        tools=[Tool("get_order"), Tool("issue_refund", fails=True)],
        evaluations=[("faith", 0.9)],
    ),
    Trace(flow="order-status", failed=True, synthetic=True, turns=[Turn(50, 10, 1.5)]),
]
BODIES = [
    protobuf(RUNS, convention, int(NOW * 1e9) - 60 * 10**9) for convention in ("v1.26", "v1.36", "latest")
]
KEYS = [*sorted(WANTED), "agent_slo.flow", "agent_slo.outcome", "agent_slo.x", "other.key", "é", ""]


def both(body: bytes) -> tuple[rows.Rows | None, rows.Rows | None]:
    """(C++ rows or None when it declines, Python rows or None when protobuf cannot decode the body)."""
    native = rows.read_native(body, WANTED)
    try:
        pure = rows.read_message(ExportTraceServiceRequest.FromString(body), WANTED)
    except Exception:  # the route answers 400 (read_body's OtlpError)
        pure = None
    return native, pure


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN and types compared too (True is not 1 here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def counted(read: rows.Rows) -> tuple[Any, ...]:
    mapped = map_spans(read, SPECS, TraceMemory(), NOW)
    deferred = [(t, s, awaited) for t, s, _, _, awaited in mapped.deferred]
    return mapped.events, mapped.keys, mapped.rejected, mapped.ignored, deferred, mapped.sessions


def assert_agree(body: bytes) -> None:
    native, pure = both(body)
    if native is None:
        return  # declined: the pure reader decides (a 400, or rows of its own)
    assert pure is not None, "the C++ reader read a body protobuf's Python classes refuse"
    assert same(native.resources, pure.resources)
    assert same(native.spans, pure.spans)
    assert same(counted(native), counted(pure))


def test_the_reader_is_built_where_it_can_be() -> None:
    """setup.sh installs protoc and libprotobuf, so on CI (and wherever they are) the C++ reader runs."""
    if os.environ.get("CI") == "true" or Path("/usr/include/google/protobuf/message.h").exists():
        assert rows._native is not None, "exporter.otlp._reader is not built: rerun ./setup.sh"


@pytest.mark.parametrize("body", BODIES, ids=["v1.26", "v1.36", "latest"])
def test_sdk_requests_read_the_same_by_both_readers(body: bytes) -> None:
    native, pure = both(body)
    assert native is not None and pure is not None
    assert len(native.spans) == 2 * 1 + 4 + 1  # two task spans, four chats and tools, one more chat
    assert same(native.spans, pure.spans)
    assert same(counted(native), counted(pure))
    assert counted(native)[0], "the SDK's spans became events"


def test_only_the_wanted_attributes_are_read() -> None:
    native, _ = both(BODIES[2])
    assert native is not None
    keys = {k for row in native.spans for k in row[8]}
    assert keys <= WANTED | {k for k in keys if k.startswith(rows.OWN_PREFIX)}
    assert "gen_ai.provider.name" not in keys  # on every span, read by nothing
    assert native.resources == [{"service.name": "bot-service"}]


def test_an_undecodable_body_is_declined_by_the_cpp_reader_and_refused_by_the_pure_one() -> None:
    assert rows.read_native(b"\x0a\xff\xff\xff", WANTED) is None
    with pytest.raises(OtlpError) as refused:
        rows.read_body(b"\x0a\xff\xff\xff", WANTED)
    assert refused.value.status == 400


def test_a_request_of_more_distinct_strings_than_the_reader_shares_reads_the_same() -> None:
    """The C++ reader makes each short string once per request, up to a bound (a hostile variety of
    names and values is read without sharing): past it, rows and counts are still the pure reader's."""
    request = ExportTraceServiceRequest.FromString(BODIES[1])
    spans = request.resource_spans[0].scope_spans[0].spans
    template = spans[0]
    for i in range(5000):  # each span a new name, a new value and a new agent-slo key
        span = spans.add()
        span.CopyFrom(template)
        span.name = f"chat m{i}"
        span.span_id = (i + 1).to_bytes(8, "big")
        span.attributes.append(KeyValue(key="gen_ai.request.model", value=AnyValue(string_value=f"m{i}")))
        span.attributes.append(KeyValue(key=f"agent_slo.x{i}", value=AnyValue(string_value="é" * (i % 70))))
    native, pure = both(request.SerializeToString())
    assert native is not None and pure is not None
    assert same(native.spans, pure.spans)
    assert same(counted(native), counted(pure))


scalars = st.one_of(
    st.text(max_size=8),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.binary(max_size=8),
    st.none(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: ("array", xs)),
        st.lists(st.tuples(st.sampled_from(KEYS), inner), max_size=3).map(lambda kv: ("kvlist", kv)),
    ),
    max_leaves=6,
)


def any_value(value: Any) -> AnyValue:
    out = AnyValue()
    if isinstance(value, tuple) and value[0] == "array":
        out.array_value.values.extend(any_value(v) for v in value[1])
    elif isinstance(value, tuple):
        out.kvlist_value.values.extend(KeyValue(key=k, value=any_value(v)) for k, v in value[1])
    elif isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, bytes):
        out.bytes_value = value
    return out


edits = st.lists(
    st.one_of(
        st.tuples(st.just("attribute"), st.integers(0, 99), st.sampled_from(KEYS), values),
        st.tuples(st.just("resource"), st.integers(0, 99), st.sampled_from(KEYS), values),
        st.tuples(
            st.just("id"),
            st.integers(0, 99),
            st.sampled_from(["trace_id", "span_id", "parent_span_id"]),
            st.binary(max_size=17),
        ),
        st.tuples(st.just("status"), st.integers(0, 99), st.integers(0, 2**31 - 1), st.none()),
        st.tuples(st.just("name"), st.integers(0, 99), st.text(max_size=20), st.none()),
        st.tuples(
            st.just("event"),
            st.integers(0, 99),
            st.sampled_from(["gen_ai.evaluation.result", "x"]),
            st.floats(0, 1),
        ),
    ),
    max_size=8,
)


def mutate(base: bytes, changes: list[Any]) -> bytes:
    """The request `base` with the `edits` applied (tests/test_otlp_mapper.py mutates with it too)."""
    request = ExportTraceServiceRequest.FromString(base)
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    for what, at, key, value in changes:
        span = spans[at % len(spans)]
        if what == "attribute":
            span.attributes.append(KeyValue(key=key, value=any_value(value)))
        elif what == "resource":
            request.resource_spans[0].resource.attributes.append(KeyValue(key=key, value=any_value(value)))
        elif what == "id":
            setattr(span, key, value)
        elif what == "status":
            span.status.code = key  # an open enum: unknown codes are kept
        elif what == "name":
            span.name = key
        else:
            event = span.events.add(name=key, time_unix_nano=span.end_time_unix_nano)
            event.attributes.append(
                KeyValue(key="gen_ai.evaluation.name", value=AnyValue(string_value="faith"))
            )
            event.attributes.append(
                KeyValue(key="gen_ai.evaluation.score.value", value=AnyValue(double_value=value))
            )
    return request.SerializeToString()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(BODIES), changes=edits)
def test_mutated_sdk_requests_read_and_count_the_same_by_both_readers(
    base: bytes, changes: list[Any]
) -> None:
    assert_agree(mutate(base, changes))


@settings(max_examples=200, deadline=None)
@given(base=st.sampled_from(BODIES), data=st.data())
def test_mutated_bytes_are_declined_or_read_the_same(base: bytes, data: st.DataObject) -> None:
    body = bytearray(base)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(body)))
        kind = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        noise = data.draw(st.binary(min_size=1, max_size=4))
        if kind == "replace":
            body[at : at + len(noise)] = noise
        elif kind == "insert":
            body[at:at] = noise
        else:
            del body[at : at + len(noise)]
    assert_agree(bytes(body))
