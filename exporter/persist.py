"""Durable counters: SQLite in WAL mode, one transaction per acknowledged group of batches.

A group's aggregated deltas (a packed array of row id and amount per touched slot, not one row per
event, nor one upsert per slot) go into an append-only `journal` together with the batches'
Idempotency-Keys and answers, committed before the API answers 2xx. Every `FOLD_EVERY` commits (and
on open) the journal is folded into the `counter` table in one transaction. On start the exporter
reloads every slot, so Prometheus never sees a counter go down across a restart or a kill -9. With
`synchronous=full` a commit also survives power loss; `normal` survives a process crash only.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import orjson

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY, body_hash TEXT NOT NULL, status INTEGER NOT NULL, answer BLOB NOT NULL,
    created REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency (created);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY, adds BLOB NOT NULL, sets BLOB NOT NULL, answers TEXT NOT NULL, builds TEXT,
    created REAL NOT NULL
);
-- OTLP span keys, one row per acknowledged request: its counted spans' keys, SPAN_KEY bytes each
CREATE TABLE IF NOT EXISTS spans (created REAL NOT NULL, keys BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS spans_created ON spans (created);
"""
# A commit is one INSERT (one statement: one hand-off of the GIL, which under load is what a commit's
# latency is made of) into a view whose trigger writes the journal row and files, in the same
# transaction, its Idempotency-Keys, span keys and build labels: the span keys once, in `spans` (as
# a column of the journal they were written twice, ~24 KB per 1,000 spans). Made again on every open,
# so files of earlier versions get it; their journal's `spans` column stays, unused.
_TRIGGER = """
DROP TRIGGER IF EXISTS journal_sides;
DROP VIEW IF EXISTS journal_in;
CREATE VIEW journal_in AS SELECT adds, sets, answers, builds, created, NULL AS spans FROM journal;
CREATE TRIGGER journal_write INSTEAD OF INSERT ON journal_in BEGIN
    INSERT INTO journal (adds, sets, answers, builds, created)
        VALUES (NEW.adds, NEW.sets, NEW.answers, NEW.builds, NEW.created);
    INSERT OR REPLACE INTO idempotency (key, body_hash, status, answer, created)
        SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, NEW.created
        FROM json_each(NEW.answers) AS j;
    INSERT INTO spans (created, keys) SELECT NEW.created, NEW.spans WHERE NEW.spans IS NOT NULL;
    INSERT OR REPLACE INTO meta (key, value) SELECT 'build_info', NEW.builds WHERE NEW.builds IS NOT NULL;
END;
"""
_JOURNAL = "INSERT INTO journal_in (adds, sets, answers, builds, created, spans) VALUES (?, ?, ?, ?, ?, ?)"
SPAN_KEY = 24  # bytes of an OTLP span key: trace id and span id (`exporter.otlp.seen`)
ROW = np.dtype([("id", "<i8"), ("value", "<f8")])  # one journal entry: a counter's row id and amount
# Span dedupe keys (OTLP: trace and span id) live beside the Idempotency-Keys, with this prefix: a
# control character, so no Idempotency-Key header (printable) can ever collide with one.
SPAN_MARK = "\x1fspan:"
FOLD_EVERY = 256  # journal rows folded into `counter` at a time: one upsert per slot per fold
# Folding upserts every touched row in one statement: the rows go in as one JSON array through
# json_each, keyed by the series' small integer id (a third of the cost of the ~80-byte JSON keys).
_ADD = (
    "INSERT INTO counter (id, value) SELECT j.value ->> 0, j.value ->> 1 FROM json_each(?) AS j WHERE true "
    "ON CONFLICT (id) DO UPDATE SET value = value + excluded.value"
)
_SET = (
    "INSERT INTO counter (id, value) SELECT j.value ->> 0, j.value ->> 1 FROM json_each(?) AS j WHERE true "
    "ON CONFLICT (id) DO UPDATE SET value = excluded.value"
)


