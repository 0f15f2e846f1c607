"""POST /v1/sessions and the judging pipeline behind it, in a small aiohttp app with a fake ingestor:
verdicts become judge events, every provider fault ends as the judge's outcome, ingestion never
waits, full queues shed visibly, PII never reaches the SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from agentslo import feedback
from agentslo.feedback.config import SessionsConfig
from agentslo.feedback.pipeline import PipelineConfig
from agentslo.feedback.store import SessionStore
from agentslo.spec import Spec, parse_spec
from tests.doubles.fake_provider import FakeProvider, Step

SPEC = """
version: agent-slo/v1
agent: cx-support
owners: {{product: {{team: cx}}}}
exclusions: [test_call]
flows:
  refund: {{risk: billing}}
  order-status: {{risk: faq}}
tools: [get_order, issue_refund]
failure_modes: [wrong_refund_window]
judges:
  faithfulness:
    type: llm
    model: judge-1
    version: "3"
    rubric: Is every claim grounded in the context?
    pass_threshold: 0.8
    sample_rate: {rate}
    base_url: "{url}"
    timeout: {timeout}
    max_retries: 1
    concurrency: {concurrency}
    usd_per_1k_input_tokens: 0.15
    usd_per_1k_output_tokens: 0.6
  refund-policy:
    type: rule
    version: "1"
    flows: [refund]
    fail_if_matches: ['\\b3\\s*-\\s*5 business days\\b']
slos:
  task-success: {{sli: {{task: {{}}}}, objective: auto, owner: product}}
  tool-call-accuracy: {{sli: {{tool_calls: {{}}}}, objective: 92, owner: product}}
  hallucination: {{sli: {{judge: faithfulness}}, objective: auto, owner: product}}
  refund-policy: {{sli: {{judge: refund-policy}}, objective: 99.5, flows: [refund], owner: product}}
"""


def make_spec(url: str, *, rate: float = 1.0, timeout: float = 2.0, concurrency: int = 4) -> Spec:
    return parse_spec(SPEC.format(url=url, rate=rate, timeout=timeout, concurrency=concurrency))


class FakeIngestor:
    """Records what the pipeline hands the exporter's ingest."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.calls: Counter[tuple[str, str, str]] = Counter()
        self.cost: Counter[str] = Counter()
        self.agreement: dict[tuple[str, str, str], float] = {}

    def apply(self, events: list[dict[str, Any]], *, partial: bool = False) -> None:
        self.events.extend(events)

    def record_judge_call(self, agent: str, judge: str, version: str, outcome: str, cost_usd: float) -> None:
        self.calls[(judge, version, outcome)] += 1
        self.cost[judge] += cost_usd

    def set_judge_agreement(self, agent: str, judge: str, version: str, ratio: float) -> None:
        self.agreement[(agent, judge, version)] = ratio


def session(
    sid: str, *, flow: str = "refund", answer: str = "Refunds take 10 days.", **extra: Any
) -> dict[str, Any]:
    return {
        "session_id": sid,
        "agent": "cx-support",
        "flow": flow,
        "messages": [
            {"role": "user", "content": "When will I get my refund?"},
            {"role": "assistant", "content": answer},
        ],
        "context": ["Refunds are issued within 10 days."],
        **extra,
    }


Client = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def provider() -> AsyncIterator[FakeProvider]:
    async with FakeProvider() as p:
        yield p


async def make_client(
    aiohttp_client: Client, spec: Spec, ingestor: FakeIngestor, **config: Any
) -> TestClient[Any, Any]:
    app = web.Application()
    pipeline = PipelineConfig(
        **{k: config.pop(k) for k in list(config) if k in PipelineConfig.__dataclass_fields__}
    )
    cfg = SessionsConfig(pipeline=pipeline, **config)
    feedback.setup(app, [spec], ingestor, config=cfg)
    return await aiohttp_client(app)


async def drained(client: TestClient[Any, Any]) -> None:
    await client.app[feedback.PIPELINE].drained(timeout=20)


