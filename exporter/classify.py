"""Classify a whole batch of events into counter deltas, column by column.

Why column-wise: a 1,000-event batch has a handful of distinct categorical combinations (agent,
flow, outcome, tool...) but a thousand unique trace ids and latencies. Each field is pulled out of
all events with C-level `map`, combinations are planned once (`Planner.plan`), and numbers go
through numpy (`searchsorted` into buckets, `bincount` per plan), so the Python work per event is a
few C calls. Any check that fails returns None and the caller runs the event-by-event validator
(`exporter.validate.problems`), which is authoritative and names every problem. What each type's
fields take comes from the declaration in `exporter.events`, as for the validator.

The C++ scanner's reports may come counted already (`wire.Decoded.counted`): the classifier
teaches each plan it builds for a report's keys to a plan table (`exporter._scan.Plans`, judges and
synthetic runs apart), and the OTLP mapper counts a request whose keys the table knows on its worker
thread, GIL released, into the same slots and amounts as `_count` (`_take_counted` checks the rest).

Call with the store lock held: plans may create series, and synthetic streaks read current values.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np

from agentslo import names
from agentslo.exporter import wire
from agentslo.exporter.catalog import UNDECLARED
from agentslo.exporter.config import MAX_FUTURE_SKEW_S
from agentslo.exporter.events import (
    ALLOWED,
    BOOLEAN,
    FIELDS,
    MAX_EXEMPLAR_ID,
    MAX_ID_CHARS,
    MAX_LABEL_CHARS,
    NUMBER_KINDS,
    NUMBERS,
    PLAN_KEY,
    TOKEN_TYPES,
    UPPER,
)
from agentslo.exporter.planning import Plan, Planner
from agentslo.exporter.validate import rfc3339

_NONE = type(None)
# What a trace id shown as an exemplar may hold: W3C/B3 hex, UUIDs, base64 and URN-like ids, all of
# which need no escaping in either exposition format.
EXEMPLAR_ID = re.compile(r"[\w.:/+=@-]+", re.ASCII)
_LIMITS = {"id": (MAX_ID_CHARS, False), "text": (MAX_LABEL_CHARS, True)}  # (most characters, printable)
_STRING_CHECKS = {  # per type: (field, most characters, must be printable)
    kind: tuple((f, *_LIMITS[spec.kind]) for f, spec in fields.items() if spec.kind in _LIMITS)
    for kind, fields in FIELDS.items()
}


@dataclass
class Deltas:
    """What one batch changes: counter increments, gauge values, exemplars and the latest builds."""

    adds: dict[int, float] = field(default_factory=dict)
    sets: dict[int, float] = field(default_factory=dict)
    exemplars: dict[int, tuple[str, float]] = field(default_factory=dict)
    build: dict[str, list[str | None]] = field(default_factory=dict)  # agent → [version, prompt, model]
    events: int = 0
    # (slot ids, weights) gathered column-wise during classification, summed once by `finish()`;
    # slots counted once each (weight 1) are kept apart: their sum needs no weights array
    _ids: list[Any] = field(default_factory=list)
    _weights: list[Any] = field(default_factory=list)
    _ones: list[Any] = field(default_factory=list)

    def gather(self, ids: Any, weights: Any) -> None:
        if type(weights) is float and weights == 1.0:
            self._ones.append(ids)
        else:
            self._ids.append(ids)
            self._weights.append(weights)

    def absorb(self, other: Deltas) -> None:
        """Take over what `other` gathered and has not finished yet (merging batches of one group)."""
        self._ids.extend(other._ids)
        self._weights.extend(other._weights)
        self._ones.extend(other._ones)

    def finish(self) -> None:
        """Fold everything gathered into `adds` with bincounts (no per-slot Python arithmetic)."""
        if not self._ids and not self._ones:
            return
        parts: list[tuple[np.ndarray, np.ndarray | None]] = []  # (slot ids, weights or None)
        if self._ones:
            parts.append((np.concatenate([np.asarray(i, dtype=np.intp) for i in self._ones]), None))
        if self._ids:
            ids = np.concatenate([np.asarray(i, dtype=np.intp) for i in self._ids])
            weights = np.concatenate(
                [
                    np.asarray(w, dtype=np.float64) if np.ndim(w) else np.full(np.shape(i), w, np.float64)
                    for i, w in zip(self._ids, self._weights, strict=True)
                ]
            )
            parts.append((ids, weights))
        size = max((int(i.max()) + 1 for i, _ in parts if len(i)), default=0)
        totals = np.zeros(size, dtype=np.float64)
        for i, w in parts:
            totals += np.bincount(i, weights=w, minlength=size)
        nonzero = np.flatnonzero(totals)
        summed = dict(zip(nonzero.tolist(), totals[nonzero].tolist(), strict=True))
        for slot, amount in self.adds.items():  # the few slots added directly (ingest health)
            summed[slot] = summed.get(slot, 0.0) + amount
        self.adds = summed
        self._ids.clear()
        self._weights.clear()
        self._ones.clear()


def _numbers(
    col: Sequence[Any], kind: str, required: bool = False, upper: float | None = None
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(values, presence mask or None when all present) if every value is valid (at most `upper`,
    the field's own bound, when given), else None."""
    integer, kind_upper = NUMBER_KINDS[kind]
    upper = kind_upper if upper is None else upper
    types = set(map(type, col))
    mask = None
    if _NONE in types:
        if required:
            return None
        types.discard(_NONE)
        mask = np.fromiter((v is not None for v in col), bool, len(col))
        col = [v for v in col if v is not None]
    if not types <= ({int} if integer else {int, float}):
        return None
    if integer and col and not (0 <= min(col) and (upper is None or max(col) <= upper)):
        return None
    vals = np.array(col, dtype=np.float64)
    if not np.isfinite(vals).all() or (vals < 0).any() or (upper is not None and (vals > upper).any()):
        return None
    return vals, mask


