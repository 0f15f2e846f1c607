"""The client SDK's helpers against a real exporter: each produces exactly the counts its event would.

One exporter serves two agents with the same spec: `bot` gets its events through the SDK, `twin`
gets the hand-written `/v1/events` batch they stand for. Every counter and histogram must then be
equal, label for label (only the sums of measured durations differ).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import agentslo_client as slo
import pytest
from agentslo_client import Client

from agentslo import names
from tests.doubles.sdk_backends import SPEC, Exporter

pytestmark = pytest.mark.timeout(120)

TWIN = SPEC.replace("agent: bot", "agent: twin")
VERSION = "1.4.2"
TINY = 0.0001  # a hand-written duration in the same (lowest) histogram bucket as the measured ones
MEASURED = (names.TASK_DURATION_SECONDS, names.TURN_LATENCY_SECONDS, names.TOOL_CALL_LATENCY_SECONDS)


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exporter]:
    with Exporter(tmp_path_factory.mktemp("client-events"), SPEC, TWIN) as running:
        yield running


@pytest.fixture
def client(exporter: Exporter) -> Iterator[Client]:
    c = Client(exporter.url, agent="bot", flow="refund", version=VERSION, flush_interval_s=0.05)
    yield c
    c.close(5)


def by_agent(exporter: Exporter, agent: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The agent's samples with the agent label left out; measured-duration sums dropped."""
    out = {}
    for (name, labels), value in exporter.samples().items():
        if ("agent", agent) not in labels or name == names.SPEC_INFO:  # the spec's hash differs by its name
            continue
        if name.endswith("_sum") and name.startswith(MEASURED):
            continue
        out[(name, labels - {("agent", agent)})] = value
    return out


class Boom(Exception):
    pass


def test_every_helper_counts_what_its_event_counts(exporter: Exporter, client: Client) -> None:
    @client.tool()
    def get_order(order_id: str) -> dict[str, str]:
        return {"order_id": order_id}

    @client.tool("issue_refund")
    def refund(order_id: str) -> None:
        raise Boom(order_id)

    with client.task() as task:  # the client's flow: refund
        with client.turn(kind="first_response") as turn:
            turn.add_tokens(input=100, output=20, model="gpt-4o")
        get_order("A-1")
        with pytest.raises(Boom):
            refund("A-1")
        task.add_cost(0.01)
    with client.task("order-status") as task:
        task.fail("quoted the old window", failure_mode="wrong_refund_window")
    with client.task() as task:
        task.abandon()
    with client.task() as task:
        task.escalate()  # required, with context: an escalation event too
    with client.task(escalation_required=True):  # a success that needed a human: missed escalation
        pass
    with client.task(synthetic="refund-probe"):  # the prober's header value: excluded, as synthetic
        with client.tool("get_order") as call:
            call.outcome = "empty_result"
    client.record_judge("faith", 0.9)
    client.record_judge("faith", 0.5, judge_version="3", flow="order-status")
    client.record_connection(True)
    client.record_connection(False, flow="order-status")
    client.record_escalation(required=False, performed=False)
    client.record_turn(2.5)
    client.record_tool_call(
        "issue_refund", "invalid_params", latency_s=0.2, input_hash="ab" * 16, parent_task_id="t-1"
    )
    client.record_task("failure", duration_s=6.0, cost_usd=0.2, steps=4, input_tokens=7, model="gpt-4o-mini")
    client.record({"type": "turn", "kind": "tool_turn", "latency_s": 0.3, "flow": "order-status"})
    assert client.flush(10)
    assert client.stats().delivered == 21 and client.stats().rejected == 0

    common = {"agent": "twin", "version": VERSION}
    refund_ = {**common, "flow": "refund"}
    status = {**common, "flow": "order-status"}
    synthetic = {**refund_, "exclude": "synthetic"}
    batch: list[dict[str, Any]] = [
        {"type": "turn", **refund_, "kind": "first_response", "latency_s": TINY, "model": "gpt-4o"},
        {"type": "tool_call", **refund_, "tool": "get_order", "outcome": "ok", "latency_s": TINY},
        {"type": "tool_call", **refund_, "tool": "issue_refund", "outcome": "error", "latency_s": TINY},
        {
            "type": "task",
            **refund_,
            "outcome": "success",
            "duration_s": TINY,
            "cost_usd": 0.01,
            "steps": 3,
            "tokens": {"input": 100, "output": 20},
            "model": "gpt-4o",
        },
        {
            "type": "task",
            **status,
            "outcome": "failure",
            "duration_s": TINY,
            "failure_mode": "wrong_refund_window",
        },
        {"type": "task", **refund_, "outcome": "abandoned", "duration_s": TINY},
        {"type": "task", **refund_, "outcome": "escalated", "escalation_required": True, "duration_s": TINY},
        {"type": "escalation", **refund_, "required": True, "performed": True, "context_preserved": True},
        {"type": "task", **refund_, "outcome": "success", "escalation_required": True, "duration_s": TINY},
        {"type": "escalation", **refund_, "required": True, "performed": False},
        {"type": "tool_call", **synthetic, "tool": "get_order", "outcome": "empty_result", "latency_s": TINY},
        {"type": "task", **synthetic, "outcome": "success", "duration_s": TINY, "steps": 1},
        {"type": "judge", **refund_, "judge": "faith", "score": 0.9},
        {"type": "judge", **status, "judge": "faith", "score": 0.5, "judge_version": "3"},
        {"type": "connection", **refund_, "ok": True},
        {"type": "connection", **status, "ok": False},
        {"type": "escalation", **refund_, "required": False, "performed": False},
        {"type": "turn", **refund_, "kind": "turn", "latency_s": 2.5},
        {
            "type": "tool_call",
            **refund_,
            "tool": "issue_refund",
            "outcome": "invalid_params",
            "latency_s": 0.2,
            "input_hash": "ab" * 16,  # evidence: accepted, never a label, so the counts are the same
            "parent_task_id": "t-1",
        },
        {
            "type": "task",
            **refund_,
            "outcome": "failure",
            "duration_s": 6.0,
            "cost_usd": 0.2,
            "steps": 4,
            "tokens": {"input": 7, "output": 0},
            "model": "gpt-4o-mini",
        },
        {"type": "turn", **status, "kind": "tool_turn", "latency_s": 0.3},
    ]
    assert len(batch) == 21
    status_code, body = exporter.post("/v1/events", batch)
    assert status_code == 200, body

    sdk, hand = by_agent(exporter, "bot"), by_agent(exporter, "twin")
    assert sdk == hand
    good_bad = {k: v for k, v in sdk.items() if k[0] == names.EVENTS_TOTAL and v}
    assert len(good_bad) > 15  # the comparison covers every SLI kind, not an empty scrape


