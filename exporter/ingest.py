"""The ingest core: validate, classify, persist and count a batch, atomically.

`Ingestor.apply()` is what `POST /v1/events` runs, and what in-process producers (the judges, the
prober in the demo) call directly. Under one lock it classifies the batch into deltas, commits
them to SQLite with the Idempotency-Key and the answer in the same transaction, and only then adds
them to the in-memory counters; a refused batch changes no counter.

    >>> from agentslo.spec import load_spec
    >>> ing = Ingestor([load_spec("examples/cx-support.slo.yaml")], ExporterConfig())
    >>> ing.apply([{"type": "connection", "agent": "cx-support", "flow": "refund", "ok": True}]).status
    200
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from agentslo import names
from agentslo.exporter import validate
from agentslo.exporter.catalog import Catalog
from agentslo.exporter.classify import Classifier, Deltas
from agentslo.exporter.config import ExporterConfig
from agentslo.exporter.events import MAX_LABEL_CHARS, MAX_USD
from agentslo.exporter.persist import ROW, SPAN_KEY, Persistence
from agentslo.exporter.planning import Planner
from agentslo.exporter.replay import Answers
from agentslo.exporter.store import NOT_PERSISTED, Store
from agentslo.exporter.wire import Decoded, IngestResult, error
from agentslo.exporter.wire import loads as wire_loads
from agentslo.spec import Spec

PURGE_EVERY_S = 60.0  # how often expired idempotency keys are deleted
MAX_JUDGE_OUTCOMES = 8  # distinct judge-call outcomes per judge before folding into `other`


@dataclass
class Batch:
    """One request's events (or the error parsing them) and how to apply them."""

    events: Any
    partial: bool = False
    key: str | None = None
    digest: str | None = None
    # One dedupe key per event (OTLP: trace and span id, `SPAN_KEY` bytes each), filed with the counts
    # of the events that count: one row per request (`exporter.otlp.seen`)
    span_keys: bytes | None = None
    dropped: int = 0  # events the sending client had to drop (X-Agent-SLO-Dropped), counted when applied


def _merge(into: Deltas, deltas: Deltas) -> None:
    into.absorb(deltas)
    adds = into.adds
    for slot, amount in deltas.adds.items():
        adds[slot] = adds.get(slot, 0.0) + amount
    into.sets.update(deltas.sets)
    into.exemplars.update(deltas.exemplars)
    for agent, parts in deltas.build.items():
        current = into.build.setdefault(agent, [None, None, None])
        for i, part in enumerate(parts):
            if part is not None:
                current[i] = part
    into.events += deltas.events


@dataclass
class Group:
    """Batches prepared together: their answers and the merged deltas of those that count."""

    results: list[IngestResult] = field(default_factory=list)
    deltas: Deltas = field(default_factory=Deltas)
    answers: list[tuple[str, str, int, bytes]] = field(default_factory=list)
    spans: list[bytes] = field(default_factory=list)  # the counted events' span keys, per batch
    members: list[int] = field(default_factory=list)  # indices of the batches whose deltas are merged
    aliases: list[tuple[int, int]] = field(default_factory=list)  # (retry, first) with the same key

    def fail(self, exc: BaseException) -> None:
        """The commit failed and rolled back: none of the member batches counted."""
        for i in self.members:
            problem = f"could not store the batch ({type(exc).__name__}: {exc}); nothing was counted"
            self.results[i] = error(503, problem)
        for retry, first in self.aliases:
            self.results[retry] = self.results[first]


