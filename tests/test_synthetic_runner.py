"""The prober against a local fake agent: each way an agent goes wrong is caught by the right assertion."""

from __future__ import annotations

import json
import socket
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest

from agentslo.scenario import Scenario, load_scenarios, parse_scenarios
from agentslo.spec import Spec, load_spec
from agentslo.synthetic.records import ScenarioResult
from agentslo.synthetic.runner import run_cycle
from agentslo.synthetic.sinks import CallableSink
from agentslo.synthetic.targets import SYNTHETIC_HEADER
from tests.doubles.cx_agent import FakeAgent, running_fake_agent
from tests.doubles.fake_provider import FakeProvider

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load_spec(ROOT / "examples" / "cx-support.slo.yaml")


@pytest.fixture(scope="module")
def scenarios(spec: Spec) -> list[Scenario]:
    return load_scenarios(spec)


def _rubric_judge(prompt: str) -> dict[str, Any]:
    """A stand-in grader for the refund rubric: cites the 30-day policy and offers an alternative."""
    final = prompt.split("## Final answer", 1)[-1]
    ok = "30-day refund policy" in final and ("store credit" in final or "human" in final)
    return {"score": 0.95 if ok else 0.1, "label": "pass" if ok else "fail", "explanation": "graded"}


@pytest.fixture
async def judge_client() -> AsyncIterator[openai.AsyncOpenAI]:
    async with FakeProvider(judge=_rubric_judge) as provider:
        client = openai.AsyncOpenAI(base_url=provider.base_url, api_key="test", max_retries=0)
        yield client
        await client.close()


async def _cycle(
    spec: Spec, scenarios: list[Scenario], agent: FakeAgent, **kw: Any
) -> dict[str, ScenarioResult]:
    results = await run_cycle(spec, scenarios, target_url=agent.base_url, **kw)
    return {r.name: r for r in results}


def _failures(result: ScenarioResult) -> list[str]:
    return [f"{f.scope}: {f.type}: {f.message}" for f in result.failures()]


async def test_a_good_agent_passes_every_example_scenario(spec, scenarios, judge_client) -> None:
    events: list[dict[str, Any]] = []
    async with running_fake_agent("good") as agent:
        results = await _cycle(
            spec, scenarios, agent, sink=CallableSink(events.extend), judge_client=judge_client
        )
    assert {n: _failures(r) for n, r in results.items() if not r.passed} == {}
    assert sorted(e["scenario"] for e in events) == sorted(results)
    event = next(e for e in events if e["scenario"] == "refund-delivered-order")
    assert event["type"] == "synthetic" and event["agent"] == "cx-support" and event["flow"] == "refund"
    assert event["passed"] is True and 0 < event["duration_s"] < 5
    # every probe request is marked, so the agent can tag its own events with the `synthetic` exclusion
    assert {r["headers"][SYNTHETIC_HEADER.lower()] for r in agent.requests} == set(results)


async def test_scripted_tool_results_are_played_back_and_tools_declared(spec, scenarios) -> None:
    shipped = [s for s in scenarios if s.name == "order-status-shipped"]
    async with running_fake_agent("good") as agent:
        (result,) = (await _cycle(spec, shipped, agent)).values()
    assert result.passed, _failures(result)
    second = agent.requests[1]["body"]
    tool_message = next(m for m in second["messages"] if m["role"] == "tool")
    assert json.loads(tool_message["content"])["tracking"] == "1Z999AA10123456784"
    declared = {t["function"]["name"]: t["function"]["parameters"] for t in second["tools"]}
    assert declared["get_order"]["required"] == ["order_id"]
    assert set(declared) == set(spec.tools)  # scripted tools plus the spec's others
    turn = result.turns[0]
    assert [c.name for c in turn.tool_calls] == ["get_order"] and turn.steps == 3


async def test_wrong_tool_is_caught_by_tool_called(spec, scenarios) -> None:
    async with running_fake_agent("wrong_tool") as agent:
        results = await _cycle(spec, [s for s in scenarios if s.flow == "order-status"], agent)
    failures = _failures(results["order-status-shipped"])
    assert "turn 1: tool-called: expected a call to `get_order`; got [get_account_balance]" in failures
    assert (
        "turn 1: not-tool-called: expected not a call to `get_account_balance`; got [get_account_balance]"
        in failures
    )
    assert not results["order-status-unknown-order"].passed


async def test_retired_refund_window_is_caught_by_not_regex(spec, scenarios, judge_client) -> None:
    async with running_fake_agent("bad_policy") as agent:
        results = await _cycle(spec, scenarios, agent, judge_client=judge_client)
    assert [n for n, r in results.items() if not r.passed] == ["refund-delivered-order"]
    (policy,) = [f for f in results["refund-delivered-order"].failures() if f.type == "not-regex"]
    assert policy.scope == "turn 2" and policy.label == "never quotes the retired 3-5 day window"
    assert policy.message.startswith(
        "expected not a match for /\\b3\\s*-\\s*5 business days\\b/; matched '3-5 business days'"
    )


