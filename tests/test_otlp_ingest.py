"""POST /v1/traces with the real OpenTelemetry SDK: spans count exactly as the equivalent events would.

Each test runs real exporters (`agent-slo serve` subprocesses): one fed by the SDK's OTLP/HTTP
protobuf exporter (or an OTLP/JSON sender), one fed the hand-written `/v1/events` batch of the same
runs; every contract metric must come out the same.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

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
