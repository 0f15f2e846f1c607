"""Golden batches: every event type, through POST /v1/events, read back from /metrics (parsed)."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from prometheus_client.parser import text_string_to_metric_families

from agentslo import names
from agentslo.exporter.app import INGESTOR, create_app
from agentslo.exporter.config import ExporterConfig
from agentslo.spec import parse_spec

SPEC = """
version: agent-slo/v1
agent: bot
owners: {team: {team: t}}
exclusions: [test_call, abuse]
flows:
  refund: {risk: billing}
  faq: {risk: faq}
tools: [get_order, issue_refund]
failure_modes: [loop]
models: [m1]
judges:
  faith: {type: llm, model: m1, version: "3", rubric: "grounded?", pass_threshold: 0.8}
  policy: {type: rule, version: "1", flows: [refund], fail_if_matches: ['x']}
slos:
  task: {sli: {task: {}}, objective: auto, owner: team}
  task-strict: {sli: {task: {}}, objective: 99, owner: team, exclusions: [], flows: [refund]}
  tools: {sli: {tool_calls: {}}, objective: 90, owner: team}
  refund-tool: {sli: {tool_calls: {tools: [issue_refund]}}, objective: 99, owner: team}
  faith: {sli: {judge: faith}, objective: auto, owner: team}
  policy: {sli: {judge: policy}, objective: 99, owner: team}
  e2e: {sli: {latency: {of: task, under: 4.5s}}, objective: 99, owner: team}
  turn: {sli: {latency: {of: turn, under: 1.2s}}, objective: 95, owner: team}
  first: {sli: {latency: {of: first_response, under: 800ms}}, objective: 95, owner: team}
  cost: {sli: {cost: {under_usd: 0.18}}, objective: 90, owner: team}
  esc: {sli: {escalation: {}}, objective: 97, owner: team}
  conn: {sli: {connection: {}}, objective: 99.9, owner: team}
  synth: {sli: {synthetic: {}}, objective: 99, owner: team}
