"""What one unauthenticated request could still do to the exporter (issue 17), class by class.

Each class gets several variants: absurd numbers (refused with a 4xx naming index and field, no
stored sum ever non-finite, no answer contradicting a commit), bounded error answers, refused
batches that leave no trace (series, scenario budget, exposition), and the smaller holes.
"""

from __future__ import annotations

import asyncio
import math
import socket
import sqlite3
import subprocess
import time
import tracemalloc
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from prometheus_client.parser import text_string_to_metric_families

from agentslo import names
from agentslo.exporter import persist, validate, wire
from agentslo.exporter.app import INGESTOR, create_app
from agentslo.exporter.config import ExporterConfig
from agentslo.exporter.events import MAX_SECONDS, MAX_USD
from agentslo.exporter.exposition import render
from agentslo.exporter.ingest import Batch, Ingestor
from agentslo.exporter.intake import server_options
from agentslo.exporter.validate import MAX_DETAIL
from agentslo.spec import parse_spec

SPEC_TEXT = """
version: agent-slo/v1
agent: bot
owners: {team: {team: t}}
exclusions: [test_call]
flows: {refund: {risk: billing}}
tools: [get_order]
judges:
  faith: {type: llm, model: m1, version: "3", rubric: "grounded?", pass_threshold: 0.8}
slos:
  task: {sli: {task: {}}, objective: auto, owner: team}
  cost: {sli: {cost: {under_usd: 0.2}}, objective: 90, owner: team}
  turn: {sli: {latency: {of: turn, under: 1s}}, objective: 95, owner: team}
"""
SPEC = parse_spec(SPEC_TEXT)
B = {"agent": "bot", "flow": "refund"}
TASK = {"type": "task", **B, "outcome": "success"}
TURN = {"type": "turn", **B, "latency_s": 0.5}


@pytest.fixture(autouse=True)
def _no_judge_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_SLO_JUDGE_PROCESS", "0")


async def _client(aiohttp_client: Any, **config: Any) -> Any:
    return await aiohttp_client(create_app([SPEC], ExporterConfig(**config)))


async def _samples(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample but the exporter's own health and process metrics."""
    text = await (await client.get("/metrics")).text()
    own = (names.INGEST_EVENTS_TOTAL, names.INGEST_REJECTED_TOTAL, names.PROCESS_PREFIX)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if not s.name.startswith(own)
    }


def _fronts_refuse(raw: bytes) -> bool:
    """Neither fast front (C++ scanner, msgspec) vouches for `raw`, and the dict path refuses it."""
    ingestor = Ingestor([SPEC], ExporterConfig())
    now = time.time()
    decoded = [wire.decode(raw, scanner=None)]
    if wire.SCANNER is not None:
        decoded.append(wire.decode(raw))
    counted = [d for d in decoded if d is not None and ingestor.classifier.run_decoded(d, now) is not None]
    return not counted and ingestor.classifier.run(orjson.loads(raw), now) is None


# --- 1. absurd numbers ---

ABSURD = [
    ({**TURN, "latency_s": 1e308}, "latency_s"),
    ({**TURN, "latency_s": MAX_SECONDS * 2}, "latency_s"),
    ({**TASK, "duration_s": 1e300}, "duration_s"),
    ({**TASK, "cost_usd": MAX_USD * 10}, "cost_usd"),
    ({**TASK, "cost_usd": 1.7976931348623157e308}, "cost_usd"),
    ({**TASK, "steps": 2**60}, "steps"),
    ({**TASK, "tokens": {"input": 2**63}}, "tokens"),
    ({"type": "tool_call", **B, "tool": "get_order", "outcome": "ok", "latency_s": 1e20}, "latency_s"),
    ({"type": "synthetic", **B, "scenario": "s", "passed": True, "duration_s": 1e10}, "duration_s"),
]


@pytest.mark.parametrize(("event", "field"), ABSURD, ids=[f"{e['type']}-{f}" for e, f in ABSURD])
async def test_an_absurd_number_is_a_422_naming_index_and_field(
    aiohttp_client: Any, event: dict[str, Any], field: str
) -> None:
    client = await _client(aiohttp_client)
    before = await _samples(client)
    resp = await client.post("/v1/events", data=orjson.dumps([TASK, event]), headers=_JSON)
    assert resp.status == 422
    detail = (await resp.json())["detail"]
    assert {"index": 1, "field": field} == {k: detail[0][k] for k in ("index", "field")}, detail
    assert await _samples(client) == before
    assert _fronts_refuse(orjson.dumps([event]))


