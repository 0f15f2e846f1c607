"""OpenTelemetry GenAI spans and log records → the events of `POST /v1/events`.

The default reading follows the GenAI semantic conventions (v1.36 and the latest experimental
names both; see DESIGN.md, "OTLP ingest"), and a spec's `otel:` section overrides it:

- agent: `gen_ai.agent.name` on the span or an ancestor, else the resource's `service.name`;
- flow: the first of `otel.flow_attributes` (default `agent_slo.flow`) on the span, its nearest
  ancestor that has one, or the resource; else the first matching `otel.flow_rules`;
- `invoke_agent` (the `otel.task_operations`; of nested spans of one agent, the innermost) → `task`
  (outcome from `agent_slo.outcome`, else status ERROR → failure; cost and steps from its chat and
  tool spans); `chat` / `text_completion` / `generate_content` → `turn` (with its span's tokens,
  counted once by its model, inside a task or not: the task never repeats them); `execute_tool` →
  `tool_call`; a `gen_ai.evaluation.result` span event or log record → `judge`.

Spans that are not GenAI operations (HTTP, database...) are ignored, not refused. What cannot be
used (unknown agent, no flow, undeclared judge, no ids) is refused with its reason. Everything that
becomes an event is then validated and counted by the same path as `POST /v1/events`.

Children usually end, and are exported, before their parents, so the spans of a trace are kept for a
while (`TraceMemory`, bounded in traces, spans per trace and age) for a later parent to find its
chat and tool spans, and a later child its ancestors' flow.

    >>> from agentslo.spec import load_spec
    >>> specs = {s.agent: s for s in [load_spec("examples/cx-support.slo.yaml")]}
    >>> mapped = map_spans(request, specs, TraceMemory())   # an ExportTraceServiceRequest
    >>> mapped.events[0]["type"], mapped.rejected
    ('task', {})
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import re2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from agentslo.exporter.events import TOOL_OUTCOMES
from agentslo.exporter.otlp.conversation import content_of, may_carry, session_of
from agentslo.exporter.otlp.memory import SpanNote, TraceMemory
from agentslo.exporter.otlp.rows import OWN_PREFIX, Rows, SpanRow, read_body, read_message, row_of, wanted
from agentslo.exporter.otlp.semconv import (
    CONVERSATION,
    ERROR_TYPE,
    ESCALATION_REQUIRED,
    EVALUATION,
    EVALUATION_NAME,
    EVALUATION_SCORE,
    FAILURE_MODE,
    JUDGE_VERSION,
    OPERATION,
    REQUEST_MODEL,
    RESPONSE_MODEL,
    SERVICE_NAME,
    STATUS_ERROR,
    SYNTHETIC,
    TOOL_NAME,
    TOOL_OPERATION,
    TOOL_OUTCOME,
    TURN_OPERATIONS,
    attributes,
    operation,
    resource_bytes,
)
from agentslo.spec import Spec
from agentslo.spec_model import Otel

MAX_ANCESTRY = 64  # parent hops followed when looking for a flow or an enclosing task
NO_TRACE, NO_SPAN = bytes(16), bytes(8)  # all-zero ids are invalid (OTLP/trace)
DEFAULT_OTEL = Otel()


@dataclass
class Mapped:
    """The events a request's spans or records became, with one dedupe key each, and the refusals."""

    events: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # (trace id, span id[, evaluation #]): counted once
    rejected: dict[str, list[str]] = field(default_factory=dict)  # reason → items ("span <id>: why")
    ignored: int = 0  # spans that are not GenAI operations
    total: int = 0
    # spans newly held for their ancestors (trace id, span id, Span, resource): stored with the answer
    deferred: list[tuple[bytes, bytes, bytes, bytes, bytes]] = field(default_factory=list)  # ..., awaited
    retried: list[tuple[bytes, bytes]] = field(default_factory=list)  # deferred spans read again
    sessions: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (task event #, session)
    expired: int = 0  # deferred spans whose ancestors never came (acknowledged long ago: counted only)

    def refuse(self, reason: str, item: str, why: str) -> None:
        self.rejected.setdefault(reason, []).append(f"{item}: {why}")

    def add(self, event: dict[str, Any], key: str) -> None:
        self.events.append(event)
        self.keys.append(key)

    def item(self, index: int) -> str:
        """The span or record that event `index` came from, as refusals name it (from its key)."""
        return _item(self.keys[index])


def _item(key: str) -> str:
    """A key's span or record: "span <trace>/<span>[ evaluation <i>]", or "log record <hash>"."""
    if key.startswith("log"):
        return f"log record {key[3:15]}"
    evaluation = f" evaluation {key[49:]}" if len(key) > 48 else ""
    return f"span {key[:32]}/{key[32:48]}{evaluation}"


class _Reader:
    """Reads one trace's spans with the memory of what came before."""

    def __init__(self, specs: dict[str, Spec], memory: TraceMemory, now: float):
        self.specs, self.memory, self.now = specs, memory, now
        self.since: dict[tuple[bytes, bytes], float] = {}  # when each deferred span read again arrived
        self.task_operations = {op for spec in specs.values() for op in spec.otel.task_operations}
        self.inherited = inherited(specs.values())
        self.operations = self.task_operations | TURN_OPERATIONS | {TOOL_OPERATION}

    def chain(self, spans: dict[bytes, SpanNote], span_id: bytes) -> list[SpanNote]:
        """The span's note and its ancestors' (as far as they have arrived)."""
        out: list[SpanNote] = []
        note = spans.get(span_id)
        while note is not None and len(out) < MAX_ANCESTRY:
            out.append(note)
            note = spans.get(note.parent) if note.parent else None
        return out

    def serves(self, agent: Any) -> bool:
        """Whether an attribute value names an agent of this exporter (any value: lists included)."""
        return type(agent) is str and agent in self.specs

    def scope(
        self,
        spans: dict[bytes, SpanNote],
        span_id: bytes,
        attrs: dict[str, Any],
        resource: dict[str, Any],
    ) -> tuple[dict[str, Any], Otel] | tuple[str, str]:
        """The fields every event takes (agent, flow, exclusion), or why not: (reason, problem).

        One walk up the span's chain (as `chain` gives it) reads both the agent and the agent-slo
        attributes of the notes that have any (the flow and exclusion are looked up in those,
        nearest first, then in the resource): this runs once per span. The agent is the nearest
        `gen_ai.agent.name` this exporter serves, else the resource's `service.name` if served, else
        the first name seen (for the refusal): some instrumentations put a placeholder name on their
        model and tool spans ("OpenAI Agent")."""
        specs = self.specs
        owned: list[dict[str, Any]] = []  # the chain's agent-slo attributes, nearest first
        served, first, hops = None, None, 0
        note = spans.get(span_id)
        while note is not None and hops < MAX_ANCESTRY:
            hops += 1
            if note.attrs:
                owned.append(note.attrs)
            name = note.agent
            if name is not None and served is None:
                if type(name) is str and name in specs:
                    served = name
                elif first is None:
                    first = name
            note = spans.get(note.parent) if note.parent else None
        if served is None:
            service = resource.get(SERVICE_NAME)
            agent = service if self.serves(service) or first is None else first
        else:
            agent = served
        spec = specs.get(agent) if type(agent) is str else None
        if spec is None:
            return "unknown_agent", f"agent {agent!r} is not served here ({', '.join(specs)})"
        otel = spec.otel
        flow = _lookup(owned, otel.flow_attributes, resource)
        if flow is None:
            flow = _rule_flow(otel, attrs, resource)
        if flow is None:
            return "no_flow", f"no {' / '.join(otel.flow_attributes)} on the span, its ancestors or resource"
        fields: dict[str, Any] = {"agent": agent, "flow": flow}
        exclude = _lookup(owned, (otel.exclude_attribute,), resource)
        if exclude is None and _lookup(owned, (SYNTHETIC,), resource) is True:
            exclude = "synthetic"
        if exclude is not None:
            fields["exclude"] = exclude
        return fields, otel


def _lookup(owned: list[dict[str, Any]], keys: tuple[str, ...], resource: dict[str, Any]) -> Any:
    """The first of `keys` in the nearest attributes of `owned` that has one, else in the resource."""
    for attrs in owned:
        for key in keys:
            if key in attrs:
                return attrs[key]
    for key in keys:
        if key in resource:
            return resource[key]
    return None


def inherited(specs: Iterable[Spec]) -> frozenset[str]:
    """The attribute names, beyond agent-slo's own, that a span's descendants read from it (`SpanNote`):
    the specs' `otel.flow_attributes` and `otel.exclude_attribute` when renamed."""
    names = {name for spec in specs for name in (*spec.otel.flow_attributes, spec.otel.exclude_attribute)}
    return frozenset(name for name in names if not name.startswith(OWN_PREFIX))


def _rule_flow(otel: Otel, attrs: dict[str, Any], resource: dict[str, Any]) -> str | None:
    for rule in otel.flow_rules:
        value = attrs.get(rule.attribute, resource.get(rule.attribute))
        if type(value) is not str:
            continue
        if rule.equals is not None and value == rule.equals:
            return rule.flow
        if rule.matches is not None and re2.fullmatch(rule.matches, value):
            return rule.flow
    return None


def _common(fields: dict[str, Any], trace_hex: str, end_ns: int, attrs: dict[str, Any]) -> dict[str, Any]:
    conversation = attrs.get(CONVERSATION)
    fields["session_id"] = conversation if conversation is not None else trace_hex
    fields["trace_id"] = trace_hex
    if end_ns > 0:
        fields["time"] = end_ns / 1e9
    return fields


def _task_of(reader: _Reader, descendants: list[SpanNote], agent: str, resource: dict[str, Any]) -> bool:
    """Whether an agent span (with the notes of its `descendants`) is its agent's task: one task per
    agent run, however the framework nests its agent spans (a workflow span around `invoke_agent bot`,
    an agent calling itself). Children end, and so arrive, before their parents, so the innermost
    agent span of an agent is its task and a span enclosing another agent span of the same agent is
    not (nor counted again). Another agent's span inside (an agent used as a tool) is its own task."""
    service = resource.get(SERVICE_NAME)
    for note in descendants:
        if note.op in reader.task_operations:
            inner = note.agent if reader.serves(note.agent) else service
            if inner == agent:
                return False
    return True


def _descendants(spans: dict[bytes, SpanNote], root: bytes) -> list[SpanNote]:
    children: dict[bytes, list[bytes]] = {}
    for span_id, note in spans.items():
        parent = note.parent
        if parent:
            siblings = children.get(parent)
            if siblings is None:
                children[parent] = [span_id]
            else:
                siblings.append(span_id)
    out: list[SpanNote] = []
    todo = list(children.get(root, ()))
    while todo and len(out) < len(spans):
        span_id = todo.pop()
        out.append(spans[span_id])
        todo.extend(children.get(span_id, ()))
    return out


def _cost(otel: Otel, notes: list[SpanNote]) -> float | None:
    if not otel.prices:
        return None
    cost, priced = 0.0, False
    for note in notes:
        price = otel.prices.get(note.model) if type(note.model) is str else None
        if price is not None and note.kind == "turn":
            cost += (
                (note.tokens[0] or 0) * price.input_per_mtok + (note.tokens[1] or 0) * price.output_per_mtok
            ) / 1e6
            priced = True
    return cost if priced else None


def _task(
    fields: dict[str, Any],
    otel: Otel,
    attrs: dict[str, Any],
    status: int,
    duration_s: float,
    notes: list[SpanNote],
) -> dict[str, Any]:
    outcome = attrs.get(otel.outcome_attribute)
    if outcome is None:
        outcome = "failure" if status == STATUS_ERROR else "success"
    event = {"type": "task", **fields, "outcome": outcome, "duration_s": duration_s}
    for name, key in (("escalation_required", ESCALATION_REQUIRED), ("failure_mode", FAILURE_MODE)):
        if key in attrs:
            event[name] = attrs[key]
    turns = [n for n in notes if n.kind == "turn"]
    event["steps"] = len(turns) + sum(1 for n in notes if n.kind == "tool")
    # no tokens: each chat span's turn counts its own, by its model (the task would count them again)
    cost = _cost(otel, turns)
    if cost is not None:
        event["cost_usd"] = cost
    if "model" not in event:
        model = next((n.model for n in turns if n.model is not None), None)
        if model is not None:
            event["model"] = model
    return event


def _tokens(note: SpanNote | None) -> dict[str, int] | None:
    """A chat span's token usage as the `tokens` of its turn (None when it reports none)."""
    if note is None:
        return None
    ins, outs = note.tokens
    if ins is None:
        return None if outs is None else {"output": outs}
    return {"input": ins} if outs is None else {"input": ins, "output": outs}


def _tool(
    fields: dict[str, Any], name: str, status: int, attrs: dict[str, Any], duration_s: float
) -> dict[str, Any]:
    outcome = attrs.get(TOOL_OUTCOME)
    if outcome is None or outcome not in TOOL_OUTCOMES:
        failed = status == STATUS_ERROR or ERROR_TYPE in attrs
        outcome = outcome if outcome is not None else ("error" if failed else "ok")
    tool = attrs.get(TOOL_NAME)
    if tool is None:  # the span name is "execute_tool {gen_ai.tool.name}"
        tool = name.partition(" ")[2] or name
    return {"type": "tool_call", **fields, "tool": tool, "outcome": outcome, "latency_s": duration_s}


def _judge(
    fields: dict[str, Any], attrs: dict[str, Any], spec: Spec, mapped: Mapped, item: str
) -> dict[str, Any] | None:
    judge = attrs.get(EVALUATION_NAME)
    if type(judge) is not str or judge not in spec.judges:
        declared = ", ".join(spec.judges) or "none"
        mapped.refuse(
            "undeclared_judge", item, f"judge {judge!r} is not declared for {spec.agent} ({declared})"
        )
        return None
    event = {"type": "judge", **fields, "judge": judge, "score": attrs.get(EVALUATION_SCORE)}
    if JUDGE_VERSION in attrs:
        event["judge_version"] = attrs[JUDGE_VERSION]
    return event


def _versions(event: dict[str, Any], otel: Otel, attrs: dict[str, Any], model: Any) -> dict[str, Any]:
    for name, key in (("version", otel.version_attribute), ("prompt_version", otel.prompt_version_attribute)):
        if key in attrs:
            event[name] = attrs[key]
    if model is not None:
        event["model"] = model
    return event


def map_spans(
    request: Rows | ExportTraceServiceRequest,
    specs: dict[str, Spec],
    memory: TraceMemory,
    now: float | None = None,
) -> Mapped:
    """The events of a trace export request, read into `Rows` (see the module docstring for the
    reading); a decoded message is read by the pure-Python reader first."""
    now = time.time() if now is None else now
    rows = request if isinstance(request, Rows) else read_message(request, wanted(specs.values()))
    reader, mapped = _Reader(specs, memory, now), Mapped()
    todo: list[tuple[Rows, SpanRow, dict[bytes, SpanNote]]] = []
    task_ops = reader.task_operations
    retry: set[bytes] = set()
    span_of = rows.span
    mapped.total = len(rows.spans)
    awaited = memory.awaited  # trace → ancestors that held spans wait for (usually none)
    last_trace, spans = b"", {}
    # First every span's note, so that a child finds its parent from the same request. (This loop
    # and `_map_span` run once per span: helpers are inlined where a call was a visible cost.)
    for row in rows.spans:
        _, trace_id, span_id, parent, name, start, _, status, attrs, events, index = row
        if len(trace_id) != 16 or len(span_id) != 8 or trace_id == NO_TRACE or span_id == NO_SPAN:
            mapped.refuse(
                "missing_ids", f"span {name[:60]!r}", "needs a 16-byte trace id and an 8-byte span id"
            )
            continue
        op = attrs.get(OPERATION)
        if type(op) is not str:
            op = operation(name, attrs, task_ops)
        if trace_id != last_trace:  # a trace's spans usually come together
            spans, last_trace = memory.trace(trace_id, now), trace_id
        note = SpanNote(parent, op, attrs, reader.inherited)
        if note.kind is not None and (events or may_carry(attrs)):
            span_events = span_of(index).events if events else ()
            memory.keep_content(note, *content_of(name, start, status, span_events, attrs, note.kind))
        memory.note(trace_id, span_id, note, now, spans)
        todo.append((rows, row, spans))
        if awaited and span_id in awaited.get(trace_id, ()):
            retry.add(trace_id)
    # Then the spans deferred in these traces, which a span of this request may complete (first: they
    # ended earlier, and the latest model seen must be the same as if they had come in order).
    earlier: list[tuple[Rows, SpanRow, dict[bytes, SpanNote]]] = []
    keys = wanted(specs.values())
    for trace_id in retry:
        spans = memory.trace(trace_id, now)
        for raw_span, raw_resource, since in memory.take_deferred(trace_id):
            span = Span.FromString(raw_span)
            reader.since[(trace_id, span.span_id)] = since
            mapped.retried.append((trace_id, span.span_id))
            resource = attributes(Resource.FromString(raw_resource).attributes, keys, OWN_PREFIX)
            held = Rows([resource], [row_of(span, 0, 0, keys)], _messages=[span])
            earlier.append((held, held.spans[0], spans))
    mapped.expired = memory.expire(now)
    for held, row, spans in earlier + todo:
        _map_span(reader, mapped, held, row, spans)
    return mapped


def unread_notes(specs: Iterable[Spec]) -> Callable[[bytes], dict[bytes, dict[bytes, SpanNote]]]:
    """What a request read by the C++ mapper leaves in the trace memory, made when first asked for
    (`memory.Unread`): the notes of its spans by trace, as `map_spans`' first loop makes them (such a
    request has valid, distinct ids and no content: the mapper declines others)."""
    specs = list(specs)
    keys, kept = wanted(specs), inherited(specs)
    task_ops = {op for spec in specs for op in spec.otel.task_operations}

    def read(body: bytes) -> dict[bytes, dict[bytes, SpanNote]]:
        out: dict[bytes, dict[bytes, SpanNote]] = {}
        for _, trace_id, span_id, parent, name, _, _, _, attrs, _, _ in read_body(body, keys).spans:
            op = attrs.get(OPERATION)
            if type(op) is not str:
                op = operation(name, attrs, task_ops)
            out.setdefault(trace_id, {})[span_id] = SpanNote(parent, op, attrs, kept)
        return out

    return read


def _missing(reader: _Reader, spans: dict[bytes, SpanNote], span_id: bytes) -> bytes | None:
    """The id of the nearest ancestor of the span that has not arrived (it may name the agent or flow)."""
    chain = list(reader.chain(spans, span_id))
    if chain and chain[-1].parent and chain[-1].parent not in spans:
        return chain[-1].parent
    return None


def _map_span(
    reader: _Reader, mapped: Mapped, rows: Rows, row: SpanRow, spans: dict[bytes, SpanNote]
) -> None:
    resource_index, trace_id, span_id, _, name, start, end, status, attrs, events, index = row
    resource = rows.resources[resource_index]
    note = spans.get(span_id)
    op = note.op if note is not None else None
    evaluations = [e for e in rows.span(index).events if e.name == EVALUATION] if events else []
    if op not in reader.operations and not evaluations:  # HTTP, database, embeddings...: not ours
        mapped.ignored += 1
        return
    scoped = reader.scope(spans, span_id, attrs, resource)
    if isinstance(scoped[1], str):
        reason, why = scoped
        raw, awaited = rows.span(index).SerializeToString(), _missing(reader, spans, span_id)
        since = reader.since.get((trace_id, span_id), reader.now)
        packed = resource_bytes(resource)
        if awaited is not None and reader.memory.defer(trace_id, span_id, raw, packed, since, awaited):
            mapped.deferred.append((trace_id, span_id, raw, packed, awaited))
        else:
            mapped.refuse(reason, _item(trace_id.hex() + span_id.hex()), why)
        return
    fields, otel = scoped
    trace_hex = trace_id.hex()
    key = trace_hex + span_id.hex()
    duration_s = (end - start) / 1e9 if end > start else 0.0
    common = _common(fields, trace_hex, end, attrs)
    model = attrs.get(RESPONSE_MODEL) or attrs.get(REQUEST_MODEL)
    event: dict[str, Any] | None = None
    if op in otel.task_operations:
        notes = _descendants(spans, span_id)
        if _task_of(reader, notes, fields["agent"], resource):
            event = _task(_versions(dict(common), otel, attrs, model), otel, attrs, status, duration_s, notes)
            session = session_of(event, [n.content for n in notes if n.content is not None])
            if session is not None:  # judged once the task counts (never for a retried task span)
                mapped.sessions.append((len(mapped.events), session))
    elif op in TURN_OPERATIONS:
        event = _versions({"type": "turn", **common}, otel, attrs, model)
        event["kind"], event["latency_s"] = "turn", duration_s
        tokens = _tokens(note)
        if tokens is not None:
            event["tokens"] = tokens
    elif op == TOOL_OPERATION:
        event = _tool(_versions(dict(common), otel, attrs, None), name, status, attrs, duration_s)
    if event is not None:
        mapped.events.append(event)
        mapped.keys.append(key)
    elif not evaluations:
        mapped.ignored += 1
    spec = reader.specs[fields["agent"]]
    for i, evaluation in enumerate(evaluations):
        eval_attrs = attributes(evaluation.attributes)
        judged = _judge(dict(common), eval_attrs, spec, mapped, _item(f"{key}e{i}"))
        if judged is not None:
            when = evaluation.time_unix_nano
            if when > 0:
                judged["time"] = when / 1e9
            mapped.add(judged, f"{key}e{i}")


def map_logs(
    request: ExportLogsServiceRequest, specs: dict[str, Spec], memory: TraceMemory, now: float | None = None
) -> Mapped:
    """The judge events of a log export request: `gen_ai.evaluation.result` records (others ignored)."""
    now = time.time() if now is None else now
    reader, mapped = _Reader(specs, memory, now), Mapped()
    for resource_logs in request.resource_logs:
        resource = attributes(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                mapped.total += 1
                attrs = attributes(record.attributes)
                name = record.event_name or attrs.get("event.name")
                if name != EVALUATION:
                    mapped.ignored += 1
                    continue
                raw = record.SerializeToString(deterministic=True)
                key = "log" + hashlib.blake2b(raw, digest_size=16).hexdigest()
                trace_id, span_id = record.trace_id, record.span_id
                spans = memory.trace(trace_id, now) if len(trace_id) == 16 else {}
                if len(span_id) == 8 and span_id not in spans:
                    # the evaluated span may not have arrived: read the record's own attributes
                    spans = {**spans, span_id: SpanNote(b"", None, attrs, reader.inherited)}
                item = _item(key)
                scoped = reader.scope(spans, span_id, attrs, resource)
                if isinstance(scoped[1], str):
                    mapped.refuse(scoped[0], item, scoped[1])
                    continue
                fields = scoped[0]
                when = record.time_unix_nano or record.observed_time_unix_nano
                common = _common(fields, trace_id.hex(), when, attrs) if len(trace_id) == 16 else dict(fields)
                if len(trace_id) != 16 and when > 0:
                    common["time"] = when / 1e9
                judged = _judge(common, attrs, reader.specs[fields["agent"]], mapped, item)
                if judged is not None:
                    mapped.add(judged, key)
    return mapped
