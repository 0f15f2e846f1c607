"""The C++ OTLP mapper (`exporter/otlp/_mapper.cpp`) and what its fast path leans on: the span-key
index (`otlp.seen`) and the traces the trace memory holds unread (`otlp.memory.Unread`).

The mapper is a filter, not an authority: on a request it takes, its events, span keys and ignored
spans must be exactly what the Python mapping (`mapping.map_spans`) makes of the same request, types
included; on any other it declines (None) and the Python mapping reads the request. Proven on the
SDK's requests (tests/test_otlp_reader.py) reshaped (spans dropped, moved, re-parented, wrapped in
an agent span, split across resources) and mutated value by value, with three spec sets; then through
receivers (the mapper's JSON through the /v1/events scanner against the Python mapping's dicts): the
benchmark's requests, traces continued in a later request or by an evaluation record, retries across
restarts and old key rows, and the bounds of the span-key index (C++ `SpanIndex` and its Python twin)
and of the unread request bodies.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client.parser import text_string_to_metric_families

from agentslo import names
from agentslo.exporter.app import create_app
from agentslo.exporter.classify import Deltas
from agentslo.exporter.config import ExporterConfig
from agentslo.exporter.exposition import render
from agentslo.exporter.ingest import Ingestor
from agentslo.exporter.otlp import memory as memory_module
from agentslo.exporter.otlp import receiver as receiver_module
from agentslo.exporter.otlp import rows
from agentslo.exporter.otlp.conversation import INPUT_MESSAGES, OUTPUT_MESSAGES, TOOL_ARGUMENTS, TOOL_RESULT
from agentslo.exporter.otlp.mapping import map_spans, unread_notes
from agentslo.exporter.otlp.memory import SpanNote, TraceMemory, Unread, UnreadIds, UnreadTraces
from agentslo.exporter.otlp.receiver import OtlpReceiver, counts
from agentslo.exporter.otlp.seen import GENERATIONS, SpanIndex, SpanKeys
from agentslo.exporter.persist import SPAN_MARK
from agentslo.spec import Spec, load_spec, parse_spec
from benchmarks.exporter_common import EXAMPLE
from benchmarks.otlp_ingest import bodies, template
from tests.doubles.sdk_backends import SPEC
from tests.test_otlp_bad_inputs import PB, kv, request, span
from tests.test_otlp_reader import BODIES, NOW, SPECS, any_value, edits, mutate, same

pytestmark = pytest.mark.skipif(
    receiver_module.Mapper is None or rows.PURE,
    reason="the C++ OTLP mapper (the _reader extension) is not built, or AGENT_SLO_PURE_PYTHON=1",
)

CONTENT = (INPUT_MESSAGES, OUTPUT_MESSAGES, TOOL_ARGUMENTS, TOOL_RESULT)  # a session to assemble
# No flow rules, prices (cost_usd is summed in C++: it must be the same double), and the flow and
# exclusion read from attributes of the application's own, outside agent_slo.*
PRICED = parse_spec(
    SPEC
    + """
otel:
  flow_attributes: [app.flow]
  exclude_attribute: app.exclude
  prices:
    gpt-4o: {input_per_mtok: 2.5, output_per_mtok: 10.0}
    gpt-4o-mini: {input_per_mtok: 0.15, output_per_mtok: 0.6}
"""
)
# A second agent whose task operations differ: its agent spans inside bot's are tasks of their own
HELPER = parse_spec(
    SPEC.replace("agent: bot", "agent: helper")
    + """
otel:
  task_operations: [invoke_agent, create_agent]
