"""What the OTLP reader remembers between requests: recent spans of recent traces (`SpanNote`s in a
`TraceMemory`), and the spans waiting for an ancestor to name their agent or flow; all bounded.

Children end, and are exported, before their parents, so a task span finds its chat and tool spans
here, and a child the flow that its ancestor names.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from itertools import repeat
from typing import Any

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
    usually come in one request), once for all its traces."""

    __slots__ = ("body", "notes", "read", "trace_ids")

    def __init__(
        self, body: bytes, trace_ids: list[bytes], read: Callable[[bytes], dict[bytes, dict[bytes, SpanNote]]]
    ):
        self.body, self.trace_ids, self.read = body, trace_ids, read
        self.notes: dict[bytes, dict[bytes, SpanNote]] | None = None

    def of(self, trace_id: bytes) -> dict[bytes, SpanNote]:
        if self.notes is None:
            self.notes = self.read(self.body)
        return self.notes.get(trace_id, {})


class TraceMemory:
    """The recent spans of recent traces: trace id → span id → SpanNote, bounded in every direction."""

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
        self.traces: OrderedDict[bytes, tuple[float, dict[bytes, SpanNote] | Unread]] = OrderedDict()
        # the requests whose traces are held unread, oldest first, within `max_unread_bytes` of bodies
        self.max_unread_bytes = max_unread_bytes
        self.unread: deque[Unread] = deque()
        self.unread_bytes = 0
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
        if entry is None:
            entry = self.traces[trace_id] = (now, {})
            self._bound(now)
        spans = entry[1]
        if type(spans) is Unread:
            spans = spans.of(trace_id)
            self.traces[trace_id] = (entry[0], spans)
        return spans  # type: ignore[return-value]

    def knows(self, trace_ids: list[bytes]) -> bool:
        """Whether any of these traces has spans remembered or spans waiting for an ancestor."""
        return not self.traces.keys().isdisjoint(trace_ids) or not self.deferred.keys().isdisjoint(trace_ids)

    def hold_unread(self, unread: Unread, now: float) -> None:
        """Remember the (new) traces of a request the C++ mapper read, unread until asked for."""
        self.traces.update(zip(unread.trace_ids, repeat((now, unread))))
        self.unread.append(unread)
        self.unread_bytes += len(unread.body)
        while self.unread_bytes > self.max_unread_bytes and len(self.unread) > 1:
            oldest = self.unread.popleft()  # its traces still unread are forgotten with its body
            self.unread_bytes -= len(oldest.body)
            for trace_id in oldest.trace_ids:
                entry = self.traces.get(trace_id)
                if entry is not None and entry[1] is oldest:
                    del self.traces[trace_id]
        self._bound(now)

    def _bound(self, now: float) -> None:
        excess = len(self.traces) - self.max_traces
        if excess > 0:  # a request's traces push out as many old ones: in one loop, not a call each
            popitem, freed = self.traces.popitem, 0
            for _ in range(excess):
                spans = popitem(last=False)[1][1]
                if type(spans) is dict:
                    freed += sum(note.content_size for note in spans.values())
            self.content_bytes -= freed
        while self.traces:
            first_seen, _ = next(iter(self.traces.values()))
            if now - first_seen <= self.max_age_s:
                break
            self._forget()

    def _forget(self) -> None:
        """Drop the oldest trace, giving back the content budget its spans held."""
        _, spans = self.traces.popitem(last=False)[1]
        if type(spans) is dict:
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
