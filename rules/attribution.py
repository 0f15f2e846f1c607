"""Recording rules for the practice signals beside the SLOs: voice pipeline attribution, workflow
chains, the health score and the budget allocation's tiers (plus the one alert on the tiers).

- **Pipeline attribution** (`pipeline:`): per stage, P50/P95/P99 over 5m and the stage's share of the
  summed stage time, so a dashboard shows which stage owns a slow turn.
- **Workflows** (`workflows:`): per step the success ratio over 1h, and per workflow the product of
  its steps' ratios: the end-to-end success the chain compounds to (10 steps at 99% → 90.4%). It is
  recorded only while every step has data, so a quiet step never flatters the chain.
- **Health score** (`health:`): per flow, the weighted mean of components each normalised to 0..1
  over the health window; a component with no data in the window is left out and the remaining
  weights are re-normalised. Secondary to the SLOs: it is recorded and shown, never alerted on.
- **Budget tiers** (`budget_allocation:`): per tier, the share of its budget the period has spent
  (worst SLO of the tier: error ratio / (1 − tier objective)); `tier="end_to_end"` sums the tiers'
  error ratios against the end-to-end budget. `AgentSLOBudgetTierSpent` tickets a tier at 1.

    >>> from agentslo.spec import load_spec
    >>> [r["record"] for r in pipeline_rules(Plan(load_spec("examples/voice-booking.slo.yaml")))][:2]
    ['agent_slo:stage_latency_seconds:p50_rate5m', 'agent_slo:stage_latency_seconds:p95_rate5m']
"""

from __future__ import annotations

from typing import Any, Final

from agentslo import names
from agentslo.durations import parse_duration
from agentslo.rules._plan import Plan
from agentslo.rules._promql import num, selector
from agentslo.spec import period_label

Rule = dict[str, Any]

BY_FLOW: Final = f"by ({names.L_AGENT}, {names.L_FLOW})"
ON_FLOW: Final = f"on({names.L_AGENT}, {names.L_FLOW})"
SEVERITY_WARNING: Final = "warning"


def _record(name: str, expr: str, labels: dict[str, str] | None = None) -> Rule:
    rule: Rule = {"record": name, "expr": expr}
    if labels:
        rule["labels"] = labels
    return rule


def le_values(bound: float) -> tuple[str, ...]:
    """A bucket's `le` as exposed (`8.0`, `0.5`) and as Prometheus 3 normalises it (`8`)."""
    return tuple(sorted({repr(float(bound)), num(bound)}))


def pipeline_rules(plan: Plan) -> list[Rule]:
    """Per stage: P50/P95/P99 of its latency over 5m, and its share of the summed stage time."""
    agent = {names.L_AGENT: plan.agent}
    by_stage = f"{names.L_AGENT}, {names.L_FLOW}, {names.L_STAGE}"
    w = names.STAGE_WINDOW
    buckets = f"rate({selector(names.STAGE_LATENCY_SECONDS + '_bucket', agent)}[{w}])"
    out = [
        _record(
            names.stage_latency_quantile(q),
            f"histogram_quantile({num(q)}, sum by ({by_stage}, le) ({buckets}))",
        )
        for q in names.STAGE_QUANTILES
    ]
    spent = f"sum by ({by_stage}) (rate({selector(names.STAGE_LATENCY_SECONDS + '_sum', agent)}[{w}]))"
    whole = f"sum {BY_FLOW} (rate({selector(names.STAGE_LATENCY_SECONDS + '_sum', agent)}[{w}]))"
    out.append(_record(names.STAGE_LATENCY_SHARE, f"{spent}\n  / {ON_FLOW} group_left() ({whole} > 0)"))
    return out


