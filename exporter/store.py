"""The exporter's own metric table: every series is a slot in one flat list of floats.

Why not prometheus-client's registry: ingest applies a whole batch as a dict of slot → delta under
one lock, persistence stores the same deltas, and `/metrics` renders from pre-escaped label strings
(see `exporter.exposition`). Counters and gauges take one slot; a histogram series takes one slot
per bucket (non-cumulative counts, the last one `+Inf`) plus one for the sum.

Each slot may carry a persistence key (JSON `[family, [label values], part]`) so the SQLite store
can save and reload it; slots without a key (the exporter's own ingest health) live in memory only.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import orjson
from prometheus_client.utils import floatToGoString

Kind = Literal["counter", "gauge", "histogram"]


def escape_label_value(value: str) -> str:
    """Escape a label value for the text and OpenMetrics formats (backslash, quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _label_text(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    pairs = [f'{n}="{escape_label_value(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        pairs.append(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _le(bound: str) -> str:
    return f'le="{bound}"'


@dataclass
class Family:
    """One metric family: its exposed name, type, help text, label names and (histograms) bucket bounds."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...]
    bounds: tuple[float, ...] = ()
    # (base slot, label values, pre-rendered sample prefixes) per series, in creation order
    series: list[tuple[int, tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)

    @property
    def om_name(self) -> str:
        """OpenMetrics names a counter family without its `_total` suffix."""
        return (
            self.name[: -len("_total")]
            if self.kind == "counter" and self.name.endswith("_total")
            else self.name
        )

    @property
    def width(self) -> int:
        return len(self.bounds) + 2 if self.kind == "histogram" else 1

    def le_strings(self) -> list[str]:
        return [floatToGoString(b) for b in self.bounds] + ["+Inf"]  # type: ignore[no-untyped-call]


NOT_PERSISTED = 0  # the row id of slots kept in memory only (SQLite's row ids start at 1)


class Store:
    """Slots, their values, the series index and the latest exemplar per slot; guarded by `lock`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.families: dict[str, Family] = {}
        self.values: list[float] = []
        self.keys: list[str | None] = []
        # the slot's row id in SQLite once it has one; NOT_PERSISTED for in-memory-only slots
        self.db_ids: list[int | None] = []
        self.exemplars: dict[
            int, tuple[str, float, float]
        ] = {}  # slot → (escaped trace_id, value, unix time)
        self._index: dict[tuple[str, tuple[str, ...]], int] = {}
        # agent → (version, prompt_version, model): the latest build seen, exposed as agent_slo_build_info
        self.build_info: dict[str, tuple[str, str, str]] = {}

    def family(
        self, name: str, kind: Kind, help: str, labels: Sequence[str], bounds: Iterable[float] = ()
    ) -> Family:
        fam = Family(name, kind, help, tuple(labels), tuple(sorted({float(b) for b in bounds})))
        self.families[name] = fam
        return fam

    def slot(self, family: str, labels: Sequence[str], persist: bool = True) -> int:
        """The base slot of a series, created at 0 on first use."""
        key = (family, tuple(labels))
        found = self._index.get(key)
        if found is not None:
            return found
        fam = self.families[family]
        values = key[1]
        if len(values) != len(fam.labels):
            raise ValueError(f"{family} takes labels {fam.labels}, got {values}")
        base = len(self.values)
        head = _label_text(fam.labels, values)
        if fam.kind == "histogram":
            buckets = [
                f"{fam.name}_bucket{_label_text(fam.labels, values, _le(le))} " for le in fam.le_strings()
            ]
            prefixes = (*buckets, f"{fam.name}_sum{head} ", f"{fam.name}_count{head} ")
            parts: list[str] = [*fam.le_strings(), "sum"]
        else:
            prefixes = (f"{fam.name}{head} ",)
            parts = [""]
        for part in parts:
            self.values.append(0.0)
            self.keys.append(orjson.dumps([family, list(values), part]).decode() if persist else None)
            self.db_ids.append(None if persist else NOT_PERSISTED)
        self._index[key] = base
        fam.series.append((base, values, prefixes))
        return base

    def mark(self) -> int:
        """A point to `rollback()` to: the series created after it can be forgotten."""
        return len(self.values)

    def rollback(self, mark: int) -> bool:
        """Forget every series created since `mark` (a refused batch leaves no series behind);
        True when there were some. Series are created in slot order, so they are the last ones."""
        if len(self.values) == mark:
            return False
        for fam in self.families.values():
            while fam.series and fam.series[-1][0] >= mark:
                del self._index[(fam.name, fam.series.pop()[1])]
        del self.values[mark:], self.keys[mark:], self.db_ids[mark:]
        for slot in [slot for slot in self.exemplars if slot >= mark]:
            del self.exemplars[slot]
        return True

    def find(self, family: str, labels: Sequence[str]) -> int | None:
        return self._index.get((family, tuple(labels)))

    def value(self, family: str, labels: Sequence[str], part: int = 0) -> float | None:
        """A slot's current value (tests and gauges); `part` indexes a histogram's buckets, then its sum."""
        base = self.find(family, labels)
        return None if base is None else self.values[base + part]

    def add(self, deltas: dict[int, float]) -> None:
        values = self.values
        for slot, delta in deltas.items():
            values[slot] += delta

    def set(self, sets: dict[int, float]) -> None:
        values = self.values
        for slot, value in sets.items():
            values[slot] = value

    def load(self, rows: Iterable[tuple[int, str, float]]) -> int:
        """Restore persisted (row id, key, value) slots at startup; returns how many matched a family."""
        restored = 0
        for row_id, key, value in rows:
            try:
                family, labels, part = orjson.loads(key)
                fam = self.families[family]
                base = self.slot(family, labels)
            except (KeyError, ValueError, TypeError):
                continue  # a family or label set this version no longer has: keep it on disk, don't expose it
            if fam.kind != "histogram":
                slot = base
            elif part == "sum":
                slot = base + len(fam.bounds) + 1
            else:
                # A bucket whose bound left the spec folds into the next bound up, so `le` stays cumulative.
                slot = base + bisect.bisect_left(fam.bounds, float(part))
            self.values[slot] += value
            if self.keys[slot] == key:
                self.db_ids[slot] = row_id
            restored += 1
        return restored