def test_the_largest_allowed_numbers_keep_every_sum_finite() -> None:
    ingestor = Ingestor([SPEC], ExporterConfig())
    batch = [{**TURN, "latency_s": MAX_SECONDS}, {**TASK, "duration_s": MAX_SECONDS, "cost_usd": MAX_USD}]
    for _ in range(50):
        assert ingestor.apply(batch * 100).status == 200
    assert all(math.isfinite(v) for v in ingestor.store.values)


async def test_a_failing_fold_after_a_commit_never_answers_nothing_was_counted(
    aiohttp_client: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upkeep after a commit (the journal fold) may fail; the batch is committed, so the answer is 200
    and the count stands, in memory and after a restart."""
    db = str(tmp_path / "c.db")

    def broken_fold(self: persist.Persistence) -> None:
        if self.journal:
            raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(persist, "FOLD_EVERY", 1)
    monkeypatch.setattr(persist.Persistence, "fold", broken_fold)
    client = await _client(aiohttp_client, db_path=db)
    for _ in range(3):
        resp = await client.post("/v1/events", data=orjson.dumps([TURN]), headers=_JSON)
        assert resp.status == 200, await resp.text()
    store = client.server.app[INGESTOR].store
    key = ("bot", "refund", "turn")
    assert store.value(
        names.TURN_LATENCY_SECONDS, key, len(store.families[names.TURN_LATENCY_SECONDS].bounds) + 1
    )
    await client.close()
    monkeypatch.undo()
    restarted = Ingestor([SPEC], ExporterConfig(db_path=db))
    fam = restarted.store.families[names.TURN_LATENCY_SECONDS]
    assert restarted.store.value(names.TURN_LATENCY_SECONDS, key, len(fam.bounds) + 1) == 1.5
    restarted.close()


# --- 4. bounded error answers ---

_JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    "event",
    [
        {**TASK, **{f"k{i}": i for i in range(5000)}},  # thousands of unknown keys
        {**TASK, **{"x" * 5000 + str(i): 1 for i in range(50)}},  # long unknown keys
        {**TASK, "steps": list(range(20000))},  # a huge value where a number belongs
        {**TASK, "agent": "a" * 200_000},  # a huge unknown agent
        {**TASK, "type": "t" * 200_000},  # a huge unknown type
    ],
    ids=["many-keys", "long-keys", "huge-value", "huge-agent", "huge-type"],
)
async def test_an_error_answer_is_bounded_whatever_the_batch(
    aiohttp_client: Any, event: dict[str, Any]
) -> None:
    client = await _client(aiohttp_client)
    raw = orjson.dumps([event] * 20)
    resp = await client.post("/v1/events", data=raw, headers=_JSON)
    body = await resp.read()
    assert resp.status == 422
    answer = orjson.loads(body)
    assert len(answer["detail"]) <= MAX_DETAIL
    assert len(body) < 64 * 1024, len(body)  # ~100 problems of bounded size, whatever came in
    assert all(len(p["field"]) <= 64 for p in answer["detail"])


async def test_a_bounded_answer_counts_the_problems_it_leaves_out(aiohttp_client: Any) -> None:
    client = await _client(aiohttp_client)
    event = {**TASK, **{f"k{i}": i for i in range(300)}}
    resp = await client.post("/v1/events", data=orjson.dumps([event, TASK, event]), headers=_JSON)
    answer = await resp.json()
    assert len(answer["detail"]) == MAX_DETAIL
    assert answer["omitted"] == 600 - MAX_DETAIL
    partial = await client.post(
        "/v1/events?partial=true", data=orjson.dumps([event, TASK, event]), headers=_JSON
    )
    answer = await partial.json()
    assert partial.status == 207
    assert answer["rejected"] == [0, 2] and answer["accepted"] == 1
    assert answer["omitted"] == 600 - MAX_DETAIL


# --- 11. a refused batch changes nothing ---


def _probe(i: int, passed: bool = True) -> dict[str, Any]:
    return {"type": "synthetic", **B, "scenario": f"scenario-{i}", "passed": passed}


@pytest.mark.parametrize(
    "bad",
    [
        {**TURN, "latency_s": -1},
        {**TASK, "unknown": 1},
        {**B, "type": "judge", "judge": "faith", "judge_version": "v9", "score": 2},
        {"type": "synthetic", **B, "scenario": "x\x00y", "passed": True},
    ],
    ids=["bad-number", "unknown-field", "bad-score-new-version", "unprintable-scenario"],
)
async def test_a_refused_batch_leaves_no_series_and_no_used_budget(
    aiohttp_client: Any, bad: dict[str, Any]
) -> None:
    client = await _client(aiohttp_client, max_scenarios=10)
    text_before = await (await client.get("/metrics")).text()
    batch = [
        *(_probe(i) for i in range(300)),
        {**B, "type": "judge", "judge": "faith", "judge_version": "v2", "score": 1},
        bad,
    ]
    resp = await client.post("/v1/events", data=orjson.dumps(batch), headers=_JSON)
    assert resp.status == 422
    after = await (await client.get("/metrics")).text()
    strip = [
        line
        for line in after.splitlines()
        if not line.startswith((names.INGEST_EVENTS_TOTAL, names.INGEST_REJECTED_TOTAL, "process_", "# "))
    ]
    strip_before = [
        line
        for line in text_before.splitlines()
        if not line.startswith((names.INGEST_EVENTS_TOTAL, names.INGEST_REJECTED_TOTAL, "process_", "# "))
    ]
    assert strip == strip_before
    # the scenario budget is untouched: ten new scenarios get their own series, none folds into `other`
    resp = await client.post(
        "/v1/events", data=orjson.dumps([_probe(1000 + i) for i in range(10)]), headers=_JSON
    )
    assert resp.status == 200
    samples = await _samples(client)
    scenarios = {dict(k[1]).get("scenario") for k in samples if k[0] == names.SYNTHETIC_RUNS_TOTAL}
    assert {f"scenario-{1000 + i}" for i in range(10)} <= scenarios
    assert names.OTHER not in scenarios and "scenario-0" not in scenarios


async def test_a_partial_batch_keeps_only_the_series_of_its_valid_events(aiohttp_client: Any) -> None:
    client = await _client(aiohttp_client)
    batch = [_probe(1), {**_probe(2), "latency_s": 1}, {**_probe(3), "duration_s": 1e300}]
    resp = await client.post("/v1/events?partial=true", data=orjson.dumps(batch), headers=_JSON)
    assert resp.status == 207 and (await resp.json())["rejected"] == [1, 2]
    scenarios = {
        dict(k[1]).get("scenario") for k in await _samples(client) if k[0] == names.SYNTHETIC_RUNS_TOTAL
    }
    assert "scenario-1" in scenarios and not {"scenario-2", "scenario-3"} & scenarios


async def test_a_refused_batch_then_the_same_names_in_a_valid_one_count(aiohttp_client: Any) -> None:
    """Plans dropped with a rolled-back batch are rebuilt (not served stale) when the names come back."""
    client = await _client(aiohttp_client)
    for batch, status in (([_probe(7, False), {**TURN, "latency_s": -1}], 422), ([_probe(7, False)], 200)):
        resp = await client.post("/v1/events", data=orjson.dumps(batch), headers=_JSON)
        assert resp.status == status
    store = client.server.app[INGESTOR].store
    labels = ("bot", "refund", "scenario-7", names.SYNTHETIC_FAILED)
    assert store.value(names.SYNTHETIC_RUNS_TOTAL, labels) == 1.0
    assert store.value(names.SYNTHETIC_CONSECUTIVE_FAILURES, ("bot", "refund", "scenario-7")) == 1.0


# --- 3. whatever was ingested, every exposition format stays parseable ---

FREE_TEXT = ("trace_id", "session_id", "version", "prompt_version", "model", "tool", "failure_mode")
HOSTILE_IDS = [
    "a\x00b",
    "\x1b[31m",
    'x" } # {y',
    "back\\slash",
    "line\nbreak",
    "cr\rlf",
    "\u2028",
    "é" * 100,
    "\x7f",
]


def _parse_both(store: Any) -> None:
    """The text format parses (prometheus_client and promtool) and so does OpenMetrics."""
    text = render(store, openmetrics=False).decode()
    list(text_string_to_metric_families(text))
    om = render(store, openmetrics=True).decode()
    list(om_families(om))
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert "error" not in (checked.stdout + checked.stderr).lower(), checked.stdout + checked.stderr


@pytest.mark.parametrize("trace", HOSTILE_IDS, ids=[repr(t)[:12] for t in HOSTILE_IDS])
def test_a_hostile_trace_id_never_breaks_the_exposition(trace: str) -> None:
    ingestor = Ingestor([SPEC], ExporterConfig())
    for path in ("dict", "raw"):
        batch = [{**TURN, "trace_id": trace}, {**TASK, "trace_id": trace, "outcome": "failure"}]
        if path == "dict":
            ingestor.apply(batch)
        else:
            ingestor.apply_many([Batch(wire.parse_body(orjson.dumps(batch), "application/json"))])
    _parse_both(ingestor.store)
    om = render(ingestor.store, openmetrics=True).decode()
    assert all(ch.isprintable() for line in om.splitlines() for ch in line.partition(" # ")[2])


_BYTES_TEXT = st.binary(max_size=40).map(lambda b: b.decode("latin-1"))
_ANY_TEXT = st.one_of(st.text(max_size=40), _BYTES_TEXT, st.sampled_from(HOSTILE_IDS))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(st.tuples(st.sampled_from(FREE_TEXT), _ANY_TEXT), min_size=1, max_size=6),
    scenario=_ANY_TEXT,
    judge_version=_ANY_TEXT,
    raw=st.booleans(),
)
def test_fuzzed_free_text_never_makes_the_exposition_unparseable(
    values: list[tuple[str, str]], scenario: str, judge_version: str, raw: bool
) -> None:
    """Random bytes and text in every free-text field that can reach /metrics (ids, build labels,
    tools, failure modes, scenarios, judge versions), sent as dicts or as a raw body (the fast
    fronts), never make the text or the OpenMetrics output unparseable."""
    ingestor = Ingestor([SPEC], ExporterConfig())
    extra = dict(values)
    batch = [
        {**TASK, **extra},
        {**TURN, **{k: v for k, v in extra.items() if k in ("trace_id", "session_id", "version", "model")}},
        {
            "type": "tool_call",
            **B,
            "tool": extra.get("tool", "t"),
            "outcome": "ok",
            "trace_id": extra.get("trace_id", "x"),
        },
        {"type": "synthetic", **B, "scenario": scenario, "passed": False},
        {"type": "judge", **B, "judge": "faith", "judge_version": judge_version, "score": 0.5},
    ]
    for partial in (False, True):
        if raw:
            ingestor.apply_many([Batch(wire.parse_body(orjson.dumps(batch), "application/json"), partial)])
        else:
            ingestor.apply(batch, partial=partial)
    _parse_both(ingestor.store)


# --- 7. slow bodies and slow headers hold nothing up ---


async def _trickle(host: str, port: int, headers_only: bool = False, every: float = 0.25) -> bytes:
    """A client that announces an 8 MB body (or sends its headers) a byte at a time; what it was answered."""
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        "Content-Length: 8000000\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        if not headers_only:
            writer.write(head + b"[")
        for i in range(200):
            writer.write(head[i : i + 1] if headers_only else b" ")
            await writer.drain()
            try:
                return await asyncio.wait_for(reader.read(200), every)
            except TimeoutError:
                continue
        return b"still open"
    except ConnectionError:
        return b""
    finally:
        writer.close()


async def test_trickling_bodies_never_hold_up_ingest_or_health(aiohttp_client: Any) -> None:
    """64 uploads announcing 8 MB and sending a byte at a time, against 8 writer places: every
    legitimate batch and /healthz is answered within 2 s, and the trickles are cut off with 408."""
    client = await _client(aiohttp_client, max_pending_batches=8)
    attackers = [asyncio.create_task(_trickle(client.host, client.port)) for _ in range(64)]
    await asyncio.sleep(0.5)
    for i in range(8):
        started = time.monotonic()
        resp = await client.post("/v1/events", data=orjson.dumps([TURN]), headers=_JSON)
        assert resp.status == 200, (i, resp.status, await resp.text())
        assert (await client.get("/healthz")).status == 200
        assert time.monotonic() - started < 2.0
        await asyncio.sleep(0.2)
    answers = await asyncio.gather(*attackers)
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers), {a[:40] for a in answers}


async def test_a_body_at_a_slow_but_steady_pace_is_read(aiohttp_client: Any) -> None:
    client = await _client(aiohttp_client)
    body = orjson.dumps([TURN] * 400)  # ~30 KB, in 2 KB pieces every 50 ms: ~40 KB/s

    async def steady() -> Any:
        for i in range(0, len(body), 2048):
            yield body[i : i + 2048]
            await asyncio.sleep(0.05)

    resp = await client.post("/v1/events", data=steady(), headers=_JSON)
    assert resp.status == 200 and (await resp.json())["accepted"] == 400


async def test_bodies_being_read_are_bounded_in_memory(aiohttp_client: Any) -> None:
    client = await _client(aiohttp_client, max_reading_bytes=4096)
    resp = await client.post("/v1/events", data=orjson.dumps([TURN] * 200), headers=_JSON)
    assert resp.status == 429 and resp.headers["Retry-After"]
    assert (await client.post("/v1/events", data=orjson.dumps([TURN]), headers=_JSON)).status == 200


async def test_slow_headers_are_cut_off() -> None:
    """The server as `agent-slo serve` runs it (`server_options`): a connection that sends its headers
    a byte at a time is closed after `header_timeout_s`, and the exporter keeps answering."""
    config = ExporterConfig(header_timeout_s=1.0)
    runner = web.AppRunner(create_app([SPEC], config), **server_options(config))
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        started = time.monotonic()
        answers = await asyncio.gather(
            *[_trickle("127.0.0.1", port, headers_only=True, every=0.1) for _ in range(16)]
        )
        assert set(answers) == {b""}, answers
        assert time.monotonic() - started < 3.0
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as resp:
            assert resp.status == 200
    finally:
        await runner.cleanup()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- 12. web pages cannot post; duplicate keys; big integers; idempotency ---


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "text/html",
        "text/csv",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ],
)
async def test_a_browser_simple_content_type_is_refused(aiohttp_client: Any, content_type: str) -> None:
    client = await _client(aiohttp_client)
    before = await _samples(client)
    resp = await client.post("/v1/events", data=orjson.dumps([TURN]), headers={"Content-Type": content_type})
    assert resp.status == 415, await resp.text()
    assert (await resp.json())["detail"][0]["field"] == "Content-Type"
    assert await _samples(client) == before


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://localhost:3000"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"},
    ],
)
@pytest.mark.parametrize("path", ["/v1/events", "/v1/sessions"])
async def test_a_write_from_a_foreign_origin_is_refused(
    aiohttp_client: Any, headers: dict[str, str], path: str
) -> None:
    client = await _client(aiohttp_client)
    before = await _samples(client)
    resp = await client.post(path, data=orjson.dumps([TURN]), headers={**_JSON, **headers})
    assert resp.status == 403, await resp.text()
    assert await _samples(client) == before


async def test_programs_and_allowed_origins_may_write(aiohttp_client: Any) -> None:
    client = await _client(aiohttp_client, allowed_origins=("https://console.example",))
    same = f"http://{client.host}:{client.port}"
    for headers in ({}, {"Origin": "https://console.example"}, {"Origin": same}):
        resp = await client.post("/v1/events", data=orjson.dumps([TURN]), headers={**_JSON, **headers})
        assert resp.status == 200, (headers, await resp.text())
    ndjson = {"Content-Type": "application/x-ndjson"}
    assert (await client.post("/v1/events", data=orjson.dumps(TURN), headers=ndjson)).status == 200
    assert (await client.post("/v1/events", data=orjson.dumps([TURN]))).status == 200  # no content type
    assert (await client.get("/metrics", headers={"Origin": "https://evil.example"})).status == 200


# --- 10. Idempotency-Key without --db; the keys are bounded ---


@pytest.mark.parametrize("partial", [False, True])
async def test_an_idempotency_key_replays_in_memory_too(aiohttp_client: Any, partial: bool) -> None:
    client = await _client(aiohttp_client)
    url = f"/v1/events?partial={str(partial).lower()}"
    body = orjson.dumps([TURN, {**TURN, "latency_s": -1}] if partial else [TURN])
    answers = []
    for _ in range(3):
        resp = await client.post(url, data=body, headers={**_JSON, "Idempotency-Key": "k-1"})
        answers.append((resp.status, await resp.json(), resp.headers.get("Idempotency-Replayed")))
    assert [a[0] for a in answers] == [207 if partial else 200] * 3
    assert answers[1][1] == answers[2][1] == answers[0][1]
    assert [a[2] for a in answers] == [None, "true", "true"]
    other = await client.post(
        url, data=orjson.dumps([TURN, TURN]), headers={**_JSON, "Idempotency-Key": "k-1"}
    )
    assert other.status == 422 and (await other.json())["detail"][0]["field"] == "Idempotency-Key"
    store = client.server.app[INGESTOR].store
    fam = store.families[names.TURN_LATENCY_SECONDS]  # counted once: the sum is one turn's latency
    assert store.value(names.TURN_LATENCY_SECONDS, ("bot", "refund", "turn"), len(fam.bounds) + 1) == 0.5


def test_in_process_callers_get_replays_without_a_file_too() -> None:
    ingestor = Ingestor([SPEC], ExporterConfig())
    first = ingestor.apply([TURN], idempotency_key="judge-1")
    again = ingestor.apply([TURN], idempotency_key="judge-1")
    assert (first.status, again.status, again.replayed) == (200, 200, True)
    assert ingestor.apply([TASK], idempotency_key="judge-1").status == 422
    assert ingestor.store.value(names.INGEST_EVENTS_TOTAL, (names.INGEST_ACCEPTED,)) == 1.0


def test_remembered_answers_are_bounded_by_count_bytes_and_age() -> None:
    ingestor = Ingestor([SPEC], ExporterConfig(max_idempotency_keys=5, idempotency_horizon_s=3600))
    for i in range(40):
        assert ingestor.apply([TURN], idempotency_key=f"k{i}").status == 200
    assert len(ingestor.memory) == 5
    assert ingestor.apply([TURN], idempotency_key="k39").replayed
    small = Ingestor([SPEC], ExporterConfig(max_idempotency_bytes=2000))
    for i in range(40):
        small.apply([TURN], idempotency_key=f"key-{i}")
    assert 0 < len(small.memory) < 10 and small.memory.size <= 2000
    aged = Ingestor([SPEC], ExporterConfig(idempotency_horizon_s=-1))
    aged.apply([TURN], idempotency_key="old")
    assert not aged.apply([TURN], idempotency_key="old").replayed  # past the horizon: a new batch


def test_the_idempotency_table_on_disk_is_bounded(tmp_path: Any) -> None:
    ingestor = Ingestor([SPEC], ExporterConfig(db_path=str(tmp_path / "c.db"), max_idempotency_keys=20))
    for i in range(300):
        assert ingestor.apply([TURN], idempotency_key=f"k{i}").status == 200
    assert ingestor.db is not None
    (rows,) = ingestor.db.db.execute("SELECT count(*) FROM idempotency").fetchone()
    assert rows <= 20 + 20 // 10 + 1
    assert ingestor.apply([TURN], idempotency_key="k299").replayed  # the newest are the ones kept
    ingestor.close()


# --- issue 14 follow-up: drops a client reports ---


def _dropped(client: Any) -> float | None:
    return client.server.app[INGESTOR].store.value(names.CLIENT_DROPPED_EVENTS_TOTAL, ("bot",))


async def test_a_client_s_reported_drops_count_once_when_its_batch_is_applied(aiohttp_client: Any) -> None:
    client = await _client(aiohttp_client)
    assert _dropped(client) == 0.0  # created at 0 with the agent's series
    headers = {**_JSON, names.DROPPED_HEADER: "7", "Idempotency-Key": "b-1"}
    for _ in range(3):  # the first applies, the retries replay: 7 once
        assert (await client.post("/v1/events", data=orjson.dumps([TURN]), headers=headers)).status == 200
    assert _dropped(client) == 7.0
    refused = await client.post(
        "/v1/events",
        data=orjson.dumps([{**TURN, "latency_s": -1}]),
        headers={**_JSON, names.DROPPED_HEADER: "5"},
    )
    assert refused.status == 422 and _dropped(client) == 7.0  # a refused batch counts nothing
    partial = await client.post(
        "/v1/events?partial=true",
        data=orjson.dumps([{**TURN, "latency_s": -1}, TURN]),
        headers={**_JSON, names.DROPPED_HEADER: "2"},
    )
    assert partial.status == 207 and _dropped(client) == 9.0
    text = await (await client.get("/metrics")).text()
    assert f'{names.CLIENT_DROPPED_EVENTS_TOTAL}{{agent="bot"}} 9.0' in text


@pytest.mark.parametrize("value", ["-1", "x", "1.5", "²", "9" * 40, str(2**60)])
async def test_a_malformed_drop_count_is_a_400_naming_the_header(aiohttp_client: Any, value: str) -> None:
    client = await _client(aiohttp_client)
    resp = await client.post(
        "/v1/events", data=orjson.dumps([TURN]), headers={**_JSON, names.DROPPED_HEADER: value}
    )
    assert resp.status == 400 and (await resp.json())["detail"][0]["field"] == names.DROPPED_HEADER
    assert _dropped(client) == 0.0


# --- 12. duplicate keys are refused on every front; big integers read alike everywhere ---

DUPLICATES = [
    b'{"type":"turn","agent":"bot","flow":"refund","flow":"refund","latency_s":0.5}',
    b'{"type":"turn","agent":"bot","flow":"refund","latency_s":0.5,"latency_s":0.7}',
    b'{"type":"turn","agent":"bot","flow":"refund","latency_s":0.5,"flow" :"refund"}',
    b'{"type":"turn","type":"turn","agent":"bot","flow":"refund","latency_s":0.5}',
    b'{"type":"turn","agent":"bot","flow":"refund","latency_s":0.5,"trace_id":"a","trace_id":"b"}',
    b'{"type":"task","agent":"bot","flow":"refund","outcome":"success","tokens":{"input":1,"input":2}}',
    b'{"type":"task","agent":"bot","flow":"refund","outcome":"success","outcome":"failure"}',
    b'{"type":"task","agent":"bot","flow":"refund","outcome":"success","cost_usd":null,"cost_usd":1}',
]


@pytest.mark.parametrize("event", DUPLICATES, ids=range(len(DUPLICATES)))
@pytest.mark.parametrize("content_type", ["application/json", "application/x-ndjson"])
async def test_a_repeated_key_is_refused_naming_it(
    aiohttp_client: Any, event: bytes, content_type: str
) -> None:
    client = await _client(aiohttp_client)
    before = await _samples(client)
    body = event if content_type.endswith("ndjson") else b"[" + orjson.dumps(TURN) + b"," + event + b"]"
    resp = await client.post("/v1/events", data=body, headers={"Content-Type": content_type})
    assert resp.status == 422, await resp.text()
    detail = (await resp.json())["detail"]
    repeated = orjson.loads(event.replace(b'"flow" :', b'"flow":'))  # the last value of each key
    assert any("more than once" in p["problem"] or p["field"] == "tokens" for p in detail), detail
    assert {p["index"] for p in detail} == {0 if content_type.endswith("ndjson") else 1}
    assert await _samples(client) == before, repeated


@pytest.mark.parametrize("event", DUPLICATES, ids=range(len(DUPLICATES)))
def test_no_fast_front_vouches_for_a_repeated_key(event: bytes) -> None:
    raw = b"[" + event + b"]"
    assert wire.decode(raw, scanner=None) is None
    assert wire.decode(raw) is None  # the C++ scanner (when built) refuses, and so does msgspec after it


def test_spaced_json_and_keys_in_strings_still_count() -> None:
    """The duplicate check never refuses a valid batch; it may only send it down the exact path."""
    ingestor = Ingestor([SPEC], ExporterConfig())
    spaced = b'[ {"type" : "turn", "agent" : "bot", "flow" : "refund", "latency_s" : 0.5} ]'
    quoted = orjson.dumps([{**TURN, "version": 'a":b'}, {**TURN, "version": 'x" :y'}])
    for raw in (spaced, quoted):
        assert ingestor.apply_many([Batch(wire.parse_body(raw, ""))])[0].status == 200


BIG = [2**53 - 1, 2**53, 2**53 + 1, 2**63 - 1, 2**64 - 1, 2**64, 10**30]


@pytest.mark.parametrize("value", BIG)
@pytest.mark.parametrize("field", ["steps", "tokens", "latency_s", "cost_usd", "time"])
def test_big_integers_read_alike_on_every_front(value: int, field: str) -> None:
    """The C++ scanner, msgspec and the dict path agree on integers around and beyond 2^53:
    the same events are counted, or all refuse."""
    marker = 123456789
    event: dict[str, Any] = {**TASK, "steps": 1}
    if field == "tokens":
        event["tokens"] = {"input": marker}
    elif field == "latency_s":
        event = {**TURN, "latency_s": marker}
    else:
        event[field] = marker
    # orjson writes no integer beyond 64 bits: the value goes in as text, in place of a marker
    raw = b"[" + orjson.dumps(event).replace(b"123456789", str(value).encode()) + b"]"
    now = time.time()
    outcomes = []
    ingestor = Ingestor([SPEC], ExporterConfig())
    try:
        by_dict = ingestor.classifier.run(wire.loads(raw), now)
    except Exception:
        by_dict = None
    outcomes.append(by_dict is not None)
    for scanner in (None, wire.SCANNER) if wire.SCANNER is not None else (None,):
        decoded = wire.decode(raw, scanner=scanner)
        counted = decoded is not None and Ingestor([SPEC], ExporterConfig()).classifier.run_decoded(
            decoded, now
        )
        if decoded is not None and scanner is not None and decoded.reports is None:
            continue  # the scanner refused and msgspec answered: compared above
        outcomes.append(bool(counted))
    assert len(set(outcomes)) == 1, (field, value, outcomes)
    assert not any(outcomes) or value <= 2**53 - 1 or field == "time"


def test_a_journal_poisoned_by_an_older_version_still_opens(tmp_path: Any) -> None:
    """Before the bounds, two 1e308 latencies made an inf sum that SQLite stores as NULL, and the
    exporter could no longer start on its file. An inf amount already in the journal is left out
    of its counter (and logged); everything else folds and the exporter starts."""
    db = str(tmp_path / "c.db")
    ingestor = Ingestor([SPEC], ExporterConfig(db_path=db))
    assert ingestor.apply([TURN]).status == 200
    fam = ingestor.store.families[names.TURN_LATENCY_SECONDS]
    total = ingestor.store.find(names.TURN_LATENCY_SECONDS, ("bot", "refund", "turn"))
    assert ingestor.db is not None and total is not None
    row = ingestor.store.db_ids[total + len(fam.bounds) + 1]
    ingestor.db.commit([(row, math.inf)], [(row, math.nan)])  # what the old version let in
    ingestor.close()
    restarted = Ingestor([SPEC], ExporterConfig(db_path=db))
    assert (
        restarted.store.value(names.TURN_LATENCY_SECONDS, ("bot", "refund", "turn"), len(fam.bounds) + 1)
        == 0.5
    )
    assert all(math.isfinite(v) for v in restarted.store.values)
    restarted.close()


def test_naming_the_problems_of_a_hostile_batch_takes_bounded_memory() -> None:
    """Counting problems past the first MAX_DETAIL builds nothing: the validator's peak allocation
    over 40 events of 5,000 unknown keys each (200,000 problems) stays under a MiB."""
    ingestor = Ingestor([SPEC], ExporterConfig())
    batch = [{**TASK, **{f"k{i}": i for i in range(5000)}} for _ in range(40)]
    tracemalloc.start()
    try:
        found = validate.find(ingestor.planner, batch, time.time())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(found.detail) == MAX_DETAIL and found.omitted == 200_000 - MAX_DETAIL
    assert peak < 1024 * 1024, peak


async def test_health_and_ingest_answer_within_2s_while_hostile_batches_are_refused(
    aiohttp_client: Any,
) -> None:
    client = await _client(aiohttp_client)
    hostile = orjson.dumps([{**TASK, **{f"k{i}": i for i in range(3000)}} for _ in range(60)])  # ~3 MiB

    async def attack() -> int:
        resp = await client.post("/v1/events", data=hostile, headers=_JSON)
        assert len(await resp.read()) < 64 * 1024
        return int(resp.status)

    attackers = [asyncio.create_task(attack()) for _ in range(3)]
    worst = 0.0
    while not all(a.done() for a in attackers):
        started = time.monotonic()
        assert (await client.get("/healthz")).status == 200
        assert (await client.post("/v1/events", data=orjson.dumps([TURN]), headers=_JSON)).status == 200
        worst = max(worst, time.monotonic() - started)
        await asyncio.sleep(0.05)
    assert [a.result() for a in attackers] == [422] * 3
    assert worst < 2.0, worst