"""
)
VARIANTS: dict[str, dict[str, Spec]] = {
    "flow-rules": SPECS,
    "priced-app-flow": {"bot": PRICED},
    "two-agents": {**SPECS, "helper": HELPER},
}


def plain(body: bytes, flow_key: str = "agent_slo.flow", resource_flow: bool = False) -> bytes:
    """An SDK request as the mapper takes it: no span events (evaluations, messages), no content; the
    flow attribute renamed to `flow_key`. With `resource_flow`, the resource names the agent and a
    flow too (so a span cut from its ancestors is still the agent's)."""
    req = ExportTraceServiceRequest.FromString(body)
    if resource_flow:
        req.resource_spans[0].resource.attributes.extend(
            [kv("service.name", "bot"), kv(flow_key, "order-status")]
        )
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for s in ss.spans:
                del s.events[:]
                kept = [a for a in s.attributes if a.key not in CONTENT]
                for a in kept:
                    a.key = flow_key if a.key == "agent_slo.flow" else a.key
                del s.attributes[:]
                s.attributes.extend(kept)
    return req.SerializeToString()


PLAIN = {
    variant: [plain(b, flow_key, on_resource) for b in BODIES for on_resource in (False, True)]
    for variant, flow_key in (
        ("flow-rules", "agent_slo.flow"),
        ("priced-app-flow", "app.flow"),
        ("two-agents", "agent_slo.flow"),
    )
}

# Structural changes to a request (spans by index, modulo their count), applied before `edits`.
AGENTS = ("bot", "helper", "stranger")
# (agent, operation) of an agent span: create_agent is a task operation of helper's spec only
WRAPS = (*((agent, "invoke_agent") for agent in AGENTS), ("helper", "create_agent"), ("bot", "create_agent"))
UNSET = (
    "agent_slo.flow",
    "app.flow",
    "gen_ai.agent.name",
    "gen_ai.operation.name",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "gen_ai.request.model",
    "gen_ai.conversation.id",
    "agent_slo.synthetic",
)
RESOURCES = (
    {},
    {"service.name": "bot"},
    {"service.name": "helper", "agent_slo.flow": "order-status"},
    {"app.flow": "refund", "app.exclude": "test_call"},
    {"agent_slo.flow": "refund", "agent_slo.exclude": "abuse"},
)
# (start, end) in ns: none, ending before it starts, at the ends of uint64, beyond 2**53
TIMES = ((0, 0), (5, 1), (1, 2**64 - 1), (2**63, 2**64 - 1), (2**53 + 1, 2**53 + 3), (0, 1))
index = st.integers(0, 99)
shapes = st.lists(
    st.one_of(
        st.tuples(st.just("drop"), index, index),
        st.tuples(st.just("move"), index, index),
        st.tuples(st.just("parent"), index, index),  # j's span id: siblings, loops, itself
        st.tuples(st.just("root"), index, index),
        st.tuples(st.just("orphan"), index, index),  # a parent not in the request
        st.tuples(st.just("trace"), index, index),  # j's trace id
        st.tuples(st.just("split"), index, st.integers(0, len(RESOURCES) - 1)),
        st.tuples(st.just("unset"), index, st.integers(0, len(UNSET) - 1)),
        st.tuples(st.just("agent"), index, st.integers(0, len(AGENTS) - 1)),
        st.tuples(st.just("wrap"), index, st.integers(0, len(WRAPS) - 1)),  # an agent span around it
        st.tuples(st.just("copy"), index, index),  # the span again, under a new id
        st.tuples(st.just("times"), index, st.integers(0, len(TIMES) - 1)),
    ),
    max_size=6,
)


def reshape(body: bytes, changes: list[tuple[str, int, int]]) -> bytes:
    req = ExportTraceServiceRequest.FromString(body)
    made = 0

    def new_id() -> bytes:
        nonlocal made
        made += 1
        return bytes([0xA5, made]) * 4

    for what, i, j in changes:
        spans = [(ss, s) for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]
        if not spans:
            break
        scope, target = spans[i % len(spans)]
        other = spans[j % len(spans)][1]
        if what == "drop":
            scope.spans.remove(target)
        elif what == "move":
            moved = Span()
            moved.CopyFrom(target)
            scope.spans.remove(target)
            scope.spans.insert(j % (len(scope.spans) + 1), moved)
        elif what == "parent":
            target.parent_span_id = other.span_id
        elif what == "root":
            target.parent_span_id = b""
        elif what == "orphan":
            target.parent_span_id = b"\x0f" * 8
        elif what == "trace":
            target.trace_id = other.trace_id
        elif what == "split":
            rs = req.resource_spans.add()
            rs.resource.attributes.extend(kv(k, v) for k, v in RESOURCES[j].items())
            rs.scope_spans.add().spans.add().CopyFrom(target)
            scope.spans.remove(target)
        elif what == "unset":
            kept = [a for a in target.attributes if a.key != UNSET[j]]
            del target.attributes[:]
            target.attributes.extend(kept)
        elif what == "agent":
            target.attributes.append(kv("gen_ai.agent.name", AGENTS[j]))
        elif what == "wrap":
            outer = scope.spans.add(
                trace_id=target.trace_id,
                span_id=new_id(),
                parent_span_id=target.parent_span_id,
                name=f"{WRAPS[j][1]} {WRAPS[j][0]}",
                start_time_unix_nano=max(0, target.start_time_unix_nano - 1),
                end_time_unix_nano=min(2**64 - 1, target.end_time_unix_nano + 1),
            )
            outer.attributes.extend(
                [kv("gen_ai.operation.name", WRAPS[j][1]), kv("gen_ai.agent.name", WRAPS[j][0])]
            )
            target.parent_span_id = outer.span_id
        elif what == "times":
            target.start_time_unix_nano, target.end_time_unix_nano = TIMES[j]
        else:
            scope.spans.add().CopyFrom(target)
            scope.spans[-1].span_id = new_id()
    return req.SerializeToString()


@st.composite
def requests(draw: st.DrawFn, variant: str) -> bytes:
    """An SDK request of the variant, reshaped and mutated; span events and ids of other sizes (always
    declined) in one example of four only."""
    base, shape, changes = draw(st.sampled_from(PLAIN[variant])), draw(shapes), draw(edits)
    if draw(st.integers(0, 3)) != 0:
        changes = [c for c in changes if c[0] not in ("event", "id")]
    return mutate(reshape(base, shape), changes)


def hex_keys(keys: bytes | str) -> str:
    """The mapper's span keys (trace and span id of each event: 24 bytes, or 48 hex digits) in hex."""
    return keys.hex() if isinstance(keys, bytes) else keys


def assert_mapped_alike(specs: dict[str, Spec], mapper: Any, body: bytes) -> bool:
    """Whether the mapper took the request; when it did, it made what the Python mapping makes."""
    fast = mapper.map(body)
    if fast is None:
        return False
    events, keys, traces, ignored, total = fast
    read = rows.read_body(body, rows.wanted(specs.values()))
    mapped = map_spans(read, specs, TraceMemory(), NOW)
    assert same(orjson.loads(events), mapped.events)
    assert hex_keys(keys) == "".join(mapped.keys) and len(hex_keys(keys)) == 48 * len(mapped.keys)
    assert (ignored, total) == (mapped.ignored, mapped.total)
    assert not mapped.rejected and not mapped.deferred and not mapped.sessions, "the mapper took a request"
    in_order = list(dict.fromkeys(trace_id for _, trace_id, *_ in read.spans))
    assert traces == b"".join(in_order)
    return True


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_mapper_makes_the_python_mappings_events_or_declines(variant: str) -> None:
    specs = VARIANTS[variant]
    mapper = receiver_module._mapper(list(specs.values()), TraceMemory())
    taken: list[bool] = []

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(body=requests(variant))
    def check(body: bytes) -> None:
        taken.append(assert_mapped_alike(specs, mapper, body))

    check()
    assert all(assert_mapped_alike(specs, mapper, body) for body in PLAIN[variant]), "the SDK's own requests"
    # Otherwise the test proves nothing: about half are taken (41-81% in 60 runs: Hypothesis draws its
    # examples in runs of alike ones, so a run's share varies widely); at least a quarter must be.
    assert sum(taken) >= len(taken) / 4, f"the mapper took only {sum(taken)} of {len(taken)} requests"


def test_a_tasks_cost_is_the_python_mappings_double() -> None:
    """Cost is a sum of products in C++ (compiled without fused multiply-add): the same bits."""
    body = PLAIN["priced-app-flow"][0]
    fast = receiver_module._mapper([PRICED], TraceMemory()).map(body)
    mapped = map_spans(rows.read_body(body, rows.wanted([PRICED])), {"bot": PRICED}, TraceMemory(), NOW)
    costs = [e["cost_usd"].hex() for e in orjson.loads(fast[0]) if "cost_usd" in e]
    assert costs == [e["cost_usd"].hex() for e in mapped.events if "cost_usd" in e]
    assert len(costs) == 2  # both runs' tasks, of gpt-4o and gpt-4o-mini turns


@pytest.mark.parametrize(
    ("bounds", "taken"), [({}, True), ({"max_traces": 1}, False), ({"max_spans": 4}, False)]
)
def test_a_request_beyond_the_trace_memorys_bounds_is_declined(bounds: dict[str, int], taken: bool) -> None:
    """Two traces of five and two spans: past the memory's bounds the Python mapping forgets notes
    while it reads the request, which the mapper does not do, so it leaves such a request to it."""
    specs = list(SPECS.values())
    body = PLAIN["flow-rules"][0]
    assert (receiver_module._mapper(specs, TraceMemory(**bounds)).map(body) is not None) is taken


# --- the walk over the request's bytes --------------------------------------------------------
# The mapper reads the body where it lies (protozero) and must never be looser than protobuf's own
# parser: a body protobuf refuses (not UTF-8 in any string field, an overlong tag or length, damage)
# is declined, and the Python path answers it 400; a body it takes is mapped as the Python path maps it.


def protobuf_parses(body: bytes) -> bool:
    try:
        ExportTraceServiceRequest.FromString(body)
    except DecodeError:
        return False
    return True


def taken_as_protobuf_reads(specs: dict[str, Spec], mapper: Any, body: bytes) -> bool:
    """Whether the mapper took the body; when it did, protobuf parses it and the events are alike."""
    if mapper.map(body) is None:
        return False
    assert protobuf_parses(body), "the mapper took a body protobuf refuses"
    assert assert_mapped_alike(specs, mapper, body)
    return True


damage = st.lists(
    st.one_of(
        st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(0, 7)),
        st.tuples(st.just("cut"), st.integers(0, 10**6), st.integers(1, 40)),
        st.tuples(st.just("insert"), st.integers(0, 10**6), st.binary(min_size=1, max_size=12)),
        st.tuples(st.just("set"), st.integers(0, 10**6), st.integers(0, 255)),
    ),
    min_size=1,
    max_size=3,
)


