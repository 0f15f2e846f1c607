"""The span keys counted recently, so that a sender's retry of a span counts once: bounded in count
and age, in memory, and rebuilt from the SQLite file on start.

A span's key is its trace id and span id, 24 bytes (`span_key` makes one for an evaluation on a
span: the trace id and a digest; and for a log record: a digest). Each acknowledged request files
its counted keys as one row (`Persistence.spans`) in the same transaction as its counts; rows past
the idempotency horizon are dropped. Looking each span up in SQLite cost a fifth of a span's time,
so lookups go to this index: the newest keys within the horizon, at most `most` (`serve
--max-span-keys`, default 500,000, at most ~50 MB) and at least three quarters of that, in four
generations, the oldest dropped whole when the newest fills. A retry of a span older than that (more
than `most` spans ago) counts again: at 100 spans/s the window is over an hour, while OTLP senders
give up retrying after minutes (the collector's `retry_on_failure` after 5 by default).

Each generation also holds the trace ids (a key's first 16 bytes), so a request of traces never
counted (the usual one) is cleared with a lookup per trace rather than per span (`any_trace_seen`).
Keys come and go as blobs of 24 bytes each: the C++ index (`SpanIndex` in `_mapper.cpp`) makes no
Python object per key; `SpanKeys` is its pure-Python twin, used when the extension is not built.

    >>> keys = span_index(most=1000, horizon_s=3600)
    >>> keys.add(bytes(range(24)) + bytes(range(1, 25)), 0.0)  # two keys, at time 0
    >>> keys.seen(bytes(24) + bytes(range(1, 25)), 1.0)
    [1]
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from typing import Any

from agentslo.exporter.config import DEFAULT_MAX_SPAN_KEYS
from agentslo.exporter.otlp import rows

SpanIndex: type[Any] | None
try:
    from agentslo.exporter.otlp._reader import SpanIndex
except ImportError:  # not built: the pure-Python twin
    SpanIndex = None

GENERATIONS = 4
SPAN_KEY, TRACE_ID = 24, 16
SPAN_HEX = 2 * SPAN_KEY  # a span's key as the mapping writes it: trace id and span id in hex


def span_key(key: str) -> bytes:
    """The 24 bytes of a mapping key (`Mapped.keys`): a span's ids; an evaluation's trace id and a
    digest of the rest; a log record's digest."""
    if len(key) == SPAN_HEX:
        return bytes.fromhex(key)
    if key.startswith("log"):
        return hashlib.blake2b(key.encode(), digest_size=SPAN_KEY).digest()
    rest = hashlib.blake2b(key[32:].encode(), digest_size=SPAN_KEY - TRACE_ID).digest()
    return bytes.fromhex(key[:32]) + rest


def split(blob: bytes, unit: int) -> list[bytes]:
    """The keys of a blob of `unit` bytes each (span keys, trace ids)."""
    return [blob[at : at + unit] for at in range(0, len(blob), unit)]


def span_index(most: int = DEFAULT_MAX_SPAN_KEYS, horizon_s: float = 24 * 3600.0) -> Any:
    """The index: the C++ one when built (`SpanKeys` otherwise, and with AGENT_SLO_PURE_PYTHON)."""
    if SpanIndex is not None and not rows.PURE:
        return SpanIndex(most, horizon_s, int.from_bytes(os.urandom(8), "little"))
    return SpanKeys(most, horizon_s)


class SpanKeys:
    """The pure-Python index: as `SpanIndex`, with sets of `bytes`."""

    def __init__(self, most: int = DEFAULT_MAX_SPAN_KEYS, horizon_s: float = 24 * 3600.0):
        self.most, self.horizon_s = most, horizon_s
        self.size = max(1, most // GENERATIONS)
        # (keys, their traces, time of the newest), oldest first; the last one is filled
        self.generations: deque[tuple[set[bytes], set[bytes], float]] = deque([(set(), set(), 0.0)])

    def __len__(self) -> int:
        return sum(len(keys) for keys, _, _ in self.generations)

    def _expire(self, now: float) -> None:
        while len(self.generations) > 1 and self.generations[0][2] < now - self.horizon_s:
            self.generations.popleft()

    def seen(self, keys: bytes, now: float) -> list[int]:
        """The indices of the keys (24 bytes each) counted within the bounds."""
        self._expire(now)
        generations = [keys for keys, _, _ in self.generations]
        return [i for i, key in enumerate(split(keys, SPAN_KEY)) if any(key in g for g in generations)]

    def any_trace_seen(self, traces: bytes, now: float) -> bool:
        """Whether a span of any of these traces (16 bytes each) was counted within the bounds."""
        self._expire(now)
        ids = split(traces, TRACE_ID)
        return any(not remembered.isdisjoint(ids) for _, remembered, _ in self.generations)

    def add(self, keys: bytes, now: float) -> None:
        """Remember counted span keys (24 bytes each) and their traces."""
        for i in range(0, len(keys), SPAN_KEY):
            newest, traces, _ = self.generations[-1]
            key = keys[i : i + SPAN_KEY]
            newest.add(key)
            traces.add(key[:TRACE_ID])
            self.generations[-1] = (newest, traces, now)
            if len(newest) >= self.size:
                self.generations.append((set(), set(), now))
                while len(self.generations) > GENERATIONS:
                    self.generations.popleft()
