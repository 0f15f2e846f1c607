"""The session store: a bounded SQLite (WAL) file of the sessions worth keeping, and their reviews.

Tail-based retention: a session is stored when any SLI or judge marked it bad, or when it is in the
head sample (sampled for an LLM judge, or by the store's own sample rate); everything else is never
written. Personal data and secrets are redacted before they reach the file (`agentslo.feedback.redact`
says what is and is not): bodies, explanations, labels' notes and reviewers. The session id and the
version, model, tool and failure-mode columns are pseudonymised with the store's own key (kept in
its `meta` table), so they still group and join; whatever reads the store (the API, the datasets)
only ever sees the redacted values. Sessions older than the retention time go (labelled ones live
longer: they are the datasets), and when the bodies exceed the size limit the least valuable go
first: unflagged, then flagged, then labelled, oldest first.

The store is synchronous and single-connection; the judging pipeline drives it from one thread
(`agentslo.feedback.pipeline.Pipeline.db`), so the event loop never waits on SQLite.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Final, NamedTuple

import orjson
import re2

from agentslo.feedback.datasets import CORRECT, EDGE_CASE, FALSE_POSITIVE, REAL_FAILURE, human_pass
from agentslo.feedback.redact import Redactor
from agentslo.feedback.session import EVIDENCE

# Review labels (POST /v1/review/{id}/label): the verdict was right; flagged but fine; a real failure
# (whatever the verdict said); ambiguous (kept out of calibration). See datasets.human_pass.
LABELS: Final = (CORRECT, FALSE_POSITIVE, REAL_FAILURE, EDGE_CASE)
# Reviews raised by an SLI rather than a judge carry this judge name.
SLI_REVIEW: Final = ""

DEFAULT_RETENTION_S: Final = 7 * 86_400.0  # a week of unlabelled sessions covers an incident review
DEFAULT_LABELLED_RETENTION_S: Final = 90 * 86_400.0  # labelled sessions are the calibration datasets
DEFAULT_MAX_BYTES: Final = 256 * 1024 * 1024  # session bodies (JSON); the file adds indexes on top
_KEY_BYTES = 32  # the pseudonyms' key (blake2b takes up to 64)
# A tool call's input/output hash kept verbatim: hex digits, optionally named (`sha256:9f2c…`).
_DIGEST: Final = re2.compile(r"(?:[A-Za-z0-9_-]{1,32}:)?[0-9a-fA-F]{16,}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY, agent TEXT NOT NULL, flow TEXT NOT NULL, time REAL NOT NULL,
    stored_at REAL NOT NULL, version TEXT, model TEXT, failure_mode TEXT, tool TEXT, outcome TEXT,
    sampled INTEGER NOT NULL, flagged INTEGER NOT NULL, labelled INTEGER NOT NULL DEFAULT 0,
    body BLOB NOT NULL, size INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_time ON sessions(time);
CREATE INDEX IF NOT EXISTS sessions_prune ON sessions(labelled, flagged, stored_at);
CREATE TABLE IF NOT EXISTS session_slos (
    session_id TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE, slo TEXT NOT NULL,
    bad_events INTEGER NOT NULL, burn REAL NOT NULL, PRIMARY KEY (session_id, slo));
CREATE INDEX IF NOT EXISTS session_slos_slo ON session_slos(slo);
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
    judge TEXT NOT NULL, judge_version TEXT NOT NULL, score REAL, passed INTEGER, explanation TEXT,
    flagged INTEGER NOT NULL, created_at REAL NOT NULL,
    label TEXT, reviewer TEXT, note TEXT, labelled_at REAL, UNIQUE (session_id, judge));
CREATE INDEX IF NOT EXISTS reviews_queue ON reviews(label, flagged, created_at);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS agreements (
    agent TEXT NOT NULL, judge TEXT NOT NULL, judge_version TEXT NOT NULL, ratio REAL NOT NULL,
    n INTEGER NOT NULL, source TEXT NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (agent, judge, judge_version));
"""


@dataclass(frozen=True)
class SessionRecord:
    """A session to store: its body (as posted) and what retention and grouping need."""

    session_id: str
    agent: str
    flow: str
    time: float
    body: dict[str, Any]
    sampled: bool
    version: str | None = None
    model: str | None = None
    failure_mode: str | None = None
    tool: str | None = None
    outcome: str | None = None
    # SLO name → (bad events, budget burned) for the SLIs that marked this session bad.
    bad_slos: dict[str, tuple[int, float]] = field(default_factory=dict)
    flagged: bool = False  # a judge failed it (even one no SLO uses); bad SLOs flag it too


class EncodedSession(NamedTuple):
    """A session ready for the store: its record and its redacted JSON body (`SessionStore.encode`)."""

    record: SessionRecord
    body: bytes


