"""Idempotency answers kept in memory, for an exporter without `--db`.

With `--db` the answers live in SQLite beside the counts (`exporter.persist`); without it they
live here, so the README's promise holds either way: a retry with the same Idempotency-Key and
body replays the first answer (and counts nothing), the same key with another body is 422. The
table is bounded by age (`idempotency_horizon_s`), by count (`max_idempotency_keys`) and by bytes
(`max_idempotency_bytes`); the oldest answers are forgotten first, after which a retry counts anew.

    >>> table = Answers(ExporterConfig())
    >>> table.put([("key-1", "digest", 200, b'{"accepted":1}')], now=100.0)
    >>> table.get("key-1", since=0.0)
    ('digest', 200, b'{"accepted":1}')
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from agentslo.exporter.config import ExporterConfig

_OVERHEAD = 200  # bytes a remembered answer costs beyond its key and body (tuple, floats, dict slot)


class Answers:
    """Key → (body hash, status, answer, when), oldest first. Not thread-safe: the ingest lock guards it."""

    def __init__(self, config: ExporterConfig) -> None:
        self.horizon_s = config.idempotency_horizon_s
        self.max_keys = config.max_idempotency_keys
        self.max_bytes = config.max_idempotency_bytes
        self.size = 0  # bytes held, by the same measure as `max_bytes`
        self._table: OrderedDict[str, tuple[str, int, bytes, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._table)

    def get(self, key: str, since: float) -> tuple[str, int, bytes] | None:
        """(body hash, status, answer) of a key used at or after `since`, as `Persistence.idempotent`."""
        found = self._table.get(key)
        if found is None or found[3] < since:
            return None
        return found[0], found[1], found[2]

    def put(self, answers: Iterable[tuple[str, str, int, bytes]], now: float) -> None:
        """Remember (key, body hash, status, answer) rows, then forget what is past a bound."""
        table = self._table
        for key, digest, status, body in answers:
            old = table.pop(key, None)
            if old is not None:
                self.size -= _cost(key, old[2])
            table[key] = (digest, status, body, now)
            self.size += _cost(key, body)
        expired = now - self.horizon_s
        while table and (
            len(table) > self.max_keys
            or self.size > self.max_bytes
            or next(iter(table.values()))[3] < expired
        ):
            key, old = table.popitem(last=False)
            self.size -= _cost(key, old[2])


def _cost(key: str, body: bytes) -> int:
    return len(key) + len(body) + _OVERHEAD
