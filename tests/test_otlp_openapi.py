"""schemathesis against the OTLP routes of a running exporter: no 5xx, answers match the document,
and a hypothesis fuzz of mutated protobuf and JSON bodies straight at the decoder."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentslo.exporter.otlp.decode import JSON, PROTOBUF, OtlpError, decode
from tests.doubles import schemathesis_run
from tests.doubles.schemathesis_run import SCHEMATHESIS
from tests.test_exporter_openapi import TOKEN
from tests.test_exporter_openapi import server as _server

server = _server


def test_the_document_describes_both_otlp_routes(server: str) -> None:
    doc = requests.get(
        f"{server}/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    ).json()
    assert {"/v1/traces", "/v1/logs"} <= set(doc["paths"])
    assert PROTOBUF in doc["paths"]["/v1/traces"]["post"]["requestBody"]["content"]


@pytest.mark.timeout(150)
@pytest.mark.skipif(SCHEMATHESIS is None, reason="needs the schemathesis CLI")
def test_schemathesis_finds_no_server_errors_on_the_otlp_routes(server: str) -> None:
    # no response-schema check: OTLP answers are protobuf or OTLP JSON, described by the OTLP spec
    checks = tuple(c for c in schemathesis_run.ALL_CHECKS if c != "response_schema_conformance")
    schemathesis_run.run(server, TOKEN, "^/v1/(traces|logs)$", examples=40, checks=checks)


def _valid() -> bytes:
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add(trace_id=b"\x11" * 16, span_id=b"\x22" * 8)
    span.name = "chat m"
    span.attributes.add(key="gen_ai.operation.name").value.string_value = "chat"
    return req.SerializeToString()


VALID = _valid()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, len(VALID)))
def test_mutated_protobuf_decodes_or_is_a_4xx(noise: bytes, at: int) -> None:
    body = VALID[:at] + noise + VALID[at:]
    try:
        decode(ExportTraceServiceRequest, body, PROTOBUF, "")
    except OtlpError as exc:
        assert 400 <= exc.status < 500


JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["resourceSpans", "scopeSpans", "spans", "traceId", "spanId", "attributes", "key", "value"]
            )
            | st.text(max_size=8),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSONISH)
def test_any_json_decodes_or_is_a_4xx(data: object) -> None:
    try:
        decode(ExportTraceServiceRequest, orjson.dumps(data), JSON, "")
    except OtlpError as exc:
        assert 400 <= exc.status < 500


def test_a_gzip_bomb_is_a_413(tmp_path: Path) -> None:
    with pytest.raises(OtlpError) as caught:
        decode(
            ExportTraceServiceRequest, gzip.compress(b"\0" * 10_000_000), PROTOBUF, "gzip", limit=1_000_000
        )
    assert caught.value.status == 413
