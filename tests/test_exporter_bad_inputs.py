"""Hostile and broken input: every bad batch is a 4xx naming index and field, and changes no counter."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentslo import names
from agentslo.exporter.app import INGESTOR, create_app
from agentslo.exporter.config import ExporterConfig
from agentslo.spec import parse_spec

SPEC = """
version: agent-slo/v1
agent: bot
owners: {team: {team: t}}
exclusions: [test_call]
flows: {refund: {risk: billing}}
tools: [get_order]
failure_modes: [loop]
judges:
  faith: {type: llm, model: m1, version: "3", rubric: "grounded?", pass_threshold: 0.8}
slos:
  task: {sli: {task: {}}, objective: auto, owner: team}
  turn: {sli: {latency: {of: turn, under: 1s}}, objective: 95, owner: team}
  faith: {sli: {judge: faith}, objective: auto, owner: team}
  esc: {sli: {escalation: {}}, objective: 97, owner: team}
  conn: {sli: {connection: {}}, objective: 99, owner: team}
"""
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
B = {"agent": "bot", "flow": "refund"}
TASK = {"type": "task", **B, "outcome": "success"}
TURN = {"type": "turn", **B, "latency_s": 0.5}
JUDGE = {"type": "judge", **B, "judge": "faith", "score": 0.9}
TOOL = {"type": "tool_call", **B, "tool": "get_order", "outcome": "ok"}


def config(**overrides: Any) -> ExporterConfig:
    return ExporterConfig(**{"token": TOKEN, "max_body_bytes": 64 * 1024, **overrides})


@pytest.fixture(autouse=True)
def _no_judge_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests send verdicts themselves; don't spawn the judges' worker process for every app."""
    monkeypatch.setenv("AGENT_SLO_JUDGE_PROCESS", "0")


@pytest.fixture
async def client(aiohttp_client: Any) -> Any:
    return await aiohttp_client(create_app([parse_spec(SPEC)], config()))


def unchanged(after: dict[tuple[str, tuple], float], before: dict[tuple[str, tuple], float]) -> bool:
    """Same values for every series; a series first seen now may only exist at 0 (a valid label set)."""
    return all(after.get(k) == v for k, v in before.items()) and all(
        v == 0.0 for k, v in after.items() if k not in before
    )


async def counters(client: Any) -> dict[tuple[str, tuple], float]:
    """Every sample but the exporter's own ingest health (which must count the refusals) and its
    process metrics (CPU and memory move by themselves)."""
    text = await (await client.get("/metrics")).text()
    own = (names.INGEST_EVENTS_TOTAL, names.INGEST_REJECTED_TOTAL, names.PROCESS_PREFIX)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if not s.name.startswith(own)
    }


def events(*evs: Any) -> bytes:
    return orjson.dumps(list(evs))