async def test_slow_agent_is_caught_by_latency_under(spec, scenarios) -> None:
    async with running_fake_agent("good", slow_s=0.7) as agent:
        agent.per_scenario["order-status-shipped"] = "slow"
        results = await _cycle(spec, [s for s in scenarios if s.flow == "order-status"], agent)
    (slow,) = [f for f in results["order-status-shipped"].failures() if f.type == "latency-under"]
    assert slow.message.startswith("expected a reply within 1.2s; took 1.")
    assert results["order-status-unknown-order"].passed


async def test_hanging_agent_hits_the_scenario_timeout(spec, scenarios) -> None:
    async with running_fake_agent("hang") as agent:
        results = await _cycle(
            spec, [s for s in scenarios if s.name == "password-reset-verified"], agent, timeout=0.5
        )
    result = results["password-reset-verified"]
    assert not result.passed and 0.5 <= result.duration_s < 2
    assert result.error == "expected the scenario to finish within 0.5s; it timed out during turn 1"
    assert result.assertions and all(a.skipped for a in result.assertions)


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        ("malformed_body", "turn 1: expected a chat completion from http://127.0.0.1:"),
        ("error", "got HTTP 500"),
        (
            "loop",
            "expected an answer within max_steps=8 (LLM calls + tool calls); the agent was still calling",
        ),
    ],
)
async def test_broken_replies_fail_the_scenario_with_a_reason(
    spec, scenarios, behaviour: str, expected: str
) -> None:
    async with running_fake_agent(behaviour) as agent:
        results = await _cycle(spec, [s for s in scenarios if s.name == "order-status-shipped"], agent)
    result = results["order-status-shipped"]
    assert not result.passed and result.error is not None and expected in result.error, result.error


async def test_agent_down_is_a_failed_run_not_a_crash(spec, scenarios) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    events: list[dict[str, Any]] = []
    results = await run_cycle(
        spec, scenarios, target_url=f"http://127.0.0.1:{port}/v1", sink=CallableSink(events.extend)
    )
    assert all(not r.passed for r in results) and len(events) == len(scenarios)
    assert all(e["passed"] is False for e in events)
    assert (results[0].error or "").startswith(
        f"turn 1: expected a reply from http://127.0.0.1:{port}/v1; could not connect ("
    )


JSON_SCENARIO = textwrap.dedent(
    """
    scenarios:
      order-status-json:
        flow: order-status
        system: "You are the order-status API. Reply in JSON: {\\"reply\\": text}."
        tools:
          get_order:
            result: {order_id: C-3003, status: shipped, carrier: UPS, tracking: "1Z9", eta: "2026-11-25"}
        turns:
          - user: "Where is order C-3003?"
            assert:
              - {type: is-json}
              - {type: json-path, value: {path: reply, matches: "shipped with UPS"}}
    """
)


async def test_malformed_output_is_caught_by_is_json(spec) -> None:
    scenarios = parse_scenarios(JSON_SCENARIO, "json.yaml", spec)
    async with running_fake_agent("good") as agent:
        good = (await _cycle(spec, scenarios, agent))["order-status-json"]
        agent.behaviour = "malformed_output"
        bad = (await _cycle(spec, scenarios, agent))["order-status-json"]
    assert good.passed, _failures(good)
    messages = _failures(bad)
    assert messages[0].startswith(
        'turn 1: is-json: expected the reply to be JSON; got \'{"reply": "Your order'
    )
    assert messages[1].startswith("turn 1: json-path: expected JSON with `reply`; the reply is not JSON")


async def test_concurrency_is_bounded(spec, scenarios) -> None:
    many = [
        s.model_copy(update={"name": f"{s.name}-{i}"})
        for i in range(4)
        for s in scenarios
        if s.flow != "refund"
    ]
    async with running_fake_agent("good", delay_s=0.05) as agent:
        results = await _cycle(spec, many, agent, concurrency=3)
    assert len(results) == 12 and all(r.passed for r in results.values())
    assert agent.max_in_flight == 3


