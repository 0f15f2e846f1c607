"""A trace export request as rows: per span, what the mapping reads of it, and nothing else.

Reading every attribute of every span into Python was most of the cost of `POST /v1/traces` (about
a fifth of the CPU per span, and each span's fields through the protobuf classes another tenth). The
mapping only ever reads a known set of attribute keys (`wanted`: the conventions' names it uses, the
spec's `otel:` attribute names, and every `agent_slo.*` key), so a request is first read into
`Rows`: the resources' wanted attributes, and one tuple per span (`SpanRow`) with its ids, name,
times, status code, wanted attributes, number of span events and position in the request.

Two readers make the same rows:

- `read_native`: the C++ reader (`exporter/otlp/_reader.cpp`, protobuf's generated C++ classes from
  the vendored opentelemetry-proto files, arena-parsed) straight from a binary body;
- `read_message`: the pure-Python reader, from the official generated Python classes (any body,
  JSON included; and the authority when the C++ reader declines a body).

tests/test_otlp_reader.py proves them equal on SDK-produced requests, mutated. The few spans that
need more than a row (span events: evaluations and older message events; a span held for its
ancestors, stored serialized) get their message from `Rows.span(index)`, which parses the body with
the Python classes once, only then.

    >>> rows = read_body(body, wanted(specs))           # a binary ExportTraceServiceRequest
    >>> resource_index, trace_id, span_id, parent, name, *_ = rows.spans[0]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from agentslo.exporter.otlp import conversation, semconv
from agentslo.exporter.otlp.decode import OtlpError
from agentslo.spec import Spec

_native: Callable[[bytes, frozenset[str], str], tuple[list[dict[str, Any]], list[Any]] | None] | None
try:
    from agentslo.exporter.otlp._reader import read as _native
except ImportError:  # not built (no compiler or libprotobuf): the pure reader does the same
    _native = None

# (resource index, trace id, span id, parent span id, name, start ns, end ns, status code,
#  wanted attributes, number of span events, index of the span in its request)
SpanRow = tuple[int, bytes, bytes, bytes, str, int, int, int, dict[str, Any], int, int]

OWN_PREFIX = "agent_slo."  # agent-slo's own attributes: all read (flow, outcome, exclusion...)
WANTED: frozenset[str] = frozenset(
    {
        *(semconv.OPERATION, semconv.AGENT_NAME, semconv.SERVICE_NAME, semconv.TOOL_NAME),
        *(semconv.CONVERSATION, semconv.RESPONSE_MODEL, semconv.REQUEST_MODEL, semconv.ERROR_TYPE),
        *semconv.INPUT_TOKENS,
        *semconv.OUTPUT_TOKENS,
        *(conversation.INPUT_MESSAGES, conversation.OUTPUT_MESSAGES),
        *(conversation.TOOL_ARGUMENTS, conversation.TOOL_RESULT),
    }
)
PURE = os.environ.get("AGENT_SLO_PURE_PYTHON", "") not in ("", "0")  # tests and benchmarks compare


def wanted(specs: Iterable[Spec]) -> frozenset[str]:
    """The attribute keys the mapping reads for these specs (beyond `OWN_PREFIX`)."""
    keys = set(WANTED)
    for spec in specs:
        otel = spec.otel
        keys.update(otel.flow_attributes)
        keys.update((otel.outcome_attribute, otel.version_attribute, otel.prompt_version_attribute))
        keys.add(otel.exclude_attribute)
        keys.update(rule.attribute for rule in otel.flow_rules)
    return frozenset(keys)


@dataclass
class Rows:
    """A trace export request as the mapping reads it (see the module docstring)."""

    resources: list[dict[str, Any]]
    spans: list[SpanRow]
    body: bytes | None = None  # the binary request, parsed again only when `span()` is needed
    request: ExportTraceServiceRequest | None = None
    _messages: list[Span] | None = field(default=None, repr=False)

    def span(self, index: int) -> Span:
        """The span at `index` as the generated message (span events, serializing a held span)."""
        if self._messages is None:
            if self.request is None:
                self.request = ExportTraceServiceRequest.FromString(self.body or b"")
            self._messages = [
                span for rs in self.request.resource_spans for ss in rs.scope_spans for span in ss.spans
            ]
        return self._messages[index]


def row_of(span: Span, resource: int, index: int, keys: frozenset[str]) -> SpanRow:
    """One span's row, by the Python classes."""
    return (
        resource,
        span.trace_id,
        span.span_id,
        span.parent_span_id,
        span.name,
        span.start_time_unix_nano,
        span.end_time_unix_nano,
        span.status.code,
        semconv.attributes(span.attributes, keys, OWN_PREFIX),
        len(span.events),
        index,
    )


def read_message(request: ExportTraceServiceRequest, keys: frozenset[str]) -> Rows:
    """The pure-Python reader: the rows of a decoded request."""
    resources: list[dict[str, Any]] = []
    spans: list[SpanRow] = []
    for r, resource_spans in enumerate(request.resource_spans):
        resources.append(semconv.attributes(resource_spans.resource.attributes, keys, OWN_PREFIX))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(row_of(span, r, len(spans), keys))
    return Rows(resources, spans, request=request)


def read_native(body: bytes, keys: frozenset[str]) -> Rows | None:
    """The C++ reader: the rows of a binary body, or None when it is not built or declines the body
    (the pure reader then decodes it, and names the problem if there is one)."""
    if _native is None or PURE:
        return None
    read = _native(body, keys, OWN_PREFIX)
    if read is None:
        return None
    resources, spans = read
    return Rows(resources, spans, body=body)


def read_body(body: bytes, keys: frozenset[str]) -> Rows:
    """The rows of a binary (inflated) body: the C++ reader when it can, else the Python classes;
    OtlpError 400 when protobuf cannot decode it."""
    rows = read_native(body, keys)
    if rows is not None:
        return rows
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except (message.DecodeError, RuntimeError, ValueError) as exc:
        raise OtlpError(400, f"the body is not a valid ExportTraceServiceRequest ({exc})") from None
    return read_message(request, keys)
