"""The body of `POST /v1/events` on the wire: from raw bytes to a batch the classifier can count.

`parse_body()` takes a JSON array or NDJSON (one event per line) and returns the events, or the
error answer when the body is not a batch at all (`IngestResult`, the API's `{"error", "detail"}`
shape). A JSON array first tries the fast fronts (`decode()`):

- the C++ scanner (`exporter/_scan.cpp`, simdjson): one pass over the raw bytes that checks each
  event and tallies what classification needs, with no Python object per event;
- else msgspec: one C pass in which each event becomes the Struct of its `type` (the declaration
  in `exporter.events`), unknown fields, wrong types and out-of-range numbers refused.

Both are *filters*, not the authority: they accept no batch the event format would refuse on these
points, and whatever they refuse (or any batch they cannot vouch for) goes down the original path —
`orjson.loads` and `exporter.validate.problems()` — which names every problem of every event. So
answers, messages and partial semantics are the same on every path; only valid batches get faster.
The remaining checks (plans, printable labels, times ahead, finiteness) run in `exporter.classify`
exactly as for dict events. The scanner is set up from the same declaration (`_scanner()`).

    >>> len(parse_body(b'[{"type": "connection", "agent": "cx-support", "flow": "refund", "ok": true}]', ""))
    1
    >>> parse_body(b"[1, 2", "application/json").status
    400
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter
from typing import Any

import msgspec
import orjson
from msgspec.structs import astuple

from agentslo.exporter.events import (
    FIELDS,
    MAX_COUNT,
    MAX_EXEMPLAR_ID,
    MAX_ID_CHARS,
    MAX_LABEL_CHARS,
    NUMBERS,
    PLAN_KEY,
    TYPES,
    AnyEvent,
    Event,
)

NDJSON = "application/x-ndjson"
# No text/plain: a web page can send that cross-origin without asking (see `exporter.intake`).
ACCEPTED_CONTENT_TYPES = (NDJSON, "application/json", "application/octet-stream", "")


@dataclass
class IngestResult:
    """The answer to a batch: HTTP status and JSON body (`replayed` when served from an Idempotency-Key)."""

    status: int
    body: dict[str, Any]
    replayed: bool = False

    @property
    def accepted(self) -> int:
        return int(self.body.get("accepted", 0))

    @property
    def problems(self) -> list[dict[str, Any]]:
        return list(self.body.get("detail", []))


def error(status: int, message: str, detail: list[dict[str, Any]] | None = None) -> IngestResult:
    """A refusal in the API's error shape: `{"error": message, "detail": [{index, field, problem}]}`."""
    return IngestResult(status, {"error": message, "detail": detail or []})


# An object whose keys repeat is marked with this key, listing them: JSON parsers keep the last value
# silently (a second `flow` moved an event), so every front refuses such an event instead.
DUPLICATE = "\x00duplicate keys"
# Where a JSON key ends: every key matches once, and so may a `\":` inside a string (an overcount
# only sends a batch down the slower, exact path).
_KEY_END = re.compile(rb'"\s*:')
_SPACED_KEY_END = re.compile(rb'"\s+:')
_WHITESPACE = (b" ", b"\t", b"\n", b"\r")
_tokens_of = attrgetter("tokens")
_TOKENED = tuple(cls for cls in TYPES.values() if "tokens" in cls.__struct_fields__)  # may carry tokens


def _has_tokens(event: Event) -> bool:
    return isinstance(event, _TOKENED)


KIND = {cls: name for name, cls in TYPES.items()}
_rank_of = attrgetter("rank")
_DECODER = msgspec.json.Decoder(list[AnyEvent])


class Decoded:
    """A JSON-array body a fast decoder vouched for: the raw bytes (for hashing, and for the slow path
    if classification still refuses), how many events it holds, and either the C scanner's per-type
    reports (`exporter/_scan.cpp`) or msgspec Structs.

    `raw` may be given as a function that makes the bytes: the OTLP mapper tallies its events into
    the scanner's reports without writing their JSON, which is then written only if something asks
    for it (a batch classification refuses, an idempotency hash), and may have counted them too
    (`counted`: what `exporter._scan.Plans` documents)."""

    __slots__ = ("_raw", "counted", "reports", "size", "structs")

    def __init__(
        self,
        raw: bytes | Callable[[], bytes],
        size: int,
        reports: list[tuple[Any, ...]] | None = None,
        structs: Any = None,
        counted: tuple[Any, ...] | None = None,
    ):
        self._raw, self.size, self.reports, self.structs = raw, size, reports, structs
        self.counted = counted  # the reports counted against the classifier's plan table, when they were

    @property
    def raw(self) -> bytes:
        if not isinstance(self._raw, bytes):
            self._raw = self._raw()  # made once, on first use
        return self._raw

    def __len__(self) -> int:
        return self.size