def _columns(evs: list[dict[str, Any]], present: set[str]) -> dict[str, Sequence[Any]]:
    """Field → values of every event (None where absent); one C call per event when fields are uniform."""
    fields = sorted(present)
    if len(fields) > 1:
        try:
            return dict(zip(fields, zip(*map(itemgetter(*fields), evs), strict=False), strict=True))
        except KeyError:
            pass
    return {f: list(map(dict.get, evs, repeat(f))) for f in fields}


def _strings(col: Sequence[Any], limit: int, printable: bool) -> bool:
    present = [v for v in col if v is not None] if None in col else col
    if not set(map(type, present)) <= {str}:
        return False
    if not present:
        return True
    if "" in present or max(map(len, present)) > limit:
        return False
    return not printable or all(map(str.isprintable, dict.fromkeys(present)))


def _times_ok(col: Sequence[Any], now: float) -> bool:
    """Every time is RFC 3339 text with offset, a parsed aware datetime or epoch seconds, none ahead."""
    present = [v for v in col if v is not None] if None in col else col
    types = set(map(type, present))
    stamps: list[datetime] = []
    if str in types:
        parsed = list(map(rfc3339, dict.fromkeys(v for v in present if type(v) is str)))
        if None in parsed:
            return False
        stamps = [p for p in parsed if p is not None]
        types.discard(str)
    if datetime in types:  # decoded by `exporter.wire`
        stamps.extend(v for v in present if type(v) is datetime)
        types.discard(datetime)
    if not types <= {int, float}:
        return False
    numbers = [v for v in present if type(v) in (int, float)]
    naive = None in set(map(attrgetter("tzinfo"), stamps))
    return _when_ok(
        max(stamps).timestamp() if stamps and not naive else None,
        naive,
        max(numbers) if numbers else None,
        min(numbers) if numbers else None,
        now,
    )


def _when_ok(latest: float | None, naive: bool, top: float | None, bottom: float | None, now: float) -> bool:
    """A batch's times are acceptable: every text has an offset, epoch seconds are ≥ 0, none is ahead.

    `latest`: the latest RFC 3339 time as epoch seconds; `top`, `bottom`: the largest and smallest
    epoch seconds given as numbers.
    """
    if naive or (bottom is not None and (bottom < 0 or not math.isfinite(top or 0.0))):
        return False
    return max(latest or 0.0, top or 0.0) <= now + MAX_FUTURE_SKEW_S


