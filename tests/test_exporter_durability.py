"""Durability: counters survive restarts and kill -9; acknowledged events are counted exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentslo import names
from agentslo.exporter import persist
from agentslo.exporter.config import ExporterConfig
from agentslo.exporter.ingest import Batch, Ingestor
from agentslo.exporter.persist import FOLD_EVERY, SPAN_KEY, Persistence
from agentslo.spec import parse_spec

SPEC = """
version: agent-slo/v1
agent: bot
owners: {team: {team: t}}
flows: {refund: {risk: billing}, faq: {risk: faq}}
judges:
  faith: {type: llm, model: m1, version: "3", rubric: "grounded?", pass_threshold: 0.8}
slos:
  conn: {sli: {connection: {}}, objective: 99, owner: team}
  turn: {sli: {latency: {of: turn, under: 1s}}, objective: 95, owner: team}
  synth: {sli: {synthetic: {}}, objective: 99, owner: team}
synthetic:
  target: {type: http, url: "http://127.0.0.1:1/chat"}
"""
B = {"agent": "bot", "flow": "refund"}


def test_restart_resumes_every_counter_gauge_and_key(tmp_path: Path) -> None:
    cfg = ExporterConfig(db_path=str(tmp_path / "c.db"))
    first = Ingestor([parse_spec(SPEC)], cfg)
    batch = [
        {"type": "connection", **B, "ok": False, "version": "7"},
        {"type": "turn", **B, "latency_s": 1.5},
        {"type": "synthetic", **B, "scenario": "s", "passed": False},
    ]
    assert first.apply(batch, idempotency_key="k1").status == 200
    first.record_judge_call("bot", "faith", "3", "ok", 0.25)
    first.set_judge_agreement("bot", "faith", "3", 0.75)
    before = list(first.store.values)
    builds = dict(first.store.build_info)
    first.close()

    second = Ingestor([parse_spec(SPEC)], cfg)
    st = second.store
    assert st.value(names.EVENTS_TOTAL, ("bot", "refund", "conn", "bad", "")) == 1.0
    assert st.value(names.EVENTS_TOTAL, ("bot", "refund", "turn", "bad", "")) == 1.0
    fam = st.families[names.TURN_LATENCY_SECONDS]
    sum_part = len(fam.bounds) + 1  # buckets, then the sum
    assert st.value(names.TURN_LATENCY_SECONDS, ("bot", "refund", "turn"), part=sum_part) == 1.5
    assert st.value(names.SYNTHETIC_CONSECUTIVE_FAILURES, ("bot", "refund", "s")) == 1.0
    assert st.value(names.JUDGE_COST_USD_TOTAL, ("bot", "faith", "3", "ok")) == 0.25
    assert st.value(names.JUDGE_AGREEMENT_RATIO, ("bot", "faith", "3")) == 0.75
    assert st.build_info == builds
    persisted = {k: v for k, v in zip(first.store.keys, before, strict=True) if k is not None}
    assert {k: v for k, v in zip(st.keys, st.values, strict=True) if k in persisted} == persisted
    replay = second.apply(batch, idempotency_key="k1")
    assert replay.replayed and replay.status == 200
    assert st.value(names.EVENTS_TOTAL, ("bot", "refund", "conn", "bad", "")) == 1.0  # not counted twice
    second.close()


def test_a_failed_commit_counts_nothing(tmp_path: Path) -> None:
    ing = Ingestor([parse_spec(SPEC)], ExporterConfig(db_path=str(tmp_path / "c.db")))
    ing.db.db.execute(
        "CREATE TRIGGER no_writes BEFORE INSERT ON journal BEGIN SELECT RAISE(FAIL, 'disk says no'); END"
    )
    with pytest.raises(Exception, match="disk says no"):
        ing.apply([{"type": "connection", **B, "ok": False}])
    assert ing.store.value(names.EVENTS_TOTAL, ("bot", "refund", "conn", "bad", "")) == 0.0
    ing.close()


# --- kill -9 under load ---


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(spec: Path, db: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentslo.cli", "serve", str(spec), "--port", str(port), "--db", str(db)],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "AGENT_SLO_JUDGE_PROCESS": "0"},  # these tests send no sessions
        stderr=subprocess.PIPE,
    )


async def wait_ready(session: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "exited"
        try:
            async with session.get(f"{url}/readyz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("exporter did not become ready")


async def scrape(session: aiohttp.ClientSession, url: str) -> dict[tuple[str, tuple], float]:
    async with session.get(f"{url}/metrics") as resp:
        text = await resp.text()
    # the exporter's own health, and its process metrics (a restart resets its CPU seconds)
    own = (names.INGEST_EVENTS_TOTAL, names.INGEST_REJECTED_TOTAL, names.PROCESS_PREFIX)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if f.type in ("counter", "histogram") and not s.name.startswith(own)
    }


def batch(n: int, i: int) -> list[dict[str, Any]]:
    return [
        {"type": "connection", "agent": "bot", "flow": "refund" if j % 2 else "faq", "ok": (i + j) % 3 != 0}
        for j in range(n)
    ]


@pytest.mark.timeout(120)
async def test_kill_9_under_load_loses_no_acknowledged_event(tmp_path: Path) -> None:
    spec, db, port = tmp_path / "bot.slo.yaml", tmp_path / "counters.db", free_port()
    spec.write_text(SPEC)
    url = f"http://127.0.0.1:{port}"
    sent: dict[str, list[dict[str, Any]]] = {}
    acked: set[str] = set()
    stop = asyncio.Event()

    async def sender(worker: int, session: aiohttp.ClientSession) -> None:
        i = 0
        while not stop.is_set():
            key = f"w{worker}-{i}"
            sent[key] = batch(50, i)
            try:
                async with session.post(
                    f"{url}/v1/events", json=sent[key], headers={"Idempotency-Key": key}
                ) as r:
                    if r.status == 200:
                        acked.add(key)
            except (TimeoutError, aiohttp.ClientError):
                await asyncio.sleep(0.01)  # the exporter is gone: this batch is unacknowledged
            i += 1

    proc = start(spec, db, port)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            await wait_ready(session, url, proc)
            workers = [asyncio.create_task(sender(w, session)) for w in range(4)]
            await asyncio.sleep(1.0)
            last_seen = await scrape(session, url)
            await asyncio.sleep(0.5)
            os.kill(proc.pid, signal.SIGKILL)  # mid-load, with batches in flight
            proc.wait(timeout=10)
            await asyncio.sleep(0.3)
            stop.set()
            await asyncio.gather(*workers)
            assert len(acked) > 20, "the load did not get going"

            proc = start(spec, db, port)
            await wait_ready(session, url, proc)
            after_restart = await scrape(session, url)
            decreased = {
                k: (v, after_restart.get(k)) for k, v in last_seen.items() if after_restart.get(k, -1) < v
            }
            assert not decreased, decreased

            good = sum(ev["ok"] for k in acked for ev in sent[k])
            counted_good = sum(
                v
                for (n, labels), v in after_restart.items()
                if n == names.EVENTS_TOTAL and ("outcome", "good") in labels
            )
            unacked = [k for k in sent if k not in acked]
            at_most = good + sum(ev["ok"] for k in unacked for ev in sent[k])
            assert good <= counted_good <= at_most  # every acknowledged event is there

            # A client retries what was never acknowledged; idempotency makes the total exact.
            for key in unacked:
                async with session.post(
                    f"{url}/v1/events", json=sent[key], headers={"Idempotency-Key": key}
                ) as r:
                    assert r.status == 200
            final = await scrape(session, url)
            for outcome, want in (("good", True), ("bad", False)):
                counted = sum(
                    v
                    for (n, labels), v in final.items()
                    if n == names.EVENTS_TOTAL and ("outcome", outcome) in labels
                )
                assert counted == sum(ev["ok"] is want for evs in sent.values() for ev in evs)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_idempotency_keys_expire_after_the_horizon(tmp_path: Path) -> None:
    ing = Ingestor(
        [parse_spec(SPEC)], ExporterConfig(db_path=str(tmp_path / "c.db"), idempotency_horizon_s=0.2)
    )
    event = [{"type": "connection", **B, "ok": False}]
    assert ing.apply(event, idempotency_key="k").status == 200
    assert ing.apply(event, idempotency_key="k").replayed
    time.sleep(0.3)
    again = ing.apply(event, idempotency_key="k")  # past the horizon: a new batch, counted again
    assert again.status == 200 and not again.replayed
    assert ing.store.value(names.EVENTS_TOTAL, ("bot", "refund", "conn", "bad", "")) == 2.0
    ing.close()


def test_same_key_twice_in_one_group_commit_counts_once(tmp_path: Path) -> None:
    ing = Ingestor([parse_spec(SPEC)], ExporterConfig(db_path=str(tmp_path / "c.db")))
    event = [{"type": "connection", **B, "ok": False}]
    first, retry, other = ing.apply_many(
        [Batch(event, key="k"), Batch(event, key="k"), Batch([*event, *event], key="k")]
    )
    assert (first.status, first.replayed) == (200, False)
    assert (retry.status, retry.replayed) == (200, True)
    assert other.status == 422
    assert ing.store.value(names.EVENTS_TOTAL, ("bot", "refund", "conn", "bad", "")) == 1.0
    ing.close()


def test_the_journal_folds_into_sums_and_last_values(tmp_path: Path) -> None:
    """Commits go to an append-only journal; folding (every FOLD_EVERY commits, on open and on close)
    sums the adds and keeps the last of the sets, and a reopened file shows the same values."""
    path = str(tmp_path / "j.db")
    db = Persistence(path)
    a, b = db.commit([], [], new_series=["a", "b"])
    commits = FOLD_EVERY + 7  # one fold on the way, seven commits left in the journal
    for i in range(commits):
        db.commit([(a, 1.0), (b, 0.5)], [(b, float(i))])
    assert 0 < db.journal < FOLD_EVERY
    crashed = Persistence(path)  # opened without close(): what a kill -9 leaves
    assert {key: value for _, key, value in crashed.slots()} == {"a": commits, "b": commits - 1.0}
    assert crashed.journal == 0
    db.db.close()
    crashed.close()


def test_span_keys_are_filed_once_and_only_as_many_as_the_index_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request's OTLP span keys are one row of `spans` (not also a column of the journal), and the
    rows beyond the newest `max_span_keys` keys are forgotten: the span index loads no more on start."""
    clock = iter(range(1_000_000, 2_000_000))
    monkeypatch.setattr(persist.time, "time", lambda: float(next(clock)))
    db = Persistence(str(tmp_path / "x.db"))
    for i in range(10):
        db.commit([], [], spans=bytes([i + 1]) * (SPAN_KEY * 100))  # a request of 100 spans
    stored = db.db.execute("SELECT sum(length(keys)) FROM spans").fetchone()[0]
    assert stored == 10 * 100 * SPAN_KEY
    assert "spans" not in {row[1] for row in db.db.execute("PRAGMA table_info(journal)")}
    assert db.forget_spans_beyond(250) == 7  # the three newest rows hold the 250 newest keys
    assert [keys[:1] for keys, _ in db.spans()] == [b"\x0a", b"\x09", b"\x08"]
    assert db.forget_spans_beyond(250) == 0
    db.close()


