"""OTLP/HTTP on the wire: request bodies to the official generated messages, and answers back.

OTLP/HTTP (opentelemetry.io/docs/specs/otlp) sends one `Export*ServiceRequest` per POST, as binary
protobuf (`application/x-protobuf`) or as the OTLP JSON mapping (`application/json`: lowerCamelCase
keys, trace and span ids as hex, 64-bit integers possibly as strings, enums as numbers), optionally
`Content-Encoding: gzip`. The answer uses the request's encoding: the `Export*ServiceResponse`
(with `partial_success` when some items could not be used) or, on 4xx/5xx, a `google.rpc.Status`.

Decoding goes through `opentelemetry-proto`'s generated classes and protobuf's own JSON parser; the
only thing done by hand is turning the JSON mapping's hex ids into the bytes protobuf expects.

    >>> from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    >>> request = decode(ExportTraceServiceRequest, b'{"resourceSpans": []}', "application/json", "")
    >>> isinstance(request, ExportTraceServiceRequest)
    True
"""

from __future__ import annotations

import base64
import zlib
from typing import Any, TypeVar

import orjson
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message, message_factory

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
CONTENT_TYPES = (PROTOBUF, JSON)
M = TypeVar("M", bound=message.Message)


class OtlpError(Exception):
    """A request that cannot be decoded: the HTTP status to answer and why."""

    def __init__(self, status: int, problem: str):
        super().__init__(problem)
        self.status, self.problem = status, problem


def _status_class() -> Any:
    """`google.rpc.Status` (code, message; details left out), built from a descriptor at import time
    so the runtime needs no googleapis package for the one message OTLP borrows from it."""
    proto = descriptor_pb2.FileDescriptorProto(name="agentslo_otlp_status.proto", package="google.rpc")
    proto.syntax = "proto3"
    status = proto.message_type.add(name="Status")
    status.field.add(name="code", number=1, type=5, label=1)  # TYPE_INT32, LABEL_OPTIONAL
    status.field.add(name="message", number=2, type=9, label=1)  # TYPE_STRING
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status"))


_STATUS = _status_class()


def inflate(raw: bytes, encoding: str, limit: int) -> bytes:
    """The body without its Content-Encoding (gzip or none), refusing more than `limit` bytes inflated."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding != "gzip":
        raise OtlpError(415, f"unsupported Content-Encoding {encoding!r}; send gzip or none")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise OtlpError(400, f"the body is not valid gzip: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise OtlpError(413, f"the body inflates to more than {limit} bytes; send smaller requests")
    if not inflater.eof:
        raise OtlpError(400, "the gzip body is truncated")
    return out


_ID_KEYS = {"traceId": 16, "spanId": 8, "parentSpanId": 8, "trace_id": 16, "span_id": 8, "parent_span_id": 8}


def _hex_ids(node: Any) -> Any:
    """The OTLP JSON mapping writes ids as hex; protobuf's JSON parser wants base64 for bytes."""
    if isinstance(node, dict):
        for key, value in node.items():
            size = _ID_KEYS.get(key)
            if size is not None and isinstance(value, str):
                try:
                    raw = bytes.fromhex(value)
                except ValueError:
                    raise OtlpError(400, f"{key} {value[:40]!r} is not hex") from None
                if raw and len(raw) != size:
                    raise OtlpError(400, f"{key} must be {size} bytes ({2 * size} hex digits)")
                node[key] = base64.b64encode(raw).decode()
            else:
                _hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids(item)
    return node


def decode(cls: type[M], raw: bytes, content_type: str, encoding: str, limit: int = 64 << 20) -> M:
    """The request message of a body, or OtlpError (400 undecodable, 413 too large, 415 unsupported)."""
    if content_type not in CONTENT_TYPES:
        raise OtlpError(415, f"unsupported content type {content_type or 'none'}; send {PROTOBUF} or {JSON}")
    body = inflate(raw, encoding, limit)
    if content_type == PROTOBUF:
        try:
            parsed: M = cls.FromString(body)
            return parsed
        except (message.DecodeError, RuntimeError, ValueError) as exc:
            raise OtlpError(400, f"the body is not a valid {cls.__name__} ({exc})") from None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OtlpError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise OtlpError(400, f"the body must be a JSON object ({cls.__name__})")
    try:
        out: M = json_format.ParseDict(_hex_ids(data), cls(), ignore_unknown_fields=True)
        return out
    except (json_format.ParseError, RecursionError, ValueError, TypeError) as exc:
        raise OtlpError(
            400, f"the body is not a valid {cls.__name__} in the OTLP JSON mapping ({exc})"
        ) from None


def encode(reply: message.Message, content_type: str) -> bytes:
    """A response message in the request's encoding."""
    if content_type == JSON:
        return orjson.dumps(json_format.MessageToDict(reply))
    serialized: bytes = reply.SerializeToString()
    return serialized


def status_body(code: int, problem: str, content_type: str) -> bytes:
    """The `google.rpc.Status` of a refusal (`code` is a gRPC code: 3 INVALID_ARGUMENT, 8 EXHAUSTED...)."""
    status = _STATUS(code=code, message=problem)
    return encode(status, content_type if content_type in CONTENT_TYPES else JSON)
