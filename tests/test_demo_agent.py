"""The demo CX agent: the real prober passes the example scenarios against it when healthy and
catches each injected fault; it reports events (marked synthetic for probes) and replays by seed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from aiohttp import web

from agentslo.demo.agent import AgentState, create_app, faults_from
from agentslo.demo.faults import HALLUCINATED_REFUND_WINDOW, INCIDENTS, Faults
from agentslo.demo.policy import HELP
from agentslo.judges.llm import close_clients
from agentslo.scenario import load_scenarios
from agentslo.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
run_cycle = pytest.importorskip("agentslo.synthetic.runner").run_cycle


@pytest.fixture(scope="module")
def spec():
    return load_spec(ROOT / "examples" / "cx-support.slo.yaml")


@pytest.fixture(scope="module")
def scenarios(spec):
    return load_scenarios(spec)


@pytest.fixture()
def sink(aiohttp_server):
    """A stand-in exporter that keeps every batch posted to /v1/events."""

    async def make():
        batches: list[tuple[dict, list]] = []

        async def events(request: web.Request) -> web.Response:
            batches.append((dict(request.headers), await request.json()))
            return web.json_response({"accepted": len(batches[-1][1])})

        app = web.Application()
        app.router.add_post("/v1/events", events)
        server = await aiohttp_server(app)
        return str(server.make_url("")).rstrip("/"), batches

    return make


async def start_agent(aiohttp_server, spec, monkeypatch, **state):
    agent = AgentState(spec, time_scale=0.0, **state)
    server = await aiohttp_server(create_app(agent))
    base = str(server.make_url("/v1"))
    monkeypatch.setenv("OPENAI_BASE_URL", base)  # llm-rubric assertions use the agent's stand-in judge
    monkeypatch.setenv("OPENAI_API_KEY", "demo-no-key")
    return agent, base


async def probe(spec, scenarios, base: str) -> dict[str, list[str]]:
    target = spec.synthetic.target.model_copy(update={"base_url": base})
    try:
        results = await run_cycle(spec, scenarios, target)
    finally:
        await close_clients()  # the llm-rubric judges' HTTP clients, as `agent-slo probe` closes them
    return {r.name: [f.message for f in r.failures()] + ([r.error] if r.error else []) for r in results}


async def test_healthy_agent_passes_every_example_scenario(aiohttp_server, spec, scenarios, monkeypatch):
    # Healthy: without the baseline failures the demo agent draws for ~0.8% of its conversations
    # (the probes' session ids are random, so with them this failed about one run in 25).
    healthy = Faults(base_failure_rate=0.0, base_tool_error_rate=0.0)
    _, base = await start_agent(aiohttp_server, spec, monkeypatch, faults=healthy)
    failures = await probe(spec, scenarios, base)
    assert failures and not {name: f for name, f in failures.items() if f}


@pytest.mark.parametrize(
    ("faults", "scenario", "expected"),
    [
        (Faults(refund_window_rate=1.0), "refund-delivered-order", "3"),
        (Faults(wrong_tool_rate=1.0), "order-status-shipped", r"get_account_balance|steps"),
        (Faults(task_failure_rate=1.0), "order-status-shipped", "1Z999AA10123456784"),
        (Faults(regression_version="1.0.0", regression_failure_rate=1.0), "password-reset-verified", "email"),
    ],
    ids=["refund-window", "wrong-tool", "outage", "regression"],
)
async def test_each_fault_is_caught_by_the_prober(
    aiohttp_server, spec, scenarios, monkeypatch, faults, scenario, expected
):
    _, base = await start_agent(aiohttp_server, spec, monkeypatch, faults=faults)
    failures = await probe(spec, scenarios, base)
    assert failures[scenario], f"{scenario} should fail under {faults}"
    assert any(re.search(expected, message) for message in failures[scenario]), failures[scenario]


async def test_latency_fault_is_slept_and_caught(aiohttp_server, spec, scenarios, monkeypatch):
    agent, base = await start_agent(
        aiohttp_server, spec, monkeypatch, faults=Faults(slow_rate=1.0, slow_extra_s=1.3)
    )
    agent.time_scale = 1.0
    only = [s for s in scenarios if s.name == "order-status-shipped"]
    failures = await probe(spec, only, base)
    assert any("latency" in m or "1.2" in m for m in failures["order-status-shipped"]), failures


async def test_finished_tasks_are_reported_and_probe_events_marked_synthetic(
    aiohttp_server, aiohttp_client, spec, sink
):
    url, batches = await sink()
    client = await aiohttp_client(create_app(AgentState(spec, time_scale=0.0, exporter_url=url)))
    body = {"model": "cx-support", "messages": [{"role": "user", "content": "Where is my order C-3003?"}]}
    resp = await client.post("/v1/chat/completions", json=body)
    answer = await resp.json()
    assert "1Z999AA10123456784" in answer["choices"][0]["message"]["content"]
    resp = await client.post(
        "/v1/chat/completions", json=body, headers={"X-Agent-SLO-Synthetic": "order-status"}
    )
    assert resp.status == 200
    await client.close()  # the client SDK delivers what it still holds
    events = [e for _, batch in batches for e in batch]
    real = [e for e in events if "exclude" not in e]
    probe_batch = [e for e in events if e.get("exclude") == "synthetic"]
    assert real and probe_batch and len(real) + len(probe_batch) == len(events)
    assert {e["type"] for e in real} >= {"task", "tool_call", "turn"}
    assert all(e["flow"] == "order-status" and "exclude" not in e for e in real)
    assert all(e["exclude"] == "synthetic" for e in probe_batch)
    task = next(e for e in real if e["type"] == "task")
    assert task["version"] == "1.0.0" and task["outcome"] == "success"


async def test_same_seed_replays_the_same_conversations(aiohttp_client, spec):
    async def transcript(seed: int) -> list[str]:
        faults = Faults(wrong_tool_rate=0.5, refund_window_rate=0.5)
        client = await aiohttp_client(create_app(AgentState(spec, seed=seed, time_scale=0.0, faults=faults)))
        out = []
        for _ in range(12):  # twelve conversations with the same opening, two turns each
            messages = [{"role": "user", "content": "Refund order A-1001 please"}]
            resp = await client.post("/v1/chat/completions", json={"messages": messages})
            messages += [
                (await resp.json())["choices"][0]["message"],
                {"role": "user", "content": "Yes please."},
            ]
            resp = await client.post("/v1/chat/completions", json={"messages": messages})
            out.append(json.dumps((await resp.json())["choices"][0]["message"]))
        await client.close()
        return out

    first, again, other = await transcript(1), await transcript(1), await transcript(2)
    assert first == again
    assert first != other
    assert any(HALLUCINATED_REFUND_WINDOW in t for t in first)


async def test_an_opening_about_nothing_the_shop_does_gets_what_it_can_help_with(aiohttp_client, spec):
    client = await aiohttp_client(create_app(AgentState(spec, time_scale=0.0)))
    body = {"messages": [{"role": "user", "content": "Hi, what can you help me with?"}]}
    answer = await (await client.post("/v1/chat/completions", json=body)).json()
    assert answer["choices"][0]["message"]["content"] == HELP


async def test_models_and_admin_endpoints(aiohttp_client, spec):
    client = await aiohttp_client(create_app(AgentState(spec, time_scale=0.0)))
    models = await (await client.get("/v1/models")).json()
    assert [m["id"] for m in models["data"]] == ["cx-support"]
    resp = await client.post("/admin/faults", json={"incident": "wrong-tool-8pct"})
    assert (await resp.json())["faults"]["wrong_tool_rate"] == 0.08
    resp = await client.post("/admin/faults", json={"incident": "nope"})
    assert resp.status == 400 and "known:" in (await resp.json())["error"]
    resp = await client.post("/admin/deploy", json={"version": "2.0.0"})
    assert (await resp.json())["version"] == "2.0.0"


def test_faults_from_accepts_incidents_and_fields():
    assert faults_from({"incident": "gradual-drift"}) == INCIDENTS["gradual-drift"].faults
    f = faults_from({"drift": {"start": 0.9, "end": 0.5, "over_s": 60}, "flows": ["refund"]})
    assert f.drift.success_at(30) == pytest.approx(0.7) and f.flows == ("refund",)
    with pytest.raises(ValueError, match="unknown fault field"):
        faults_from({"wrong_tool": 1})