def workflow_rules(plan: Plan) -> list[Rule]:
    """Per step its success ratio; per workflow the product over its steps (while all have data)."""
    spec, agent = plan.spec, {names.L_AGENT: plan.agent}
    by_step = f"{names.L_AGENT}, {names.L_FLOW}, {names.L_WORKFLOW}, {names.L_STEP}"
    by_workflow = f"{names.L_AGENT}, {names.L_FLOW}, {names.L_WORKFLOW}"
    w = names.WORKFLOW_WINDOW
    steps = names.WORKFLOW_STEPS_TOTAL
    good = f"sum by ({by_step}) (increase({selector(steps, agent | {names.L_OUTCOME: names.GOOD})}[{w}]))"
    total = f"sum by ({by_step}) (increase({selector(steps, agent)}[{w}]))"
    out = [_record(names.WORKFLOW_STEP_SUCCESS, f"{good}\n  / ({total} > 0)")]
    for name, workflow in spec.workflows.items():
        ratios = selector(names.WORKFLOW_STEP_SUCCESS, agent | {names.L_WORKFLOW: name})
        # The product of the step ratios as exp(Σ ln): PromQL has no product aggregation. ln(0) is
        # -Inf and exp(-Inf) is 0, so a step that always fails gives a chain of exactly 0.
        expr = (
            f"exp(sum by ({by_workflow}) (ln({ratios})))\n"
            f"  and on({by_workflow}) count by ({by_workflow}) ({ratios}) == {len(workflow.steps)}"
        )
        out.append(_record(names.WORKFLOW_CHAIN_SUCCESS, expr))
    return out


def health_components(plan: Plan) -> dict[str, str]:
    """Component → PromQL of its 0..1 value per agent and flow over the health window, for the
    components the spec can feed (a component without a source is left out)."""
    spec, health = plan.spec, plan.spec.health
    assert health is not None
    agent = {names.L_AGENT: plan.agent}
    w = health.window

    def slo_ratio(kind: str) -> str | None:
        """1 − the worst error ratio of the spec's SLOs of this kind, where they counted events."""
        slos = [s for s, slo in spec.slos.items() if slo.sli.kind == kind]
        if not slos:
            return None
        errors = selector(names.sli_error_ratio(w), agent, {names.L_SLO: slos})
        counted = selector(names.events_rate(w), agent, {names.L_SLO: slos})
        return f"1 - (max {BY_FLOW} ({errors})\n  and {ON_FLOW} (sum {BY_FLOW} ({counted}) > 0))"

    def within(metric: str, bound: float, extra: dict[str, str] | None = None) -> str:
        """The share of a histogram's observations at or under `bound` (a bucket bound)."""
        scope = agent | (extra or {})
        under = selector(metric + "_bucket", scope, {"le": le_values(bound)})
        count = selector(metric + "_count", scope)
        return f"sum {BY_FLOW} (increase({under}[{w}]))\n  / (sum {BY_FLOW} (increase({count}[{w}])) > 0)"

    runs = names.SYNTHETIC_RUNS_TOTAL
    verdicts = {names.L_OUTCOME: (names.SYNTHETIC_PASSED, names.SYNTHETIC_FAILED)}
    passed = selector(runs, agent | {names.L_OUTCOME: names.SYNTHETIC_PASSED})
    sources: dict[str, str | None] = {
        "task_completion": slo_ratio("task"),
        "synthetic_pass_rate": (
            f"sum {BY_FLOW} (increase({passed}[{w}]))\n"
            f"  / (sum {BY_FLOW} (increase({selector(runs, agent, verdicts)}[{w}])) > 0)"
            if spec.synthetic is not None
            else None
        ),
        "step_count": within(names.TASK_STEPS, health.max_steps),
        "escalation": slo_ratio("escalation"),
        "llm_latency": within(names.TURN_LATENCY_SECONDS, health.llm_latency_under, {names.L_KIND: "turn"}),
    }
    weights = _weights(plan)
    return {c: expr for c, expr in sources.items() if expr is not None and weights.get(c, 0) > 0}