async def test_rule_verdict_becomes_a_judge_event_and_a_counted_call(
    aiohttp_client: Client, provider: FakeProvider
) -> None:
    ingestor = FakeIngestor()
    client = await make_client(aiohttp_client, make_spec(provider.base_url, rate=0.0), ingestor)
    resp = await client.post("/v1/sessions", json=session("s-1", answer="It takes 3-5 business days."))
    assert resp.status == 202
    body = await resp.json()
    assert body["judges"] == ["refund-policy"] and body["sampled"] == [] and body["stored"] is False
    await drained(client)
    assert ingestor.events == [
        {
            "type": "judge",
            "agent": "cx-support",
            "flow": "refund",
            "judge": "refund-policy",
            "judge_version": "1",
            "score": 0.0,
            "session_id": "s-1",
        }
    ]
    assert ingestor.calls == Counter({("refund-policy", "1", "ok"): 1})
    # A failing rule verdict marks the session bad: it is kept although it was not sampled.
    stored = await client.app[feedback.PIPELINE].db(client.app[feedback.PIPELINE].store.session, "s-1")
    assert stored is not None and stored["flagged"]


async def test_llm_verdict_on_sampled_session_is_applied_with_cost(
    aiohttp_client: Client, provider: FakeProvider
) -> None:
    ingestor = FakeIngestor()
    client = await make_client(aiohttp_client, make_spec(provider.base_url), ingestor)
    provider.script.append(Step(verdict={"score": 0.95, "label": "pass"}, usage=(1000, 100)))
    resp = await client.post("/v1/sessions", json=session("s-2", flow="order-status"))
    assert (await resp.json())["sampled"] == ["faithfulness"]
    await drained(client)
    assert [e["score"] for e in ingestor.events if e["judge"] == "faithfulness"] == [0.95]
    assert ingestor.calls[("faithfulness", "3", "ok")] == 1
    assert ingestor.cost["faithfulness"] == pytest.approx(0.15 + 0.06)


@pytest.mark.parametrize(
    ("steps", "outcome"),
    [
        ([Step(status=429, headers={"retry-after-ms": "10"}), Step(verdict={"score": 0.9})], "ok"),
        ([Step(status=500), Step(status=500)], "error"),
        ([Step(delay_s=3)], "timeout"),
        ([Step(content="definitely grounded")], "malformed"),
        ([Step(refusal="I cannot evaluate this.")], "refused"),
        ([Step(delay_s=0.6, verdict={"score": 0.4})], "ok"),
    ],
    ids=["429-then-ok", "500", "timeout", "malformed", "refusal", "slow"],
)
async def test_provider_faults_end_as_the_judges_outcome_without_blocking_ingestion(
    aiohttp_client: Client, provider: FakeProvider, steps: list[Step], outcome: str
) -> None:
    ingestor = FakeIngestor()
    client = await make_client(aiohttp_client, make_spec(provider.base_url, timeout=1.0), ingestor)
    provider.script.extend(steps)
    started = time.monotonic()
    resp = await client.post("/v1/sessions", json=session("s-fault", flow="order-status", outcome="success"))
    assert resp.status == 202
    assert time.monotonic() - started < 0.5  # answered before any judge finished
    await drained(client)
    assert ingestor.calls == Counter({("faithfulness", "3", outcome): 1})
    scores = [e["score"] for e in ingestor.events]
    # Only a real verdict becomes an event; a failed judge call never counts against the agent.
    assert scores == ([steps[-1].verdict["score"]] if outcome == "ok" and steps[-1].verdict else [])
    assert all(e["type"] == "judge" for e in ingestor.events)


async def test_ingestion_answers_fast_while_the_provider_hangs(
    aiohttp_client: Client, provider: FakeProvider
) -> None:
    ingestor = FakeIngestor()
    client = await make_client(
        aiohttp_client, make_spec(provider.base_url, timeout=1.0, concurrency=2), ingestor
    )
    provider.delay_s = 5
    started = time.monotonic()
    for i in range(50):
        assert (await client.post("/v1/sessions", json=session(f"h-{i}", flow="order-status"))).status == 202
    assert time.monotonic() - started < 2.0
    # The rule stage is not held up by the stuck LLM judge either.
    resp = await client.post("/v1/sessions", json=session("rule-1", answer="3-5 business days"))
    assert resp.status == 202
    for _ in range(100):
        if any(e["judge"] == "refund-policy" and e["session_id"] == "rule-1" for e in ingestor.events):
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the rule verdict waited for the LLM judge")