def damaged(body: bytes, changes: list[tuple[str, int, Any]]) -> bytes:
    data = bytearray(body)
    for what, at, arg in changes:
        i = at % (len(data) + 1)
        if what == "cut":
            del data[i : i + arg]
        elif what == "insert":
            data[i:i] = arg
        elif data:
            data[i % len(data)] = data[i % len(data)] ^ (1 << arg) if what == "flip" else arg
    return bytes(data)


def test_a_damaged_body_is_taken_only_when_protobuf_parses_it_and_then_mapped_alike() -> None:
    specs = VARIANTS["flow-rules"]
    mapper = receiver_module._mapper(list(specs.values()), TraceMemory())
    taken: list[bool] = []

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(base=st.sampled_from(PLAIN["flow-rules"]), changes=damage)
    def check(base: bytes, changes: list[tuple[str, int, Any]]) -> None:
        taken.append(taken_as_protobuf_reads(specs, mapper, damaged(base, changes)))

    check()
    # not only declines: a flipped bit in a time, an id or a letter still parses and is taken
    assert sum(taken) >= 10, f"only {sum(taken)} of {len(taken)} damaged bodies were taken"


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append(n & 0x7F | (0x80 if n >> 7 else 0))
        n >>= 7
        if not n:
            return bytes(out)


def field(number: int, wire: int, payload: bytes) -> bytes:
    """One field on the wire (test-side bytes for what the SDK never sends)."""
    return varint(number << 3 | wire) + (varint(len(payload)) + payload if wire == 2 else payload)


PLACE = "~~~~"  # a placeholder, replaced in the bytes by as many that are not UTF-8
NOT_UTF8 = b"~\xff\xfe~"


