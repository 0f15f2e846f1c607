"""What the OTLP reader remembers between requests: recent spans of recent traces (`SpanNote`s in a
`TraceMemory`), and the spans waiting for an ancestor to name their agent or flow; all bounded.

Children end, and are exported, before their parents, so a task span finds its chat and tool spans
here, and a child the flow that its ancestor names.
"""

from __future__ import annotations

import os
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from agentslo.exporter.otlp import rows
from agentslo.exporter.otlp.seen import TRACE_ID, split
from agentslo.exporter.otlp.semconv import (
    AGENT_NAME,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    REQUEST_MODEL,
    RESPONSE_MODEL,
    TOOL_OPERATION,
    TURN_OPERATIONS,
    first_int,
)

UnreadTraces: type[Any] | None
try:
    from agentslo.exporter.otlp._reader import UnreadTraces
except ImportError:  # not built: the pure-Python twin
    UnreadTraces = None

NO_TOKENS: tuple[int | None, int | None] = (None, None)
NO_ATTRS: dict[str, Any] = {}  # shared by the notes without agent-slo attributes: never written to


class SpanNote:
    """What later spans of the same trace may need from one span (kept in `TraceMemory`)."""

    __slots__ = ("agent", "attrs", "content", "content_size", "kind", "model", "op", "parent", "tokens")

    def __init__(
        self, parent: bytes, op: str | None, attrs: dict[str, Any], inherited: frozenset[str] = frozenset()
    ):
        # one of these per span read: written for speed (no helper calls, no empty dicts)
        get = attrs.get
        self.parent, self.op = parent, op
        self.agent = get(AGENT_NAME)
        # the attributes descendants inherit: agent-slo's own (flow, exclusion...) and the spec's other
        # names for them (`inherited`: an `otel.flow_attributes` entry such as `app.flow`); or the
        # shared empty dict (the usual case)
        if inherited:
            own = {k: v for k, v in attrs.items() if k.startswith("agent_slo.") or k in inherited}
        else:
            own = {k: v for k, v in attrs.items() if k.startswith("agent_slo.")}
        self.attrs = own if own else NO_ATTRS
        self.model = get(RESPONSE_MODEL) or get(REQUEST_MODEL)
        # token usage is read on chat spans only (their turn counts it, their task prices it)
        if op in TURN_OPERATIONS:
            self.kind: str | None = "turn"
            self.tokens = (first_int(attrs, INPUT_TOKENS), first_int(attrs, OUTPUT_TOKENS))
        else:
            self.kind = "tool" if op == TOOL_OPERATION else None
            self.tokens = NO_TOKENS
        self.content: dict[str, Any] | None = None  # messages or tool input/output, when captured
        self.content_size = 0


class Unread:
    """The traces of a request the C++ mapper read (`OtlpReceiver`): their notes are made from the
    request's body only when a later span or record of one of them asks (rarely: a trace's spans
    usually come in one request), once for all its traces. `traces`: their ids, 16 bytes each."""

    __slots__ = ("body", "notes", "read", "serial", "since", "traces")

    def __init__(
        self, body: bytes, traces: bytes, read: Callable[[bytes], dict[bytes, dict[bytes, SpanNote]]]
    ):
        self.body, self.traces, self.read = body, traces, read
        self.notes: dict[bytes, dict[bytes, SpanNote]] | None = None
        self.serial, self.since = 0, 0.0  # set when the memory holds it

    def of(self, trace_id: bytes) -> dict[bytes, SpanNote]:
        if self.notes is None:
            self.notes = self.read(self.body)
        return self.notes.get(trace_id, {})