async def test_full_llm_queue_sheds_verdicts_visibly(aiohttp_client: Client, provider: FakeProvider) -> None:
    ingestor = FakeIngestor()
    client = await make_client(
        aiohttp_client, make_spec(provider.base_url, concurrency=1), ingestor, llm_queue_size=2
    )
    provider.delay_s = 0.05
    batch = [session(f"q-{i}", flow="order-status") for i in range(10)]
    assert (await client.post("/v1/sessions", json=batch)).status == 202
    await drained(client)
    shed = ingestor.calls[("faithfulness", "3", "shed")]
    ok = ingestor.calls[("faithfulness", "3", "ok")]
    assert shed + ok == 10 and 7 <= shed <= 8
    status = await (await client.get("/v1/judging")).json()
    assert status["judge_calls"]["faithfulness"]["shed"] == shed


async def test_full_intake_refuses_with_retry_after(aiohttp_client: Client, provider: FakeProvider) -> None:
    ingestor = FakeIngestor()
    client = await make_client(aiohttp_client, make_spec(provider.base_url), ingestor, intake_size=3)
    resp = await client.post("/v1/sessions", json=[session(f"i-{i}") for i in range(5)])
    assert resp.status == 503 and resp.headers["Retry-After"] == "1"
    assert (await resp.json())["error"].startswith("the judging queue is full")
    await asyncio.sleep(0.05)
    assert ingestor.events == [] and ingestor.calls == Counter()


async def test_a_resent_session_is_judged_once(aiohttp_client: Client, provider: FakeProvider) -> None:
    ingestor = FakeIngestor()
    client = await make_client(aiohttp_client, make_spec(provider.base_url), ingestor)
    first = await (await client.post("/v1/sessions", json=session("dup"))).json()
    second = await (await client.post("/v1/sessions", json=session("dup"))).json()
    assert first["duplicate"] is False and second["duplicate"] is True
    await drained(client)
    assert sum(ingestor.calls.values()) == 2  # one rule call, one LLM call


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"agent": "cx-support", "flow": "refund"}, "session_id"),
        (session("x") | {"agent": "nobody"}, "agent"),
        (session("x") | {"flow": "billing"}, "flow"),
        (session("x") | {"outcome": "great"}, "outcome"),
        (session("x") | {"exclude": "vip"}, "exclude"),
        (session("x") | {"time": "2026-01-01T00:00:00"}, "time"),
        (session("x") | {"time": time.time() + 3600}, "time"),
        (session("x") | {"messags": []}, "messags"),
        (session("x") | {"cost_usd": -1}, "cost_usd"),
        (session("x") | {"bad_slos": ["nope"]}, "bad_slos[0]"),
        (session("x") | {"tool_calls": [{"tool": "get_order", "input_hash": 7}]}, "tool_calls.0.input_hash"),
        (
            session("x") | {"tool_calls": [{"tool": "get_order", "parent_task_id": ""}]},
            "tool_calls.0.parent_task_id",
        ),
    ],
)
async def test_invalid_sessions_are_refused_with_the_field(
    aiohttp_client: Client, provider: FakeProvider, body: dict[str, Any], field: str
) -> None:
    ingestor = FakeIngestor()
    client = await make_client(aiohttp_client, make_spec(provider.base_url), ingestor)
    resp = await client.post("/v1/sessions", json=[session("ok-1"), body])
    assert resp.status == 400
    detail = (await resp.json())["detail"]
    assert any(d["index"] == 1 and d["field"] == field for d in detail), detail
    await asyncio.sleep(0.05)
    assert client.app[feedback.PIPELINE].stats.accepted == 0  # atomic: the valid one was not queued either


async def test_not_json_is_400(aiohttp_client: Client, provider: FakeProvider) -> None:
    client = await make_client(aiohttp_client, make_spec(provider.base_url), FakeIngestor())
    resp = await client.post("/v1/sessions", data=b"{nope", headers={"Content-Type": "application/json"})
    assert resp.status == 400 and (await resp.json())["error"] == "the body is not JSON"