def placed(where: str) -> ExportTraceServiceRequest:
    """A plain SDK request with PLACE in one of its string fields (`where`)."""
    req = ExportTraceServiceRequest.FromString(PLAIN["flow-rules"][0])
    rs = req.resource_spans[0]
    scope, first = rs.scope_spans[0], rs.scope_spans[0].spans[0]
    if where == "scope name":
        scope.scope.name = PLACE
    elif where == "scope attribute":
        scope.scope.attributes.append(kv("lib.x", PLACE))
    elif where == "resource attribute key":
        rs.resource.attributes.append(kv(PLACE, "x"))
    elif where == "resource schema":
        rs.schema_url = PLACE
    elif where == "scope schema":
        scope.schema_url = PLACE
    elif where == "span name":
        first.name = f"chat {PLACE}"
    elif where == "unread attribute":
        first.attributes.append(kv("other.key", PLACE))
    elif where == "read attribute":
        first.attributes.append(kv("agent_slo.flow", PLACE))
    elif where == "nested value":
        first.attributes.append(
            KeyValue(key="other.key", value=any_value(("kvlist", [("in", ("array", [1, PLACE]))])))
        )
    elif where == "nested key":
        first.attributes.append(KeyValue(key="other.key", value=any_value(("kvlist", [(PLACE, 1)]))))
    elif where == "trace state":
        first.trace_state = PLACE
    elif where == "status message":
        first.status.message = PLACE
    elif where == "link":
        link = first.links.add(trace_id=first.trace_id, span_id=b"\x01" * 8, trace_state=PLACE)
        link.attributes.append(kv("link.x", PLACE[:2]))
    else:
        assert where == "entity ref"
        rs.resource.entity_refs.add(type=PLACE, id_keys=["service.name"])
    return req


@pytest.mark.parametrize(
    "where",
    [
        "scope name", "scope attribute", "resource attribute key", "resource schema", "scope schema",
        "span name", "unread attribute", "read attribute", "nested value", "nested key", "trace state",
        "status message", "link", "entity ref",
    ],
)  # fmt: skip
def test_a_string_field_that_is_not_utf8_anywhere_declines_as_protobuf_refuses(where: str) -> None:
    specs = VARIANTS["flow-rules"]
    mapper = receiver_module._mapper(list(specs.values()), TraceMemory())
    body = placed(where).SerializeToString()
    assert body.count(PLACE.encode()) == 1
    bad = body.replace(PLACE.encode(), NOT_UTF8)
    assert not protobuf_parses(bad) and mapper.map(bad) is None
    # the same request with the placeholder left is taken: what declined was the bytes alone
    assert taken_as_protobuf_reads(specs, mapper, body), where


def with_unknown(message: Any, raw: bytes) -> Any:
    """The message with fields it does not know (protobuf keeps and writes them back)."""
    return type(message).FromString(message.SerializeToString() + raw)


UNKNOWN = (
    field(99, 0, varint(7)) + field(98, 1, bytes(8)) + field(97, 2, b"\xff\x00") + field(96, 5, bytes(4))
)


def test_fields_the_schema_does_not_know_are_skipped_at_every_level() -> None:
    specs = VARIANTS["flow-rules"]
    mapper = receiver_module._mapper(list(specs.values()), TraceMemory())
    req = ExportTraceServiceRequest.FromString(PLAIN["flow-rules"][0])
    rs = req.resource_spans[0]
    rs.resource.CopyFrom(with_unknown(rs.resource, UNKNOWN))
    scope = rs.scope_spans[0]
    scope.scope.CopyFrom(with_unknown(scope.scope, UNKNOWN))
    for one in scope.spans:
        one.status.CopyFrom(with_unknown(one.status, UNKNOWN))
        attributes = [with_unknown(a, UNKNOWN) for a in one.attributes]
        for a in attributes:
            a.value.CopyFrom(with_unknown(a.value, UNKNOWN))
        del one.attributes[:]
        one.attributes.extend(attributes)
        one.CopyFrom(with_unknown(one, UNKNOWN))
    scope.CopyFrom(with_unknown(scope, UNKNOWN))
    body = req.SerializeToString() + UNKNOWN
    assert body.count(UNKNOWN) > 10
    assert taken_as_protobuf_reads(specs, mapper, body)


@pytest.mark.parametrize(
    ("tail", "parses"),
    [
        (varint(99 << 3 | 2) + varint(2**32), False),  # a length of 2^32: protozero would cut it to 0
        (varint(2**32 | 99 << 3) + varint(1), None),  # a tag past 32 bits (cut, it is field 99)
        (b"\x98\x86\x80\x80\x80\x00" + varint(1), False),  # field 99's tag in six bytes
        (field(99, 3, b"") + field(99, 4, b""), None),  # a group, which the walk does not read
        (field(1, 0, varint(1)), None),  # resource_spans as a number: another wire type
    ],
)
def test_a_tag_or_length_protobuf_would_refuse_is_declined(tail: bytes, parses: bool | None) -> None:
    specs = VARIANTS["flow-rules"]
    mapper = receiver_module._mapper(list(specs.values()), TraceMemory())
    body = PLAIN["flow-rules"][0] + tail
    if parses is not None:
        assert protobuf_parses(body) is parses
    assert mapper.map(body) is None


def test_a_singular_message_twice_or_values_nested_deep_are_left_to_the_python_path() -> None:
    """What protobuf merges (a resource given twice in one ResourceSpans) and values nested past the
    walk's depth are declined; the Python path reads them."""
    specs = VARIANTS["flow-rules"]
    mapper = receiver_module._mapper(list(specs.values()), TraceMemory())
    req = ExportTraceServiceRequest.FromString(PLAIN["flow-rules"][0])
    again = Resource(attributes=[kv("service.name", "bot")]).SerializeToString()
    body = field(1, 2, req.resource_spans[0].SerializeToString() + field(1, 2, again))
    assert protobuf_parses(body) and mapper.map(body) is None
    assert mapper.map(field(1, 2, req.resource_spans[0].SerializeToString())) is not None
    deep: Any = "x"
    for _ in range(40):
        deep = ("array", [deep])
    req = ExportTraceServiceRequest.FromString(PLAIN["flow-rules"][0])
    req.resource_spans[0].scope_spans[0].spans[0].attributes.append(
        KeyValue(key="other.key", value=any_value(deep))
    )
    body = req.SerializeToString()
    assert protobuf_parses(body) and mapper.map(body) is None
    assert mapper.map(PLAIN["flow-rules"][0]) is not None


