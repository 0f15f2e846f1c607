"""POST /v1/traces with the real OpenTelemetry SDK: spans count exactly as the equivalent events would.

Each test runs real exporters (`agent-slo serve` subprocesses): one fed by the SDK's OTLP/HTTP
protobuf exporter (or an OTLP/JSON sender), one fed the hand-written `/v1/events` batch of the same
runs; every contract metric must come out the same.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.doubles.genai_traces import Tool, Trace, Turn, emit, events, otlp_json, protobuf
from tests.doubles.sdk_backends import SPEC, Exporter

pytestmark = pytest.mark.timeout(120)

PRICES = {"gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6)}
OTEL_SPEC = (
    SPEC
    + """
otel:
  prices:
    gpt-4o: {input_per_mtok: 2.5, output_per_mtok: 10.0}
    gpt-4o-mini: {input_per_mtok: 0.15, output_per_mtok: 0.6}
"""
)

RUNS = [
    Trace(
        flow="refund",
        conversation="conv-1",
        turns=[Turn(100, 20, 0.8), Turn(150, 30, 0.6)],
        tools=[Tool("get_order"), Tool("issue_refund", fails=True, seconds=0.5)],
        evaluations=[("faith", 0.9)],
    ),
    Trace(flow="order-status", failed=True, turns=[Turn(50, 10, 1.5, model="gpt-4o-mini")]),
    Trace(flow="refund", synthetic=True, turns=[Turn(10, 5, 0.3)], tools=[Tool("escalate_to_human")]),
    Trace(flow="order-status", turns=[Turn(70, 7, 2.5)], evaluations=[("faith", 0.4)]),
]


def base() -> int:
    return time.time_ns() - 120 * 10**9


def contract(exporter: Exporter) -> dict[Any, float]:
    return {k: v for k, v in exporter.samples().items() if not k[0].startswith("agent_slo_otlp_")}


def post_raw(
    exporter: Exporter, path: str, body: bytes, content_type: str, **headers: str
) -> tuple[int, bytes, Any]:
    req = urllib.request.Request(
        exporter.url + path, data=body, headers={"Content-Type": content_type, **headers}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


@pytest.fixture
def pair(tmp_path: Path) -> Any:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with Exporter(tmp_path / "a", OTEL_SPEC) as otlp, Exporter(tmp_path / "b", OTEL_SPEC) as plain:
        yield otlp, plain


def assert_same(otlp: Exporter, plain: Exporter) -> None:
    got, want = contract(otlp), contract(plain)
    assert set(got) == set(want)
    assert {k: pytest.approx(v) for k, v in got.items()} == want
    assert (
        want[
            (
                "agent_slo_events_total",
                frozenset(
                    {
                        "agent": "bot",
                        "flow": "refund",
                        "slo": "task-success",
                        "outcome": "good",
                        "exclusion": "",
                    }.items()
                ),
            )
        ]
        == 1
    )


@pytest.mark.parametrize("convention", ["v1.26", "v1.36", "latest"])
def test_sdk_protobuf_exporter_counts_exactly_as_the_equivalent_events(pair: Any, convention: str) -> None:
    otlp, plain = pair
    at = base()
    emit(RUNS, f"{otlp.url}/v1/traces", convention, at)
    status, body = plain.post("/v1/events", events(RUNS, at, PRICES))
    assert status == 200, body
    assert_same(otlp, plain)
    assert otlp.value("agent_slo_otlp_items_total", signal="traces", result="rejected") == 0


@pytest.mark.parametrize("gzipped", [False, True])
def test_otlp_json_sender_counts_exactly_as_the_equivalent_events(pair: Any, gzipped: bool) -> None:
    otlp, plain = pair
    at = base()
    headers = {"Content-Encoding": "gzip"} if gzipped else {}
    status, raw, _ = post_raw(
        otlp, "/v1/traces", otlp_json(RUNS, "latest", at, gzipped), "application/json", **headers
    )
    assert status == 200, raw
    assert plain.post("/v1/events", events(RUNS, at, PRICES))[0] == 200
    assert_same(otlp, plain)


def test_a_retried_request_counts_once_and_survives_kill_9(tmp_path: Path) -> None:
    at = base()
    body = protobuf(RUNS, "latest", at)
    with Exporter(tmp_path, OTEL_SPEC) as otlp:
        assert post_raw(otlp, "/v1/traces", body, "application/x-protobuf")[0] == 200
        before = contract(otlp)
        otlp.kill()  # the answer was given: the spans are on disk
        otlp.start()
        assert contract(otlp) == before
        status, raw, _ = post_raw(otlp, "/v1/traces", body, "application/x-protobuf")  # the sender's retry
        assert status == 200
        assert not ExportTraceServiceResponse.FromString(raw).partial_success.rejected_spans
        assert contract(otlp) == before
        assert otlp.value("agent_slo_otlp_items_total", signal="traces", result="duplicate") == 14


def _tool_request(n: int) -> bytes:
    """Request `n`: 20 tool-call spans with ids of their own, the agent and flow on the resource."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for key, value in (("service.name", "bot"), ("agent_slo.flow", "refund")):
        rs.resource.attributes.add(key=key).value.string_value = value
    spans = rs.scope_spans.add().spans
    for i in range(20):
        span = spans.add(
            trace_id=(n + 1).to_bytes(16, "big"),
            span_id=(i + 1).to_bytes(8, "big"),
            name="execute_tool get_order",
            start_time_unix_nano=1,
            end_time_unix_nano=10**8,
        )
        span.attributes.add(key="gen_ai.operation.name").value.string_value = "execute_tool"
        span.attributes.add(key="gen_ai.tool.name").value.string_value = "get_order"
    return req.SerializeToString()


def test_kill_9_under_otlp_load_loses_no_acknowledged_span_and_counts_none_twice(tmp_path: Path) -> None:
    requests = [_tool_request(n) for n in range(200)]
    acknowledged: set[int] = set()
    with Exporter(tmp_path, OTEL_SPEC) as otlp:
        killer = threading.Timer(
            0.002, otlp.kill
        )  # races the 61st request: killed mid-request or just before
        restarts = 0
        for n, body in enumerate(requests):  # a sender that retries until answered, as the SDK does
            if n == 60:
                killer.start()
            while True:
                try:
                    status, _, _ = post_raw(otlp, "/v1/traces", body, "application/x-protobuf")
                except OSError:
                    status = 0
                if status == 200:
                    acknowledged.add(n)
                    break
                killer.join()
                if otlp.proc is not None and otlp.proc.poll() is not None:
                    otlp.start()
                    restarts += 1
        killer.join()
        assert restarts == 1
        assert otlp.value("agent_slo_tool_calls_total", tool="get_order", outcome="ok") == 200 * 20
        for body in requests:  # every request again: all duplicates now
            assert post_raw(otlp, "/v1/traces", body, "application/x-protobuf")[0] == 200
        assert otlp.value("agent_slo_tool_calls_total", tool="get_order", outcome="ok") == 200 * 20
    assert len(acknowledged) == 200
