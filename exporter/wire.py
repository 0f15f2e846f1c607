"""One-pass decoding of a JSON batch into typed events (msgspec), the fast front of `POST /v1/events`.

`decode()` parses and type-checks a whole JSON array in one C pass: each event becomes a Struct of
its `type` (a tagged union), unknown fields, wrong types and negative numbers are refused, and no
per-event dict is built. It is a *filter*, not the authority: it accepts no batch the event format
(`exporter.events`) would refuse on these points, and whatever it refuses (or any batch it cannot
vouch for) goes down the original path — `orjson.loads` and `exporter.events.problems()` — which
names every problem of every event. So answers, messages and partial semantics are unchanged; only
valid batches get faster. The remaining checks (plans, string limits, times, finiteness) run
column-wise in `exporter.classify` exactly as for dict events.

Struct fields mirror `exporter.events.COMMON` and `FIELDS` (a test keeps them in step); `null` is
accepted wherever the classifier treats it as absent, and required fields (`latency_s` of a turn,
`score` of a judge) have no default.
"""

from __future__ import annotations

from collections import Counter
from operator import attrgetter
from typing import Annotated, Any, ClassVar

import msgspec
from msgspec import Meta, Struct
from msgspec.structs import astuple

from exporter.catalog import MAX_LABEL_CHARS
from exporter.events import MAX_COUNT, MAX_ID_CHARS

Number = Annotated[float, Meta(ge=0)]  # finiteness is checked column-wise (msgspec refuses 1e999 itself)
Count = Annotated[int, Meta(ge=0, le=MAX_COUNT)]
Score = Annotated[float, Meta(ge=0, le=1)]
Time = str | float  # RFC 3339 text is parsed column-wise with the same parser as the validator
Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID_CHARS)]  # lengths in code points, as len()
Text = Annotated[str, Meta(min_length=1, max_length=MAX_LABEL_CHARS)]  # printable: checked column-wise


class Tokens(Struct, forbid_unknown_fields=True, gc=False):
    input: Count | None = None
    output: Count | None = None


class Event(Struct, tag_field="type", forbid_unknown_fields=True, gc=False, kw_only=True):
    """Fields every event type takes (`exporter.events.COMMON`)."""

    rank: ClassVar[int]  # position of the type's name in sorted order: groups are classified in that order
    agent: str | None = None
    flow: str | None = None
    exclude: str | None = None
    session_id: Id | None = None
    trace_id: Id | None = None
    version: Text | None = None
    prompt_version: Text | None = None
    model: Text | None = None
    time: Time | None = None


class Task(Event, tag="task"):
    outcome: str | None = None
    escalation_required: bool | None = None
    failure_mode: str | None = None
    duration_s: Number | None = None
    cost_usd: Number | None = None
    steps: Count | None = None
    tokens: Tokens | None = None


class Turn(Event, tag="turn", kw_only=True):
    kind: str | None = None
    latency_s: Number


class ToolCall(Event, tag="tool_call"):
    tool: str | None = None
    outcome: str | None = None
    latency_s: Number | None = None


class Judge(Event, tag="judge", kw_only=True):
    judge: str | None = None
    judge_version: str | None = None
    score: Score


class Escalation(Event, tag="escalation"):
    required: bool | None = None
    performed: bool | None = None
    context_preserved: bool | None = None


class Connection(Event, tag="connection"):
    ok: bool | None = None


class Synthetic(Event, tag="synthetic"):
    scenario: str | None = None
    passed: bool | None = None
    duration_s: Number | None = None


TYPES: dict[str, type[Event]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (Task, Turn, ToolCall, Judge, Escalation, Connection, Synthetic)
}
for _rank, _name in enumerate(sorted(TYPES)):
    TYPES[_name].rank = _rank
KIND = {cls: name for name, cls in TYPES.items()}
_rank_of = attrgetter("rank")
_DECODER = msgspec.json.Decoder(list[Task | Turn | ToolCall | Judge | Escalation | Connection | Synthetic])


class Decoded(list):  # type: ignore[type-arg]
    """A batch decoded by `decode()`: its typed events, and the raw body for the slow path and hashing."""

    raw: bytes


def decode(raw: bytes) -> Decoded | None:
    """The batch as typed events, or None when it needs the authoritative path (any problem at all)."""
    try:
        events = _DECODER.decode(raw)
    except (msgspec.MsgspecError, ValueError):  # ValueError: e.g. bytes that are not UTF-8
        return None
    decoded = Decoded(events)
    decoded.raw = raw
    return decoded


def groups(events: list[Event]) -> dict[str, list[Event]]:
    """Events by type name, in sorted name order, each in arrival order (synthetic streaks need it)."""
    sizes = Counter(map(type, events))
    if len(sizes) == 1:
        return {KIND[type(events[0])]: events}
    ordered = sorted(events, key=_rank_of)  # stable
    out, start = {}, 0
    for cls in sorted(sizes, key=_rank_of):
        out[KIND[cls]] = ordered[start : start + sizes[cls]]
        start += sizes[cls]
    return out


def columns(events: list[Event]) -> dict[str, tuple[Any, ...]] | None:
    """Field → values of one type's events, leaving out fields no event sets; None if tokens are empty."""
    m = len(events)
    fields = type(events[0]).__struct_fields__
    rows = zip(*map(astuple, events), strict=True)
    cols = {f: col for f, col in zip(fields, rows, strict=True) if col.count(None) < m}
    tokens = cols.get("tokens")
    if tokens is not None:
        if any(t is not None and t.input is None and t.output is None for t in tokens):
            return None  # `{}` is refused by the format, `{"input": null}` is not: the slow path decides
        cols["tokens"] = tuple(None if t is None else {"input": t.input, "output": t.output} for t in tokens)
    return cols
