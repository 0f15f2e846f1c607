"""`POST /v1/traces` and `POST /v1/logs`: OTLP/HTTP into the same validation and apply path as events.

A request is decoded (`otlp.decode`), its spans or records read into events (`otlp.mapping`), the
spans already counted are left out (a sender's retry, within the idempotency horizon: `otlp.seen`),
and the rest go to `Ingestor.apply_many` as one partial batch whose dedupe keys are filed in the
same SQLite transaction as the counts. So an acknowledged span survives kill -9, and a retried one
counts once.

The usual binary trace request takes a shorter way (`map_fast`, `count_fast`): the C++ mapper
(`_mapper.cpp`) reads it, GIL released, into the events scanner's reports (counted there too when
the classifier's plan table knows every key: `exporter._scan.Plans`), and it is counted when
none of its traces is known to the trace memory or the key index (else the Python mapping reads it
after all), with the other such requests read meanwhile in one transaction (group commit); its
traces are then held unread in the memory (`memory.Unread`).

The answer is the OTLP response message in the request's encoding: `partial_success` with the
number of spans (or records) refused and why, by reason, also counted in
`agent_slo_otlp_rejected_total{signal, reason}`. 400 means nothing was counted (the body could
not be decoded); 413, 415, and 429/503 with `Retry-After` as for `/v1/events`.

    >>> receiver = OtlpReceiver(ingestor, specs)
    >>> reply = receiver.traces(request)     # an ExportTraceServiceRequest → ExportTraceServiceResponse
    >>> reply.partial_success.rejected_spans
    0
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from agentslo import names
from agentslo.exporter import wire
from agentslo.exporter.classify import Deltas
from agentslo.exporter.ingest import Batch, Ingestor, counted_keys
from agentslo.exporter.otlp import rows
from agentslo.exporter.otlp.mapping import Mapped, _item, inherited, map_logs, map_spans, unread_notes
from agentslo.exporter.otlp.memory import SpanNote, TraceMemory, Unread
from agentslo.exporter.otlp.rows import Rows, wanted
from agentslo.exporter.otlp.seen import span_index, span_key
from agentslo.exporter.otlp.semconv import attributes, operation
from agentslo.exporter.persist import SPAN_KEY, SPAN_MARK
from agentslo.spec import Spec

Mapper: type[Any] | None
try:
    from agentslo.exporter.otlp._reader import Mapper
except ImportError:  # not built: every request takes the Python mapping
    Mapper = None

TRACES, LOGS = "traces", "logs"
RESULTS = ("counted", "duplicate", "ignored", "rejected", "deferred", "expired")
REASONS = ("unknown_agent", "no_flow", "undeclared_judge", "missing_ids", "invalid")
# Rows of spans held for their ancestors, filed beside the span keys: parked until read again.
PARKED, RESOLVED = "\x1fparked", "\x1fresolved"
MAX_MESSAGE_ITEMS = 5  # examples per reason in partial_success.error_message


class Fast(NamedTuple):
    """A binary request as the C++ mapper read it (`_mapper.cpp`): its events (tallied by the events
    scanner, with their JSON made only if asked for; or that JSON when the scanner is not built),
    their span keys (24 bytes each), the request's trace ids (16 bytes each), spans ignored, and spans."""

    body: bytes
    events: wire.Decoded | bytes
    keys: bytes
    traces: bytes
    ignored: int
    total: int