def test_an_exception_in_a_task_is_a_failure_and_reraised_unchanged(
    exporter: Exporter, client: Client
) -> None:
    error = Boom("the very same")
    before = exporter.value(names.EVENTS_TOTAL, agent="bot", slo="task-success", flow="refund", outcome="bad")
    with pytest.raises(Boom) as raised:
        with client.task() as task:
            task.success()  # an exception still wins over an earlier success()
            raise error
    assert raised.value is error and raised.value.__traceback__ is not None

    @client.task("refund")
    def handle(question: str) -> str:
        raise KeyError(question)

    with pytest.raises(KeyError) as raised_key:
        handle("where is my refund")
    assert raised_key.value.args == ("where is my refund",)
    assert client.flush(10)
    after = exporter.value(names.EVENTS_TOTAL, agent="bot", slo="task-success", flow="refund", outcome="bad")
    assert after - before == 2


def test_async_tasks_tools_and_turns_count_like_sync_ones(exporter: Exporter, client: Client) -> None:
    @client.tool("get_order")
    async def get_order() -> str:
        await asyncio.sleep(0)
        return "ok"

    @client.task("order-status")
    async def handle() -> str:
        async with client.turn():
            await asyncio.sleep(0)
        return await get_order()

    async def cancelled() -> None:
        async with client.task("order-status"):
            raise asyncio.CancelledError

    labels = {"agent": "bot", "flow": "order-status"}
    good = exporter.value(names.EVENTS_TOTAL, **labels, slo="task-success", outcome="good")
    bad = exporter.value(names.EVENTS_TOTAL, **labels, slo="task-success", outcome="bad")
    assert asyncio.run(handle()) == "ok"
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(cancelled())  # abandoned: bad for the task SLI, and the cancellation goes on
    assert client.flush(10)
    assert exporter.value(names.EVENTS_TOTAL, **labels, slo="task-success", outcome="good") == good + 1
    assert exporter.value(names.EVENTS_TOTAL, **labels, slo="task-success", outcome="bad") == bad + 1
    assert exporter.value(names.TOOL_CALLS_TOTAL, **labels, tool="get_order", outcome="ok") >= 1