# --- through receivers -------------------------------------------------------------------------


OWN_HEALTH = (names.OTLP_ITEMS_TOTAL, names.INGEST_EVENTS_TOTAL, names.INGEST_REJECTED_TOTAL)


def receiver(specs: list[Spec], db: Path | None = None, python_only: bool = False) -> OtlpReceiver:
    config = ExporterConfig(db_path=str(db)) if db is not None else ExporterConfig()
    out = OtlpReceiver(Ingestor(specs, config), specs)
    if python_only:
        out.mapper = None  # every request read by the Python mapping, as when the mapper is not built
    return out


def post(otlp: OtlpReceiver, body: bytes) -> bool:
    """A binary request as `OtlpRoutes` hands it over: to the C++ mapper first. Whether it took it."""
    fast = otlp.map_fast(body)
    if fast is not None and otlp.traces_fast(fast) is not None:
        return True
    reply = otlp.traces(rows.read_body(body, otlp.wanted))
    assert reply == ExportTraceServiceResponse(), reply.partial_success.error_message
    return False


def metrics(otlp: OtlpReceiver, own: bool = True) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every agent_slo_* sample of the receiver's /metrics; without its own health counters (OTLP items,
    ingest: kept in memory only) unless `own`."""
    text = render(otlp.ingestor.store).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("agent_slo_") and (own or not s.name.startswith(OWN_HEALTH))
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls)


def test_the_benchmarks_requests_take_the_fast_path_and_count_as_the_python_path_does() -> None:
    spec = load_spec(EXAMPLE)
    fast, python = receiver([spec]), receiver([spec], python_only=True)
    for body in bodies(template(200), 3, seed=7):
        assert post(fast, body), "the C++ mapper declined the benchmark's request"
        assert not post(python, body)
    assert metrics(fast) == metrics(python)
    assert counts(fast.ingestor.store, "traces")["counted"] == 3 * 200
    assert value(metrics(fast), names.EVENTS_TOTAL, slo="task-success") == 3 * 20


def series(otlp: OtlpReceiver) -> dict[tuple[str, tuple[str, ...]], list[float]]:
    """Every series of the receiver's store and its values (buckets, sum, count): /metrics, read fast."""
    store = otlp.ingestor.store
    return {
        (family.name, labels): store.values[base : base + family.width]
        for family in store.families.values()
        for base, labels, _ in family.series
    }


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_requests_the_mapper_takes_count_as_the_python_path_counts_them(variant: str) -> None:
    """Through receivers: the mapper's JSON goes to the /v1/events scanner and validation, the Python
    mapping's dicts to the in-process batch path; the same counts, refusals and answers either way
    (values of every type included: a flow that is a number, a float version, an empty model...)."""
    specs = list(VARIANTS[variant].values())
    taken: list[bool] = []

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(base=st.sampled_from(PLAIN[variant]), shape=shapes, changes=edits)
    def check(base: bytes, shape: list[tuple[str, int, int]], changes: list[Any]) -> None:
        body = mutate(reshape(base, shape), [c for c in changes if c[0] not in ("event", "id")])
        fast, python = receiver(specs), receiver(specs, python_only=True)
        read = fast.map_fast(body)
        reply = fast.traces_fast(read) if read is not None else None
        taken.append(reply is not None)
        if reply is not None:
            assert reply == python.traces(rows.read_body(body, python.wanted))
            assert series(fast) == series(python)

    check()
    assert sum(taken) >= len(taken) / 4, f"the mapper took only {sum(taken)} of {len(taken)} requests"


def test_specs_naming_more_attributes_than_the_mapper_holds_leave_every_request_to_the_python_path() -> None:
    """A valid spec may name many flow attributes; the mapper has 64 slots for attribute names. The
    exporter still starts, and counts through the Python mapping."""
    many = ", ".join(f"app.flow{i}" for i in range(60))
    spec = parse_spec(SPEC + f"otel:\n  flow_attributes: [{many}, agent_slo.flow]\n")
    otlp = receiver([spec])
    assert otlp.mapper is None
    assert not post(otlp, PLAIN["flow-rules"][0])
    assert counts(otlp.ingestor.store, "traces")["counted"] == 7


async def test_post_v1_traces_hands_a_binary_request_to_the_mapper_within_the_batch_limit(
    aiohttp_client: Any,
) -> None:
    """The route wiring: what the mapper read is held unread, and its span count meets the limit of
    /v1/events (413 past it, nothing counted)."""
    app = create_app([load_spec(EXAMPLE)], ExporterConfig(max_batch_events=100))
    client = await aiohttp_client(app)
    [route] = [r for r in app.router.routes() if r.method == "POST" and r.resource.canonical == "/v1/traces"]
    otlp: OtlpReceiver = route.handler.__self__.receiver  # type: ignore[attr-defined]
    body, too_many = bodies(template(100), 1, seed=31)[0], bodies(template(110), 1, seed=32)[0]
    fast, too_fast = otlp.map_fast(body), otlp.map_fast(too_many)
    assert fast is not None and too_fast is not None
    assert (await client.post("/v1/traces", data=body, headers=PB)).status == 200
    traces = [fast.traces[i : i + 16] for i in range(0, len(fast.traces), 16)]
    assert len(traces) == 10 and all(otlp.memory.unread_traces.any(t) for t in traces)
    assert not otlp.memory.traces
    assert (await client.post("/v1/traces", data=too_many, headers=PB)).status == 413
    assert counts(otlp.ingestor.store, "traces")["counted"] == 100


