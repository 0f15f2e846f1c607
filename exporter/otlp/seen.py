"""The span keys counted recently, so that a sender's retry of a span counts once: bounded in count
and age, in memory, and rebuilt from the SQLite file on start.

A span's key is its trace id and span id (24 bytes; an evaluation on a span or a log record gets a
24-byte digest of its own key, `span_key`). Each acknowledged request files its counted keys as one
row (`Persistence.spans`) in the same transaction as its counts; rows past the idempotency horizon
are dropped. Looking each span up in SQLite cost a fifth of a span's time, so lookups go to this
index: the newest keys within the horizon, at most `most` (default 500,000, about 45 MB) and at
least three quarters of that, in four generations of sets, the oldest dropped whole when the newest
fills. A retry of a span older than that (more than `most` spans ago) counts again: at 100 spans/s
the window is over an hour, while OTLP senders give up retrying after minutes.

Each generation also holds the trace ids of its keys, so a request of traces never counted (the usual
one) is cleared with a lookup per trace rather than per span (`any_trace_seen`).

    >>> keys = SpanKeys(most=1000, horizon_s=3600)
    >>> keys.add([b"k1", b"k2"], now=0.0)
    >>> keys.seen([b"k2", b"k3"], now=1.0)
    {b'k2'}
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Collection, Hashable, Iterable

DEFAULT_MOST = 500_000
GENERATIONS = 4
SPAN_HEX = 48  # a span's key as the mapping writes it: trace id and span id in hex


def span_key(key: str) -> bytes:
    """The 24 bytes of a mapping key: a span's ids, or the digest of an evaluation's or record's key."""
    if len(key) == SPAN_HEX:
        return bytes.fromhex(key)
    return hashlib.blake2b(key.encode(), digest_size=SPAN_HEX // 2).digest()


def trace_of(key: str) -> bytes | None:
    """The trace id of a mapping key (None for a log record's)."""
    return None if key.startswith("log") else bytes.fromhex(key[:32])


class SpanKeys:
    def __init__(self, most: int = DEFAULT_MOST, horizon_s: float = 24 * 3600.0):
        self.most, self.horizon_s = most, horizon_s
        self.size = max(1, most // GENERATIONS)
        # (keys, their traces, time of the newest), oldest first; the last one is filled
        self.generations: deque[tuple[set[Hashable], set[Hashable], float]] = deque([(set(), set(), 0.0)])

    def __len__(self) -> int:
        return sum(len(keys) for keys, _, _ in self.generations)

    def _expire(self, now: float) -> None:
        while len(self.generations) > 1 and self.generations[0][2] < now - self.horizon_s:
            self.generations.popleft()

    def seen(self, keys: Iterable[Hashable], now: float) -> set[Hashable]:
        """Which of `keys` were counted within the bounds."""
        self._expire(now)
        wanted = set(keys)
        out: set[Hashable] = set()
        for remembered, _, _ in self.generations:
            out |= wanted & remembered
        return out

    def any_trace_seen(self, traces: Collection[Hashable], now: float) -> bool:
        """Whether a span of any of these traces was counted within the bounds."""
        self._expire(now)
        return any(not remembered.isdisjoint(traces) for _, remembered, _ in self.generations)

    def add(self, keys: Iterable[Hashable], now: float, traces: Iterable[Hashable] = ()) -> None:
        """Remember counted span keys and the traces they belong to."""
        newest, newest_traces, _ = self.generations[-1]
        newest.update(keys)
        newest_traces.update(traces)
        self.generations[-1] = (newest, newest_traces, now)
        if len(newest) >= self.size:
            self.generations.append((set(), set(), now))
            while len(self.generations) > GENERATIONS:
                self.generations.popleft()