@dataclass(frozen=True)
class ReviewRecord:
    """One judge's verdict (or an SLI's) on a stored session, reviewable by a human."""

    session_id: str
    judge: str
    judge_version: str
    score: float | None
    passed: bool | None
    explanation: str
    flagged: bool


class SessionStore:
    """A bounded, redacted SQLite store of sessions and reviews. Not thread-safe: use from one thread."""

    def __init__(
        self,
        path: str = ":memory:",
        *,
        redactor: Redactor | None = None,
        retention_s: float = DEFAULT_RETENTION_S,
        labelled_retention_s: float = DEFAULT_LABELLED_RETENTION_S,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.path = path
        redactor = redactor if redactor is not None else Redactor()
        self.retention_s = retention_s
        self.labelled_retention_s = labelled_retention_s
        self.max_bytes = max_bytes
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        if path != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a power cut may lose the last sessions, never corrupt the file.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(_SCHEMA)
        self.redactor = replace(redactor, key=self._redaction_key())
        self.total_bytes = int(self.db.execute("SELECT COALESCE(SUM(size), 0) FROM sessions").fetchone()[0])

    def close(self) -> None:
        self.db.close()

    def _redaction_key(self) -> bytes:
        """The key of this store's pseudonyms: made once, kept with the data it keys."""
        self.db.execute(
            "INSERT OR IGNORE INTO meta (name, value) VALUES ('redaction_key', ?)",
            (secrets.token_bytes(_KEY_BYTES),),
        )
        return bytes(self.db.execute("SELECT value FROM meta WHERE name = 'redaction_key'").fetchone()[0])

    def _sid(self, session_id: str) -> str:
        """The stored (pseudonymised) form of a session id; the same for a stored one."""
        return self.redactor.ident(session_id)

    def _ident(self, value: str | None) -> str | None:
        return None if value is None else self.redactor.ident(value)

    def _tx(self) -> _Tx:
        return _Tx(self.db)

    # --- writes ---

    def has(self, session_id: str) -> bool:
        return (
            self.db.execute(
                "SELECT 1 FROM sessions WHERE session_id = ?", (self._sid(session_id),)
            ).fetchone()
            is not None
        )

    def encode(self, record: SessionRecord) -> EncodedSession:
        """Redact and serialise a session for `insert`. Touches no database, so any thread may call it:
        the judging pipeline does this text work on its text thread, not on the store's."""
        sid = self._sid(record.session_id)
        body = self.redactor.value(record.body)
        if isinstance(body, dict) and "session_id" in body:
            body["session_id"] = sid  # the same pseudonym as the column, not a second redaction
        if isinstance(body, dict):
            self._keep_evidence(record.body.get("tool_calls"), body.get("tool_calls"))
        redacted = replace(
            record,
            session_id=sid,
            version=self._ident(record.version),
            model=self._ident(record.model),
            failure_mode=self._ident(record.failure_mode),
            tool=self._ident(record.tool),
        )
        return EncodedSession(redacted, orjson.dumps(body))

    def _keep_evidence(self, posted: Any, redacted: Any) -> None:
        """Put the tool calls' evidence back after the body's redaction, so a call stays traceable:
        a hex digest verbatim (a one-way hash holds no personal data, yet about one sha256 in 500 holds
        a Luhn-valid digit run the text redactor would cut out as a card), anything else, the parent
        task id included, pseudonymised like a session id."""
        if not (isinstance(posted, list) and isinstance(redacted, list) and len(posted) == len(redacted)):
            return
        for call, out in zip(posted, redacted, strict=True):
            if not (isinstance(call, dict) and isinstance(out, dict)):
                continue
            for key in EVIDENCE:
                value = call.get(key)
                if isinstance(value, str):
                    out[key] = value if _DIGEST.fullmatch(value) else self.redactor.ident(value)

    def add(self, records: Iterable[SessionRecord], reviews: Iterable[ReviewRecord] = ()) -> int:
        """Store sessions (redacted) and reviews in one transaction; returns how many were new."""
        return self.insert([self.encode(r) for r in records], reviews)

    def insert(self, sessions: Iterable[EncodedSession], reviews: Iterable[ReviewRecord] = ()) -> int:
        """Store encoded sessions and reviews in one transaction; returns how many sessions were new."""
        now = time.time()
        added = 0
        with self._tx():
            for r, body in sessions:
                cur = self.db.execute(
                    "INSERT OR IGNORE INTO sessions (session_id, agent, flow, time, stored_at, version,"
                    " model, failure_mode, tool, outcome, sampled, flagged, body, size)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        r.session_id,
                        r.agent,
                        r.flow,
                        r.time,
                        now,
                        r.version,
                        r.model,
                        r.failure_mode,
                        r.tool,
                        r.outcome,
                        int(r.sampled),
                        int(r.flagged or bool(r.bad_slos)),
                        body,
                        len(body),
                    ),
                )
                if cur.rowcount:
                    added += 1
                    self.total_bytes += len(body)
                    self._mark_bad(r.session_id, r.bad_slos)
            for review in reviews:
                self._add_review(review, now)
        return added

    def _mark_bad(self, session_id: str, bad_slos: dict[str, tuple[int, float]]) -> None:
        if not bad_slos:
            return
        self.db.executemany(
            "INSERT INTO session_slos (session_id, slo, bad_events, burn) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (session_id, slo) DO UPDATE SET bad_events = bad_events + excluded.bad_events,"
            " burn = burn + excluded.burn",
            [(session_id, slo, n, burn) for slo, (n, burn) in bad_slos.items()],
        )
        self.db.execute("UPDATE sessions SET flagged = 1 WHERE session_id = ?", (session_id,))

    def _add_review(self, r: ReviewRecord, now: float) -> None:
        sid = self._sid(r.session_id)
        self.db.execute(
            "INSERT INTO reviews (session_id, judge, judge_version, score, passed, explanation, flagged,"
            " created_at) SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS"
            " (SELECT 1 FROM sessions WHERE session_id = ?)"
            " ON CONFLICT (session_id, judge) DO UPDATE SET judge_version = excluded.judge_version,"
            " score = excluded.score, passed = excluded.passed, explanation = excluded.explanation,"
            " flagged = excluded.flagged",
            (
                sid,
                r.judge,
                r.judge_version,
                r.score,
                None if r.passed is None else int(r.passed),
                self.redactor.text(r.explanation),
                int(r.flagged),
                now,
                sid,
            ),
        )

    def add_verdict(self, review: ReviewRecord, bad_slos: dict[str, tuple[int, float]]) -> bool:
        """Attach a judge's verdict to a stored session (and the SLOs it made bad); False if not stored."""
        return self.add_verdicts([(review, bad_slos)]) == 1

    def add_verdicts(self, verdicts: Iterable[tuple[ReviewRecord, dict[str, tuple[int, float]]]]) -> int:
        """`add_verdict` for many, in one transaction; returns how many sessions were stored to attach to."""
        attached = 0
        now = time.time()
        with self._tx():
            for review, bad_slos in verdicts:
                if not self.has(review.session_id):
                    continue
                attached += 1
                self._add_review(review, now)
                self._mark_bad(self._sid(review.session_id), bad_slos)
                if review.flagged:
                    self.db.execute(
                        "UPDATE sessions SET flagged = 1 WHERE session_id = ?",
                        (self._sid(review.session_id),),
                    )
        return attached

    def label(self, review_id: int, label: str, reviewer: str | None, note: str | None) -> dict[str, Any]:
        """Record a human label; returns the updated review. KeyError when there is no such review."""
        if label not in LABELS:
            raise ValueError(f"label {label!r} is not one of {', '.join(LABELS)}")
        with self._tx():
            cur = self.db.execute(
                "UPDATE reviews SET label = ?, reviewer = ?, note = ?, labelled_at = ? WHERE id = ?",
                (
                    label,
                    self.redactor.text(reviewer) if reviewer else reviewer,
                    self.redactor.text(note) if note else note,
                    time.time(),
                    review_id,
                ),
            )
            if not cur.rowcount:
                raise KeyError(review_id)
            self.db.execute(
                "UPDATE sessions SET labelled = 1"
                " WHERE session_id = (SELECT session_id FROM reviews WHERE id = ?)",
                (review_id,),
            )
        return self.review(review_id)

    def set_agreement(self, agent: str, judge: str, version: str, ratio: float, n: int, source: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO agreements VALUES (?, ?, ?, ?, ?, ?, ?)",
            (agent, judge, version, ratio, n, source, time.time()),
        )

    def prune(self, now: float | None = None) -> int:
        """Apply the retention time and size limits; returns how many sessions were deleted."""
        now = time.time() if now is None else now
        with self._tx():
            deleted = self.db.execute(
                "DELETE FROM sessions WHERE (labelled = 0 AND stored_at < ?) OR stored_at < ?",
                (now - self.retention_s, now - self.labelled_retention_s),
            ).rowcount
            self.total_bytes = int(
                self.db.execute("SELECT COALESCE(SUM(size), 0) FROM sessions").fetchone()[0]
            )
            excess = self.total_bytes - self.max_bytes
            if excess > 0:
                # Least valuable first: unflagged, then flagged, then labelled; oldest first in each.
                deleted += self.db.execute(
                    "DELETE FROM sessions WHERE session_id IN (SELECT session_id FROM"
                    " (SELECT session_id, size, SUM(size) OVER"
                    " (ORDER BY labelled, flagged, stored_at, session_id) AS cum FROM sessions)"
                    " WHERE cum - size < ?)",
                    (excess,),
                ).rowcount
                self.total_bytes = int(
                    self.db.execute("SELECT COALESCE(SUM(size), 0) FROM sessions").fetchone()[0]
                )
        return deleted

    # --- reads ---

    def session(self, session_id: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT * FROM sessions WHERE session_id = ?", (self._sid(session_id),)
        ).fetchone()
        return None if row is None else _session_dict(row)

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0])

    def bad_sessions(self, slo: str, since: float, agent: str | None = None) -> list[dict[str, Any]]:
        """Sessions bad for an SLO since a time, with their burn, for the top-contributors view."""
        rows = self.db.execute(
            "SELECT s.session_id, s.agent, s.flow, s.time, s.version, s.model, s.failure_mode, s.tool,"
            " s.outcome, b.bad_events, b.burn, s.body FROM session_slos b JOIN sessions s USING (session_id)"
            " WHERE b.slo = ? AND s.time >= ? AND (? IS NULL OR s.agent = ?)"
            " ORDER BY b.burn DESC, s.time DESC",
            (slo, since, agent, agent),
        ).fetchall()
        return [dict(row) | {"body": orjson.loads(row["body"])} for row in rows]

    def review(self, review_id: int) -> dict[str, Any]:
        row = self.db.execute(_REVIEW_SELECT + " WHERE r.id = ?", (review_id,)).fetchone()
        if row is None:
            raise KeyError(review_id)
        return _review_dict(row)

    def reviews(
        self,
        *,
        status: str = "pending",
        judge: str | None = None,
        agent: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """The review queue: flagged first, newest first; `status` is pending, labelled or all."""
        where = {"pending": "r.label IS NULL", "labelled": "r.label IS NOT NULL", "all": "1"}[status]
        rows = self.db.execute(
            _REVIEW_SELECT + f" WHERE {where} AND (? IS NULL OR r.judge = ?) AND (? IS NULL OR s.agent = ?)"
            " ORDER BY r.flagged DESC, r.created_at DESC, r.id DESC LIMIT ? OFFSET ?",
            (judge, judge, agent, agent, limit, offset),
        ).fetchall()
        return [_review_dict(row) for row in rows]

    def labelled(self, *, judge: str | None = None, agent: str | None = None) -> Iterator[dict[str, Any]]:
        """Every labelled review with its session, oldest first (the datasets' raw material)."""
        rows = self.db.execute(
            _REVIEW_SELECT + " WHERE r.label IS NOT NULL AND (? IS NULL OR r.judge = ?)"
            " AND (? IS NULL OR s.agent = ?) ORDER BY r.labelled_at, r.id",
            (judge, judge, agent, agent),
        )
        for row in rows:
            yield _review_dict(row)

    def label_agreement(self, agent: str, judge: str, version: str) -> tuple[float, int] | None:
        """Share of labelled verdicts of one judge version that humans agreed with, and how many."""
        rows = self.db.execute(
            "SELECT r.label, r.passed FROM reviews r JOIN sessions s USING (session_id)"
            " WHERE s.agent = ? AND r.judge = ? AND r.judge_version = ? AND r.label IS NOT NULL"
            " AND r.passed IS NOT NULL",
            (agent, judge, version),
        ).fetchall()
        pairs = [(bool(p), human_pass(label, bool(p))) for label, p in rows]
        usable = [(judged, human) for judged, human in pairs if human is not None]
        if not usable:
            return None
        return sum(judged == human for judged, human in usable) / len(usable), len(usable)

    def agreements(self) -> list[dict[str, Any]]:
        return [
            dict(r) for r in self.db.execute("SELECT * FROM agreements ORDER BY agent, judge, judge_version")
        ]


_REVIEW_SELECT = (
    "SELECT r.id, r.session_id, s.agent, s.flow, r.judge, r.judge_version, r.score, r.passed, r.explanation,"
    " r.flagged, r.created_at, r.label, r.reviewer, r.note, r.labelled_at, s.body FROM reviews r"
    " JOIN sessions s USING (session_id)"
)


def _review_dict(row: sqlite3.Row) -> dict[str, Any]:
    out = {k: row[k] for k in row.keys() if k != "body"}
    out["judge"] = out["judge"] or None
    out["passed"] = None if row["passed"] is None else bool(row["passed"])
    out["flagged"] = bool(row["flagged"])
    out["session"] = orjson.loads(row["body"])
    return out


def _session_dict(row: sqlite3.Row) -> dict[str, Any]:
    out = {k: row[k] for k in row.keys() if k not in ("body", "size")}
    for flag in ("sampled", "flagged", "labelled"):
        out[flag] = bool(out[flag])
    out["session"] = orjson.loads(row["body"])
    return out


class _Tx:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