synthetic:
  target: {type: http, url: "http://127.0.0.1:1/chat"}
  scenarios: [scenarios/*.yaml]
"""
E = {"agent": "bot", "flow": "refund"}


def spec():
    return parse_spec(SPEC)


@pytest.fixture(autouse=True)
def _no_judge_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests send verdicts themselves; don't spawn the judges' worker process for every app."""
    monkeypatch.setenv("AGENT_SLO_JUDGE_PROCESS", "0")


@pytest.fixture
async def client(aiohttp_client: Any) -> Any:
    return await aiohttp_client(create_app([spec()], ExporterConfig(max_scenarios=3)))


async def scrape(client: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    resp = await client.get("/metrics")
    assert resp.status == 200
    text = await resp.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def ev(slo: str, outcome: str, exclusion: str = "", flow: str = "refund") -> tuple[str, frozenset]:
    labels = {"agent": "bot", "flow": flow, "slo": slo, "outcome": outcome, "exclusion": exclusion}
    return names.EVENTS_TOTAL, frozenset(labels.items())


def m(name: str, **labels: str) -> tuple[str, frozenset]:
    return name, frozenset(labels.items())


async def post(client: Any, events: list[dict[str, Any]], status: int = 200, **params: str) -> Any:
    resp = await client.post("/v1/events", json=events, params=params)
    body = await resp.json()
    assert resp.status == status, body
    return body


async def test_every_implied_series_starts_at_zero(client: Any) -> None:
    got = await scrape(client)
    for slo in ("task", "tools", "faith", "e2e", "turn", "cost", "esc", "conn", "synth"):
        for flow in ("refund", "faq"):
            for outcome in ("good", "bad"):
                assert got[ev(slo, outcome, flow=flow)] == 0.0
    assert got[ev("policy", "bad")] == 0.0 and ev("policy", "bad", flow="faq") not in got  # judge flows
    assert got[ev("task", "bad", "test_call")] == 0.0
    assert ev("task-strict", "bad", "test_call") not in got  # that SLO honours no declared exclusion
    assert not [k for k in got if k[0].endswith("_created")]
    assert got[m(names.SPEC_INFO, agent="bot", spec_hash=spec().spec_hash)] == 1.0


@pytest.mark.parametrize(
    ("outcome", "required", "expected"),
    [
        ("success", False, "good"),
        ("success", True, "bad"),  # a missed escalation
        ("failure", False, "bad"),
        ("failure", True, "bad"),
        ("abandoned", False, "bad"),
        ("abandoned", True, "bad"),
        ("escalated", False, "bad"),
        ("escalated", True, None),  # not counted for task: the escalation SLI judges it
    ],
)
async def test_task_truth_table(client: Any, outcome: str, required: bool, expected: str | None) -> None:
    await post(client, [{"type": "task", **E, "outcome": outcome, "escalation_required": required}])
    got = await scrape(client)
    counted = {o: got[ev("task", o)] for o in ("good", "bad")}
    assert counted == {o: (1.0 if o == expected else 0.0) for o in ("good", "bad")}


async def test_escalation_required_defaults_to_false(client: Any) -> None:
    await post(client, [{"type": "task", **E, "outcome": "success"}])
    assert (await scrape(client))[ev("task", "good")] == 1.0


async def test_exclusion_label_follows_the_slos_honoured_reasons(client: Any) -> None:
    await post(
        client,
        [
            {"type": "task", **E, "outcome": "failure", "exclude": "test_call"},
            {"type": "task", **E, "outcome": "failure", "exclude": "synthetic"},
        ],
    )
    got = await scrape(client)
    assert got[ev("task", "bad", "test_call")] == 1.0
    assert got[ev("task", "bad", "synthetic")] == 1.0
    assert got[ev("task", "bad")] == 0.0  # neither spends the budget of `task`
    assert got[ev("task-strict", "bad")] == 1.0  # it honours only the built-in `synthetic`
    assert got[ev("task-strict", "bad", "synthetic")] == 1.0


async def test_latency_thresholds_are_inclusive_and_per_kind(client: Any) -> None:
    await post(
        client,
        [
            {"type": "turn", **E, "kind": "turn", "latency_s": 1.2},
            {"type": "turn", **E, "latency_s": 1.2001},  # kind defaults to turn
            {"type": "turn", **E, "kind": "first_response", "latency_s": 0.8},
            {"type": "turn", **E, "kind": "tool_turn", "latency_s": 9.0},  # no tool_turn SLO
        ],
    )
    got = await scrape(client)
    assert (got[ev("turn", "good")], got[ev("turn", "bad")]) == (1.0, 1.0)
    assert (got[ev("first", "good")], got[ev("first", "bad")]) == (1.0, 0.0)
    lat = names.TURN_LATENCY_SECONDS
    assert got[m(lat + "_count", agent="bot", flow="refund", kind="turn")] == 2.0
    assert got[m(lat + "_bucket", agent="bot", flow="refund", kind="turn", le="1.2")] == 1.0
    assert got[m(lat + "_sum", agent="bot", flow="refund", kind="tool_turn")] == 9.0


async def test_task_duration_cost_steps_tokens_and_failure_modes(client: Any) -> None:
    await post(
        client,
        [
            {
                "type": "task",
                **E,
                "outcome": "success",
                "duration_s": 4.5,
                "cost_usd": 0.18,
                "steps": 3,
                "tokens": {"input": 1000, "output": 200},
                "model": "m1",
            },
            {
                "type": "task",
                **E,
                "outcome": "failure",
                "duration_s": 6,
                "cost_usd": 0.19,
                "steps": 40,
                "tokens": {"input": 5},
                "model": "m9",
                "failure_mode": "loop",
            },
            {
                "type": "task",
                **E,
                "outcome": "escalated",
                "escalation_required": True,
                "cost_usd": 0.5,
                "failure_mode": "brand-new",
            },
        ],
    )
    got = await scrape(client)
    assert (got[ev("e2e", "good")], got[ev("e2e", "bad")]) == (1.0, 1.0)
    assert (got[ev("cost", "good")], got[ev("cost", "bad")]) == (1.0, 2.0)  # cost counts for every outcome
    dur, cost = names.TASK_DURATION_SECONDS, names.TASK_COST_USD
    assert got[m(dur + "_count", agent="bot", flow="refund")] == 2.0
    assert got[m(dur + "_sum", agent="bot", flow="refund")] == 10.5
    assert got[m(dur + "_bucket", agent="bot", flow="refund", le="4.5")] == 1.0
    assert got[m(cost + "_bucket", agent="bot", flow="refund", le="0.18")] == 1.0
    assert got[m(cost + "_count", agent="bot", flow="refund")] == 3.0
    assert got[m(names.TASK_STEPS + "_bucket", agent="bot", flow="refund", le="34.0")] == 1.0
    assert got[m(names.TOKENS_TOTAL, agent="bot", flow="refund", model="m1", type="input")] == 1000.0
    assert got[m(names.TOKENS_TOTAL, agent="bot", flow="refund", model="other", type="input")] == 5.0
    assert got[m(names.FAILURE_MODES_TOTAL, agent="bot", flow="refund", failure_mode="loop")] == 1.0
    assert got[m(names.FAILURE_MODES_TOTAL, agent="bot", flow="refund", failure_mode="other")] == 1.0
    assert got[m(names.LABEL_FOLDED_TOTAL, agent="bot", label="failure_mode")] == 1.0
    assert got[m(names.LABEL_FOLDED_TOTAL, agent="bot", label="model")] == 1.0


async def test_tool_calls_restricted_and_folded(client: Any) -> None:
    await post(
        client,
        [
            {"type": "tool_call", **E, "tool": "issue_refund", "outcome": "ok", "latency_s": 0.2},
            {"type": "tool_call", **E, "tool": "get_order", "outcome": "wrong_tool"},
            {"type": "tool_call", **E, "tool": "made_up", "outcome": "error"},
        ],
    )
    got = await scrape(client)
    assert (got[ev("tools", "good")], got[ev("tools", "bad")]) == (1.0, 2.0)
    assert (got[ev("refund-tool", "good")], got[ev("refund-tool", "bad")]) == (1.0, 0.0)
    assert got[m(names.TOOL_CALLS_TOTAL, agent="bot", flow="refund", tool="other", outcome="error")] == 1.0
    assert got[m(names.LABEL_FOLDED_TOTAL, agent="bot", label="tool")] == 1.0
    assert (
        got[m(names.TOOL_CALL_LATENCY_SECONDS + "_count", agent="bot", flow="refund", tool="issue_refund")]
        == 1
    )


async def test_judge_scores_against_pass_threshold_with_version(client: Any) -> None:
    await post(
        client,
        [
            {"type": "judge", **E, "judge": "faith", "score": 0.8},  # at the threshold: good
            {"type": "judge", **E, "judge": "faith", "score": 0.79, "judge_version": "4"},
            {"type": "judge", **E, "judge": "policy", "score": 0.0},
            {"type": "judge", "agent": "bot", "flow": "faq", "judge": "policy", "score": 0.0},  # not its flow
        ],
    )
    got = await scrape(client)
    assert (got[ev("faith", "good")], got[ev("faith", "bad")]) == (1.0, 1.0)
    assert got[ev("policy", "bad")] == 1.0 and ev("policy", "bad", flow="faq") not in got
    score = names.JUDGE_SCORE + "_count"
    assert got[m(score, agent="bot", flow="refund", judge="faith", judge_version="3")] == 1.0
    assert got[m(score, agent="bot", flow="refund", judge="faith", judge_version="4")] == 1.0


@pytest.mark.parametrize(
    ("required", "performed", "preserved", "expected"),
    [
        (True, True, True, "good"),
        (True, True, False, "bad"),
        (True, False, None, "bad"),
        (False, False, None, "good"),
        (False, True, True, "bad"),
    ],
)
async def test_escalation_table(
    client: Any, required: bool, performed: bool, preserved: Any, expected: str
) -> None:
    event = {"type": "escalation", **E, "required": required, "performed": performed}
    if preserved is not None:
        event["context_preserved"] = preserved
    await post(client, [event])
    got = await scrape(client)
    assert got[ev("esc", expected)] == 1.0 and got[ev("esc", {"good": "bad", "bad": "good"}[expected])] == 0.0


async def test_connection(client: Any) -> None:
    await post(client, [{"type": "connection", **E, "ok": True}, {"type": "connection", **E, "ok": False}])
    got = await scrape(client)
    assert (got[ev("conn", "good")], got[ev("conn", "bad")]) == (1.0, 1.0)


async def test_synthetic_runs_streaks_and_bounded_scenarios(client: Any) -> None:
    run = {"type": "synthetic", **E, "scenario": "refund-happy", "duration_s": 3.0}
    await post(client, [{**run, "passed": False}, {**run, "passed": False}])
    streak = m(names.SYNTHETIC_CONSECUTIVE_FAILURES, agent="bot", flow="refund", scenario="refund-happy")
    got = await scrape(client)
    assert got[streak] == 2.0
    assert got[ev("synth", "bad")] == 2.0
    await post(client, [{**run, "passed": False}])
    assert (await scrape(client))[streak] == 3.0
    await post(client, [{**run, "passed": True}])
    got = await scrape(client)
    assert got[streak] == 0.0
    runs = names.SYNTHETIC_RUNS_TOTAL
    assert got[m(runs, agent="bot", flow="refund", scenario="refund-happy", outcome="failed")] == 3.0
    assert got[m(runs, agent="bot", flow="refund", scenario="refund-happy", outcome="passed")] == 1.0
    # max_scenarios=3: the 4th and later distinct names fold into `other`
    await post(client, [{**run, "scenario": f"s{i}", "passed": True} for i in range(5)])
    got = await scrape(client)
    scenarios = {dict(k[1])["scenario"] for k in got if k[0] == runs}
    assert scenarios == {"refund-happy", "s0", "s1", "other"}
    assert got[m(names.LABEL_FOLDED_TOTAL, agent="bot", label="scenario")] == 3.0


async def test_build_info_is_the_latest_per_agent(client: Any) -> None:
    await post(client, [{"type": "connection", **E, "ok": True, "version": "1.0", "model": "m1"}])
    await post(client, [{"type": "connection", **E, "ok": True, "version": "1.1", "prompt_version": "p7"}])
    got = await scrape(client)
    builds = [dict(k[1]) for k in got if k[0] == names.BUILD_INFO]
    assert builds == [{"agent": "bot", "version": "1.1", "prompt_version": "p7", "model": "m1"}]


async def test_partial_batches_apply_the_valid_events(client: Any) -> None:
    body = await post(
        client,
        [
            {"type": "connection", **E, "ok": True},
            {"type": "connection", **E, "ok": "yes"},
            {"type": "connection", **E, "ok": False},
        ],
        status=207,
        partial="true",
    )
    assert body["accepted"] == 2 and body["rejected"] == [1]
    assert body["detail"][0]["index"] == 1 and body["detail"][0]["field"] == "ok"
    got = await scrape(client)
    assert (got[ev("conn", "good")], got[ev("conn", "bad")]) == (1.0, 1.0)


async def test_ndjson_batches(client: Any) -> None:
    lines = b'{"type":"connection","agent":"bot","flow":"faq","ok":false}\n\n' * 3
    resp = await client.post("/v1/events", data=lines, headers={"Content-Type": "application/x-ndjson"})
    assert resp.status == 200, await resp.text()
    assert (await scrape(client))[ev("conn", "bad", flow="faq")] == 3.0


async def test_openmetrics_carries_trace_id_exemplars(client: Any) -> None:
    await post(
        client, [{"type": "connection", **E, "ok": False, "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}]
    )
    resp = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
    text = await resp.text()
    assert text.endswith("# EOF\n")
    samples = [s for fam in om_families(text) for s in fam.samples]
    bad = [
        s
        for s in samples
        if s.name == names.EVENTS_TOTAL
        and s.labels.get("slo") == "conn"
        and s.labels["outcome"] == "bad"
        and s.labels["flow"] == "refund"
        and not s.labels["exclusion"]
    ]
    assert bad[0].value == 1.0
    assert bad[0].exemplar.labels == {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}
    assert not [s for s in samples if s.name.endswith("_created")]


async def test_exposition_passes_promtool(client: Any) -> None:
    await post(client, [{"type": "task", **E, "outcome": "failure", "duration_s": 2, "version": 'a"b\\c{x}'}])
    text = await (await client.get("/metrics")).text()
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def test_in_process_apply_and_judge_metrics(client: Any) -> None:
    ingestor = client.server.app[INGESTOR]
    result = ingestor.apply([{"type": "judge", **E, "judge": "faith", "score": 0.1}])
    assert result.status == 200 and result.accepted == 1
    assert ingestor.apply([{"type": "judge", **E, "judge": "nope", "score": 0.1}]).status == 422
    ingestor.record_judge_call("bot", "faith", "3", "ok", 0.002)
    ingestor.record_judge_call("bot", "faith", "3", "ok", 0.003)
    ingestor.set_judge_agreement("bot", "faith", "3", 0.9)
    got = await scrape(client)
    assert got[ev("faith", "bad")] == 1.0
    assert got[m(names.JUDGE_CALLS_TOTAL, agent="bot", judge="faith", judge_version="3", outcome="ok")] == 2.0
    cost = got[m(names.JUDGE_COST_USD_TOTAL, agent="bot", judge="faith", judge_version="3", outcome="ok")]
    assert cost == pytest.approx(0.005)
    assert got[m(names.JUDGE_AGREEMENT_RATIO, agent="bot", judge="faith", judge_version="3")] == 0.9
