"""Classify a whole batch of events into counter deltas, column by column.

Why column-wise: a 1,000-event batch has a handful of distinct categorical combinations (agent,
flow, outcome, tool...) but a thousand unique trace ids and latencies. Each field is pulled out of
all events with C-level `map`, combinations are planned once (`Catalog.plan`), and numbers go
through numpy (`searchsorted` into buckets, `bincount` per plan), so the Python work per event is a
few C calls. Any check that fails returns None and the caller runs the event-by-event validator
(`exporter.events.problems`), which is authoritative and names every problem.

Call with the store lock held: plans may create series, and synthetic streaks read current values.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np

from agentslo import names
from exporter import wire
from exporter.catalog import MAX_LABEL_CHARS, UNDECLARED, Catalog, Plan
from exporter.config import MAX_FUTURE_SKEW_S
from exporter.events import ALLOWED, CATEGORICAL, FIELDS, MAX_COUNT, MAX_ID_CHARS, NUMBER_KINDS
from exporter.store import escape_label_value

_NONE = type(None)
_BOOL_FIELDS = frozenset(
    {"escalation_required", "required", "performed", "context_preserved", "ok", "passed"}
)
_STRING_CHECKS = (  # (field, most characters, must be printable)
    ("session_id", MAX_ID_CHARS, False),
    ("trace_id", MAX_ID_CHARS, False),
    ("version", MAX_LABEL_CHARS, True),
    ("prompt_version", MAX_LABEL_CHARS, True),
    ("model", MAX_LABEL_CHARS, True),
)
MAX_EXEMPLAR_ID = 100  # OpenMetrics caps an exemplar's labels at 128 characters


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
        parts = []  # (slot ids, weights or None)
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


def _numbers(col: Sequence[Any], kind: str) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(values, presence mask or None when all present) if every value is valid, else None."""
    integer, upper = NUMBER_KINDS[kind.rstrip("!")]
    types = set(map(type, col))
    mask = None
    if _NONE in types:
        if kind.endswith("!"):
            return None
        types.discard(_NONE)
        mask = np.fromiter((v is not None for v in col), bool, len(col))
        col = [v for v in col if v is not None]
    if not types <= ({int} if integer else {int, float}):
        return None
    if integer and col and not (0 <= min(col) and max(col) <= MAX_COUNT):
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
    present = [v for v in col if v is not None] if None in col else col
    types = set(map(type, present))
    latest = 0.0
    if str in types:
        texts = [v for v in present if type(v) is str] if len(types) > 1 else present
        try:
            parsed = list(map(datetime.fromisoformat, texts))
        except ValueError:
            return False
        if None in set(map(attrgetter("tzinfo"), parsed)):
            return False
        latest = max(parsed).timestamp()
        types.discard(str)
    if types:
        if not types <= {int, float}:
            return False
        numbers = [v for v in present if type(v) is not str]
        if min(numbers) < 0 or not math.isfinite(max(numbers)):
            return False
        latest = max(latest, max(numbers))
    return latest <= now + MAX_FUTURE_SKEW_S