class UnreadIds:
    """The pure-Python twin of the C++ `UnreadTraces`: trace id → the serial of the request holding
    it unread. Trace ids come and go as blobs of 16 bytes each."""

    def __init__(self, seed: int = 0):
        self.held: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self.held)

    def any(self, traces: bytes) -> bool:
        return not self.held.keys().isdisjoint(split(traces, TRACE_ID))

    def hold(self, traces: bytes, serial: int) -> None:
        self.held.update((trace_id, serial) for trace_id in split(traces, TRACE_ID))

    def drop(self, traces: bytes, serial: int) -> None:
        for trace_id in split(traces, TRACE_ID):
            if self.held.get(trace_id) == serial:
                del self.held[trace_id]

    def pop(self, trace_id: bytes) -> int | None:
        return self.held.pop(trace_id, None)


def unread_traces() -> Any:
    """The table of traces held unread: the C++ one when built (`UnreadIds` otherwise, and with
    AGENT_SLO_PURE_PYTHON)."""
    if UnreadTraces is not None and not rows.PURE:
        return UnreadTraces(int.from_bytes(os.urandom(8), "little"))
    return UnreadIds()


class TraceMemory:
    """The recent spans of recent traces: trace id → span id → SpanNote, bounded in every direction.

    Two kinds of trace are held, each within `max_traces` and `max_age_s`: those whose notes were
    made (`traces`), and those held unread with their request's body (`unread_traces`: a C++ table of
    ids, filed and forgotten a request at a time; `unread`: the requests, oldest first, within
    `max_unread_bytes` of bodies). Asked for, an unread trace's notes are made from its body and it
    moves to `traces`."""

    def __init__(
        self,
        max_traces: int = 20_000,
        max_spans: int = 2_000,
        max_age_s: float = 600.0,
        max_deferred: int = 50_000,
        max_content_bytes: int = 64 << 20,
        max_unread_bytes: int = 64 << 20,
    ):
        self.max_traces, self.max_spans, self.max_age_s = max_traces, max_spans, max_age_s
        self.max_deferred = max_deferred
        self.max_content_bytes = max_content_bytes
        self.content_bytes = 0  # conversation content held by the notes (sessions from traces)
        # trace id → (first seen, span id → note), oldest first
        self.traces: OrderedDict[bytes, tuple[float, dict[bytes, SpanNote]]] = OrderedDict()
        # the requests whose traces are held unread, oldest first, within `max_unread_bytes` of bodies
        self.max_unread_bytes = max_unread_bytes
        self.unread: deque[Unread] = deque()
        self.unread_bytes = 0
        self.unread_traces = unread_traces()  # trace id → the serial of the request holding it
        self._by_serial: dict[int, Unread] = {}
        self._serials = 0
        # spans that wait for an ancestor to say their agent or flow: trace → span → (Span, resource, since)
        self.deferred: dict[bytes, dict[bytes, tuple[bytes, bytes, float]]] = {}
        self.deferred_count = 0
        self.awaited: dict[bytes, set[bytes]] = {}  # trace → ids of the missing ancestors deferred spans need

    def defer(
        self, trace_id: bytes, span_id: bytes, span: bytes, resource: bytes, since: float, awaited: bytes
    ) -> bool:
        """Hold a span until its ancestor `awaited` arrives; False when the buffer is full."""
        waiting = self.deferred.setdefault(trace_id, {})
        if span_id not in waiting:
            if self.deferred_count >= self.max_deferred:
                return False
            self.deferred_count += 1
        waiting[span_id] = (span, resource, since)
        self.awaited.setdefault(trace_id, set()).add(awaited)
        return True

    def take_deferred(self, trace_id: bytes) -> list[tuple[bytes, bytes, float]]:
        """The spans deferred in a trace as (Span, resource, since), removed from the buffer."""
        waiting = self.deferred.pop(trace_id, None) or {}
        self.awaited.pop(trace_id, None)
        self.deferred_count -= len(waiting)
        return list(waiting.values())

    def expire(self, now: float) -> int:
        """Forget deferred spans whose ancestors did not come within `max_age_s`; how many."""
        gone = 0
        for trace_id in list(self.deferred):
            waiting = self.deferred[trace_id]
            for span_id, (_, _, since) in list(waiting.items()):
                if now - since > self.max_age_s:
                    del waiting[span_id]
                    gone += 1
            if not waiting:
                del self.deferred[trace_id]
                self.awaited.pop(trace_id, None)
        self.deferred_count -= gone
        return gone

    def trace(self, trace_id: bytes, now: float) -> dict[bytes, SpanNote]:
        entry = self.traces.get(trace_id)
        if entry is not None:
            return entry[1]
        spans: dict[bytes, SpanNote] = {}
        if len(self.unread_traces):
            self._bound_unread(now)
            serial = self.unread_traces.pop(trace_id)
            if serial is not None:  # held unread: its notes, from its request's body
                spans = self._by_serial[serial].of(trace_id)
        self.traces[trace_id] = (now, spans)
        self._bound(now)
        return spans

    def knows(self, traces: bytes) -> bool:
        """Whether any of these traces (16 bytes each) is held, read or unread, or has spans waiting
        for an ancestor."""
        if self.unread_traces.any(traces):
            return True
        if not self.traces and not self.deferred:
            return False
        ids = split(traces, TRACE_ID)
        return not self.traces.keys().isdisjoint(ids) or not self.deferred.keys().isdisjoint(ids)

    def hold_unread(self, unread: Unread, now: float) -> None:
        """Remember the (new) traces of a request the C++ mapper read, unread until asked for."""
        self._serials += 1
        unread.serial, unread.since = self._serials, now
        self.unread_traces.hold(unread.traces, unread.serial)
        self._by_serial[unread.serial] = unread
        self.unread.append(unread)
        self.unread_bytes += len(unread.body)
        self._bound_unread(now)

    def let_go(self, unread: Unread) -> None:
        """Forget a request held unread (its traces it still holds), as if it had never been held."""
        if self._by_serial.pop(unread.serial, None) is unread:
            self.unread.remove(unread)
            self.unread_bytes -= len(unread.body)
            self.unread_traces.drop(unread.traces, unread.serial)

    def _bound_unread(self, now: float) -> None:
        """The oldest requests held unread go (their traces still unread with them) while there are
        more than `max_traces` such traces, more bytes than `max_unread_bytes` (the newest stays), or
        the oldest is older than `max_age_s`."""
        unread = self.unread
        while unread and (
            len(self.unread_traces) > self.max_traces
            or (self.unread_bytes > self.max_unread_bytes and len(unread) > 1)
            or now - unread[0].since > self.max_age_s
        ):
            self.let_go(unread[0])

    def _bound(self, now: float) -> None:
        while len(self.traces) > self.max_traces:
            self._forget()
        while self.traces:
            first_seen, _ = next(iter(self.traces.values()))
            if now - first_seen <= self.max_age_s:
                break
            self._forget()

    def _forget(self) -> None:
        """Drop the oldest trace, giving back the content budget its spans held."""
        _, spans = self.traces.popitem(last=False)[1]
        self.content_bytes -= sum(note.content_size for note in spans.values())

    def keep_content(self, note: SpanNote, content: dict[str, Any] | None, size: int) -> None:
        """Give a note its conversation content while the memory's content budget lasts."""
        if content is not None and self.content_bytes + size <= self.max_content_bytes:
            note.content, note.content_size = content, size
            self.content_bytes += size

    def note(
        self,
        trace_id: bytes,
        span_id: bytes,
        note: SpanNote,
        now: float,
        spans: dict[bytes, SpanNote] | None = None,
    ) -> None:
        """Remember a span's note (`spans`: its trace's notes, when the caller has just asked for them)."""
        spans = self.trace(trace_id, now) if spans is None else spans
        old = spans.get(span_id)
        if old is not None:  # the same span again (a retry): its content is held once
            self.content_bytes -= old.content_size
        if len(spans) < self.max_spans or old is not None:
            spans[span_id] = note
        else:
            self.content_bytes -= note.content_size