class OtlpReceiver:
    """Turns decoded OTLP requests into counted events, exactly once per span."""

    def __init__(
        self,
        ingestor: Ingestor,
        specs: list[Spec],
        on_session: Callable[[dict[str, Any]], None] | None = None,
    ):
        self.ingestor = ingestor
        # where sessions assembled from traces with content go (the feedback wing's intake, when wired)
        self.on_session = on_session
        self.specs = {spec.agent: spec for spec in specs}
        self.wanted = wanted(specs)  # the attribute keys the mapping reads (`rows`)
        self.memory = TraceMemory()
        self._memory_lock = threading.Lock()
        config = ingestor.config
        self.seen = span_index(config.max_span_keys, config.idempotency_horizon_s)  # span keys counted
        self._unread = unread_notes(specs)
        self.mapper = _mapper(specs, self.memory, ingestor.classifier.table)
        store = ingestor.store
        with store.lock:
            store.family(
                names.OTLP_ITEMS_TOTAL,
                "counter",
                "OTLP spans and log records received, by what became of them.",
                (names.L_SIGNAL, names.L_RESULT),
            )
            store.family(
                names.OTLP_REJECTED_TOTAL,
                "counter",
                "OTLP spans and log records refused, by reason.",
                (names.L_SIGNAL, names.L_REASON),
            )
            for signal in (TRACES, LOGS):
                for result in RESULTS:
                    store.slot(names.OTLP_ITEMS_TOTAL, (signal, result), persist=False)
                for reason in REASONS:
                    store.slot(names.OTLP_REJECTED_TOTAL, (signal, reason), persist=False)
        self._restore()

    def _restore(self) -> None:
        """Hold again the spans that were waiting for their ancestors when the exporter stopped."""
        db = self.ingestor.db
        if db is None:
            return
        now = time.time()
        self._restore_keys(now)
        task_ops = {op for spec in self.specs.values() for op in spec.otel.task_operations}
        kept = inherited(self.specs.values())
        for _, answer, created in db.filed(PARKED, now - self.memory.max_age_s):
            raw_span, raw_resource, awaited = (base64.b64decode(part) for part in orjson.loads(answer))
            span = Span.FromString(raw_span)
            attrs = attributes(span.attributes)
            note = SpanNote(span.parent_span_id, operation(span.name, attrs, task_ops), attrs, kept)
            self.memory.note(span.trace_id, span.span_id, note, now)
            self.memory.defer(span.trace_id, span.span_id, raw_span, raw_resource, created, awaited)

    def _restore_keys(self, now: float) -> None:
        """The newest span keys the file holds, into the index (one row per request; a row per span
        in the idempotency table in files of earlier versions)."""
        config, db = self.ingestor.config, self.ingestor.db
        since, most = now - config.idempotency_horizon_s, config.max_span_keys
        assert db is not None
        chosen: list[bytes] = []
        count = 0
        for keys, _ in db.spans(since):
            chosen.append(keys)
            count += len(keys) // SPAN_KEY
            if count >= most:
                break
        if count < most:
            older = [key[len(SPAN_MARK) :] for key, _, _ in db.filed(SPAN_MARK, since)]
            chosen.append(b"".join(map(span_key, older)))
        for keys in reversed(chosen):
            self.seen.add(keys, now)

    def map_fast(self, body: bytes) -> Fast | None:
        """The C++ mapper's reading of a binary request (no lock held: it runs beside other requests),
        or None when the Python mapping must read it. With the events scanner built, the mapper
        tallies the events into the scanner's reports and their JSON is written only if asked for."""
        mapper = self.mapper
        if mapper is None or rows.PURE:
            return None
        if wire.SCANNER is None:  # no scanner to tally into: the events as JSON
            out = mapper.map(body)
            return None if out is None else Fast(body, *out)
        tallied = mapper.tally(body)
        if tallied is None:
            return None
        n, reports, counted, *rest = tallied
        events = wire.Decoded(lambda: _json(mapper, body), n, reports=reports, counted=counted)
        return Fast(body, events, *rest)

    def traces_fast(self, fast: Fast) -> ExportTraceServiceResponse | None:
        """Count a request the C++ mapper read; None when the Python mapping must read it after all
        (a trace the memory knows, a span counted before: a retry)."""
        replies = self.count_fast([fast])
        assert replies is not None
        reply = replies[0]
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def count_fast(
        self, group: list[Fast], wait: bool = True
    ) -> list[ExportTraceServiceResponse | BaseException | None] | None:
        """Count requests the C++ mapper read with one commit (group commit): each one's reply, None
        where the Python mapping must read it after all, or the exception that kept it from being
        counted (storage failure: nothing of it counted). A request with a trace the memory or the
        key index knows, or that an earlier request of the group holds, is left to the Python mapping,
        as it would be if they came one by one. With `wait` False, None when another thread holds the
        trace memory (the caller hands the group to a thread that waits)."""
        if not self._memory_lock.acquire(blocking=wait):
            return None
        try:
            return self._count_fast(group)
        finally:
            self._memory_lock.release()

    def _count_fast(self, group: list[Fast]) -> list[ExportTraceServiceResponse | BaseException | None]:
        ingestor, now = self.ingestor, time.time()
        replies: list[ExportTraceServiceResponse | BaseException | None] = [None] * len(group)
        memory = self.memory
        with ingestor.lock:
            taken: list[tuple[int, Unread]] = []
            for i, fast in enumerate(group):
                if memory.knows(fast.traces) or self.seen.any_trace_seen(fast.traces, now):
                    continue
                # held at once, so that a later request of the group with one of its traces is left to
                # the Python mapping; let go again if it is not counted
                unread = Unread(fast.body, fast.traces, self._unread)
                memory.hold_unread(unread, now)
                taken.append((i, unread))
            batches = [
                Batch(_events(group[i]), partial=True, span_keys=group[i].keys)
                for i, _ in taken
                if group[i].keys
            ]
            try:
                results = iter(ingestor.apply_many(batches))
            except Exception as exc:  # a lone batch's storage failure: nothing counted
                for i, unread in taken:
                    memory.let_go(unread)
                    replies[i] = exc
                return replies
            expired = memory.expire(now)  # once for the group, told with its first request
            for i, unread in taken:
                fast = group[i]
                mapped = Mapped(ignored=fast.ignored, total=fast.total)
                refused: set[int] = set()
                if fast.keys:
                    try:
                        refused = self._settle(mapped, next(results), fast.keys, _span_item(fast.keys), now)
                    except RuntimeError as exc:  # the group's commit failed: none of it counted
                        memory.let_go(unread)
                        replies[i] = exc
                        continue
                mapped.expired, expired = expired, 0
                self._tally(TRACES, mapped, len(fast.keys) // SPAN_KEY - len(refused), 0)
                replies[i] = _trace_reply(mapped)
        return replies

    def traces(self, request: Rows | ExportTraceServiceRequest) -> ExportTraceServiceResponse:
        with self._memory_lock:
            mapped = map_spans(request, self.specs, self.memory)
        self._apply(mapped, TRACES)
        return _trace_reply(mapped)

    def logs(self, request: ExportLogsServiceRequest) -> ExportLogsServiceResponse:
        with self._memory_lock:
            mapped = map_logs(request, self.specs, self.memory)
        self._apply(mapped, LOGS)
        return _reply(mapped, ExportLogsServiceResponse(), "rejected_log_records")

    def _apply(self, mapped: Mapped, signal: str) -> None:
        """Count the new events of `mapped` (raises when storage fails: nothing counted, answer 503)."""
        ingestor, now = self.ingestor, time.time()
        binary = [span_key(k) for k in mapped.keys]
        with ingestor.lock:  # the seen-check and the commit are one step: a concurrent retry waits
            fresh = self._fresh(binary, now)
            duplicates = len(mapped.events) - len(fresh)
            events = [mapped.events[i] for i in fresh] if duplicates else mapped.events
            keys = b"".join(binary[i] for i in fresh)
            counted = 0
            if events:
                refused = self._commit(mapped, events, keys, lambda i: mapped.item(fresh[i]), now)
                counted = len(events) - len(refused)
                if self.on_session is not None and mapped.sessions:
                    counted_tasks = {fresh[i] for i in range(len(events)) if i not in refused}
                    for index, session in mapped.sessions:
                        if index in counted_tasks:  # a task counted now: its session is judged once
                            self.on_session(session)
            self._tally(signal, mapped, counted, duplicates)
            self._park(mapped, now)

    def _commit(
        self,
        mapped: Mapped,
        events: Any,
        keys: bytes,
        item: Callable[[int], str],
        now: float,
    ) -> set[int]:
        """Apply the fresh events (a list, or the `/v1/events` JSON decoded) as one partial batch, their
        span keys (`SPAN_KEY` bytes each) filed in the same transaction (`item`: the span or record of
        event i, for the message). Which were refused."""
        result = self.ingestor.apply_many([Batch(events, partial=True, span_keys=keys)])[0]
        return self._settle(mapped, result, keys, item, now)

    def _settle(
        self, mapped: Mapped, result: wire.IngestResult, keys: bytes, item: Callable[[int], str], now: float
    ) -> set[int]:
        """What became of a batch applied: the refused events go to `mapped`, the counted ones' keys to
        the index (raises when storage failed: nothing counted, answer 503). Which were refused."""
        if result.status >= 500:
            raise RuntimeError(result.body.get("error", "storage failure"))
        refused = set(result.body.get("rejected", ())) if result.status == 207 else set()
        if result.status >= 400:  # every event refused by validation
            refused = set(range(len(keys) // SPAN_KEY))
        problems = {p.get("index"): p for p in result.body.get("detail", [])}
        for i in sorted(refused):
            p = problems.get(i, {})
            why = f"{p.get('field', '')} {p.get('problem', 'invalid')}".strip()
            mapped.refuse("invalid", item(i), why)
        self.seen.add(counted_keys(keys, refused), now)
        return refused

    def _tally(self, signal: str, mapped: Mapped, counted: int, duplicates: int) -> None:
        """What became of a request's items, in agent_slo_otlp_items_total and _rejected_total."""
        self._count(signal, "counted", counted)
        self._count(signal, "duplicate", duplicates)
        self._count(signal, "ignored", mapped.ignored)
        retried = set(mapped.retried)
        self._count(signal, "deferred", sum((t, s) not in retried for t, s, *_ in mapped.deferred))
        self._count(signal, "expired", mapped.expired)
        self._count(signal, "rejected", sum(len(v) for v in mapped.rejected.values()))
        for reason, items in mapped.rejected.items():
            self._count(signal, reason, len(items), names.OTLP_REJECTED_TOTAL)

    def _park(self, mapped: Mapped, now: float) -> None:
        """File the spans now held for their ancestors (and unfile those read again), before answering."""
        if self.ingestor.db is None or not (mapped.deferred or mapped.retried):
            return
        retried, still = set(mapped.retried), {(t, s) for t, s, *_ in mapped.deferred}
        rows = [(_parked_key(t, s), RESOLVED, 0, b"") for t, s in retried - still]
        for trace_id, span_id, *parts in mapped.deferred:
            if (trace_id, span_id) not in retried:  # a span read again and still waiting keeps its row
                payload = orjson.dumps([base64.b64encode(part).decode() for part in parts])
                rows.append((_parked_key(trace_id, span_id), PARKED, 0, payload))
        if rows:
            self.ingestor.persist(Deltas(events=0), now, rows)

    def _fresh(self, keys: list[bytes], now: float) -> list[int]:
        """Indices of the events whose keys were not counted yet (nor repeated earlier in the request)."""
        seen = {keys[i] for i in self.seen.seen(b"".join(keys), now)} if keys else set()
        if not seen and len(set(keys)) == len(keys):
            return list(range(len(keys)))  # the usual request: every span new, once
        out: list[int] = []
        for i, key in enumerate(keys):
            if key not in seen:
                seen.add(key)
                out.append(i)
        return out

    def _count(self, signal: str, label: str, amount: int, family: str = names.OTLP_ITEMS_TOTAL) -> None:
        if amount:
            store = self.ingestor.store
            store.values[store.slot(family, (signal, label), persist=False)] += amount


def _parked_key(trace_id: bytes, span_id: bytes) -> str:
    return f"{SPAN_MARK}parked:{trace_id.hex()}{span_id.hex()}"


def _mapper(specs: list[Spec], memory: TraceMemory, plans: Any = None) -> Any:
    """The C++ mapper set up with the specs' `otel:` sections, the trace memory's bounds and the
    classifier's plan table (`plans`, or None), or None when it is not built or the specs name more
    attributes than it has room for."""
    if Mapper is None:
        return None
    agents = {
        spec.agent: (
            spec.otel.task_operations,
            spec.otel.flow_attributes,
            spec.otel.outcome_attribute,
            spec.otel.version_attribute,
            spec.otel.prompt_version_attribute,
            spec.otel.exclude_attribute,
            bool(spec.otel.flow_rules),
            {m: (p.input_per_mtok, p.output_per_mtok) for m, p in spec.otel.prices.items()},
        )
        for spec in specs
    }
    try:
        return Mapper(agents, memory.max_spans, memory.max_traces, wire.SCANNER, plans)
    except ValueError:  # more distinct otel attribute names than its 64 slots: the Python mapping reads all
        return None


def _events(fast: Fast) -> Any:
    """The events of a fast request that has some, as a batch takes them: decoded, or the scanner's tally."""
    if isinstance(fast.events, wire.Decoded):
        return fast.events
    return wire.decode(fast.events) or orjson.loads(fast.events)


def _json(mapper: Any, body: bytes) -> bytes:
    """The events' JSON of a request the mapper tallied: `map()` of the same body writes it."""
    out = mapper.map(body)
    assert out is not None, "map() declines no request tally() takes"
    return bytes(out[0])


def _span_item(keys: bytes) -> Callable[[int], str]:
    """How a refusal names the span of event i, from the C++ mapper's keys."""
    return lambda i: _item(keys[i * SPAN_KEY : (i + 1) * SPAN_KEY].hex())


R = TypeVar("R", ExportTraceServiceResponse, ExportLogsServiceResponse)


def _reply(mapped: Mapped, reply: R, rejected_field: str) -> R:
    """The OTLP answer: `partial_success` with the items refused (`rejected_field`: how the signal's
    response names their number) and a message naming them, when any were."""
    rejected = len({item.partition(":")[0] for items in mapped.rejected.values() for item in items})
    message = _message(mapped)
    if rejected or message:
        setattr(reply.partial_success, rejected_field, rejected)
        reply.partial_success.error_message = message
    return reply


def _trace_reply(mapped: Mapped) -> ExportTraceServiceResponse:
    return _reply(mapped, ExportTraceServiceResponse(), "rejected_spans")


def _message(mapped: Mapped) -> str:
    """partial_success.error_message: each reason with its count and the first few items."""
    parts: list[str] = []
    for reason, items in mapped.rejected.items():
        shown = "; ".join(items[:MAX_MESSAGE_ITEMS])
        more = f"; and {len(items) - MAX_MESSAGE_ITEMS} more" if len(items) > MAX_MESSAGE_ITEMS else ""
        parts.append(f"{reason} ({len(items)}): {shown}{more}")
    return " | ".join(parts)


def counts(store: Any, signal: str) -> dict[str, float]:
    """The OTLP item counters of a signal (tests, benchmarks)."""
    return {r: store.value(names.OTLP_ITEMS_TOTAL, (signal, r)) or 0.0 for r in RESULTS}