HTTP_SPEC = textwrap.dedent(
    """
    version: agent-slo/v1
    agent: cx-support
    owners: {product: {team: cx}}
    flows: {refund: {risk: billing}, order-status: {risk: faq}}
    tools: [get_order, issue_refund, get_account_balance]
    slos:
      probes: {sli: {synthetic: {}}, objective: 99, owner: product}
    synthetic:
      target:
        type: http
        url: "http://127.0.0.1:1/chat"
        headers: {X-Api-Key: "${PROBE_KEY}", X-Static: plain}
        request:
          {message: "$message", history: "$history", session_id: "$session_id", meta: "probe $session_id"}
        response_text: reply.text
        response_tool_calls: tool_calls
      scenarios: [probes.yaml]
    """
)
HTTP_SCENARIOS = textwrap.dedent(
    """
    scenarios:
      http-refund:
        flow: refund
        turns:
          - user: "I'd like a refund for order A-1001"
            assert:
              - {type: tool-args-match, value: {tool: get_order, args: {order_id: A-1001}}}
              - {type: icontains, value: "within our 30-day refund window"}
          - user: "yes, refund it"
            assert:
              - {type: tool-called, value: issue_refund}
              - {type: contains, value: "5-10 business days"}
    """
)


async def test_http_target_maps_request_and_response_and_expands_env_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "agent.slo.yaml").write_text(HTTP_SPEC)
    (tmp_path / "probes.yaml").write_text(HTTP_SCENARIOS)
    spec = load_spec(tmp_path / "agent.slo.yaml")
    scenarios = load_scenarios(spec)
    monkeypatch.setenv("PROBE_KEY", "s3cret")
    async with running_fake_agent("good") as agent:
        url = agent.base_url.removesuffix("/v1") + "/chat"
        (result,) = await run_cycle(spec, scenarios, target_url=url)
        agent.behaviour = "bad_policy"
        (bad,) = await run_cycle(spec, scenarios, target_url=url)
    assert result.passed, _failures(result)
    first, second = agent.requests[0], agent.requests[1]
    assert first["headers"]["x-api-key"] == "s3cret" and first["headers"]["x-static"] == "plain"
    assert first["body"]["message"] == "I'd like a refund for order A-1001" and first["body"]["history"] == []
    assert first["body"]["meta"] == f"probe {result.session_id}"
    assert [m["role"] for m in second["body"]["history"]] == ["user", "assistant"]
    assert [[c.name for c in t.tool_calls] for t in result.turns] == [["get_order"], ["issue_refund"]]
    assert ["turn 2: contains"] == [f.split(": expected")[0] for f in _failures(bad)]


async def test_http_target_with_a_missing_secret_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentslo.synthetic.targets import TargetConfigError

    (tmp_path / "agent.slo.yaml").write_text(HTTP_SPEC)
    (tmp_path / "probes.yaml").write_text(HTTP_SCENARIOS)
    spec = load_spec(tmp_path / "agent.slo.yaml")
    monkeypatch.delenv("PROBE_KEY", raising=False)
    with pytest.raises(TargetConfigError, match=r"synthetic.target.headers.X-Api-Key uses \$\{PROBE_KEY\}"):
        await run_cycle(spec, load_scenarios(spec))


async def test_a_reply_slower_than_the_target_timeout_is_reported_as_a_timeout(spec, scenarios) -> None:
    config = spec.synthetic.target.model_copy(update={"timeout": 0.3})
    shipped = [s for s in scenarios if s.name == "order-status-shipped"]
    async with running_fake_agent("slow", slow_s=1.0) as agent:
        (result,) = await run_cycle(spec, shipped, config, target_url=agent.base_url)
    assert result.error == f"turn 1: expected a reply from {agent.base_url} within 0.3s; it timed out"


async def test_openai_target_sends_the_key_and_headers_from_the_environment(
    spec, scenarios, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = spec.synthetic.target.model_copy(
        update={"api_key_env": "PROBE_OPENAI_KEY", "headers": {"X-Tenant": "${PROBE_TENANT}-eu"}}
    )
    monkeypatch.setenv("PROBE_OPENAI_KEY", "sk-probe")
    monkeypatch.setenv("PROBE_TENANT", "acme")
    shipped = [s for s in scenarios if s.name == "order-status-shipped"]
    async with running_fake_agent() as agent:
        (result,) = await run_cycle(spec, shipped, config, target_url=agent.base_url)
    assert result.passed
    headers = agent.requests[0]["headers"]
    assert headers["authorization"] == "Bearer sk-probe" and headers["x-tenant"] == "acme-eu"
    assert agent.requests[0]["body"]["model"] == "cx-support"


async def test_a_prober_fault_fails_the_run_and_is_sent_excluded(spec, scenarios) -> None:
    class Broken:
        async def turn(self, conversation: Any, user: str) -> Any:
            raise KeyError("bug")

        async def aclose(self) -> None:
            return None

    events: list[dict[str, Any]] = []
    results = await run_cycle(spec, scenarios[:2], Broken(), sink=CallableSink(events.extend))
    assert [r.passed for r in results] == [False, False]
    # counted, but as the prober's failure: excluded from every budget, never the agent's
    assert [(e["scenario"], e["passed"], e["exclude"]) for e in events] == [
        (r.name, False, "prober_error") for r in results
    ]
    assert all("session_id" not in e for e in events)
    assert results[0].error == "prober error (not the agent's): KeyError: 'bug'"