# (id, body, expected status, expected (index, field) in detail)
CORPUS: list[tuple[str, bytes, int, tuple[int | None, str]]] = [
    ("malformed-json", b'[{"type": "task",', 400, (None, "")),
    ("non-utf8", b'[{"type": "task", "agent": "\xff\xfe"}]', 400, (None, "")),
    (
        "nan-literal",
        b'[{"type": "turn", "agent": "bot", "flow": "refund", "latency_s": NaN}]',
        400,
        (None, ""),
    ),
    (
        "infinity-literal",
        b'[{"type": "turn", "agent": "bot", "flow": "refund", "latency_s": Infinity}]',
        400,
        (None, ""),
    ),
    (
        "overflow-to-infinity",
        b'[{"type": "turn", "agent": "bot", "flow": "refund", "latency_s": 1e999}]',
        400,
        (None, ""),
    ),
    ("empty-batch", b"[]", 400, (None, "")),
    ("empty-body", b"", 400, (None, "")),
    (
        "ndjson-bad-line",
        b'{"type":"connection","agent":"bot","flow":"refund","ok":true}\n{oops\n',
        400,
        (1, ""),
    ),
    ("event-not-object", b'["task"]', 422, (0, "")),
    ("json-scalar", b'"hello"', 422, (0, "")),
    ("missing-type", events({**B, "ok": True}), 422, (0, "type")),
    ("unknown-type", events({"type": "telepathy", **B}), 422, (0, "type")),
    ("missing-agent", events({"type": "connection", "flow": "refund", "ok": True}), 422, (0, "agent")),
    ("missing-flow", events({"type": "connection", "agent": "bot", "ok": True}), 422, (0, "flow")),
    ("unknown-agent", events({**TASK, "agent": "mallory"}), 422, (0, "agent")),
    ("unknown-flow", events({**TASK, "flow": "teleport"}), 422, (0, "flow")),
    ("unknown-judge", events({**JUDGE, "judge": "vibes"}), 422, (0, "judge")),
    ("unknown-exclusion", events({**TASK, "exclude": "because"}), 422, (0, "exclude")),
    ("unknown-task-outcome", events({**TASK, "outcome": "meh"}), 422, (0, "outcome")),
    (
        "unknown-tool-outcome",
        events({"type": "tool_call", **B, "tool": "get_order", "outcome": "fine"}),
        422,
        (0, "outcome"),
    ),
    ("missing-outcome", events({"type": "task", **B}), 422, (0, "outcome")),
    ("missing-latency", events({"type": "turn", **B}), 422, (0, "latency_s")),
    ("missing-score", events({"type": "judge", **B, "judge": "faith"}), 422, (0, "score")),
    ("missing-ok", events({"type": "connection", **B}), 422, (0, "ok")),
    ("wrong-type-bool", events({"type": "connection", **B, "ok": "true"}), 422, (0, "ok")),
    ("int-is-not-bool", events({"type": "connection", **B, "ok": 1}), 422, (0, "ok")),
    ("wrong-type-latency", events({**TURN, "latency_s": "0.5"}), 422, (0, "latency_s")),
    ("bool-is-not-number", events({**TURN, "latency_s": True}), 422, (0, "latency_s")),
    ("negative-latency", events({**TURN, "latency_s": -0.1}), 422, (0, "latency_s")),
    ("negative-duration", events({**TASK, "duration_s": -1}), 422, (0, "duration_s")),
    ("negative-cost", events({**TASK, "cost_usd": -0.01}), 422, (0, "cost_usd")),
    ("negative-tokens", events({**TASK, "tokens": {"input": -5}}), 422, (0, "tokens")),
    ("fractional-tokens", events({**TASK, "tokens": {"input": 1.5}}), 422, (0, "tokens")),
    ("unknown-token-kind", events({**TASK, "tokens": {"cached": 5}}), 422, (0, "tokens")),
    ("fractional-steps", events({**TASK, "steps": 2.5}), 422, (0, "steps")),
    ("score-above-one", events({**JUDGE, "score": 1.01}), 422, (0, "score")),
    ("score-below-zero", events({**JUDGE, "score": -0.01}), 422, (0, "score")),
    ("time-far-future", events({**TASK, "time": "2999-01-01T00:00:00Z"}), 422, (0, "time")),
    ("time-epoch-future", events({**TASK, "time": 32503680000}), 422, (0, "time")),
    ("time-without-offset", events({**TASK, "time": "2026-01-01T00:00:00"}), 422, (0, "time")),
    ("time-garbage", events({**TASK, "time": "yesterday"}), 422, (0, "time")),
    ("unknown-field", events({**TURN, "latency": 0.5}), 422, (0, "latency")),
    ("field-of-other-type", events({**TURN, "tool": "get_order"}), 422, (0, "tool")),
    (
        "escalation-without-context",
        events({"type": "escalation", **B, "required": True, "performed": True}),
        422,
        (0, "context_preserved"),
    ),
    ("trace-id-too-long", events({**TASK, "trace_id": "t" * 1000}), 422, (0, "trace_id")),
    ("list-as-name", events({**TASK, "flow": ["refund"]}), 422, (0, "flow")),
    ("injection-in-flow", events({**TASK, "flow": 'refund",slo="x"} 1\n'}), 422, (0, "flow")),
    ("injection-in-agent", events({**TASK, "agent": 'bot"}\n'}), 422, (0, "agent")),
    (
        "injection-in-scenario",
        events({"type": "synthetic", **B, "scenario": 'a"}\n{', "passed": True}),
        422,
        (0, "scenario"),
    ),
    ("newline-in-version", events({**TASK, "version": "1.0\n# TYPE x counter"}), 422, (0, "version")),
    ("second-event-bad", events(TASK, {**TASK, "outcome": 7}), 422, (1, "outcome")),
    # tool-call evidence: ids (1-256 characters), never numbers or objects
    ("input-hash-number", events({**TOOL, "input_hash": 12345}), 422, (0, "input_hash")),
    ("output-hash-object", events({**TOOL, "output_hash": {"sha256": "ab"}}), 422, (0, "output_hash")),
    ("parent-task-id-empty", events({**TOOL, "parent_task_id": ""}), 422, (0, "parent_task_id")),
    ("input-hash-too-long", events({**TOOL, "input_hash": "a" * 257}), 422, (0, "input_hash")),
    ("evidence-on-a-task", events({**TASK, "input_hash": "ab"}), 422, (0, "input_hash")),
]


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30 and len({c[0] for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize(("name", "body", "status", "where"), CORPUS, ids=[c[0] for c in CORPUS])
async def test_bad_batch_is_refused_and_changes_nothing(
    client: Any, name: str, body: bytes, status: int, where: tuple[int | None, str]
) -> None:
    before = await counters(client)
    headers = {
        **AUTH,
        "Content-Type": "application/x-ndjson" if name.startswith("ndjson") else "application/json",
    }
    resp = await client.post("/v1/events", data=body, headers=headers)
    payload = await resp.json()
    assert resp.status == status, payload
    assert payload["error"] and isinstance(payload["detail"], list)
    assert any((d["index"], d["field"]) == where for d in payload["detail"]), payload["detail"]
    assert unchanged(await counters(client), before)
    # the refusal itself is visible in the exporter's own health counters
    text = await (await client.get("/metrics")).text()
    rejected = [
        s
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == names.INGEST_REJECTED_TOTAL
    ]
    assert sum(s.value for s in rejected) == 1


async def test_oversize_body_is_413_and_counts_nothing(client: Any) -> None:
    before = await counters(client)
    big = events(*[TASK] * 2000)
    assert len(big) > 64 * 1024
    resp = await client.post("/v1/events", data=big, headers=AUTH)
    assert resp.status == 413
    assert (await resp.json())["error"]
    assert unchanged(await counters(client), before)


async def test_label_injection_in_free_values_is_escaped_or_folded(client: Any) -> None:
    evil = 'x"} 1\nagent_slo_events_total{agent="bot'
    resp = await client.post(
        "/v1/events",
        headers=AUTH,
        json=[
            {"type": "tool_call", **B, "tool": evil, "outcome": "ok"},
            {**TASK, "failure_mode": evil, "version": 'v"}{'},
        ],
    )
    assert resp.status == 200, await resp.text()
    text = await (await client.get("/metrics")).text()
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    assert not [s for s in samples if evil in s.labels.values()]
    builds = [s.labels for s in samples if s.name == names.BUILD_INFO]
    assert builds[0]["version"] == 'v"}{'


async def test_100k_distinct_failure_modes_fold_into_bounded_series(aiohttp_client: Any) -> None:
    client = await aiohttp_client(
        create_app([parse_spec(SPEC)], ExporterConfig(max_body_bytes=64 * 2**20, max_batch_events=200_000))
    )
    batch = [{**TASK, "outcome": "failure", "failure_mode": f"mode-{i}"} for i in range(100_000)]
    resp = await client.post(
        "/v1/events", data=orjson.dumps(batch), headers={"Content-Type": "application/json"}
    )
    assert resp.status == 200, await resp.text()
    text = await (await client.get("/metrics")).text()
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    modes = {s.labels["failure_mode"]: s.value for s in samples if s.name == names.FAILURE_MODES_TOTAL}
    assert modes == {"loop": 0.0, "other": 100_000.0}
    folded = [
        s.value for s in samples if s.name == names.LABEL_FOLDED_TOTAL and s.labels["label"] == "failure_mode"
    ]
    assert folded == [100_000.0]
    assert len(samples) < 500


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}])
async def test_missing_or_wrong_token_is_401(client: Any, headers: dict[str, str]) -> None:
    before = await counters(client)
    resp = await client.post("/v1/events", data=events(TASK), headers=headers)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert (await resp.json())["detail"][0]["field"] == "Authorization"
    assert unchanged(await counters(client), before)
    for path in ("/openapi.json", "/v1/autonomy?agent=bot&flow=refund"):
        assert (await client.get(path, headers=headers)).status == 401