@pytest.mark.parametrize("scrub", ["ON", "FAST"])
def test_forgotten_span_keys_are_not_scrubbed_page_by_page_and_the_connection_keeps_its_setting(
    tmp_path: Path, scrub: str
) -> None:
    db = Persistence(str(tmp_path / "x.db"))
    db.db.execute(f"PRAGMA secure_delete={scrub}")  # ON: as SQLite built with SECURE_DELETE has it (Debian)
    for _ in range(40):
        db.commit([], [], spans=os.urandom(SPAN_KEY * 1000))  # rows of ~24 KB: six overflow pages each
    db.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert db.forget_spans_beyond(10 * 1000) == 30
    assert db.forget_before(time.time() + 1) == 0  # and the ten left, through the other delete
    frames = db.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    assert frames < 20  # zeroing the freed pages wrote ~240 frames (one per 4 KB page)
    assert db.db.execute("PRAGMA secure_delete").fetchone()[0] == {"ON": 1, "FAST": 2}[scrub]
    db.close()


def test_a_file_of_the_version_that_filed_span_keys_through_the_journal_opens_and_files_them_once(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "x.db")
    Persistence(path).close()
    old = sqlite3.connect(path)  # as that version left it: a spans column and its trigger
    old.executescript(
        """
        DROP TRIGGER journal_write; DROP VIEW journal_in;
        ALTER TABLE journal ADD COLUMN spans BLOB;
        CREATE TRIGGER journal_sides AFTER INSERT ON journal BEGIN
            INSERT INTO spans (created, keys) SELECT NEW.created, NEW.spans WHERE NEW.spans IS NOT NULL;
        END;
        INSERT INTO journal (adds, sets, answers, created, spans) VALUES (x'', x'', '[]', 1.0, zeroblob(48));
        """
    )
    old.close()
    db = Persistence(path)
    db.commit([], [], spans=b"\x01" * SPAN_KEY)
    assert [len(keys) for keys, _ in db.spans()] == [SPAN_KEY, 2 * SPAN_KEY]  # the new row, the old one
    names_ = {row[0] for row in db.db.execute("SELECT name FROM sqlite_schema WHERE type = 'trigger'")}
    assert names_ == {"journal_write"}
    assert db.db.execute("SELECT count(*) FROM journal WHERE spans IS NOT NULL").fetchone()[0] == 0
    db.close()


def test_the_exporter_forgets_span_keys_beyond_its_bound_as_they_arrive(tmp_path: Path) -> None:
    spec = parse_spec(SPEC)
    config = ExporterConfig(db_path=str(tmp_path / "x.db"), max_span_keys=1000)
    ing = Ingestor([spec], config)
    event = {"type": "connection", **B, "ok": True}
    for i in range(30):  # 30 requests of 100 spans: a tenth of the bound each, so each one purges
        keys = b"".join((i * 100 + j + 1).to_bytes(SPAN_KEY, "big") for j in range(100))
        assert ing.apply_many([Batch([event] * 100, span_keys=keys)])[0].status == 200
    assert ing.db is not None
    kept = sum(len(keys) for keys, _ in ing.db.spans()) // SPAN_KEY
    assert 1000 <= kept <= 1200