def continued_trace() -> tuple[bytes, bytes, list[Span]]:
    """Request 1 (an agent span and its chat) and request 2 of the same trace: a later chat under that
    agent span, with no agent or flow of its own, and an agent span of the same agent around it all."""
    trace, outer_id = os.urandom(16), os.urandom(8)
    anonymous = {"gen_ai.agent.name": None, "agent_slo.flow": None, "gen_ai.request.model": "gpt-4o"}
    inner = span("invoke_agent", trace=trace, parent=outer_id, **{"agent_slo.flow": "order-status"})
    chat = span("chat", trace=trace, parent=inner.span_id, **anonymous)
    later = span("chat", trace=trace, parent=inner.span_id, **anonymous)
    outer = span("invoke_agent", trace=trace)
    outer.span_id = outer_id
    spans = [chat, inner, later, outer]
    return request(chat, inner).SerializeToString(), request(later, outer).SerializeToString(), spans


def test_a_trace_the_mapper_read_is_continued_with_its_notes_by_the_python_path() -> None:
    """Request 2's chat inherits its flow from request 1's agent span, and the enclosing agent span of
    the same agent is not a second task: the same counts as a Python-path receiver makes of the two."""
    specs = list(SPECS.values())
    first, second, spans = continued_trace()
    fast, python = receiver(specs), receiver(specs, python_only=True)
    assert post(fast, first)
    assert fast.memory.unread_traces.any(spans[0].trace_id)
    assert not post(fast, second)  # a trace the memory knows: the Python mapping, with request 1's notes
    for body in (first, second):
        post(python, body)
    got = metrics(fast)
    assert got == metrics(python)
    assert value(got, names.EVENTS_TOTAL, slo="task-success") == 1
    assert value(got, names.EVENTS_TOTAL, slo="turn-latency", flow="order-status") == 2
    assert counts(fast.ingestor.store, "traces")["ignored"] == 1  # the enclosing agent span
    assert not fast.memory.deferred, "the later chat found its ancestors"


def test_an_evaluation_record_finds_the_agent_and_flow_of_a_span_the_mapper_read() -> None:
    first, _, spans = continued_trace()
    chat = spans[0]
    record = LogRecord(trace_id=chat.trace_id, span_id=chat.span_id, event_name="gen_ai.evaluation.result")
    record.attributes.extend(
        [kv("gen_ai.evaluation.name", "faith"), kv("gen_ai.evaluation.score.value", 0.9)]
    )
    logs = ExportLogsServiceRequest()
    logs.resource_logs.add().scope_logs.add().log_records.append(record)
    otlp = receiver(list(SPECS.values()))
    assert post(otlp, first)
    reply = otlp.logs(logs)
    assert reply.partial_success.rejected_log_records == 0, reply.partial_success.error_message
    judged = value(metrics(otlp), names.EVENTS_TOTAL, slo="faith", flow="order-status", outcome="good")
    assert judged == 1


def test_a_span_waiting_for_its_ancestor_is_counted_when_a_request_the_mapper_takes_brings_it() -> None:
    """The ancestor's request is one the mapper would take, but a span of its trace is waiting: the
    Python mapping reads it, so the waiting span is counted with the ancestor's agent and flow."""
    specs = list(SPECS.values())
    _, _, (chat, inner, *_) = continued_trace()
    waiting, ancestor_body = request(chat).SerializeToString(), request(inner).SerializeToString()
    assert receiver_module._mapper(specs, TraceMemory()).map(ancestor_body) is not None
    fast, python = receiver(specs), receiver(specs, python_only=True)
    for otlp in (fast, python):
        assert not post(otlp, waiting)
        assert otlp.memory.deferred_count == 1
        assert not post(otlp, ancestor_body)
        assert otlp.memory.deferred_count == 0
    got = metrics(fast)
    assert got == metrics(python)
    assert value(got, names.EVENTS_TOTAL, slo="turn-latency", flow="order-status") == 1


# --- retries and restarts ------------------------------------------------------------------------


def benchmark_body(seed: int) -> bytes:
    return bodies(template(20), 1, seed)[0]


def test_a_fast_request_sent_twice_counts_once() -> None:
    otlp, body = receiver([load_spec(EXAMPLE)]), benchmark_body(11)
    assert post(otlp, body)
    once = metrics(otlp, own=False)
    assert not post(otlp, body)  # the sender's retry: the Python mapping finds every span counted
    assert metrics(otlp, own=False) == once
    assert counts(otlp.ingestor.store, "traces")["duplicate"] == 20


def test_a_fast_request_retried_after_a_restart_counts_once(tmp_path: Path) -> None:
    spec, body = load_spec(EXAMPLE), benchmark_body(12)
    first = receiver([spec], tmp_path / "c.db")
    assert post(first, body)
    counted = metrics(first, own=False)
    first.ingestor.close()
    again = receiver([spec], tmp_path / "c.db")
    assert len(again.seen) == 20, "the span keys filed with the request are back in the index"
    assert not post(again, body)
    assert metrics(again, own=False) == counted
    assert counts(again.ingestor.store, "traces")["duplicate"] == 20