async def test_metrics_and_health_need_no_token(client: Any) -> None:
    for path in ("/metrics", "/healthz", "/readyz"):
        assert (await client.get(path)).status == 200


async def test_unknown_path_is_a_json_404(client: Any) -> None:
    resp = await client.get("/nope", headers=AUTH)
    assert resp.status == 404 and "error" in await resp.json()


async def test_bad_partial_flag_and_content_type(client: Any) -> None:
    resp = await client.post("/v1/events?partial=maybe", data=events(TASK), headers=AUTH)
    assert resp.status == 400 and (await resp.json())["detail"][0]["field"] == "partial"
    resp = await client.post("/v1/events", data=b"a,b,c", headers={**AUTH, "Content-Type": "text/csv"})
    assert resp.status == 415


async def test_overload_answers_429_with_retry_after(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app([parse_spec(SPEC)], ExporterConfig(max_pending_batches=0)))
    resp = await client.post("/v1/events", data=events(TASK))
    assert resp.status == 429 and resp.headers["Retry-After"] == "1"


# --- Idempotency-Key ---


@pytest.fixture
async def durable(aiohttp_client: Any, tmp_path: Any) -> Any:
    return await aiohttp_client(
        create_app([parse_spec(SPEC)], ExporterConfig(db_path=str(tmp_path / "c.db")))
    )