async def test_pii_never_reaches_the_sqlite_file(
    aiohttp_client: Client, provider: FakeProvider, tmp_path: Path
) -> None:
    ingestor = FakeIngestor()
    db = tmp_path / "sessions.db"
    client = await make_client(aiohttp_client, make_spec(provider.base_url), ingestor, db_path=str(db))
    pii = ["jane.doe@example.com", "4111 1111 1111 1111", "+1 415-555-0100", "5555555555554444"]
    provider.script.append(Step(verdict={"score": 0.1, "explanation": "mentions jane.doe@example.com"}))
    body = session("pii-1", outcome="failure") | {
        "messages": [
            {"role": "user", "content": f"I'm {pii[0]}, card {pii[1]}, call {pii[2]}"},
            {"role": "assistant", "content": "Noted."},
        ],
        "tool_calls": [{"tool": "get_order", "input": {"card": pii[3]}, "output": {"email": pii[0]}}],
    }
    assert (await client.post("/v1/sessions", json=body)).status == 202
    await drained(client)
    review = await (await client.get("/v1/review")).json()
    assert review["items"], "the failed session should be stored and reviewable"
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("sessions.db"))
    for value in pii:
        assert value.encode() not in raw, value
    assert b"[EMAIL]" in raw and b"[CARD]" in raw and b"[PHONE]" in raw


async def test_tool_call_evidence_is_kept_with_the_stored_session(
    aiohttp_client: Client, provider: FakeProvider, tmp_path: Path
) -> None:
    """Hashes stay verbatim through redaction, even one whose digits pass for a card number (the text
    redactor would cut it); a parent task id holding personal data is pseudonymised like a session id."""
    db = tmp_path / "sessions.db"
    client = await make_client(aiohttp_client, make_spec(provider.base_url), FakeIngestor(), db_path=str(db))
    card_like = "b1ac3a14adbfd6d9c4c4641a18c04de2b5370726980041058edfa926a49a9fb5"  # holds a Luhn run
    calls = [
        {"tool": "get_order", "outcome": "ok", "input_hash": f"sha256:{card_like}", "output_hash": "ab" * 16,
         "parent_task_id": "task-7"},
        {"tool": "issue_refund", "outcome": "error", "parent_task_id": "task-jane@example.com"},
    ]  # fmt: skip
    resp = await client.post("/v1/sessions", json=session("ev-1", outcome="failure", tool_calls=calls))
    assert resp.status == 202
    await drained(client)
    store = SessionStore(str(db))
    try:
        stored = store.session("ev-1")
    finally:
        store.close()
    assert stored is not None
    first, second = stored["session"]["tool_calls"]
    assert (first["input_hash"], first["output_hash"], first["parent_task_id"]) == (
        f"sha256:{card_like}",
        "ab" * 16,
        "task-7",
    )
    assert "[EMAIL]~" in second["parent_task_id"] and "jane" not in second["parent_task_id"]


async def test_tail_based_retention_keeps_every_flagged_session_and_only_the_sample(
    aiohttp_client: Client, provider: FakeProvider
) -> None:
    ingestor = FakeIngestor()
    client = await make_client(
        aiohttp_client, make_spec(provider.base_url, rate=0.05), ingestor, store_sample_rate=0.0
    )
    posted: dict[str, dict[str, Any]] = {}
    for i in range(0, 1000, 100):
        batch = []
        for j in range(i, i + 100):
            kind = j % 10
            extra: dict[str, Any] = {"outcome": "failure" if kind == 1 else "success"}
            answer = "3-5 business days" if kind == 2 else "Refunds take 10 days."
            batch.append(session(f"r-{j}", answer=answer, **extra))
        posted.update({s["session_id"]: s for s in batch})
        answers = (await (await client.post("/v1/sessions", json=batch)).json())["sessions"]
        for a in answers:
            posted[a["session_id"]]["_sampled"] = bool(a["sampled"])
    await drained(client)
    pipeline = client.app[feedback.PIPELINE]
    for sid, s in posted.items():
        flagged = s["outcome"] == "failure" or "3-5" in s["messages"][1]["content"]
        stored = await pipeline.db(pipeline.store.session, sid)
        if flagged or s["_sampled"]:
            assert stored is not None, sid
        else:
            assert stored is None, sid
    sampled = sum(s["_sampled"] for s in posted.values())
    assert 20 <= sampled <= 85  # 5% of 1000, within about 4 sigma


