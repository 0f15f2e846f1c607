"""The demo agent's behaviour and its injectable faults, as pure, seeded functions.

One simulated conversation (`simulate`) decides which tools the agent calls, what it answers,
whether it escalates and how long it takes; `events_for` turns it into the exporter events an
instrumented agent runtime would send. The demo agent (HTTP) and the traffic generator (direct
events, backfilled history) share this module, so an injected fault means the same thing in both.

    >>> import random
    >>> from agentslo.spec import load_spec
    >>> spec = load_spec("examples/cx-support.slo.yaml")
    >>> conv = simulate(spec, "refund", random.Random(7), INCIDENTS["refund-window-hallucination"].faults)
    >>> conv.flow, [c.tool for c in conv.tool_calls][:1]
    ('refund', ['get_order'])
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Final

from agentslo import names
from agentslo.judges.model import JudgeInput
from agentslo.judges.rule import evaluate
from agentslo.spec import RuleJudge, Spec

DAY: Final = 86400.0
# Healthy behaviour: 0.8% of tasks fail, 0.3% of tool calls go wrong, 8% of conversations need a human
# (well inside every example objective, so a healthy demo does not burn its budget by chance).
BASE_FAILURE_RATE: Final = 0.008
BASE_TOOL_ERROR_RATE: Final = 0.003
ESCALATION_REQUIRED_RATE: Final = 0.08
TIER2_SHARE: Final = 0.5  # of required escalations, the share that must go to the Tier 2 queue
BASE_TURN_LATENCY_S: Final = 0.55
CORRECT_REFUND_WINDOW: Final = "5-10 business days"
HALLUCINATED_REFUND_WINDOW: Final = "3-5 business days"  # what the refund-policy rule judge catches
# Which tools each CX flow uses, in order; flows the demo does not know use the spec's tools by hash.
FLOW_TOOLS: Final = {
    "refund": ("get_order", "issue_refund"),
    "order-status": ("get_order",),
    "password-reset": ("reset_password",),
    "billing": ("get_account_balance", "get_credit_limit"),
}


@dataclass(frozen=True)
class Drift:
    """Task success sliding linearly from `start` to `end` over `over_s` seconds of (demo) time."""

    start: float = 0.94
    end: float = 0.81
    over_s: float = 21 * DAY

    def success_at(self, elapsed_s: float) -> float:
        share = min(max(elapsed_s / self.over_s, 0.0), 1.0)
        return self.start + (self.end - self.start) * share


@dataclass(frozen=True)
class Faults:
    """Rates of each injected fault (0 = healthy). All are shares of the conversations they apply to."""

    wrong_tool_rate: float = 0.0  # first tool call goes to the wrong tool, then the agent calls the right one
    # every first tool call goes to this tool instead, and the agent never notices (a tool it takes for
    # another, e.g. after a rename): it answers from what it got and the task fails
    mistaken_tool: str | None = None
    refund_window_rate: float = 0.0  # refund answers quote the hallucinated window
    slow_rate: float = 0.0  # turns that take `slow_extra_s` longer
    slow_extra_s: float = 0.0
    missed_escalation_rate: float = 0.0  # required escalations the agent keeps to itself
    tier2_misroute_rate: float = 0.0  # Tier 2 tickets routed to Tier 1, context lost
    task_failure_rate: float = 0.0  # extra task failures on top of the base rate
    drift: Drift | None = None
    regression_version: str | None = None  # tasks of this version fail at `regression_failure_rate`
    regression_failure_rate: float = 0.0
    flows: tuple[str, ...] | None = None  # faults apply only to these flows (None: all)
    # A healthy agent's own failures, in every flow; 0 makes an agent that never fails by itself.
    base_failure_rate: float = BASE_FAILURE_RATE
    base_tool_error_rate: float = BASE_TOOL_ERROR_RATE


@dataclass(frozen=True)
class Incident:
    """A named experiment: the faults to inject and the alert expected to catch it."""

    name: str
    description: str
    faults: Faults
    alert: str
    slo: str
    flow: str
    version: str | None = None
    severity: str | None = None  # when set, only an alert of this severity counts as caught


INCIDENTS: Final = {
    i.name: i
    for i in (
        Incident(
            "refund-window-hallucination",
            'refund answers quote "3-5 business days" instead of the policy window',
            Faults(refund_window_rate=0.25, flows=("refund",)),
            names.ALERT_RARE_EVENT,
            "refund-policy",
            "refund",
        ),
        Incident(
            "wrong-tool-8pct",
            "8% of first tool calls go to the wrong tool",
            Faults(wrong_tool_rate=0.08),
            names.ALERT_BURN_RATE,
            "tool-call-accuracy",
            "order-status",
        ),
        Incident(
            "gradual-drift",
            "task success drifts from 94% to 81% over three weeks",
            Faults(drift=Drift(), flows=("order-status",)),
            names.ALERT_BURN_RATE,
            "task-success",
            "order-status",
        ),
        Incident(
            "post-deploy-regression",
            "version 2.0.0 fails 35% of refunds",
            Faults(regression_version="2.0.0", regression_failure_rate=0.35, flows=("refund",)),
            names.ALERT_BURN_RATE,
            "task-success",
            "refund",
            version="2.0.0",
            severity="critical",
        ),
        Incident(
            "tier2-misroutes-40pct",
            "40% of Tier 2 tickets are routed to Tier 1 without their context",
            Faults(tier2_misroute_rate=0.4),
            names.ALERT_BURN_RATE,
            "escalation-correctness",
            "order-status",
        ),
        Incident(
            "outage",
            "every task fails (the agent's model provider is down)",
            Faults(task_failure_rate=1.0),
            names.ALERT_BURN_RATE,
            "task-success",
            "order-status",
            severity="critical",
        ),
    )
}


@dataclass(frozen=True)
class ToolCall:
    tool: str
    outcome: str  # ok / wrong_tool / invalid_params / empty_result / error
    latency_s: float
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Conversation:
    """What happened in one simulated conversation, before any judge looked at it."""

    flow: str
    version: str
    model: str
    tool_calls: tuple[ToolCall, ...]
    reply: str
    outcome: str  # success / failure / abandoned / escalated
    escalation_required: bool
    escalated: bool
    context_preserved: bool
    first_response_s: float
    turn_latencies_s: tuple[float, ...]
    cost_usd: float
    tokens_in: int
    tokens_out: int
    faithfulness: float
    failure_mode: str | None = None

    @property
    def duration_s(self) -> float:
        return sum(self.turn_latencies_s) + sum(c.latency_s for c in self.tool_calls)


def tools_for(spec: Spec, flow: str) -> tuple[str, ...]:
    known = tuple(t for t in FLOW_TOOLS.get(flow, ()) if t in spec.tools)
    if known or not spec.tools:
        return known
    return (spec.tools[sum(map(ord, flow)) % len(spec.tools)],)


def _applies(faults: Faults, flow: str) -> bool:
    return faults.flows is None or flow in faults.flows


def failure_rate(faults: Faults, flow: str, version: str, elapsed_s: float) -> float:
    """The chance a task fails, given the faults in force for this flow, version and demo time."""
    rate = faults.base_failure_rate
    if _applies(faults, flow):
        rate += faults.task_failure_rate
        if faults.drift is not None:
            rate = max(rate, 1 - faults.drift.success_at(elapsed_s))
        if faults.regression_version is not None and version == faults.regression_version:
            rate += faults.regression_failure_rate
    return min(rate, 1.0)


def simulate(
    spec: Spec,
    flow: str,
    rng: random.Random,
    faults: Faults = Faults(),
    *,
    elapsed_s: float = 0.0,
    version: str = "1.0.0",
    escalation_required: bool | None = None,
) -> Conversation:
    """One conversation of the demo CX agent on `flow`, with the faults in force (deterministic per rng)."""
    on = _applies(faults, flow)
    model = spec.models[0] if spec.models else "demo-model"
    calls: list[ToolCall] = []
    failure_mode = None
    tools = tools_for(spec, flow)
    mistaken = on and faults.mistaken_tool is not None and bool(tools)
    for i, tool in enumerate(tools):
        latency = round(rng.uniform(0.05, 0.4), 3)
        if mistaken:
            calls.append(ToolCall(str(faults.mistaken_tool), "wrong_tool", latency))
            failure_mode = "wrong_tool"
            break
        if i == 0 and on and rng.random() < faults.wrong_tool_rate:
            wrong = [t for t in spec.tools if t != tool] or [tool]
            calls.append(ToolCall(rng.choice(wrong), "wrong_tool", latency))
            failure_mode = "wrong_tool"
        elif rng.random() < faults.base_tool_error_rate:
            calls.append(ToolCall(tool, rng.choice(["error", "empty_result", "invalid_params"]), latency))
        calls.append(ToolCall(tool, "ok", latency, {"order_id": f"A{rng.randint(1000, 9999)}"}))

    drawn = rng.random() < ESCALATION_REQUIRED_RATE
    required = drawn if escalation_required is None else escalation_required
    tier2 = required and rng.random() < TIER2_SHARE
    escalated, context_preserved = required, True
    if required and on and rng.random() < faults.missed_escalation_rate:
        escalated, failure_mode = False, "missed_escalation"
    elif tier2 and on and rng.random() < faults.tier2_misroute_rate:
        context_preserved = False  # routed to Tier 1: the handoff lands in the wrong queue, context lost

    failed = rng.random() < failure_rate(faults, flow, version, elapsed_s) or mistaken
    if escalated:
        outcome = "escalated"
    elif failed:
        outcome = "abandoned" if rng.random() < 0.3 else "failure"
    else:
        outcome = "success"

    hallucinated = (
        rng.random() < faults.refund_window_rate and on and flow == "refund" and outcome == "success"
    )
    if hallucinated:
        failure_mode = "wrong_refund_window"
    reply = _reply(flow, outcome, hallucinated, escalated, context_preserved)
    slow = on and rng.random() < faults.slow_rate
    turns = tuple(
        round(rng.lognormvariate(0, 0.25) * BASE_TURN_LATENCY_S + (faults.slow_extra_s if slow else 0), 3)
        for _ in range(rng.randint(2, 4))
    )
    tokens_in, tokens_out = rng.randint(800, 2500), rng.randint(120, 450)
    cost = round(tokens_in * 2.5e-6 * 10 + tokens_out * 1e-5 * 10, 4)
    faith = round(min(1.0, max(0.0, rng.gauss(0.35 if hallucinated else 0.95, 0.03))), 3)
    return Conversation(
        flow,
        version,
        model,
        tuple(calls),
        reply,
        outcome,
        required,
        escalated,
        context_preserved,
        turns[0],
        turns,
        cost,
        tokens_in,
        tokens_out,
        faith,
        failure_mode if failure_mode in spec.failure_modes else None,
    )


def _reply(flow: str, outcome: str, hallucinated: bool, escalated: bool, context_preserved: bool) -> str:
    if escalated:
        queue = "our Tier 2 team" if context_preserved else "our support team"
        return f"I've passed your case to {queue}; they will contact you shortly."
    if outcome != "success":
        return "I'm sorry, I couldn't complete that right now. Please try again later."
    if flow == "refund":
        window = HALLUCINATED_REFUND_WINDOW if hallucinated else CORRECT_REFUND_WINDOW
        return f"Your refund has been issued. It will reach your card in {window}."
    if flow == "order-status":
        return "Your order shipped yesterday and should arrive within two days."
    if flow == "password-reset":
        return "I've sent a password reset link to the email on your account."
    return "Done. Is there anything else I can help with?"


def rule_judge_score(judge: RuleJudge, text: str, agent: str = "", flow: str = "") -> float:
    """Score a reply with the spec's rule judge (the core's `evaluate`, RE2 like the exporter's
    judges): 1 pass, 0 fail. The demo emits the verdict itself so it runs with any exporter that
    takes `judge` events."""
    case = JudgeInput(
        session_id="demo",
        agent=agent,
        flow=flow,
        messages=[{"role": "assistant", "content": text}],
        output=text,
    )
    return evaluate(judge, case).score or 0.0


def events_for(
    spec: Spec, conv: Conversation, *, session_id: str, time_s: float | None = None
) -> list[dict[str, Any]]:
    """The exporter events (DESIGN.md, "Events") an instrumented runtime sends for one conversation."""
    common: dict[str, Any] = {"agent": spec.agent, "flow": conv.flow, "session_id": session_id}
    if time_s is not None:
        common["time"] = round(time_s, 3)
    meta = {"version": conv.version, "model": conv.model}
    out: list[dict[str, Any]] = []
    if any(s.sli.kind == "connection" for s in spec.slos.values()):
        out.append(common | {"type": "connection", "ok": True})
    out.append(common | {"type": "turn", "kind": "first_response", "latency_s": conv.first_response_s})
    out += [common | {"type": "turn", "kind": "turn", "latency_s": t} for t in conv.turn_latencies_s]
    for call in conv.tool_calls:
        tool = call.tool if call.tool in spec.tools else names.OTHER
        out.append(
            common | {"type": "tool_call", "tool": tool, "outcome": call.outcome, "latency_s": call.latency_s}
        )
        out.append(
            common | {"type": "turn", "kind": "tool_turn", "latency_s": round(call.latency_s + 0.3, 3)}
        )
    task = (
        common
        | meta
        | {
            "type": "task",
            "outcome": conv.outcome,
            "escalation_required": conv.escalation_required,
            "duration_s": round(conv.duration_s, 3),
            "cost_usd": conv.cost_usd,
            "steps": len(conv.turn_latencies_s) + len(conv.tool_calls),
            "tokens": {"input": conv.tokens_in, "output": conv.tokens_out},
        }
    )
    if conv.failure_mode:
        task["failure_mode"] = conv.failure_mode
    out.append(task)
    if conv.escalation_required or conv.escalated:
        out.append(
            common
            | {
                "type": "escalation",
                "required": conv.escalation_required,
                "performed": conv.escalated,
                "context_preserved": conv.context_preserved,
            }
        )
    for name, judge in spec.judges.items():
        if judge.flows is not None and conv.flow not in judge.flows:
            continue
        score = (
            rule_judge_score(judge, conv.reply, spec.agent, conv.flow)
            if isinstance(judge, RuleJudge)
            else conv.faithfulness
        )
        out.append(common | {"type": "judge", "judge": name, "judge_version": judge.version, "score": score})
    return out