def _task_good(samples: dict[tuple[str, tuple], float]) -> float:
    key = (
        names.EVENTS_TOTAL,
        tuple(sorted({**B, "slo": "task", "outcome": "good", "exclusion": ""}.items())),
    )
    return samples[key]


async def test_idempotent_retry_replays_and_counts_once(durable: Any) -> None:
    headers = {"Idempotency-Key": "batch-1"}
    first = await durable.post("/v1/events", data=events(TASK, TASK), headers=headers)
    again = await durable.post("/v1/events", data=events(TASK, TASK), headers=headers)
    assert first.status == again.status == 200
    assert await first.json() == await again.json() == {"accepted": 2}
    assert again.headers["Idempotency-Replayed"] == "true"
    assert _task_good(await counters(durable)) == 2.0


async def test_same_key_different_body_is_422(durable: Any) -> None:
    headers = {"Idempotency-Key": "batch-2"}
    assert (await durable.post("/v1/events", data=events(TASK), headers=headers)).status == 200
    resp = await durable.post("/v1/events", data=events(TASK, TASK), headers=headers)
    assert resp.status == 422
    assert (await resp.json())["detail"][0]["field"] == "Idempotency-Key"
    assert _task_good(await counters(durable)) == 1.0


async def test_same_key_in_flight_is_409(durable: Any) -> None:
    headers = {"Idempotency-Key": "batch-3", "Content-Type": "application/json"}
    release = asyncio.Event()
    body = events(TASK)

    async def slow_body() -> Any:
        yield body[:5]
        await release.wait()
        yield body[5:]

    first = asyncio.ensure_future(durable.post("/v1/events", data=slow_body(), headers=headers))
    for _ in range(200):  # wait until the first upload has reached the handler
        await asyncio.sleep(0.01)
        if "batch-3" in durable.server.app[INGESTOR]._inflight:
            break
    second = await durable.post("/v1/events", data=body, headers=headers)
    assert second.status == 409 and second.headers["Retry-After"]
    release.set()
    assert (await first).status == 200
    assert _task_good(await counters(durable)) == 1.0


async def test_tool_call_evidence_counts_exactly_the_call_and_never_becomes_a_label(client: Any) -> None:
    """Golden: a tool call with its evidence moves the tool-call counter by one and nothing else; the
    hashes and the parent task id appear nowhere on /metrics."""
    evidence = {"input_hash": "sha256:" + "c0ffee" * 10, "output_hash": "9" * 64, "parent_task_id": "task-77"}
    before = await counters(client)
    resp = await client.post("/v1/events", data=events({**TOOL, **evidence}), headers=AUTH)
    assert resp.status == 200, await resp.text()
    after = await counters(client)
    moved = {k: after[k] - before.get(k, 0.0) for k in after if after[k] != before.get(k, 0.0)}
    key = (
        names.TOOL_CALLS_TOTAL,
        (("agent", "bot"), ("flow", "refund"), ("outcome", "ok"), ("tool", "get_order")),
    )
    assert moved == {key: 1.0}
    text = await (await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})).text()
    assert not any(value in text for value in evidence.values())