async def test_a_session_failed_by_a_judge_without_an_slo_is_still_kept(
    aiohttp_client: Client, provider: FakeProvider
) -> None:
    text = SPEC.format(url=provider.base_url, rate=0.0, timeout=1, concurrency=1).replace(
        "judges:\n", 'judges:\n  no-slo: {type: rule, version: "1", fail_if_contains: [forbidden]}\n', 1
    )
    client = await make_client(aiohttp_client, parse_spec(text), FakeIngestor(), store_sample_rate=0.0)
    await client.post("/v1/sessions", json=[session("kept", answer="a forbidden word"), session("dropped")])
    await drained(client)
    pipeline = client.app[feedback.PIPELINE]
    kept = await pipeline.db(pipeline.store.session, "kept")
    assert kept is not None and kept["flagged"]
    assert await pipeline.db(pipeline.store.session, "dropped") is None


def test_settings_from_the_environment_and_their_errors() -> None:
    cfg = SessionsConfig.from_env(
        {
            "AGENT_SLO_SESSIONS_RETENTION": "2d",
            "AGENT_SLO_SESSIONS_MAX_MB": "1.5",
            "AGENT_SLO_REDACT": "none",
            "AGENT_SLO_JUDGE_QUEUE": "5",
            "AGENT_SLO_JUDGE_PROCESS": "0",
        }
    )
    assert (cfg.retention_s, cfg.max_bytes, cfg.redact) == (172_800, 1_572_864, "none")
    assert cfg.pipeline.llm_queue_size == 5 and cfg.pipeline.judge_process is False
    assert SessionsConfig.from_env({}).pipeline.judge_process is True
    for env, message in [
        ({"AGENT_SLO_SESSIONS_MAX_MB": "lots"}, "AGENT_SLO_SESSIONS_MAX_MB='lots'"),
        ({"AGENT_SLO_SESSIONS_SAMPLE_RATE": "2"}, "out of range"),
        ({"AGENT_SLO_REDACT": "ssn"}, "AGENT_SLO_REDACT='ssn': unknown redaction kind"),
    ]:
        with pytest.raises(ValueError, match=message):
            SessionsConfig.from_env(env)


async def test_without_a_judge_process_llm_judges_run_in_process(
    aiohttp_client: Client, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentslo.feedback.remote import JudgeProcess

    async def cannot_start(self: JudgeProcess) -> None:
        raise OSError("no processes allowed here")

    monkeypatch.setattr(JudgeProcess, "start", cannot_start)
    ingestor = FakeIngestor()
    client = await make_client(aiohttp_client, make_spec(provider.base_url), ingestor, judge_process=True)
    await client.post("/v1/sessions", json=session("in-process", flow="order-status"))
    await drained(client)
    assert ingestor.calls[("faithfulness", "3", "ok")] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ratio": 0.9, "n": 2**64}, "n"),  # beyond SQLite's integers: was a 500
        ({"ratio": 0.9, "n": -1}, "n"),
        ({"ratio": 0.9, "judge_version": "\x1a"}, "judge_version"),  # a label value: only the declared one
        ({"ratio": 0.9, "judge_version": "2"}, "judge_version"),
        ({"ratio": 1.5}, "ratio"),
    ],
)
async def test_agreement_refuses_what_it_cannot_store_or_publish(
    aiohttp_client: Client, provider: FakeProvider, body: dict[str, Any], field: str
) -> None:
    ingestor = FakeIngestor()
    client = await make_client(aiohttp_client, make_spec(provider.base_url), ingestor)
    resp = await client.post("/v1/judges/faithfulness/agreement", json=body)
    assert resp.status == 400
    assert [d["field"] for d in (await resp.json())["detail"]] == [field]
    ok = await client.post(
        "/v1/judges/faithfulness/agreement", json={"ratio": 0.9, "n": 3, "judge_version": 3}
    )
    assert ok.status == 200 and (await ok.json())["judge_version"] == "3"
    assert ingestor.agreement == {("cx-support", "faithfulness", "3"): 0.9}