def _scanner() -> Any:
    """The C++ scanner (`exporter._scan`) set up with the event format, or None when it is not built
    or AGENT_SLO_PURE_PYTHON=1."""
    if os.environ.get("AGENT_SLO_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from agentslo.exporter._scan import Scanner
    except ImportError:
        return None
    kinds = [
        (
            kind,
            {name: (spec.kind, spec.required) for name, spec in FIELDS[kind].items()},
            PLAN_KEY[kind],
            tuple(name for name, _ in NUMBERS[kind]),
            "tokens" in FIELDS[kind],
        )
        for kind in sorted(FIELDS)  # reports come in this order: types are classified sorted by name
    ]
    return Scanner(kinds, (MAX_ID_CHARS, MAX_LABEL_CHARS, MAX_EXEMPLAR_ID, float(MAX_COUNT)))


SCANNER = _scanner()


def decode(raw: bytes, scanner: Any = SCANNER) -> Decoded | None:
    """The batch scanned (C++) or as typed events (msgspec), or None when it needs the authoritative
    path (any problem at all)."""
    if scanner is not None:
        scanned = scanner.scan(raw)
        if scanned is not None:
            return Decoded(raw, scanned[0], reports=scanned[1])
    try:
        events = _DECODER.decode(raw)
    except (msgspec.MsgspecError, ValueError):  # ValueError: e.g. bytes that are not UTF-8
        return None
    # msgspec keeps the last of repeated keys: vouch when the body has as many keys as the Structs
    # have fields set (the usual case, two C scans), else when reading its pairs finds no repeat.
    if (_spaced(raw) or raw.count(b'":') != _keys_set(events)) and _repeats(raw):
        return None
    return Decoded(raw, len(events), structs=events)


def _spaced(raw: bytes) -> bool:
    """Whether some key ends in whitespace before its colon (the one-byte `in` scans are memchr-fast:
    compact JSON without spaces in its strings never pays for the regex)."""
    return any(gap in raw for gap in _WHITESPACE) and _SPACED_KEY_END.search(raw) is not None


def _keys_set(events: Sequence[Event]) -> int:
    """How many keys the decoded events had at least: each one's tag and fields that are not null."""
    rows = list(map(astuple, events))
    count = len(rows) + sum(map(len, rows)) - sum(map(tuple.count, rows, repeat(None)))
    tokens = [t for t in map(_tokens_of, filter(_has_tokens, events)) if t is not None]
    return count + sum(t.input is not None for t in tokens) + sum(t.output is not None for t in tokens)


class _Repeated(Exception):
    pass


def _no_repeats(pairs: list[tuple[str, Any]]) -> None:
    if len({key for key, _ in pairs}) < len(pairs):
        raise _Repeated


def _repeats(raw: bytes) -> bool:
    """Whether some object of a (valid JSON) body repeats a key: the exact, slower check, for bodies
    whose keys the fast count cannot vouch for (nulls, spaced keys, `":` inside strings)."""
    try:
        json.loads(raw, object_pairs_hook=_no_repeats)
    except _Repeated:
        return True
    return False


def _count_keys(value: Any) -> int:
    if type(value) is dict:
        return len(value) + sum(map(_count_keys, value.values()))
    if type(value) is list:
        return sum(map(_count_keys, value))
    return 0


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) < len(pairs):
        counts = Counter(key for key, _ in pairs)
        found[DUPLICATE] = sorted(key for key, n in counts.items() if n > 1)
    return found


def loads(raw: bytes) -> Any:
    """`orjson.loads`, except that an object whose keys repeat carries `DUPLICATE` (the keys that
    do); raises `orjson.JSONDecodeError` on anything that is not JSON."""
    value = orjson.loads(raw)
    if len(_KEY_END.findall(raw)) > _count_keys(value):  # some key may repeat: read the pairs
        value = json.loads(raw, object_pairs_hook=_pairs)
    return value


def parse_body(raw: bytes, content_type: str) -> list[Any] | Decoded | IngestResult:
    """A JSON array, or NDJSON (one event per line); errors name the line as the index."""
    if content_type not in ACCEPTED_CONTENT_TYPES:
        return error(
            415, f"unsupported content type {content_type}; send application/json or application/x-ndjson"
        )
    stripped = raw.lstrip()
    if content_type != NDJSON and stripped[:1] == b"[":
        decoded = decode(raw)  # typed in one pass; any doubt goes down the authoritative path below
        if decoded is not None:
            return decoded
        try:
            events = loads(raw)
        except orjson.JSONDecodeError as exc:
            return error(
                400, "the body is not valid JSON (UTF-8)", [{"index": None, "field": "", "problem": str(exc)}]
            )
        return events if isinstance(events, list) else error(400, "expected a JSON array of events")
    events, problems = [], []
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        try:
            events.append(loads(line))
        except orjson.JSONDecodeError as exc:
            problems.append({"index": len(events), "field": "", "problem": f"line is not valid JSON: {exc}"})
            events.append(None)
    if problems:
        return error(400, f"{len(problems)} NDJSON line(s) are not valid JSON; nothing was counted", problems)
    return events


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
