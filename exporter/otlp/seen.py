"""The span keys counted recently, so that a sender's retry of a span counts once: bounded in count
and age, in memory, and rebuilt from the SQLite file on start.

Each acknowledged request files its span keys as one row (`SPAN_MARK` + a random id: the keys, one a
line) in the same transaction as its counts (`Ingestor.prepare_many`); the rows are dropped with the
Idempotency-Keys past the idempotency horizon. Looking a span up in SQLite was a fifth of a span's
cost, so the lookups go to this index instead: the newest keys within the horizon, at most `most`
(default 500,000, about 65 MB) and at least three quarters of that, in four generations of sets, the
oldest dropped whole when the newest fills. A retry of a span older than that (more than `most`
spans ago) counts again: at 100 spans/s the window is over an hour, while OTLP senders give up
retrying after minutes.

    >>> keys = SpanKeys(most=1000, horizon_s=3600)
    >>> keys.add(["k1", "k2"], now=0.0)
    >>> keys.seen(["k2", "k3"], now=1.0)
    {'k2'}
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

DEFAULT_MOST = 500_000
GENERATIONS = 4


class SpanKeys:
    def __init__(self, most: int = DEFAULT_MOST, horizon_s: float = 24 * 3600.0):
        self.most, self.horizon_s = most, horizon_s
        self.size = max(1, most // GENERATIONS)
        # (keys, time of the newest), oldest first; the last one is filled
        self.generations: deque[tuple[set[str], float]] = deque([(set(), 0.0)])

    def __len__(self) -> int:
        return sum(len(keys) for keys, _ in self.generations)

    def _expire(self, now: float) -> None:
        while len(self.generations) > 1 and self.generations[0][1] < now - self.horizon_s:
            self.generations.popleft()

    def seen(self, keys: Iterable[str], now: float) -> set[str]:
        """Which of `keys` were counted within the bounds."""
        self._expire(now)
        wanted = set(keys)
        out: set[str] = set()
        for remembered, _ in self.generations:
            out |= wanted & remembered
        return out

    def any_seen(self, keys: list[str], now: float) -> bool:
        self._expire(now)
        return any(not remembered.isdisjoint(keys) for remembered, _ in self.generations)

    def add(self, keys: Iterable[str], now: float) -> None:
        newest, _ = self.generations[-1]
        newest.update(keys)
        self.generations[-1] = (newest, now)
        if len(newest) >= self.size:
            self.generations.append((set(), now))
            while len(self.generations) > GENERATIONS:
                self.generations.popleft()