def counted_keys(keys: bytes, refused: Iterable[int]) -> bytes:
    """The span keys (`SPAN_KEY` bytes each) of the events not refused."""
    gone = set(refused)
    if not gone:
        return keys
    spans = range(0, len(keys), SPAN_KEY)
    return b"".join(keys[i : i + SPAN_KEY] for i in spans if i // SPAN_KEY not in gone)


def _first_agent(events: Any, bad: set[int]) -> str | None:
    """The agent of a counted batch's first valid event: whose client reported drops with it."""
    if isinstance(events, Decoded):
        first = events.structs[0] if events.structs is not None else orjson.loads(events.raw)[0]
        return first.agent if not isinstance(first, dict) else first.get("agent")
    return next((e.get("agent") for i, e in enumerate(events) if i not in bad), None)


def body_hash(raw: bytes, partial: bool) -> str:
    return hashlib.sha256(raw + (b"\x00partial" if partial else b"")).hexdigest()


def _digest(batch: Batch) -> str:
    """The body hash of a batch given as events (in-process callers), or as decoded from a raw body."""
    if isinstance(batch.events, Decoded):
        return body_hash(batch.events.raw, batch.partial)
    return body_hash(orjson.dumps(batch.events, option=orjson.OPT_SORT_KEYS), batch.partial)


class Ingestor:
    """Owns the store, the catalog, the plans, the classifier and the SQLite file of one exporter."""

    def __init__(self, specs: list[Spec], config: ExporterConfig):
        self.config = config
        self.store = Store()
        self.catalog = Catalog(specs, self.store, config)
        self.planner = Planner(self.catalog)
        self.classifier = Classifier(self.planner)
        self.lock = self.store.lock
        self._inflight: set[str] = set()
        self._inflight_lock = threading.Lock()
        self.db_lock = threading.Lock()  # one SQLite transaction at a time, whichever thread commits
        self._judge_outcomes: dict[tuple[str, str], set[str]] = {}
        self._last_purge = 0.0
        self._keys_since_purge = 0
        self._spans_since_purge = 0
        self.memory = Answers(config)  # the Idempotency-Keys' answers when there is no SQLite file
        self.db = Persistence(config.db_path, config.synchronous) if config.db_path else None
        if self.db is not None:
            self.store.load(self.db.slots())
            self.catalog.adopt_restored()
            self.store.build_info = {a: (v[0], v[1], v[2]) for a, v in self.db.builds().items()}
        self._accepted = self.store.slot(names.INGEST_EVENTS_TOTAL, (names.INGEST_ACCEPTED,), persist=False)
        self._rejected = self.store.slot(names.INGEST_EVENTS_TOTAL, (names.INGEST_REJECTED,), persist=False)

    # --- idempotency in flight (the HTTP layer answers 409 while a key is being applied) ---

    def begin(self, key: str) -> bool:
        with self._inflight_lock:
            if key in self._inflight:
                return False
            self._inflight.add(key)
            return True

    def end(self, key: str) -> None:
        with self._inflight_lock:
            self._inflight.discard(key)

    def reject(self, reason: str, events: int = 0) -> None:
        """Count a refused request (and its events) in the exporter's own health counters."""
        with self.lock:
            slot = self.store.slot(names.INGEST_REJECTED_TOTAL, (reason,), persist=False)
            self.store.values[slot] += 1
            self.store.values[self._rejected] += events

    # --- the batch path ---

    def apply(
        self,
        events: list[dict[str, Any]],
        *,
        partial: bool = False,
        idempotency_key: str | None = None,
        digest: str | None = None,
    ) -> IngestResult:
        """Validate, classify, persist and count `events` exactly like `POST /v1/events`."""
        return self.apply_many([Batch(events, partial, idempotency_key, digest)])[0]

    def apply_many(self, batches: list[Batch]) -> list[IngestResult]:
        """Apply several independent batches with one commit (group commit); each is still all-or-nothing."""
        now = time.time()
        with self.lock:
            group = self.prepare_many(batches, now)
            if group.members:
                try:
                    self.persist(group.deltas, now, group.answers, b"".join(group.spans))
                except Exception as exc:
                    group.fail(exc)
                    if len(batches) == 1:
                        raise
                else:
                    self.publish(group.deltas, now)
                    if self.db is None:
                        self.memory.put(group.answers, now)
        return group.results

    def prepare_many(self, batches: list[Batch], now: float) -> Group:
        """Validate and classify batches into one merged set of deltas; nothing is counted yet."""
        group = Group()
        pending: dict[int, float] = {}  # gauge values (synthetic streaks) set by earlier batches
        keys: dict[str, int] = {}  # Idempotency-Key → index of the batch in this group that carries it
        with self.lock:
            for batch in batches:
                first = keys.get(batch.key) if batch.key is not None else None
                if first is not None:  # the same key twice in one group: the second is a retry of the first
                    answer = self._same_key(batch, batches[first], group.results[first])
                    if answer.replayed:
                        group.aliases.append((len(group.results), first))
                    group.results.append(answer)
                    continue
                if batch.key is not None:
                    keys[batch.key] = len(group.results)
                result, deltas = self._prepare(batch, now, pending)
                group.results.append(result)
                if deltas is not None:
                    group.members.append(len(group.results) - 1)
                    _merge(group.deltas, deltas)
                    pending.update(deltas.sets)
                    if batch.key is not None:
                        body = orjson.dumps(result.body)
                        group.answers.append((batch.key, batch.digest or "", result.status, body))
                    if batch.span_keys:
                        group.spans.append(counted_keys(batch.span_keys, result.body.get("rejected", ())))
            group.deltas.finish()
        return group

    def _same_key(self, batch: Batch, first: Batch, answer: IngestResult) -> IngestResult:
        if batch.digest is None:
            batch.digest = _digest(batch)
        if batch.digest != first.digest:
            self.reject("conflict")
            return error(
                422,
                "this Idempotency-Key was used with a different body",
                [{"index": None, "field": "Idempotency-Key", "problem": "reused"}],
            )
        return IngestResult(answer.status, answer.body, replayed=True)

    def _prepare(
        self, batch: Batch, now: float, pending: dict[int, float]
    ) -> tuple[IngestResult, Deltas | None]:
        """The answer to one batch and, when it counts, its deltas (called with the lock held)."""
        events, partial, key = batch.events, batch.partial, batch.key
        if key is not None and batch.digest is None:
            batch.digest = _digest(batch)
        if not isinstance(events, list | Decoded) or not events:
            self.reject("invalid_body")
            return error(
                400,
                "the batch is empty: send a JSON array or NDJSON of events",
                [{"index": None, "field": "", "problem": "no events"}],
            ), None
        if len(events) > self.config.max_batch_events:
            self.reject("too_large", len(events))
            return error(
                413,
                f"at most {self.config.max_batch_events} events per batch; split it",
                [{"index": None, "field": "", "problem": f"{len(events)} events"}],
            ), None
        if key is not None:
            since = now - self.config.idempotency_horizon_s
            stored = self.db.idempotent(key, since) if self.db is not None else self.memory.get(key, since)
            if stored is not None:
                if stored[0] != batch.digest:
                    self.reject("conflict")
                    return error(
                        422,
                        "this Idempotency-Key was used with a different body",
                        [{"index": None, "field": "Idempotency-Key", "problem": "reused"}],
                    ), None
                return IngestResult(stored[1], orjson.loads(stored[2]), replayed=True), None
        mark = self._begin()
        if isinstance(events, Decoded):
            deltas = self.classifier.run_decoded(events, now, pending)
            if deltas is None:  # some check failed: the authoritative path finds and names every problem
                events = wire_loads(events.raw)
                deltas = self.classifier.run(events, now, pending)
        else:
            deltas = self.classifier.run(events, now, pending)
        rejected: list[dict[str, Any]] = []
        omitted = 0
        bad: set[int] = set()
        if deltas is None:
            found = validate.find(self.planner, events, now)
            rejected, omitted, bad = found
            if not bad:  # the fast path and the validator disagree: refuse rather than guess
                rejected = [{"index": None, "field": "", "problem": "internal classification error"}]
            # the series and scenario names that the refused events created are taken back
            self._rollback(mark)
            good = [e for i, e in enumerate(events) if i not in bad] if bad else []
            deltas = self.classifier.run(good, now, pending) if partial and good else None
            if deltas is None:
                self._rollback(mark)
                self.reject("invalid_event", len(events))
                answer = error(
                    422,
                    f"{len(bad) or 1} of {len(events)} events are invalid; nothing was counted",
                    rejected,
                )
                if omitted:
                    answer.body["omitted"] = omitted
                return answer, None
            self.store.values[self._rejected] += len(bad)
        body: dict[str, Any] = {"accepted": deltas.events}
        status = 200
        if rejected:
            status = 207
            body |= {"rejected": sorted(bad), "detail": rejected}
            if omitted:
                body["omitted"] = omitted
        deltas.adds[self._accepted] = deltas.adds.get(self._accepted, 0.0) + deltas.events
        agent = _first_agent(events, bad) if batch.dropped else None
        if agent is not None:
            slot = self.store.find(names.CLIENT_DROPPED_EVENTS_TOTAL, (agent,))
            if slot is not None:
                deltas.adds[slot] = deltas.adds.get(slot, 0.0) + batch.dropped
        return IngestResult(status, body), deltas

    def _begin(self) -> int:
        """Start a batch that may be refused: what it creates can be taken back by `_rollback()`."""
        self.catalog.begin()
        self.planner.begin()
        return self.store.mark()

    def _rollback(self, mark: int) -> None:
        """A refused batch changes nothing: forget the series, scenario and judge-version names, and
        plans that its events created (with the lock held)."""
        if self.store.rollback(mark) | self.catalog.rollback():
            self.planner.forget_built()
            self.classifier.forget_plans()

    def _builds(self, deltas: Deltas) -> dict[str, tuple[str, str, str]] | None:
        """The build labels once `deltas` are counted (None when they change none)."""
        if not deltas.build:
            return None
        builds = dict(self.store.build_info)
        for agent, parts in deltas.build.items():
            old = builds.get(agent, ("", "", ""))
            builds[agent] = tuple(p if p is not None else o for p, o in zip(parts, old, strict=True))  # type: ignore[assignment]
        return builds

    def persist(
        self,
        deltas: Deltas,
        now: float,
        answers: list[tuple[str, str, int, bytes]] = (),  # type: ignore[assignment]
        spans: bytes = b"",
    ) -> None:
        """Commit deltas (with idempotency answers and span keys) to SQLite; safe to run on another thread."""
        if self.db is None:
            return
        builds = self._builds(deltas)
        with self.db_lock:
            fresh: dict[int, int] = {}  # slot → -(position in `new`) for slots without a row id yet
            new: list[str] = []
            adds, sets = (self._rows(changes, fresh, new) for changes in (deltas.adds, deltas.sets))
            assigned = self.db.commit(
                adds,
                sets,
                {a: list(v) for a, v in builds.items()} if builds is not None else None,
                answers,
                new,
                spans,
            )
            for slot, position in fresh.items():
                self.store.db_ids[slot] = assigned[-position - 1]
            # Keys are forgotten past the horizon and beyond the newest `max_idempotency_keys` (span
            # keys: `max_span_keys`): every minute, or sooner when a tenth of a bound arrived since.
            self._keys_since_purge += len(answers)
            self._spans_since_purge += len(spans) // SPAN_KEY
            config = self.config
            most, spans_most = config.max_idempotency_keys, config.max_span_keys
            if (
                now - self._last_purge > PURGE_EVERY_S
                or self._keys_since_purge > most // 10
                or self._spans_since_purge > spans_most // 10
            ):
                self._last_purge, self._keys_since_purge, self._spans_since_purge = now, 0, 0
                db, horizon = self.db, now - config.idempotency_horizon_s
                db.tidy(
                    lambda: (
                        db.forget_before(horizon),
                        db.forget_beyond(most),
                        db.forget_spans_beyond(spans_most),
                    )
                )

    def _rows(self, changes: dict[int, float], fresh: dict[int, int], new: list[str]) -> np.ndarray:
        """`changes` (slot → amount) as journal rows (row id, amount); slots that have no row id yet
        get a negative placeholder (their key is appended to `new`), in-memory-only slots are left out."""
        ids, keys = self.store.db_ids, self.store.keys
        rows = list(map(ids.__getitem__, changes))  # C-level: no Python per slot in the steady state
        if None in rows:  # the first commit of some series: name them
            for i, slot in enumerate(changes):
                if rows[i] is None:
                    if slot not in fresh:
                        new.append(keys[slot])  # type: ignore[arg-type]  # None only for in-memory slots
                        fresh[slot] = -len(new)
                    rows[i] = fresh[slot]
        out = np.empty(len(rows), dtype=ROW)
        out["id"] = rows
        out["value"] = list(changes.values())
        return out[out["id"] != NOT_PERSISTED] if NOT_PERSISTED in rows else out

    def publish(self, deltas: Deltas, now: float) -> None:
        """Add committed deltas to the in-memory counters that /metrics shows."""
        with self.lock:
            store = self.store
            builds = self._builds(deltas)
            store.add(deltas.adds)
            store.set(deltas.sets)
            for slot, (trace, value) in deltas.exemplars.items():
                store.exemplars[slot] = (trace, value, now)
            if builds is not None:
                store.build_info = builds

    def _commit(self, deltas: Deltas, now: float) -> None:
        """Persist, then count: if the commit fails, nothing changed."""
        with self.lock:
            self.persist(deltas, now)
            self.publish(deltas, now)

    # --- the judges' own metrics ---

    def _judge_labels(self, agent: str, judge: str, judge_version: str) -> tuple[str, list[int]]:
        spec = self.catalog.specs.get(agent)
        if spec is None or judge not in spec.judges:
            raise ValueError(f"unknown agent/judge {agent!r}/{judge!r}")
        if type(judge_version) is not str or not 0 < len(judge_version) <= MAX_LABEL_CHARS:
            raise ValueError(f"judge_version must be a short string, got {judge_version!r}")
        version, folded = self.catalog.judge_version(agent, judge, judge_version)
        return version, [] if folded is None else [folded]

    def record_judge_call(
        self, agent: str, judge: str, judge_version: str, outcome: str, cost_usd: float
    ) -> None:
        """Count one judge call and its cost (agent_slo_judge_calls_total / _cost_usd_total), durably."""
        if not (type(cost_usd) in (int, float) and 0 <= cost_usd <= MAX_USD):
            raise ValueError(f"cost_usd must be a number from 0 to {MAX_USD}, got {cost_usd!r}")
        with self.lock:
            version, folded = self._judge_labels(agent, judge, judge_version)
            label, fold_outcome = self.catalog.bounded(
                self._judge_outcomes,
                (agent, judge),
                names.L_OUTCOME,
                str(outcome),
                MAX_JUDGE_OUTCOMES,
                ("ok", "error"),
            )
            deltas = Deltas(events=0)
            labels = (agent, judge, version, label)
            deltas.adds[self.store.slot(names.JUDGE_CALLS_TOTAL, labels)] = 1.0
            deltas.adds[self.store.slot(names.JUDGE_COST_USD_TOTAL, labels)] = float(cost_usd)
            for slot in [*folded, *([fold_outcome] if fold_outcome is not None else [])]:
                deltas.adds[slot] = deltas.adds.get(slot, 0.0) + 1.0
            self._commit(deltas, time.time())

    def record_override(self, agent: str, flow: str) -> None:
        """Count one override of a held release gate (agent_slo_release_overrides_total), durably.
        `flow` is a declared flow of the agent, or "" for the whole agent (validated by the caller)."""
        with self.lock:
            deltas = Deltas(events=0)
            deltas.adds[self.store.slot(names.RELEASE_OVERRIDES_TOTAL, (agent, flow))] = 1.0
            self._commit(deltas, time.time())

    def set_judge_agreement(self, agent: str, judge: str, judge_version: str, ratio: float) -> None:
        """Set agent_slo_judge_agreement_ratio for a judge version (persisted, so it survives restarts)."""
        if not (type(ratio) in (int, float) and 0 <= ratio <= 1):
            raise ValueError(f"ratio must be between 0 and 1, got {ratio!r}")
        with self.lock:
            version, folded = self._judge_labels(agent, judge, judge_version)
            deltas = Deltas(events=0)
            deltas.sets[self.store.slot(names.JUDGE_AGREEMENT_RATIO, (agent, judge, version))] = float(ratio)
            for slot in folded:
                deltas.adds[slot] = 1.0
            self._commit(deltas, time.time())

    def close(self) -> None:
        if self.db is not None:
            with self.lock:
                self.db.close()