@dataclass
class Scan:
    """One event type's events, ready to count: what both front ends hand to `Classifier._count`."""

    kind: str
    m: int
    keys: list[tuple[Any, ...]]  # distinct plan keys (PLAN_KEY[kind]) as sent, first seen first
    kid: np.ndarray  # per event: the position of its key in `keys`
    # per field of NUMBERS[kind] (then tokens input, output for tasks): (present values, presence
    # mask or None when every event has one), or None when no event has one
    numbers: list[tuple[np.ndarray, np.ndarray | None] | None]
    traces: list[tuple[int, Any]]  # per key: (index, id) of its latest event with a usable trace; (-1, None)
    builds: list[dict[Any, Any]]  # version, prompt_version, model: agent → latest value
    raw: bool = False  # the keys are as the C++ scanner reports them (what the plan table is taught)


class Classifier:
    def __init__(self, planner: Planner):
        self.planner = planner
        self.catalog = planner.catalog
        self._pending: dict[int, float] = {}
        self._now = 0.0  # the batch being counted arrived at this time (synthetic last-run gauges)
        # Plans by key as sent: safe because boolean columns were type-checked and a non-string never
        # equals a string, so no invalid value can hit a valid entry. Bounded against hostile variety.
        self._fast: dict[tuple[Any, ...], Plan] = {}
        self._bounds = {
            name: np.array(fam.bounds, dtype=np.float64) for name, fam in self.catalog.store.families.items()
        }
        # The same plans for the C++ tally (`exporter._scan.Plans`): the OTLP mapper counts a request
        # whose keys it knows on its worker, GIL released, and `run_decoded` takes what it counted.
        self.table = _table()
        self._taught: set[tuple[Any, ...]] = set()  # (kind, key) handed to the table (or not countable)

    def forget_plans(self) -> None:
        """Drop the plans cached by key as sent (some of their series were rolled back)."""
        self._fast.clear()
        self._forget_taught()

    def _forget_taught(self) -> None:
        """Empty the plan table: counts made with it before no longer match its generation."""
        if self.table is not None:
            self.table.forget()
        self._taught.clear()

    def run(self, events: list[Any], now: float, pending: dict[int, float] | None = None) -> Deltas | None:
        """The batch's deltas, or None when any check fails; `pending` holds gauge values not yet applied."""
        if not events or set(map(type, events)) != {dict}:
            return None
        types: list[Any] = list(map(dict.get, events, repeat("type")))
        try:
            distinct = set(types)
        except TypeError:
            return None
        if not distinct <= FIELDS.keys():
            return None
        if len(distinct) == 1:
            groups = {types[0]: events}
        else:  # a stable sort by type keeps each type's events in arrival order (synthetic streaks)
            order = sorted(range(len(events)), key=types.__getitem__)
            ordered = list(map(events.__getitem__, order))
            sizes = Counter(types)
            groups, start = {}, 0
            for kind in sorted(distinct):
                groups[kind] = ordered[start : start + sizes[kind]]
                start += sizes[kind]
        deltas = Deltas(events=len(events))
        self._pending, self._now = pending or {}, now
        for kind, group in groups.items():
            present = set().union(*group)
            if not present <= ALLOWED[kind]:
                return None
            scan = self._scan_columns(kind, _columns(group, present), len(group), now)
            if scan is None or not self._count(scan, d=deltas):
                return None
        return deltas  # the caller merges and `finish()`es: one bincount per group of batches

    def run_decoded(
        self, events: wire.Decoded, now: float, pending: dict[int, float] | None = None
    ) -> Deltas | None:
        """`run()` for a batch decoded by `exporter.wire` (types and fields already checked)."""
        if not events:
            return None
        deltas = Deltas(events=len(events))
        self._pending, self._now = pending or {}, now
        if events.reports is not None:
            if self._take_counted(events, now, deltas):
                return deltas
            scans: Iterable[Scan | None] = (self._scan_report(report, now) for report in events.reports)
        else:
            scans = (
                None if cols is None else self._scan_columns(kind, cols, len(group), now, typed=True)
                for kind, group in wire.groups(events.structs).items()
                for cols in (wire.columns(group),)
            )
        for scan in scans:
            if scan is None or not self._count(scan, d=deltas):
                return None
        return deltas

    def _take_counted(self, events: wire.Decoded, now: float, d: Deltas) -> bool:
        """Take what the C++ tally counted against the plan table, when it did and the table has not
        been forgotten since; the checks the scanner leaves to Python (`_scan_report`) still run."""
        counted = events.counted
        if counted is None or self.table is None or counted[0] != self.table.generation():
            return False
        reports = events.reports or []
        for *_, texts, _, (latest, naive, top, bottom), empty_tokens in reports:
            if empty_tokens or not _when_ok(latest, naive, top, bottom, now):
                return False
            for distinct in texts:
                if distinct and not all(map(str.isprintable, distinct)):
                    return False
        _, slots, amounts, exemplars = counted
        d.gather(np.frombuffer(slots, dtype=np.intp), np.frombuffer(amounts, dtype=np.float64))
        for slot, trace in exemplars:
            d.exemplars[slot] = (trace, 1.0)
        for report in reports:
            self._builds(list(report[8]), d)
        return True

    # --- the front ends: one type's events as a Scan, or None when any check fails ---

    def _scan_report(self, report: tuple[Any, ...], now: float) -> Scan | None:
        """A Scan from the C++ scanner's report (`exporter/_scan.cpp`), which checked types, lengths
        and ranges; what is left is printable text, times and the `{}` tokens case."""
        kind, m, keys, kid, last, traces, numbers, texts, builds, when, empty_tokens = report
        latest, naive, top, bottom = when
        if empty_tokens or not _when_ok(latest, naive, top, bottom, now):
            return None
        for distinct in texts:
            if distinct and not all(map(str.isprintable, distinct)):
                return None
        columns: list[tuple[np.ndarray, np.ndarray | None] | None] = []
        for entry, upper in zip(numbers, UPPER[kind], strict=True):
            if entry is None:
                columns.append(None)
                continue
            values = np.frombuffer(entry[0], dtype=np.float64)
            mask = None if entry[1] is None else np.frombuffer(entry[1], dtype=np.bool_)
            values = values if mask is None else values[mask]
            if not np.isfinite(values).all() or (upper is not None and (values > upper).any()):
                return None
            columns.append((values, mask))
        trace_at = np.frombuffer(last, dtype=np.intp).tolist()  # per key: the event its trace is from
        kid = np.frombuffer(kid, dtype=np.intp)
        traced = list(zip(trace_at, traces, strict=True))
        return Scan(kind, m, keys, kid, columns, traced, list(builds), raw=True)

    def _scan_columns(
        self, kind: str, cols: Mapping[str, Sequence[Any]], m: int, now: float, typed: bool = False
    ) -> Scan | None:
        """A Scan from columns (field → values, None where unset): dict events, or Structs without
        the C++ scanner. `typed`: the columns come from `exporter.wire`, whose Structs already checked
        value types and string lengths."""
        col = cols.get
        for fname, limit, printable in _STRING_CHECKS[kind]:
            values = col(fname)
            if values is None or (typed and not printable):  # decoded: types and lengths are checked
                continue
            if typed:
                if not all(map(str.isprintable, dict.fromkeys(values).keys() - {None})):
                    return None
            elif not _strings(values, limit, printable):
                return None
        times = col("time")
        if times is not None and not _times_ok(times, now):
            return None
        cat_cols: list[Iterable[Any]] = []
        for fname in PLAN_KEY[kind]:
            values = col(fname)
            if values is None:
                cat_cols.append(repeat(None, m))
                continue
            # True == 1 == 1.0 hash alike, so boolean columns are type-checked here; a non-string in a
            # string column cannot equal a valid value and is refused when its plan is built.
            if not typed and fname in BOOLEAN and not set(map(type, values)) <= {bool, _NONE}:
                return None
            declared = self.catalog.declared.get(fname)
            if declared is not None:
                if not typed and not set(map(type, values)) <= {str, _NONE}:
                    return None
                values = list(map(declared.get, values, repeat(UNDECLARED)))  # fewer distinct keys
            cat_cols.append(values)
        keys = list(zip(*cat_cols, strict=False))  # `repeat` columns are endless
        try:
            index = dict.fromkeys(keys)
        except TypeError:  # a list or object where a name belongs
            return None
        distinct = list(index)
        if len(distinct) == 1:
            kid = np.zeros(m, dtype=np.intp)
        else:
            index.update(zip(distinct, range(len(distinct)), strict=True))
            kid = np.array(list(map(index.__getitem__, keys)), dtype=np.intp)
        numbers: list[tuple[np.ndarray, np.ndarray | None] | None] = []
        fields = FIELDS[kind]
        for fname, fkind in NUMBERS[kind]:
            values = col(fname)
            required = fields[fname].required
            if values is None:
                if required:
                    return None
                numbers.append(None)
                continue
            parsed = _numbers(values, fkind, required, fields[fname].upper)
            if parsed is None:
                return None
            numbers.append(parsed)
        if "tokens" in FIELDS[kind]:
            tokens = _token_counts(col("tokens"))
            if tokens is None:
                return None
            numbers.extend(tokens)
        traces: list[tuple[int, Any]] = [(-1, None)] * len(distinct)
        trace_col = col("trace_id")
        if trace_col is not None:  # each key's latest usable trace: read from the end, until all found
            missing = len(distinct)
            kids = kid.tolist()
            for i in range(m - 1, -1, -1):
                k = kids[i]
                if traces[k][0] < 0:
                    trace = trace_col[i]
                    if type(trace) is str and len(trace) <= MAX_EXEMPLAR_ID:
                        traces[k] = (i, trace)
                        missing -= 1
                        if not missing:
                            break
        builds: list[dict[Any, Any]] = [{}, {}, {}]
        agents = col("agent") or repeat(None)
        for part, fname in enumerate(("version", "prompt_version", "model")):
            values = col(fname)
            if values is not None:
                builds[part] = {a: v for a, v in zip(agents, values, strict=False) if v is not None}
        return Scan(kind, m, distinct, kid, numbers, traces, builds)

    # --- counting: the same for both front ends ---

    def _count(self, scan: Scan, d: Deltas) -> bool:
        """Add one type's events to `d`; False when a key has no valid plan (unknown agent, flow...)."""
        kind, kid = scan.kind, scan.kid
        fast = self._fast
        plans: list[Plan] = []
        for key in scan.keys:
            plan = fast.get((kind, key))
            if plan is None:
                found = self.planner.plan(kind, key)
                if isinstance(found, tuple):
                    return False
                if len(fast) >= self.planner.MAX_PLANS:
                    fast.clear()
                    self._forget_taught()
                plan = fast[(kind, key)] = found
            plans.append(plan)
        if scan.raw and self.table is not None:
            for key, plan in zip(scan.keys, plans, strict=True):
                if (kind, key) not in self._taught:
                    self._teach(kind, key, plan)
        counts = np.bincount(kid, minlength=len(plans)).tolist()
        ids, weights = [], []
        for plan, count in zip(plans, counts, strict=True):
            if count and plan.incs:
                ids.extend(plan.incs)
                weights.extend([count] * len(plan.incs))
        d.gather(ids, weights)
        fields = NUMBERS[kind]
        for (fname, _), entry in zip(fields, scan.numbers, strict=False):
            if entry is not None:
                vals, mask = entry
                sub = kid if mask is None else kid[mask]
                self._observe(fname, plans, sub, vals, d)
                if kind == "judge":
                    self._judge(plans, sub, vals, d)
        for part, entry in enumerate(scan.numbers[len(fields) :]):  # tokens input, output
            if entry is not None:
                vals, mask = entry
                slots = np.array([p.tokens[part] if p.tokens else -1 for p in plans], dtype=np.intp)
                d.gather(slots[kid if mask is None else kid[mask]], vals)
        if kind == "synthetic":
            self._streaks(plans, kid.tolist(), d)
            self._last_runs(plans, d)
        self._exemplars(plans, scan.traces, d)
        self._builds(scan.builds, d)
        return True

    def _teach(self, kind: str, key: tuple[Any, ...], plan: Plan) -> None:
        """Hand a plan to the table, unless it does what only Python counts (judges, synthetic runs)."""
        assert self.table is not None
        self._taught.add((kind, key))
        if plan.judge is not None or plan.streak is not None or plan.last_run is not None:
            return
        numbers = [
            None if n is None else (n.base, self._bounds[n.family], n.slos)
            for n in (plan.numbers.get(fname) for fname, _ in NUMBERS[kind])
        ]
        self.table.learn(kind, key, plan.incs, numbers, plan.tokens, plan.exemplar_slots)

    def _observe(self, fname: str, plans: list[Plan], kid: np.ndarray, vals: np.ndarray, d: Deltas) -> None:
        numbers = [p.numbers.get(fname) for p in plans]
        first = next((n for n in numbers if n is not None), None)
        if first is None or not len(vals):
            return
        bounds = self._bounds[first.family]
        nb = len(bounds) + 1
        buckets = np.searchsorted(bounds, vals, side="left")
        bases = np.array([n.base if n else -1 for n in numbers], dtype=np.intp)[kid]
        d.gather(bases + buckets, 1.0)
        d.gather(bases + nb, vals)  # the sum slot follows the buckets
        for j in range(max(len(n.slos) if n else 0 for n in numbers)):
            table = np.array(
                [n.slos[j] if n and len(n.slos) > j else (-1, 0, 0) for n in numbers], dtype=np.intp
            )
            threshold, good, bad = table[kid].T
            counted = threshold >= 0
            slots = np.where(buckets <= threshold, good, bad)  # good when value ≤ the SLO's threshold
            d.gather(slots[counted], 1.0)

    def _judge(self, plans: list[Plan], kid: np.ndarray, scores: np.ndarray, d: Deltas) -> None:
        # good when score ≥ pass_threshold: count bounds ≤ score, compare with the threshold's index
        above = np.searchsorted(self._bounds[names.JUDGE_SCORE], scores, side="right")
        pairs = [p.judge[1] if p.judge else [] for p in plans]
        thresholds = np.array([p.judge[0] if p.judge else 0 for p in plans], dtype=np.intp)[kid]
        for j in range(max(map(len, pairs))):
            table = np.array([pair[j] if len(pair) > j else (-1, -1) for pair in pairs], dtype=np.intp)
            good, bad = table[kid].T
            counted = good >= 0
            d.gather(np.where(above > thresholds, good, bad)[counted], 1.0)

    def _streaks(self, plans: list[Plan], kid_list: list[int], d: Deltas) -> None:
        values = self.catalog.store.values
        for i in kid_list:
            streak = plans[i].streak
            if streak is not None:
                slot, passed = streak
                previous = d.sets.get(slot, self._pending.get(slot, values[slot]))
                d.sets[slot] = 0.0 if passed else previous + 1.0

    def _last_runs(self, plans: list[Plan], d: Deltas) -> None:
        """Each scenario's last-run gauge is the time its latest run arrived (as events are counted)."""
        for plan in plans:
            if plan.last_run is not None:
                d.sets[plan.last_run] = self._now

    def _exemplars(self, plans: list[Plan], traces: list[tuple[int, Any]], d: Deltas) -> None:
        """Each exemplar slot gets the trace id of the latest event it counted that had a usable one."""
        latest: dict[int, tuple[int, str]] = {}
        for plan, (index, trace) in zip(plans, traces, strict=True):
            if index >= 0:
                for slot in plan.exemplar_slots:
                    if latest.get(slot, (-1, ""))[0] < index:
                        latest[slot] = (index, trace)
        for slot, (_, trace) in latest.items():
            # Only an id in EXEMPLAR_ID's characters becomes an exemplar: one NUL made Prometheus fail
            # every scrape of the OpenMetrics page, and `" # ` trips prometheus_client's parser even
            # escaped. (Every front picks the latest id alike; none falls back to an older one.)
            if EXEMPLAR_ID.fullmatch(trace):
                d.exemplars[slot] = (trace, 1.0)

    def _builds(self, builds: list[dict[Any, Any]], d: Deltas) -> None:
        for part, latest in enumerate(builds):
            for agent, value in latest.items():
                if part == 2:
                    value = value if value in self.catalog.specs[agent].models else names.OTHER
                d.build.setdefault(agent, [None, None, None])[part] = value


def _table() -> Any:
    """A plan table for the C++ scanner (`exporter._scan.Plans`), or None when it is not built."""
    if wire.SCANNER is None:
        return None
    from agentslo.exporter._scan import Plans

    return Plans(wire.SCANNER, UPPER)


def _token_counts(col: Sequence[Any] | None) -> list[tuple[np.ndarray, np.ndarray | None] | None] | None:
    """Input and output token counts of a task column (`{"input": n, "output": n}` or None), or None
    when one is not such an object: neither counts, unknown keys, or not whole numbers."""
    if col is None:
        return [None, None]
    gaps = None in col
    present = [v for v in col if v is not None] if gaps else col
    if not set(map(type, present)) <= {dict} or (present and min(map(len, present)) == 0):
        return None
    if not set().union(*present) <= set(TOKEN_TYPES):
        return None
    out: list[tuple[np.ndarray, np.ndarray | None] | None] = []
    for direction in TOKEN_TYPES:
        if gaps:
            values = [None if v is None else v.get(direction) for v in col]
        else:  # every event has tokens (OTLP turns): one C call per event
            values = list(map(dict.get, col, repeat(direction)))
        out.append(_numbers(values, "count"))
        if out[-1] is None:
            return None
    return out