class Classifier:
    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self._pending: dict[int, float] = {}
        # Valid plans by untyped key: safe here because boolean columns were type-checked and a
        # non-string never equals a string, so no invalid value can hit a valid entry.
        self._fast: dict[tuple[Any, ...], Plan] = {}
        self._bounds = {
            name: np.array(fam.bounds, dtype=np.float64) for name, fam in catalog.store.families.items()
        }

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
        self._pending = pending or {}
        for kind, group in groups.items():
            if not self._group(kind, group, now, deltas):
                return None
        return deltas  # the caller merges and `finish()`es: one bincount per group of batches

    def run_decoded(
        self, events: wire.Decoded, now: float, pending: dict[int, float] | None = None
    ) -> Deltas | None:
        """`run()` for a batch decoded by `exporter.wire` (types and fields already checked)."""
        if not events:
            return None
        deltas = Deltas(events=len(events))
        self._pending = pending or {}
        for kind, group in wire.groups(events).items():
            cols = wire.columns(group)
            if cols is None or not self._classify(kind, cols, len(group), now, deltas, typed=True):
                return None
        return deltas

    def _group(self, kind: str, evs: list[dict[str, Any]], now: float, d: Deltas) -> bool:
        present = set().union(*evs)
        if not present <= ALLOWED[kind]:
            return False
        return self._classify(kind, _columns(evs, present), len(evs), now, d)

    def _classify(
        self, kind: str, cols: dict[str, Sequence[Any]], m: int, now: float, d: Deltas, typed: bool = False
    ) -> bool:
        """Check and count one type's events from their columns (field → values, None where unset).

        `typed`: the columns come from `exporter.wire`, whose Structs already checked value types and
        string lengths; only what they cannot express (printable text, times, finiteness, plans) is left.
        """
        col = cols.get
        for fname, limit, printable in _STRING_CHECKS:
            values = col(fname)
            if values is None or (typed and not printable):  # decoded: types and lengths are checked
                continue
            if typed:
                if not all(map(str.isprintable, dict.fromkeys(values).keys() - {None})):
                    return False
            elif not _strings(values, limit, printable):
                return False
        times = col("time")
        if times is not None and not _times_ok(times, now):
            return False
        cat_names = ("agent", "flow", "exclude", *CATEGORICAL[kind])
        cat_cols: list[Iterable[Any]] = []
        for fname in cat_names:
            values = col(fname)
            if values is None:
                cat_cols.append(repeat(None, m))
                continue
            # True == 1 == 1.0 hash alike, so boolean columns are type-checked here; a non-string in a
            # string column cannot equal a valid value and is refused when its plan is built.
            if not typed and fname in _BOOL_FIELDS and not set(map(type, values)) <= {bool, _NONE}:
                return False
            declared = self.catalog.declared.get(fname)
            if declared is not None:
                if not typed and not set(map(type, values)) <= {str, _NONE}:
                    return False
                values = list(map(declared.get, values, repeat(UNDECLARED)))
            cat_cols.append(values)
        keys = list(zip(*cat_cols, strict=False))  # `repeat` columns are endless
        try:
            index = dict.fromkeys(keys)
        except TypeError:  # a list or object where a name belongs
            return False
        uniq = list(index)
        plans: list[Plan] = []
        fast = self._fast
        for key in uniq:
            plan = fast.get((kind, key))
            if plan is None:
                found = self.catalog.plan(kind, key)
                if isinstance(found, tuple):
                    return False
                if len(fast) >= self.catalog.MAX_PLANS:
                    fast.clear()
                plan = fast[(kind, key)] = found
            plans.append(plan)
        k = len(plans)
        if k == 1:
            kid_list = None
            kid = np.zeros(m, dtype=np.intp)
        else:
            index.update(zip(uniq, range(k), strict=True))  # key → position, no second hash of every key
            kid_list = list(map(index.__getitem__, keys))
            kid = np.array(kid_list, dtype=np.intp)
        counts = np.bincount(kid, minlength=k).tolist()
        ids, weights = [], []
        for plan, count in zip(plans, counts, strict=True):
            if count and plan.incs:
                ids.extend(plan.incs)
                weights.extend([count] * len(plan.incs))
        d.gather(ids, weights)
        for fname, fkind in FIELDS[kind].items():
            if fkind.rstrip("!") not in NUMBER_KINDS:
                continue
            values = col(fname)
            if values is None:
                if fkind.endswith("!"):
                    return False
                continue
            parsed = _numbers(values, fkind)
            if parsed is None:
                return False
            vals, mask = parsed
            self._observe(fname, plans, kid if mask is None else kid[mask], vals, d)
            if kind == "judge":
                self._judge(plans, kid, vals, d)
        if "tokens" in cols and not self._tokens(list(col("tokens") or ()), plans, kid, d):
            return False
        if kind == "synthetic":
            self._streaks(plans, kid_list or [0] * m, d)
        traces = col("trace_id")
        if traces is not None:
            self._exemplars(plans, kid_list or [0] * m, traces, d)
        if cols.keys() & {"version", "prompt_version", "model"}:
            self._builds(col("agent") or (), [col("version"), col("prompt_version"), col("model")], d)
        return True

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

    def _tokens(self, col: list[Any], plans: list[Plan], kid: np.ndarray, d: Deltas) -> bool:
        present = [v for v in col if v is not None] if None in col else col
        if not set(map(type, present)) <= {dict} or (present and min(map(len, present)) == 0):
            return False
        if not set().union(*present) <= {"input", "output"}:
            return False
        sub = (
            kid
            if len(present) == len(col)
            else kid[np.fromiter((v is not None for v in col), bool, len(col))]
        )
        for part, direction in enumerate(("input", "output")):
            values = list(map(dict.get, present, repeat(direction)))
            parsed = _numbers(values, "count")
            if parsed is None:
                return False
            vals, mask = parsed
            slots = np.array([p.tokens[part] if p.tokens else -1 for p in plans], dtype=np.intp)
            d.gather(slots[sub if mask is None else sub[mask]], vals)
        return True

    def _streaks(self, plans: list[Plan], kid_list: list[int], d: Deltas) -> None:
        values = self.catalog.store.values
        for i in kid_list:
            streak = plans[i].streak
            if streak is not None:
                slot, passed = streak
                previous = d.sets.get(slot, self._pending.get(slot, values[slot]))
                d.sets[slot] = 0.0 if passed else previous + 1.0

    def _exemplars(self, plans: list[Plan], kid_list: list[int], traces: Sequence[Any], d: Deltas) -> None:
        latest = dict(zip(kid_list, traces, strict=True))
        for k, trace in latest.items():
            if trace is not None and len(trace) <= MAX_EXEMPLAR_ID:
                escaped = (
                    escape_label_value(trace) if '"' in trace or "\\" in trace or "\n" in trace else trace
                )
                for slot in plans[k].exemplar_slots:
                    d.exemplars[slot] = (escaped, 1.0)

    def _builds(self, agents: Sequence[Any], cols: list[Sequence[Any] | None], d: Deltas) -> None:
        for part, values in enumerate(cols):
            if values is None:
                continue
            latest = {a: v for a, v in zip(agents, values, strict=True) if v is not None}
            for agent, value in latest.items():
                if part == 2:
                    value = value if value in self.catalog.specs[agent].models else names.OTHER
                d.build.setdefault(agent, [None, None, None])[part] = value