async def test_no_kind_of_pii_is_stored_or_served_raw(
    aiohttp_client: Client, provider: FakeProvider, tmp_path: Path
) -> None:
    ingestor = FakeIngestor()
    db = tmp_path / "sessions.db"
    client = await make_client(
        aiohttp_client, make_spec(provider.base_url, rate=0.0), ingestor, db_path=str(db)
    )
    sid = "chat-jane.doe@example.com"
    iban, key, phone = (
        "DE89 3704 0044 0532 0130 00",
        "sk-proj-abcdefghijklmnopqrstuvwx12",
        "+44\u00a020\u00a07946\u00a00958",
    )
    body = session(
        sid, outcome="failure", failure_mode="wrong_refund_window", version="call 0044 20 7946 0958"
    )
    body["messages"][0]["content"] = f"pay to {iban}, my key is {key}, call {phone}"
    body["tool_calls"] = [
        {
            "tool": "issue_refund",
            "input": {"card": 5555555555554444, "jane@example.org": True},
            "outcome": "error",
        }
    ]
    body["metadata"] = {"phone": "555-0100", "order": "A-1001"}
    assert (await client.post("/v1/sessions", json=body)).status == 202
    await drained(client)
    served = [
        await (await client.get(path)).read()
        for path in (
            "/v1/review",
            "/v1/sessions/top?slo=task-success",
            "/v1/sessions/top?slo=tool-call-accuracy",
        )
    ]
    assert b"[IBAN]" in served[0] and b"[SECRET]" in served[0] and b"A-1001" in served[0]
    assert b"[EMAIL]~" in served[1] and b"call [PHONE]~" in served[1]
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("sessions.db"))
    for value in (
        sid,
        "jane.doe",
        iban,
        iban.replace(" ", ""),
        key,
        "7946",
        "5555555555554444",
        "jane@",
        "555-0100",
    ):
        for where, data in [("file", raw), *((f"GET {i}", s) for i, s in enumerate(served))]:
            assert value.encode() not in data, (value, where)


# --- byte bounds: the queues and the bodies being read hold at most so many bytes (issue 17: 12) ---

KB = 1024


