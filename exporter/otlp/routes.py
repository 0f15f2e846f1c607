"""The aiohttp side of OTLP/HTTP: read the body, decode it, answer in the request's encoding.

The app wires these two handlers (`OtlpRoutes.post_traces`, `.post_logs`) next to `/v1/events`;
auth and the body size limit are the app's middleware and `client_max_size`, as for every route.
Decoding and reading run on worker threads so the event loop keeps answering scrapes. A binary trace
request the C++ mapper read is then counted on the loop, with the others read meanwhile, in one
transaction (`_count_queued`); every other request is read and counted on its worker.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web
from google.protobuf import message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentslo.exporter.config import ExporterConfig
from agentslo.exporter.otlp.decode import JSON, PROTOBUF, OtlpError, decode, encode, inflate, status_body
from agentslo.exporter.otlp.receiver import Fast, OtlpReceiver
from agentslo.exporter.otlp.rows import Rows, read_body, read_message

log = logging.getLogger(__name__)

RETRY_AFTER_BUSY_S = 1
RETRY_AFTER_UNAVAILABLE_S = 5
# gRPC status codes carried in the google.rpc.Status of a refusal (OTLP/HTTP reuses them)
GRPC_INVALID_ARGUMENT, GRPC_RESOURCE_EXHAUSTED, GRPC_UNAVAILABLE = 3, 8, 14
INFLATE_FACTOR = 8  # a gzip body may inflate to this many times the body limit
MAX_GROUP = 32  # fast requests counted per commit


class OtlpRoutes:
    def __init__(self, receiver: OtlpReceiver, config: ExporterConfig):
        self.receiver, self.config = receiver, config
        self.pending = 0
        self._queued: list[tuple[Fast, asyncio.Future[message.Message | None]]] = []
        self._counter: asyncio.Task[None] | None = None

    async def post_traces(self, request: web.Request) -> web.StreamResponse:
        return await self._post(request, ExportTraceServiceRequest, self.receiver.traces)

    async def post_logs(self, request: web.Request) -> web.StreamResponse:
        return await self._post(request, ExportLogsServiceRequest, self.receiver.logs)

    async def _post(
        self, request: web.Request, cls: type[message.Message], apply: Callable[[Any], message.Message]
    ) -> web.StreamResponse:
        content_type = request.content_type if request.body_exists else ""
        if self.pending >= self.config.max_pending_batches:
            self.receiver.ingestor.reject("overloaded")
            return _refuse(
                429,
                GRPC_RESOURCE_EXHAUSTED,
                "too many requests in flight; retry later",
                content_type,
                RETRY_AFTER_BUSY_S,
            )
        self.pending += 1
        try:
            try:
                async with asyncio.timeout(self.config.read_timeout_s):
                    chunks = await _chunks(request, self.config.max_body_bytes)
            except TimeoutError:
                return _refuse(408, GRPC_INVALID_ARGUMENT, "the body did not arrive in time", content_type)
            if chunks is None:
                self.receiver.ingestor.reject("too_large")
                problem = f"the body is larger than {self.config.max_body_bytes} bytes; send smaller requests"
                return _refuse(413, GRPC_RESOURCE_EXHAUSTED, problem, content_type)
            encoding = ""  # aiohttp has already inflated a gzip (or deflate) body, within client_max_size
            limit = self.config.max_body_bytes * INFLATE_FACTOR

            def work() -> Any:
                with _no_cyclic_gc():
                    raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                    request = self._read(cls, raw, content_type, encoding, limit)
                    if type(request) is bytes:  # a binary trace request: the C++ mapper first
                        fast = self.receiver.map_fast(request)
                        if fast is not None:
                            self._most(fast.total)
                            return fast
                    return slow(request)

            def slow(request: Any) -> message.Message:  # the Python mapping (binary bodies as rows)
                with _no_cyclic_gc():
                    if type(request) is bytes:
                        request = read_body(request, self.receiver.wanted)
                    self._most(len(request.spans) if isinstance(request, Rows) else _items(request))
                    return apply(request)

            loop = asyncio.get_running_loop()
            try:
                reply = await loop.run_in_executor(None, work)
                if isinstance(reply, Fast):
                    fast = reply
                    reply = await self._count(fast)
                    if reply is None:  # the Python mapping reads it after all
                        reply = await loop.run_in_executor(None, slow, fast.body)
            except OtlpError as exc:
                self.receiver.ingestor.reject(
                    "invalid_body"
                    if exc.status == 400
                    else "too_large"
                    if exc.status == 413
                    else "unsupported"
                )
                return _refuse(exc.status, GRPC_INVALID_ARGUMENT, exc.problem, content_type)
            except Exception as exc:  # storage failure: nothing was counted (the transaction rolled back)
                log.error("OTLP ingest failed: %s", exc)
                return _refuse(
                    503,
                    GRPC_UNAVAILABLE,
                    f"could not store the request ({type(exc).__name__}); nothing was counted",
                    content_type,
                    RETRY_AFTER_UNAVAILABLE_S,
                )
        finally:
            self.pending -= 1
        return web.Response(body=encode(reply, content_type), content_type=content_type)

    async def _count(self, fast: Fast) -> message.Message | None:
        """Count a request the C++ mapper read, with the others read meanwhile (`_count_queued`)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[message.Message | None] = loop.create_future()
        self._queued.append((fast, future))
        if self._counter is None or self._counter.done():
            self._counter = loop.create_task(self._count_queued())
        return await future

    async def _count_queued(self) -> None:
        """Count the queued fast requests on the event loop, a group per commit (as `/v1/events`'
        writer does). The mapping ran on worker threads with the GIL released; counting holds the
        GIL, and doing it on the loop rather than on each worker spared the GIL's hand-offs between
        workers waiting on each other's commits. When a worker holds the trace memory (the Python
        mapping of a request), the group waits for it on a thread, not on the loop."""
        loop = asyncio.get_running_loop()
        while self._queued:
            jobs, self._queued = self._queued[:MAX_GROUP], self._queued[MAX_GROUP:]
            group = [fast for fast, _ in jobs]
            replies: list[Any] | None
            try:
                with _no_cyclic_gc():
                    replies = self.receiver.count_fast(group, wait=False)
                if replies is None:
                    replies = await loop.run_in_executor(None, self.receiver.count_fast, group)
            except Exception as exc:  # nothing of the group was counted
                replies = [exc] * len(jobs)
            assert replies is not None
            for (_, future), reply in zip(jobs, replies, strict=True):
                if future.done():  # the sender went away; what it sent is counted all the same
                    continue
                if isinstance(reply, BaseException):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
            await asyncio.sleep(0)  # the requests read meanwhile: the next group

    def _most(self, items: int) -> None:
        if items > self.config.max_batch_events:  # the limit of /v1/events, per span or record
            most = self.config.max_batch_events
            raise OtlpError(413, f"{items} spans or records; at most {most} per request, split it")

    def _read(
        self, cls: type[message.Message], raw: bytes, content_type: str, encoding: str, limit: int
    ) -> Any:
        """The request: binary trace requests as their bytes (the C++ mapper's, else `read_body`'s),
        JSON ones as `Rows`, log requests as the decoded message."""
        if cls is not ExportTraceServiceRequest:
            return decode(cls, raw, content_type, encoding, limit)
        if content_type == PROTOBUF:
            return bytes(inflate(raw, encoding, limit))
        return read_message(
            decode(ExportTraceServiceRequest, raw, content_type, encoding, limit), self.receiver.wanted
        )