@pytest.mark.parametrize("sdk", [False, True], ids=["benchmark", "sdk-with-evaluations"])
def test_span_keys_filed_one_row_per_span_by_earlier_versions_are_restored(tmp_path: Path, sdk: bool) -> None:
    """Earlier versions filed a row per span key (`SPAN_MARK` + the mapping's key, no answer): an
    evaluation's key ("...e0") as well as a span's. Restored, the retry counts nothing."""
    specs, body = ([parse_spec(SPEC)], BODIES[1]) if sdk else ([load_spec(EXAMPLE)], benchmark_body(13))
    keys = map_spans(
        rows.read_body(body, rows.wanted(specs)), {s.agent: s for s in specs}, TraceMemory()
    ).keys
    assert any(len(k) > 48 for k in keys) is sdk
    earlier = Ingestor(specs, ExporterConfig(db_path=str(tmp_path / "c.db")))
    earlier.persist(Deltas(events=0), time.time(), [(SPAN_MARK + k, SPAN_MARK, 200, b"") for k in keys])
    earlier.close()
    otlp = receiver(specs, tmp_path / "c.db")
    post(otlp, body)
    assert counts(otlp.ingestor.store, "traces")["duplicate"] == len(keys)
    assert counts(otlp.ingestor.store, "traces")["counted"] == 0


# --- bounds -------------------------------------------------------------------------------------


def key(i: int) -> bytes:
    """Span key i (24 bytes): five spans a trace."""
    return (i // 5).to_bytes(16, "big") + i.to_bytes(8, "big")


INDEXES: dict[str, Callable[[int, float], Any]] = {"python": SpanKeys}
if SpanIndex is not None:
    INDEXES["c++"] = lambda most, horizon_s: SpanIndex(most, horizon_s, 12345)


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("kind", list(INDEXES))
def test_the_span_key_index_keeps_the_newest_keys_within_its_bound(kind: str, batch: int) -> None:
    """Requests of `batch` keys: the index keeps a run of the newest keys (the oldest go first), at
    least three quarters of `most` and never more; a trace is seen while one of its keys is."""
    index = INDEXES[kind](40, 3600.0)
    keys = [key(i) for i in range(400)]
    for at in range(0, len(keys), batch):
        index.add(b"".join(keys[at : at + batch]), float(at))
        added = keys[: at + batch]
        kept = index.seen(b"".join(added), float(at))
        first = len(added) - len(kept)
        assert kept == list(range(first, len(added))), "a key was dropped before an older one"
        assert min(len(added), 40 * (GENERATIONS - 1) // GENERATIONS) <= len(index) == len(kept) <= 40
        oldest_trace = added[first - 1][:16] if first else None
        if oldest_trace is not None and oldest_trace != added[first][:16]:
            assert not index.any_trace_seen(oldest_trace, float(at)), "a trace outlived its keys"
        assert index.any_trace_seen(added[first][:16], float(at))


@pytest.mark.parametrize("kind", list(INDEXES))
def test_span_keys_past_the_horizon_are_forgotten_a_generation_at_a_time(kind: str) -> None:
    index = INDEXES[kind](8, 10.0)
    index.add(key(0) + key(1), 0.0)  # a full generation (8 / 4)
    index.add(key(2), 5.0)
    assert index.seen(key(0) + key(1) + key(2), 9.0) == [0, 1, 2]
    assert index.seen(key(0) + key(1) + key(2), 11.0) == [2]
    assert len(index) == 1


@pytest.mark.skipif(SpanIndex is None, reason="the C++ span index is not built")
def test_the_cpp_span_index_grows_and_reuses_its_generations_as_its_python_twin() -> None:
    """Generations of 2,500 keys: each table doubles past its first 1,024 slots, and a new generation
    takes the emptied tables of the oldest. Every key still answers as in the Python twin."""
    rng = random.Random(7)
    twins = [SpanKeys(10_000, 3600.0), INDEXES["c++"](10_000, 3600.0)]
    added: list[bytes] = []
    for at in range(30):
        keys = [rng.randbytes(16) + rng.randbytes(8) for _ in range(rng.randint(1, 1500))]
        keys += rng.sample(added, min(len(added), 20))  # some again: filed once
        for index in twins:
            index.add(b"".join(keys), float(at))
        added += keys
        probe = b"".join(added[-12_000:]) + b"".join(rng.randbytes(24) for _ in range(50))
        assert twins[0].seen(probe, float(at)) == twins[1].seen(probe, float(at))
        assert len(twins[0]) == len(twins[1])


@pytest.mark.skipif(SpanIndex is None, reason="the C++ span index is not built")
@settings(max_examples=100, deadline=None, database=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["add", "seen", "trace"]),
            st.lists(st.integers(0, 60), max_size=12),
            st.floats(0, 30),  # seconds since the previous operation
        ),
        max_size=30,
    )
)
def test_the_cpp_span_index_answers_as_its_python_twin(ops: list[tuple[str, list[int], float]]) -> None:
    twins = [SpanKeys(12, 20.0), INDEXES["c++"](12, 20.0)]
    now = 0.0
    for op, ids, wait in ops:
        now += wait
        keys = b"".join(map(key, ids))
        if op == "add":
            for index in twins:
                index.add(keys, now)
        elif op == "seen":
            assert twins[0].seen(keys, now) == twins[1].seen(keys, now)
        else:
            traces = b"".join(k[:16] for k in map(key, ids))
            assert twins[0].any_trace_seen(traces, now) == twins[1].any_trace_seen(traces, now)
        assert len(twins[0]) == len(twins[1])


def held(memory: TraceMemory, count: int, size: int = 100, now: float = 0.0) -> list[bytes]:
    """`count` requests of `size` bytes held unread, one trace each; their trace ids."""
    traces = [os.urandom(16) for _ in range(count)]
    for trace in traces:
        memory.hold_unread(Unread(bytes(size), trace, lambda body: {}), now)
    return traces


def unread_held(memory: TraceMemory, traces: list[bytes]) -> list[bool]:
    return [memory.unread_traces.any(trace) for trace in traces]


