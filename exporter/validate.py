"""The authoritative validator of `POST /v1/events`: every problem of every event, event by event.

The fast paths (`exporter.wire`, `exporter.classify`) only say yes or "not sure"; whenever a batch
is not plainly valid, this is what answers, naming each problem with its index and field:

    >>> problems(planner, [{"type": "turn", "agent": "cx-support", "flow": "refund"}], time.time())
    [{'index': 0, 'field': 'latency_s', 'problem': 'is required'}]

What a field takes comes from the declaration in `exporter.events`; categorical fields (agent,
flow, outcome, tool...) are checked when their plan is built (`exporter.planning`), which reports
the first problem of the combination.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, NamedTuple

import msgspec

from agentslo.exporter.config import MAX_FUTURE_SKEW_S
from agentslo.exporter.events import (
    ALLOWED,
    FIELDS,
    MAX_ID_CHARS,
    MAX_LABEL_CHARS,
    NUMBER_KINDS,
    PLAN_KEY,
    PLANNED,
    TOKEN_TYPES,
)
from agentslo.exporter.planning import Planner
from agentslo.exporter.wire import DUPLICATE

MAX_DETAIL = 100  # problems named in one answer; the rest are counted ("omitted")
_UNKNOWN = {
    kind: f"unknown field for a {kind} event; allowed: {', '.join(sorted(names))}"
    for kind, names in ALLOWED.items()
}


def rfc3339(text: str) -> datetime | None:
    """The time of an RFC 3339 timestamp (msgspec's parser, the one `exporter.wire` decodes with)."""
    try:
        return msgspec.convert(text, datetime)
    except msgspec.ValidationError:
        return None


def parse_time(value: Any) -> float | None:
    """Epoch seconds of an RFC 3339 timestamp with offset, or of epoch seconds; None when malformed."""
    if type(value) is str:
        parsed = rfc3339(value)
        return parsed.timestamp() if parsed is not None and parsed.tzinfo is not None else None
    if type(value) in (int, float) and math.isfinite(value) and value >= 0:
        return float(value)
    return None


def check_number(value: Any, kind: str, upper: float | None = None) -> str | None:
    """The problem with a value of a number kind (number, count, score), or None; `upper` is the
    field's own bound when it has one (seconds, dollars)."""
    integer, kind_upper = NUMBER_KINDS[kind]
    upper = kind_upper if upper is None else upper
    if integer:
        if type(value) is not int or value < 0 or (upper is not None and value > upper):
            return f"must be a whole number from 0 to {upper}, got {value!r:.64}"
        return None
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        return f"must be a finite number ≥ 0, got {value!r:.64}"
    if upper is not None and value > upper:
        return f"must be between 0 and {upper}, got {value!r:.64}"
    return None


def _check_field(kind: str, value: Any, now: float, upper: float | None = None) -> str | None:
    if kind in PLANNED:
        return None
    if kind == "id":
        ok = type(value) is str and 0 < len(value) <= MAX_ID_CHARS
        return None if ok else f"must be a string of 1 to {MAX_ID_CHARS} characters"
    if kind == "text":
        ok = type(value) is str and 0 < len(value) <= MAX_LABEL_CHARS and value.isprintable()
        return None if ok else f"must be a string of 1 to {MAX_LABEL_CHARS} printable characters"
    if kind == "time":
        when = parse_time(value)
        if when is None:
            return "must be an RFC 3339 timestamp with offset (2026-01-31T12:00:00Z) or epoch seconds"
        if when > now + MAX_FUTURE_SKEW_S:
            return f"is more than {MAX_FUTURE_SKEW_S:.0f}s in the future; check the sender's clock"
        return None
    if kind == "tokens":
        if type(value) is not dict or not value or not set(value) <= set(TOKEN_TYPES):
            return 'must be an object like {"input": 1200, "output": 300}'
        for part, count in value.items():
            problem = check_number(count, "count")
            if problem:
                return f"{part} {problem}"
        return None
    return check_number(value, kind, upper)


class Problems(NamedTuple):
    """A batch's problems: the first `MAX_DETAIL` as the API's `detail` entries, how many more there
    are, and the index of every event that has at least one."""

    detail: list[dict[str, Any]]
    omitted: int
    bad: set[int]


def problems(planner: Planner, events: list[Any], now: float) -> list[dict[str, Any]]:
    """The problems of the batch's events, as the API's `detail` entries (the first `MAX_DETAIL`);
    empty when the batch is valid."""
    return find(planner, events, now).detail


def find(planner: Planner, events: list[Any], now: float) -> Problems:
    """Every invalid event, and its problems named up to `MAX_DETAIL` entries (the rest counted).

    An answer is bounded whatever the batch holds (thousands of unknown keys per event made a 1 MiB
    batch a 24 MiB answer): past the first `MAX_DETAIL` problems only their number is kept."""
    detail: list[dict[str, Any]] = []
    total = 0
    bad: set[int] = set()
    for index, event in enumerate(events):
        found, count = event_problems(planner, event, now, MAX_DETAIL - len(detail))
        if count:
            bad.add(index)
            total += count
            detail.extend({"index": index, "field": fname, "problem": problem} for fname, problem in found)
    return Problems(detail, total - len(detail), bad)


def event_problems(
    planner: Planner, event: Any, now: float, room: int = MAX_DETAIL
) -> tuple[list[tuple[str, str]], int]:
    """(field, problem) of one event, at most `room` of them, and how many it has in all: its own
    fields' problems, then its plan's (if another field's)."""
    found, count = _event_problems(planner, event, now, room)
    return found[: max(room, 0)], count


def _event_problems(planner: Planner, event: Any, now: float, room: int) -> tuple[list[tuple[str, str]], int]:
    if type(event) is not dict:
        return [("", f"an event is a JSON object, got {type(event).__name__}")], 1
    kind = event.get("type")
    if type(kind) is not str or kind not in FIELDS:
        hint = f"got {kind!r:.64}" if kind is not None else "is required"
        return [("type", f"must be one of: {', '.join(FIELDS)} ({hint})")], 1
    found: list[tuple[str, str]] = []
    fields = FIELDS[kind]
    count = 0
    for fname in event.get(DUPLICATE, ()):
        count += 1
        found.append((f"{fname:.64}", "is given more than once; send each field once"))
    for fname, value in event.items():
        if fname == DUPLICATE:
            continue
        if fname not in fields:
            count += 1
            if len(found) < room:  # past the room, an unknown key is only counted
                found.append((f"{fname:.64}", _UNKNOWN[kind]))
            continue
        problem = _check_field(fields[fname].kind, value, now, fields[fname].upper)
        if problem:
            count += 1
            found.append((fname, problem))
    for fname, spec in fields.items():
        if spec.required and spec.kind not in PLANNED and event.get(fname) is None:
            count += 1
            found.append((fname, "is required"))
    key = tuple(map(event.get, PLAN_KEY[kind]))
    nested = [f for f, v in zip(PLAN_KEY[kind], key, strict=True) if isinstance(v, list | dict)]
    if nested:
        found += [(f, "must be a name (a string) or true/false, not a list or object") for f in nested]
        return found, count + len(nested)
    plan = planner.plan(kind, key)
    if isinstance(plan, tuple) and plan[0] not in {f for f, _ in found}:
        count += 1
        found.append(plan)
    return found, count
