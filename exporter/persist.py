"""Durable counters: SQLite in WAL mode, one transaction per acknowledged batch.

A batch is stored as its aggregated deltas (one upsert per touched slot, not one row per event),
together with its Idempotency-Key and answer, and committed before the API answers 2xx. On start
the exporter reloads every slot, so Prometheus never sees a counter go down across a restart or a
kill -9. With `synchronous=full` a commit also survives power loss; `normal` survives a process
crash only, and is faster on slow disks.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator

import orjson

_SCHEMA = """
CREATE TABLE IF NOT EXISTS slot (key TEXT PRIMARY KEY, value REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY, body_hash TEXT NOT NULL, status INTEGER NOT NULL, answer BLOB NOT NULL,
    created REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency (created);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""
_ADD = (
    "INSERT INTO slot (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value"
)
_SET = "INSERT INTO slot (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"


class Persistence:
    """The SQLite file behind the counters. Not thread-safe by itself: the ingestor serialises calls."""

    def __init__(self, path: str, synchronous: str = "full"):
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
        self.db.executescript(_SCHEMA)

    def slots(self) -> Iterator[tuple[str, float]]:
        yield from self.db.execute("SELECT key, value FROM slot")

    def builds(self) -> dict[str, list[str]]:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'build_info'").fetchone()
        return orjson.loads(row[0]) if row else {}

    def idempotent(self, key: str, since: float = 0.0) -> tuple[str, int, bytes] | None:
        """The stored (body hash, status, answer) of a key used at or after `since` (unix time)."""
        row = self.db.execute(
            "SELECT body_hash, status, answer FROM idempotency WHERE key = ? AND created >= ?", (key, since)
        ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def commit(
        self,
        adds: Iterable[tuple[str, float]],
        sets: Iterable[tuple[str, float]],
        builds: dict[str, list[str]] | None = None,
        answers: Iterable[tuple[str, str, int, bytes]] = (),
    ) -> None:
        """Write one batch (or several, grouped) atomically; raises and rolls back on any failure."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(_ADD, adds)
            db.executemany(_SET, sets)
            if builds is not None:
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('build_info', ?)",
                    (orjson.dumps(builds).decode(),),
                )
            now = time.time()
            db.executemany(
                "INSERT OR REPLACE INTO idempotency (key, body_hash, status, answer, created) "
                "VALUES (?, ?, ?, ?, ?)",
                [(*answer, now) for answer in answers],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def forget_before(self, horizon: float) -> int:
        """Drop idempotency keys older than `horizon` (unix time); returns how many."""
        return self.db.execute("DELETE FROM idempotency WHERE created < ?", (horizon,)).rowcount

    def close(self) -> None:
        self.db.close()