@pytest.mark.parametrize("kind", ["c++", "python"])
def test_unread_requests_beyond_their_byte_bound_are_forgotten_oldest_first(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if kind == "python":
        monkeypatch.setattr(memory_module, "UnreadTraces", None)
    elif memory_module.UnreadTraces is None:
        pytest.skip("the C++ table is not built")
    memory = TraceMemory(max_unread_bytes=250)
    first = held(memory, 1)[0]
    assert memory.trace(first, now=0.0) == {}  # read: it no longer needs its request's body
    traces = held(memory, 3)
    assert list(memory.traces) == [first]
    assert unread_held(memory, [first, *traces]) == [False, False, True, True]
    assert memory.unread_bytes == 200 and len(memory.unread) == 2 and len(memory.unread_traces) == 2


def test_unread_traces_beyond_the_count_or_age_bound_are_forgotten_a_request_at_a_time() -> None:
    memory = TraceMemory(max_traces=2, max_age_s=60)
    traces = held(memory, 3)
    assert unread_held(memory, traces) == [False, True, True]
    assert memory.trace(os.urandom(16), now=61.0) == {}  # the unread ones are too old now
    assert unread_held(memory, traces) == [False, False, False]
    assert len(memory.traces) == 1 and memory.content_bytes == 0
    assert memory.unread_bytes == 0 and not memory.unread


def test_traces_forgotten_by_count_give_back_the_content_their_notes_held() -> None:
    """Read traces pushed out by newer ones give back their notes' content; unread ones count apart."""
    memory = TraceMemory(max_traces=3)
    read = [os.urandom(16) for _ in range(5)]
    for size, trace in enumerate(read, start=1):
        note = SpanNote(b"", "chat", {})
        memory.keep_content(note, {"messages": []}, 100 * size)
        memory.note(trace, os.urandom(8), note, now=0.0)
    assert list(memory.traces) == read[2:]
    assert memory.content_bytes == 300 + 400 + 500
    unread = [os.urandom(16) for _ in range(3)]
    memory.hold_unread(Unread(bytes(10), b"".join(unread), lambda body: {}), now=0.0)
    assert list(memory.traces) == read[2:] and unread_held(memory, unread) == [True] * 3


def test_a_request_let_go_no_longer_holds_its_traces_nor_drops_a_newer_holder() -> None:
    """A request not counted after all is let go (`let_go`); a trace another request holds since
    stays with that one."""
    memory = TraceMemory()
    first, second = os.urandom(16), os.urandom(16)
    old = Unread(bytes(10), first + second, lambda body: {})
    memory.hold_unread(old, now=0.0)
    assert memory.trace(first, now=0.0) == {}  # read: no longer unread
    del memory.traces[first]  # forgotten since, and held again by a newer request
    newer = Unread(bytes(20), first, lambda body: {})
    memory.hold_unread(newer, now=0.0)
    memory.let_go(old)
    assert unread_held(memory, [first, second]) == [True, False]
    assert list(memory.unread) == [newer] and memory.unread_bytes == 20
    memory.let_go(old)  # twice: nothing more
    assert list(memory.unread) == [newer]


@pytest.mark.skipif(UnreadTraces is None, reason="the C++ table is not built")
def test_the_cpp_unread_table_answers_as_its_python_twin() -> None:
    """Thousands of trace ids held, dropped, popped and held again by requests: runs of the table
    shift back on every deletion, so each id must still be found where its twin has it."""
    rng = random.Random(11)
    twins = [UnreadIds(), UnreadTraces(99)]
    ids = [rng.randbytes(16) for _ in range(3000)]
    requests: dict[int, bytes] = {}
    for serial in range(1, 400):
        op = rng.random()
        if op < 0.5 or not requests:
            requests[serial] = b"".join(rng.sample(ids, rng.randint(1, 40)))
            for table in twins:
                table.hold(requests[serial], serial)
        elif op < 0.8:
            gone = rng.choice(list(requests))
            for table in twins:
                table.drop(requests[gone], gone)
            del requests[gone]
        else:
            trace = rng.choice(ids)
            assert twins[0].pop(trace) == twins[1].pop(trace)
        assert len(twins[0]) == len(twins[1])
        if serial % 25 == 0:
            assert [twins[0].any(i) for i in ids] == [twins[1].any(i) for i in ids]
    with pytest.raises(ValueError, match="16 bytes"):
        twins[1].hold(b"short", 1)
    with pytest.raises(ValueError):
        twins[1].pop(bytes(32))


def test_unread_notes_are_the_notes_of_the_requests_spans() -> None:
    first, _, spans = continued_trace()
    memory = TraceMemory()
    memory.hold_unread(Unread(first, spans[0].trace_id, unread_notes(SPECS.values())), now=0.0)
    notes = memory.trace(spans[0].trace_id, now=0.0)
    assert list(notes) == [spans[0].span_id, spans[1].span_id]
    assert [(n.op, n.parent, n.agent) for n in notes.values()] == [
        ("chat", spans[1].span_id, None),
        ("invoke_agent", spans[1].parent_span_id, "bot"),
    ]


def test_a_retry_of_a_request_whose_unread_body_was_forgotten_still_counts_once() -> None:
    otlp = receiver([load_spec(EXAMPLE)])
    otlp.memory.max_unread_bytes = 1  # one request held at a time
    sent = [benchmark_body(20 + i) for i in range(3)]
    assert all(post(otlp, body) for body in sent)
    assert len(otlp.memory.unread) == 1
    assert not post(otlp, sent[0])  # its traces are forgotten, its span keys are not
    assert counts(otlp.ingestor.store, "traces")["duplicate"] == 20
    assert counts(otlp.ingestor.store, "traces")["counted"] == 3 * 20