async def _chunks(request: web.Request, most: int) -> list[bytes] | None:
    """The body as the chunks it arrived in, to be joined on a worker; None past `most` bytes (as
    `request.read()` refuses, 413). `read()` joins them on the event loop, into a bytearray grown by
    copying and then copied again: for a 1,000-span request (~330 KB), ~0.1 ms of the loop's time."""
    payload = request.content
    payload.set_read_chunk_size(most)  # as read() does: no pausing the socket under `most`
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk, _ = await payload.readchunk()
        if chunk:
            size += len(chunk)
            if size > most:
                return None
            chunks.append(chunk)
        elif payload.at_eof():  # else the end of an HTTP chunk; (aiohttp's one empty body says so forever)
            return chunks


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Hold the cyclic garbage collector while a request is read and counted. A 1,000-span request
    allocates some 15,000 short-lived containers (rows, notes, events) that reference counting frees
    anyway; left on, the collector ran ~20 passes per request over them and, every so often, over the
    trace memory's 20,000 traces: ~15% of the CPU per span (benchmarks/otlp_ingest.py). It runs as
    usual once the request is done (never left off by an error; left alone if it was off already)."""
    held = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if held:
            gc.enable()


def _items(request: Any) -> int:
    """How many spans or log records an export request holds."""
    if isinstance(request, ExportTraceServiceRequest):
        return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    return sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)


def _refuse(
    status: int, code: int, problem: str, content_type: str, retry_after: int | None = None
) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    reply_type = content_type if content_type in ("application/x-protobuf", JSON) else JSON
    return web.Response(
        status=status, body=status_body(code, problem, reply_type), content_type=reply_type, headers=headers
    )