def _finite(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Which values are finite. Ingest refuses every number that could make a sum overflow, but a
    journal written before it did (1e308 latencies: an inf sum, NULL in SQLite) must not keep the
    exporter from starting: such an amount is left out of its counter, and said so."""
    keep: np.ndarray = np.isfinite(values)
    if not keep.all():
        log.error("left out %d non-finite amounts (row ids %s)", (~keep).sum(), ids[~keep].tolist()[:10])
    return keep


def _rows(rows: np.ndarray | Iterable[tuple[int, float]]) -> np.ndarray:
    if isinstance(rows, np.ndarray):
        return rows
    return np.array(rows if isinstance(rows, list) else list(rows), dtype=ROW)


class Persistence:
    """The SQLite file behind the counters. Not thread-safe by itself: the ingestor serialises calls."""

    def __init__(self, path: str, synchronous: str = "full"):
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
        self.db.executescript(_SCHEMA)
        self.db.executescript(_TRIGGER)
        self.journal = self.db.execute("SELECT count(*) FROM journal").fetchone()[0]
        self.fold()

    def slots(self) -> Iterator[tuple[int, str, float]]:
        yield from self.db.execute("SELECT s.id, s.key, c.value FROM counter c JOIN series s ON s.id = c.id")

    def builds(self) -> dict[str, list[str]]:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'build_info'").fetchone()
        return orjson.loads(row[0]) if row else {}

    def idempotent(self, key: str, since: float = 0.0) -> tuple[str, int, bytes] | None:
        """The stored (body hash, status, answer) of a key used at or after `since` (unix time)."""
        row = self.db.execute(
            "SELECT body_hash, status, answer FROM idempotency WHERE key = ? AND created >= ?", (key, since)
        ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def filed(self, mark: str, since: float = 0.0) -> list[tuple[str, str, float]]:
        """(key, answer, time) of the rows filed with `mark` as their body hash at or after `since`
        (OTLP spans held for their ancestors)."""
        rows = self.db.execute(
            "SELECT key, answer, created FROM idempotency WHERE body_hash = ? AND created >= ?", (mark, since)
        )
        return [(row[0], row[1], row[2]) for row in rows]

    def spans(self, since: float = 0.0) -> Iterator[tuple[bytes, float]]:
        """(span keys, time) of the requests whose spans were counted at or after `since`, newest first."""
        query = "SELECT keys, created FROM spans WHERE created >= ? ORDER BY created DESC"
        yield from self.db.execute(query, (since,))

    def commit(
        self,
        adds: np.ndarray | Iterable[tuple[int, float]],
        sets: np.ndarray | Iterable[tuple[int, float]],
        builds: dict[str, list[str]] | None = None,
        answers: Iterable[tuple[str, str, int, bytes]] = (),
        new_series: list[str] = (),  # type: ignore[assignment]
        spans: bytes | None = None,
    ) -> list[int]:
        """Write one batch (or several, grouped) atomically; raises and rolls back on any failure.

        `adds` and `sets` are (row id, amount) rows, as `ROW` arrays or pairs; `spans`, the OTLP span
        keys counted (`SPAN_KEY` bytes each), filed as one row; `new_series` are keys
        that need a row id, and the ids they get are returned (in order) so the caller can use them
        from now on. Rows may refer to those new ids by their negative position: -1 for the first,
        -2 for the second...
        """
        add_rows, set_rows = _rows(adds), _rows(sets)

        def journal_row() -> tuple[bytes, bytes, str, str | None, float, bytes | None]:
            return (
                add_rows.tobytes(),
                set_rows.tobytes(),
                orjson.dumps([(k, h, st, a.decode()) for k, h, st, a in answers]).decode(),
                orjson.dumps(builds).decode() if builds is not None else None,
                time.time(),
                spans or None,
            )

        db = self.db
        ids: list[int] = []
        if not new_series:  # the usual case: one statement, its own transaction
            db.execute(_JOURNAL, journal_row())
        else:
            db.execute("BEGIN IMMEDIATE")
            try:
                for key in new_series:
                    db.execute("INSERT INTO series (key) VALUES (?) ON CONFLICT (key) DO NOTHING", (key,))
                    ids.append(db.execute("SELECT id FROM series WHERE key = ?", (key,)).fetchone()[0])
                assigned = np.array(ids, dtype=np.int64)
                for rows in (add_rows, set_rows):
                    placeholder = rows["id"] < 0
                    rows["id"][placeholder] = assigned[-rows["id"][placeholder] - 1]
                db.execute(_JOURNAL, journal_row())
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        self.journal += 1
        if self.journal >= FOLD_EVERY:
            self.tidy(self.fold)
        return ids

    def tidy(self, work: Callable[[], object]) -> None:
        """Upkeep after a commit (fold, forget old keys): its failure is logged, never raised, so an
        answer never says "nothing was counted" about rows that are committed. The journal keeps
        them, and the next commit (or the next start) folds again."""
        try:
            work()
        except sqlite3.Error as exc:
            log.error("SQLite upkeep after a commit failed (the commit stands; retried later): %s", exc)

    def fold(self) -> None:
        """Fold the journal into `counter` (sums of adds; the last of the sets) in one transaction."""
        if not self.journal:
            return
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            rows = db.execute("SELECT seq, adds, sets FROM journal ORDER BY seq").fetchall()
            adds = np.frombuffer(b"".join(r[1] for r in rows), dtype=ROW)
            if len(adds):
                adds = adds[_finite(adds["id"], adds["value"])]
                ids, where = np.unique(adds["id"], return_inverse=True)
                sums = np.bincount(where, weights=adds["value"], minlength=len(ids))
                keep = _finite(ids, sums)
                ids, sums = ids[keep], sums[keep]
                db.execute(_ADD, (orjson.dumps(list(zip(ids.tolist(), sums.tolist(), strict=True))),))
            sets = np.frombuffer(b"".join(r[2] for r in rows), dtype=ROW)
            sets = sets[_finite(sets["id"], sets["value"])]
            if len(sets):  # the last value of each id wins
                last = dict(zip(sets["id"].tolist(), sets["value"].tolist(), strict=True))
                db.execute(_SET, (orjson.dumps(list(last.items())),))
            db.execute("DELETE FROM journal WHERE seq <= ?", (rows[-1][0],))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.journal = 0

    def _forget_spans_before(self, created: float) -> int:
        """Delete the rows of span keys filed before `created`, without overwriting the pages they free.
        SQLite built with SECURE_DELETE (Debian's is) zeroes every page a delete frees: for a row of
        span keys, its ~24 KB of overflow pages, written to the WAL and fsynced like the keys' own
        insert. Span keys are trace and span ids, nothing to scrub; every other delete keeps the
        connection's setting. How many rows were deleted."""
        scrub = self.db.execute("PRAGMA secure_delete").fetchone()[0]  # 0 off, 1 on, 2 fast
        if scrub:
            self.db.execute("PRAGMA secure_delete=OFF")
        try:
            return self.db.execute("DELETE FROM spans WHERE created < ?", (created,)).rowcount
        finally:
            if scrub:
                self.db.execute(f"PRAGMA secure_delete={'FAST' if scrub == 2 else 'ON'}")

    def forget_before(self, horizon: float) -> int:
        """Drop idempotency keys (and span keys) older than `horizon` (unix time); returns how many."""
        self._forget_spans_before(horizon)
        return self.db.execute("DELETE FROM idempotency WHERE created < ?", (horizon,)).rowcount

    def forget_spans_beyond(self, most: int) -> int:
        """Keep the newest rows of span keys that hold `most` keys: the span index loads no more on
        start (`OtlpReceiver`), so older rows would only fill the disk until the horizon. How many
        rows were dropped."""
        oldest = self.db.execute(
            "SELECT created FROM (SELECT created, sum(length(keys)) OVER (ORDER BY created DESC) AS total "
            "FROM spans) WHERE total >= ? LIMIT 1",
            (most * SPAN_KEY,),
        ).fetchone()
        if oldest is None:
            return 0
        return self._forget_spans_before(oldest[0])

    def forget_beyond(self, most: int, keep_prefix: str = SPAN_MARK) -> int:
        """Keep only the `most` newest Idempotency-Keys (span keys, `keep_prefix`, are bounded by the
        horizon alone); returns how many were dropped."""
        return self.db.execute(
            "DELETE FROM idempotency WHERE key IN (SELECT key FROM idempotency WHERE substr(key, 1, ?) != ? "
            "ORDER BY created DESC LIMIT -1 OFFSET ?)",
            (len(keep_prefix), keep_prefix, most),
        ).rowcount

    def close(self) -> None:
        self.tidy(self.fold)
        self.db.close()
