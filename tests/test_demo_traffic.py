"""The fault model and the traffic generator: injected rates come out at the rates asked for (within
binomial bounds), events follow the design's shapes, and the OpenMetrics history is accepted by promtool."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from agentslo import names
from agentslo.demo.faults import BASE_FAILURE_RATE, DAY, Drift, Faults, events_for, simulate
from agentslo.demo.servers import find_binary
from agentslo.demo.traffic import EventTraffic, cumulative, generate, history_openmetrics
from agentslo.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
N = 4000


@pytest.fixture(scope="module")
def spec():
    return load_spec(ROOT / "examples" / "cx-support.slo.yaml")


def share(hits: int, total: int) -> float:
    return hits / total


def within(observed: float, expected: float, n: int) -> bool:
    """Within 4.5 binomial standard deviations (a false alarm about once in 150,000 runs)."""
    sd = (expected * (1 - expected) / n) ** 0.5
    return abs(observed - expected) <= 4.5 * sd + 1e-9


def test_wrong_tool_rate_is_the_share_of_first_tool_calls_to_a_wrong_tool(spec):
    rng = random.Random(1)
    convs = [simulate(spec, "order-status", rng, Faults(wrong_tool_rate=0.08)) for _ in range(N)]
    wrong = sum(c.tool_calls[0].outcome == "wrong_tool" for c in convs)
    assert within(share(wrong, N), 0.08, N)
    assert all(c.tool_calls[-1].tool == "get_order" and c.tool_calls[-1].outcome == "ok" for c in convs)


def test_a_mistaken_tool_takes_every_first_call_of_its_flows_and_the_task_fails(spec):
    rng = random.Random(3)
    faults = Faults(mistaken_tool="get_account_balance", flows=("order-status",))
    convs = [simulate(spec, "order-status", rng, faults, escalation_required=False) for _ in range(200)]
    assert all(
        [(t.tool, t.outcome) for t in c.tool_calls] == [("get_account_balance", "wrong_tool")]
        and c.outcome in ("failure", "abandoned")
        and c.failure_mode == "wrong_tool"
        for c in convs
    )
    assert simulate(spec, "refund", rng, faults).tool_calls[0].tool == "get_order"  # not its flow


def test_without_base_rates_the_agent_never_fails_by_itself(spec):
    rng = random.Random(4)
    flawless = Faults(base_failure_rate=0.0, base_tool_error_rate=0.0)
    convs = [
        simulate(spec, flow, rng, flawless, escalation_required=False)
        for flow in spec.flows
        for _ in range(N)
    ]
    assert all(c.outcome == "success" and all(t.outcome == "ok" for t in c.tool_calls) for c in convs)


def test_drift_slides_task_success_from_94_to_81_percent_over_three_weeks(spec):
    drift = Drift()
    assert drift.success_at(0) == pytest.approx(0.94)
    assert drift.success_at(21 * DAY) == pytest.approx(0.81)
    assert drift.success_at(99 * DAY) == pytest.approx(0.81)
    rng = random.Random(2)
    for day, success in ((0, 0.94), (21, 0.81)):
        convs = [
            simulate(spec, "password-reset", rng, Faults(drift=drift), elapsed_s=day * DAY) for _ in range(N)
        ]
        finished = [c for c in convs if c.outcome != "escalated"]
        ok = sum(c.outcome == "success" for c in finished)
        assert within(share(ok, len(finished)), success, len(finished)), (day, ok / len(finished))


def test_tier2_misroutes_lose_context_for_the_given_share_of_tier2_tickets(spec):
    rng = random.Random(3)
    convs = [simulate(spec, "order-status", rng, Faults(tier2_misroute_rate=0.4)) for _ in range(N * 3)]
    escalated = [c for c in convs if c.escalated]
    lost = sum(not c.context_preserved for c in escalated)
    # half the required escalations are Tier 2 tickets, 40% of those are misrouted
    assert within(share(lost, len(escalated)), 0.2, len(escalated))


def test_regression_hits_only_the_bad_version(spec):
    faults = Faults(regression_version="2.0.0", regression_failure_rate=0.35)
    rng = random.Random(4)
    old = [simulate(spec, "refund", rng, faults, version="1.0.0") for _ in range(N)]
    new = [simulate(spec, "refund", rng, faults, version="2.0.0") for _ in range(N)]

    def failed(cs):
        finished = [c for c in cs if c.outcome != "escalated"]
        return share(sum(c.outcome in ("failure", "abandoned") for c in finished), len(finished)), len(
            finished
        )

    assert within(*failed(old)[:1], BASE_FAILURE_RATE, failed(old)[1])
    assert within(*failed(new)[:1], 0.35 + BASE_FAILURE_RATE, failed(new)[1])


def test_refund_policy_judge_fails_exactly_the_hallucinated_answers(spec):
    rng = random.Random(5)
    for _ in range(300):
        conv = simulate(spec, "refund", rng, Faults(refund_window_rate=0.3))
        events = events_for(spec, conv, session_id="s")
        verdict = next(e for e in events if e["type"] == "judge" and e["judge"] == "refund-policy")
        assert (verdict["score"] == 0.0) == (conv.failure_mode == "wrong_refund_window")


def test_events_carry_the_required_fields_and_declared_label_values(spec):
    events = generate(
        spec, random.Random(6), 200, faults=Faults(wrong_tool_rate=0.2, missed_escalation_rate=0.5)
    )
    for e in events:
        assert e["agent"] == "cx-support" and e["flow"] in spec.flows and e["type"]
        if e["type"] == "tool_call":
            assert e["tool"] in spec.tools
        if e["type"] == "task":
            assert e["outcome"] in ("success", "failure", "abandoned", "escalated")
            assert e.get("failure_mode") in (None, *spec.failure_modes)
    kinds = {e["type"] for e in events}
    # no connection SLI in this spec; its pipeline's stages and its refund workflow's steps
    assert kinds == {"turn", "tool_call", "task", "escalation", "judge", "stage", "workflow_step"}
    for e in events:
        if e["type"] == "stage":
            assert e["stage"] in spec.pipeline.stages and e["latency_s"] >= 0
        if e["type"] == "workflow_step":
            assert e["flow"] in spec.workflow_flows(e["workflow"])
            assert e["step"] in spec.workflows[e["workflow"]].steps


def test_workflow_runs_stop_at_their_first_failed_step(spec):
    events = generate(spec, random.Random(7), 300, faults=Faults(wrong_tool_rate=0.3))
    runs: dict[str, list[tuple[str, bool]]] = {}
    for e in events:
        if e["type"] == "workflow_step":
            runs.setdefault(e["session_id"], []).append((e["step"], e["ok"]))
    steps = spec.workflows["refund"].steps
    assert runs and any(not ok for run in runs.values() for _, ok in run)
    for run in runs.values():
        assert [s for s, _ in run] == list(steps[: len(run)])  # in order, from the first
        assert all(ok for _, ok in run[:-1])  # nothing after a failed step


def test_healthy_workflow_runs_meet_their_objective_and_hand_offs_give_no_verdict(spec):
    """The demo's healthy agent must not burn the workflow's budget (the gate said HOLD before the
    incident when escalated runs counted as failed at their last step)."""
    events = generate(spec, random.Random(1), 2000)
    escalated = {e["session_id"] for e in events if e["type"] == "task" and e["outcome"] == "escalated"}
    runs: dict[str, list[bool]] = {}
    for e in events:
        if e["type"] == "workflow_step":
            runs.setdefault(e["session_id"], []).append(e["ok"])
    assert escalated & runs.keys()
    steps = spec.workflows["refund"].steps
    assert all(len(runs[sid]) < len(steps) or not all(runs[sid]) for sid in escalated & runs.keys())
    ended = [run for run in runs.values() if not all(run) or len(run) == len(steps)]
    bad = sum(not all(run) for run in ended) / len(ended)
    objective = spec.slos["refund-workflow"].objective
    assert bad < (100 - objective) / 100 / 2, bad  # well inside the budget


def test_fractional_rates_carry_over_between_ticks(spec):
    traffic = EventTraffic(spec, "http://unused", rate_per_s=0.5, tick_s=1.0)
    tasks = [sum(e["type"] == "task" for e in traffic.next_batch()) for _ in range(6)]
    assert tasks == [0, 1, 0, 1, 0, 1]


@pytest.mark.skipif(find_binary("promtool") is None, reason="promtool not installed")
def test_history_is_openmetrics_promtool_can_backfill(tmp_path: Path):
    start = 1_700_000_000
    steps = [start + i * 3600 for i in range(48)]
    key = (("agent", "cx-support"), ("flow", "refund"), ("outcome", "good"))
    series = cumulative(steps, lambda t: {key: 10.0})
    text = history_openmetrics(
        ((t, names.EVENTS_TOTAL, labels, v) for t, labels, v in series), {names.EVENTS_TOTAL: "counter"}
    )
    assert text.endswith("# EOF\n")
    (tmp_path / "h.om").write_text(text)
    out = subprocess.run(
        [
            find_binary("promtool"),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(tmp_path / "h.om"),
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert [p for p in (tmp_path / "data").iterdir() if p.is_dir()]