def test_the_module_level_client_reports_to_the_client_init_makes_later(exporter: Exporter) -> None:
    @slo.tool("get_order")  # decorated before init(), as at import time
    def get_order() -> None:
        return None

    before = exporter.value(names.TOOL_CALLS_TOTAL, agent="bot", flow="order-status", outcome="ok")
    client = slo.init(exporter.url, "bot", flow="order-status", flush_interval_s=0.05)
    try:
        with slo.task():
            get_order()
            assert slo.current_task().flow == "order-status" or slo.current_task().flow is None
        assert slo.flush(10)
        after = exporter.value(names.TOOL_CALLS_TOTAL, agent="bot", flow="order-status", outcome="ok")
        assert after == before + 1
        assert client.stats().delivered == 2
    finally:
        slo.close(5)


def test_a_task_can_name_its_flow_once_it_knows_it(exporter: Exporter, client: Client) -> None:
    labels = {"agent": "bot", "flow": "order-status", "slo": "task-success"}
    before = exporter.value(names.EVENTS_TOTAL, **labels)
    with client.task() as task:
        task.flow = "order-status"  # classified inside the task; a turn recorded after it follows
        client.record_turn(0.1)
    assert client.flush(10)
    assert exporter.value(names.EVENTS_TOTAL, **labels) == before + 1


def test_a_task_submits_its_session_for_the_judges(exporter: Exporter, client: Client) -> None:
    accepted = exporter.get("/v1/judging")["accepted"]
    with client.task(session_id="sess-1") as task:
        task.attach_session(
            [{"role": "user", "content": "refund A-1?"}, {"role": "assistant", "content": "Done."}],
            context=["Refunds are issued within 10 days."],
        )
        task.fail("no refund issued", failure_mode="wrong_refund_window")
    messages = [{"role": "user", "content": "hi"}]
    session_id = client.submit_session(messages, flow="order-status", outcome="success")
    assert session_id is not None
    assert client.flush(10)
    stats = client.stats()
    assert (stats.sessions_delivered, stats.sessions_rejected) == (2, 0)
    assert exporter.get("/v1/judging")["accepted"] == accepted + 2


def test_helpers_given_nonsense_never_raise_and_the_exporter_refusal_is_counted(
    exporter: Exporter, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="agentslo_client")
    client.record_turn("slow")  # type: ignore[arg-type]
    client.record_tool_call("get_order", "fine")
    client.record_judge("faith", float("nan"))  # not JSON: dropped before sending
    client.record({"type": "nope"})
    client.record(42)  # type: ignore[arg-type]
    Client(exporter.url, agent="bot").record_turn(0.1)  # no flow anywhere: logged, not sent
    assert client.flush(10)
    stats = client.stats()
    assert (stats.rejected, stats.dropped, stats.delivered) == (3, 1, 0)
    assert "latency_s" in caplog.text and "names no flow" in caplog.text


def test_a_no_op_client_times_and_reraises_but_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENT_SLO_URL", raising=False)
    monkeypatch.setenv("AGENT_SLO_AGENT", "bot")
    for client in (Client(), Client("http://127.0.0.1:9", "bot", enabled=False)):
        assert not client.enabled
        with pytest.raises(Boom):
            with client.task("refund"):
                raise Boom
        client.record_turn(0.1, flow="refund")
        assert client.flush(0.1) and client.close(0.1)
        assert client.stats().delivered == client.stats().queued == 0
    monkeypatch.setenv("AGENT_SLO_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AGENT_SLO_DISABLED", "1")
    assert not Client().enabled


def test_recording_costs_the_caller_microseconds(exporter: Exporter) -> None:
    client = Client(exporter.url, agent="bot", flow="refund", max_queue=100_000, flush_interval_s=0.05)
    n = 20_000
    start = time.perf_counter()
    for _ in range(n):
        client.record_tool_call("get_order", "ok", latency_s=0.01)
    per_event_us = (time.perf_counter() - start) / n * 1e6
    assert client.close(20)
    assert client.stats().delivered == n
    assert per_event_us < 50  # the benchmark measures it properly; this only catches a blocking path