def _weights(plan: Plan) -> dict[str, float]:
    assert plan.spec.health is not None
    return {str(c): w for c, w in plan.spec.health.weights.items()}


def health_rules(plan: Plan) -> list[Rule]:
    """Components, their weights (normalised to sum 1) and the score: Σ wᵢ·cᵢ / Σ wᵢ over the
    components present for the flow."""
    health = plan.spec.health
    if health is None:
        return []
    agent = {names.L_AGENT: plan.agent}
    components = health_components(plan)
    weights = _weights(plan)
    total = sum(weights[c] for c in components)
    out = [_record(names.HEALTH_COMPONENT, expr, {names.L_COMPONENT: c}) for c, expr in components.items()]
    out += [
        _record(names.HEALTH_WEIGHT, f"vector({num(weights[c] / total)})", agent | {names.L_COMPONENT: c})
        for c in components
    ]
    value = selector(names.HEALTH_COMPONENT, agent)
    weight = selector(names.HEALTH_WEIGHT, agent)
    join = f"on({names.L_AGENT}, {names.L_COMPONENT}) group_left"
    expr = f"sum {BY_FLOW} ({value} * {join} {weight})\n  / sum {BY_FLOW} ({value} * 0 + {join} {weight})"
    out.append(_record(names.HEALTH_SCORE, expr))
    return out


def budget_tier_rules(plan: Plan) -> list[Rule]:
    """Per tier the share of its budget spent over the period, and the end-to-end share of the tiers."""
    spec, alloc = plan.spec, plan.spec.budget_allocation
    if alloc is None or alloc.end_to_end == "auto":
        return []
    agent = {names.L_AGENT: plan.agent}
    out, errors = [], []
    for tier, t in alloc.tiers.items():
        if t.objective == "auto" or not t.slos:
            continue
        by_period: dict[str, list[str]] = {}
        for slo in t.slos:
            by_period.setdefault(period_label(spec.period_seconds(slo)), []).append(slo)
        ratios = " or ".join(
            selector(names.sli_error_ratio(period), agent, {names.L_SLO: slos})
            for period, slos in by_period.items()
        )
        # The tier's error ratio is its worst SLO's over the period (the tier is as good as its weakest).
        error = f"max by ({names.L_AGENT}) ({ratios})"
        errors.append(error)
        budget = (100 - float(t.objective)) / 100
        out.append(_record(names.BUDGET_TIER_CONSUMED, f"{error} / {num(budget)}", {names.L_TIER: tier}))
    if errors:
        e2e_budget = (100 - float(alloc.end_to_end)) / 100
        summed = "\n  + ".join(f"({e})" for e in errors)
        out.append(
            _record(
                names.BUDGET_TIER_CONSUMED,
                f"({summed}) / {num(e2e_budget)}",
                {names.L_TIER: names.BUDGET_TIER_END_TO_END},
            )
        )
    return out


def budget_tier_alert(plan: Plan) -> list[Rule]:
    """`AgentSLOBudgetTierSpent` (a ticket): a tier, or the whole stack, has spent its budget share."""
    if not budget_tier_rules(plan):
        return []
    consumed = selector(names.BUDGET_TIER_CONSUMED, {names.L_AGENT: plan.agent})
    labels = {**plan.agent_labels(), names.L_SEVERITY: SEVERITY_WARNING}
    period = period_label(parse_duration(plan.spec.period))
    return [
        {
            "alert": names.ALERT_BUDGET_TIER_SPENT,
            "expr": f"{consumed} >= 1",
            "labels": labels,
            "annotations": {
                "summary": f"{plan.agent}: budget tier {{{{ $labels.tier }}}} has spent its share",
                "description": (
                    f"Over the {period} period the {{{{ $labels.tier }}}} tier of {plan.agent} spent "
                    "{{ $value | humanizePercentage }} of its error budget share; the end-to-end "
                    "budget the tiers share is at risk."
                ),
            },
        }
    ]