def big_session(sid: str, kb: int, **extra: Any) -> dict[str, Any]:
    """A session whose JSON is about `kb` KiB (its answer is ordinary prose)."""
    prose = ("Your refund for order A-1001 was approved and is on its way. " * (kb * KB // 60 + 1))[: kb * KB]
    return session(sid, answer=prose, **extra)


@contextlib.asynccontextmanager
async def text_thread_blocked(client: TestClient[Any, Any]) -> AsyncIterator[None]:
    """Hold the pipeline's text thread, so sessions stay in the intake until the block ends."""
    gate = threading.Event()
    blocker = asyncio.ensure_future(client.app[feedback.PIPELINE].text(gate.wait, 20))
    try:
        yield
    finally:
        gate.set()
        await blocker


async def status(client: TestClient[Any, Any]) -> dict[str, Any]:
    result: dict[str, Any] = await (await client.get("/v1/judging")).json()
    return result


async def test_intake_full_by_bytes_refuses_with_retry_after_and_takes_sessions_again_once_drained(
    aiohttp_client: Client, provider: FakeProvider
) -> None:
    ingestor = FakeIngestor()
    client = await make_client(
        aiohttp_client, make_spec(provider.base_url, rate=0.0), ingestor, intake_bytes=100 * KB
    )
    async with text_thread_blocked(client):
        assert (await client.post("/v1/sessions", json=big_session("b-1", 40))).status == 202
        assert (await client.post("/v1/sessions", json=big_session("b-2", 40))).status == 202
        held = (await status(client))["queue_bytes"]["intake"]
        assert 80 * KB <= held <= 100 * KB
        refused = await client.post("/v1/sessions", json=big_session("b-3", 40))
        assert refused.status == 503 and refused.headers["Retry-After"] == "1"
        assert "MiB of sessions" in (await refused.json())["error"]
    await drained(client)
    assert (await status(client))["queue_bytes"] == {"intake": 0, "llm": 0, "reading": 0}
    assert (await client.post("/v1/sessions", json=big_session("b-3", 40))).status == 202
    await drained(client)
    assert {e["session_id"] for e in ingestor.events} == {"b-1", "b-2", "b-3"}


async def test_a_batch_that_does_not_fit_by_bytes_is_refused_whole(
    aiohttp_client: Client, provider: FakeProvider
) -> None:
    ingestor = FakeIngestor()
    client = await make_client(
        aiohttp_client, make_spec(provider.base_url, rate=0.0), ingestor, intake_bytes=100 * KB
    )
    async with text_thread_blocked(client):
        assert (await client.post("/v1/sessions", json=big_session("w-0", 30))).status == 202
        resp = await client.post("/v1/sessions", json=[big_session(f"w-{i}", 30) for i in range(1, 4)])
        assert resp.status == 503 and resp.headers["Retry-After"] == "1"
    await drained(client)
    assert {e["session_id"] for e in ingestor.events} == {"w-0"}  # none of the refused batch


async def test_one_session_bigger_than_the_byte_bound_still_goes_through_an_empty_queue(
    aiohttp_client: Client, provider: FakeProvider
) -> None:
    ingestor = FakeIngestor()
    client = await make_client(
        aiohttp_client, make_spec(provider.base_url, rate=0.0), ingestor, intake_bytes=10 * KB
    )
    assert (await client.post("/v1/sessions", json=big_session("huge", 50))).status == 202
    await drained(client)
    assert [e["session_id"] for e in ingestor.events] == ["huge"]


async def test_llm_queues_full_by_bytes_shed_verdicts_visibly(
    aiohttp_client: Client, provider: FakeProvider
) -> None:
    ingestor = FakeIngestor()
    client = await make_client(
        aiohttp_client,
        make_spec(provider.base_url, concurrency=1),
        ingestor,
        llm_queue_bytes=100 * KB,
    )
    provider.delay_s = 0.05
    batch = [big_session(f"l-{i}", 30, flow="order-status") for i in range(10)]
    assert (await client.post("/v1/sessions", json=batch)).status == 202
    await drained(client)
    shed = ingestor.calls[("faithfulness", "3", "shed")]
    ok = ingestor.calls[("faithfulness", "3", "ok")]
    assert shed + ok == 10 and 1 <= ok <= 4  # at most ~100 KiB of sessions held for the judge at once
    assert (await status(client))["queue_bytes"]["llm"] == 0  # every hold was released


async def test_bodies_beyond_the_reading_budget_are_refused_unread(
    aiohttp_client: Client, provider: FakeProvider
) -> None:
    ingestor = FakeIngestor()
    client = await make_client(
        aiohttp_client, make_spec(provider.base_url, rate=0.0), ingestor, reading_bytes=64 * KB
    )
    pipeline = client.app[feedback.PIPELINE]
    assert pipeline.start_reading(40 * KB)  # another body being read
    try:
        refused = await client.post("/v1/sessions", json=big_session("r-1", 30))
        assert refused.status == 503 and refused.headers["Retry-After"] == "1"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: it needs the whole budget
            yield orjson.dumps(session("r-2"))

        chunked = await client.post(
            "/v1/sessions", data=chunks(), headers={"Content-Type": "application/json"}
        )
        assert chunked.status == 503
    finally:
        pipeline.done_reading(40 * KB)
    assert (await client.post("/v1/sessions", json=big_session("r-1", 30))).status == 202
    assert (await status(client))["queue_bytes"]["reading"] == 0


async def test_the_dedupe_window_keeps_digests_not_ids(
    aiohttp_client: Client, provider: FakeProvider
) -> None:
    ingestor = FakeIngestor()
    client = await make_client(aiohttp_client, make_spec(provider.base_url, rate=0.0), ingestor)
    long_id = "s" * 256
    assert (await (await client.post("/v1/sessions", json=session(long_id))).json())["duplicate"] is False
    assert (await (await client.post("/v1/sessions", json=session(long_id))).json())["duplicate"] is True
    assert all(len(key) == 16 for key in client.app[feedback.PIPELINE]._seen)
