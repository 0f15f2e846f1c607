"""`agent-slo validate`: check specs (and their scenario files), then explain each SLO in numbers.

For every SLO and objective it prints the error budget per period, what that means in events at a
given daily volume, and each burn-rate tier's error-ratio threshold and time to fire on a full
outage, saying when a tier had to be capped because the objective is too low for its factor.

Workflows get their compound arithmetic: steps that each succeed p of the time succeed pⁿ of the
time end to end (10 steps at 99% → 90.4%), so an end-to-end target T needs every step at T^(1/n):

    >>> chain_success(0.99, 10), round(step_objective_for(0.95, 3), 5)
    (0.9043820750088044, 0.98305)
"""

from __future__ import annotations

import argparse
import re

from agentslo import burn
from agentslo.durations import humanize, parse_duration
from agentslo.scenario import load_scenarios
from agentslo.spec import Spec, SpecError, load_specs

DEFAULT_VOLUME_PER_DAY = 10_000
# What one event of each SLI kind is, for sentences like "allows 400 bad tasks/day".
UNIT: dict[str, str] = {
    "task": "tasks",
    "tool_calls": "tool calls",
    "judge": "judged sessions",
    "cost": "tasks",
    "escalation": "escalation decisions",
    "connection": "connections",
    "synthetic": "probe runs",
    "promql": "events",
    "workflow": "workflow runs",
}
ESCALATION_UNIT = {
    "correct": "escalation decisions",
    "recall": "decisions that required a hand-off",
    "unnecessary": "hand-offs",
    "context": "hand-offs",
}
# Per-step success the compound arithmetic is shown at when a workflow has no per-step SLOs.
EXAMPLE_STEP_SUCCESS = 0.99
LATENCY_UNIT = {
    "task": "tasks",
    "turn": "turns",
    "first_response": "first responses",
    "tool_turn": "tool turns",
}


def _volume(text: str) -> float:
    m = re.fullmatch(r"\s*([0-9][0-9_,]*(?:\.[0-9]+)?)\s*(?:/\s*(day|d|hour|h))?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a volume: use events per day such as 10000 or 10000/day"
        )
    value = float(m.group(1).replace(",", "").replace("_", ""))
    return value * 24 if m.group(2) in ("hour", "h") else value


def _n(x: float) -> str:
    """Event counts for people: whole numbers with separators, small ones with one decimal."""
    return f"{x:,.0f}" if x >= 10 or x == int(x) else f"{x:,.1f}"


def _pct(x: float) -> str:
    return f"{x:.6g}%"


def unit_of(spec: Spec, slo: str) -> str:
    sli = spec.slos[slo].sli
    if sli.latency is not None:
        return LATENCY_UNIT[sli.latency.of]
    if sli.escalation is not None:
        return ESCALATION_UNIT[sli.escalation.of]
    if sli.workflow is not None and sli.workflow.step is not None:
        return f"`{sli.workflow.step}` steps"
    return UNIT[sli.kind]


def chain_success(step_success: float, steps: int) -> float:
    """End-to-end success of `steps` independent steps that each succeed `step_success` of the time."""
    return float(step_success**steps)


def step_objective_for(end_to_end: float, steps: int) -> float:
    """The per-step success every one of `steps` steps needs for an end-to-end success `end_to_end`."""
    return float(end_to_end ** (1 / steps))


def explain_workflows(spec: Spec) -> list[str]:
    """Each workflow's compound arithmetic: the chain its step objectives give, and what each step
    needs for the end-to-end objective (from its SLOs when it has them)."""
    lines = []
    for name, workflow in spec.workflows.items():
        n = len(workflow.steps)
        lines.append(f"  workflow {name}: {n} steps ({' → '.join(workflow.steps)})")
        slos = {s: slo.sli.workflow for s, slo in spec.slos.items() if slo.sli.workflow is not None}
        step_objectives = {
            w.step: float(spec.slos[s].objective)
            for s, w in slos.items()
            if w is not None and w.name == name and w.step is not None and spec.slos[s].objective != "auto"
        }
        at = EXAMPLE_STEP_SUCCESS
        lines.append(
            f"    {n} steps at {_pct(at * 100)} each succeed {_pct(round(chain_success(at, n) * 100, 2))} "
            "of the time end to end"
        )
        if step_objectives:
            product = 1.0
            for step in workflow.steps:
                product *= step_objectives.get(step, 100.0) / 100
            given = ", ".join(f"{st} {_pct(o)}" for st, o in step_objectives.items())
            lines.append(
                f"    the step objectives ({given}; other steps taken as perfect) allow at best "
                f"{_pct(round(product * 100, 3))} end to end"
            )
        for s, w in slos.items():
            if w is None or w.name != name or w.step is not None or spec.slos[s].objective == "auto":
                continue
            target = float(spec.slos[s].objective) / 100
            lines.append(
                f"    end-to-end objective {_pct(target * 100)} (SLO {s}) needs every step at "
                f"{_pct(round(step_objective_for(target, n) * 100, 3))} or better"
            )
    return lines


def explain_slo(spec: Spec, slo: str, volume_per_day: float) -> list[str]:
    """Sentences explaining one SLO: objective per flow group, budget, events, tiers."""
    s = spec.slos[slo]
    period = spec.period_of(slo)
    days = spec.period_seconds(slo) / 86400
    owner = s.owner
    lines = [f"  {slo}  ({s.sli.kind} SLI, owner {owner}, period {period})"]
    by_objective: dict[float, list[str]] = {}
    for flow in spec.flows_of(slo):
        by_objective.setdefault(spec.objective_for(slo, flow), []).append(flow)
    unit = unit_of(spec, slo)
    for objective, flows in sorted(by_objective.items()):
        budget = 100 - objective
        source = " (auto, from the flows' risk tier)" if s.objective == "auto" else ""
        lines.append(f"    flows {', '.join(flows)}: objective {_pct(objective)}{source}")
        lines.append(
            f"      error budget {_pct(budget)} of {unit} over {period}: "
            f"{humanize(budget / 100 * days * 86400)} of full outage at steady traffic"
        )
        per_day = burn.allowed_bad(objective, volume_per_day)
        lines.append(
            f"      at {_n(volume_per_day)} {unit}/day, {_pct(objective)} allows "
            f"{_n(per_day)} bad {unit}/day, "
            f"{_n(per_day * days)} per {period}"
        )
        alerting = spec.alerting_for(slo)
        for tier in burn.tiers(spec, slo, objective):
            line = (
                f"      {tier.name:<11} ({tier.severity}, {tier.long}/{tier.short} windows, "
                f"burn > {tier.factor:g}x): "
                f"error ratio > {_pct(round(tier.error_ratio * 100, 6))}; a full outage fires after "
                f"{humanize(tier.time_to_fire_full_outage)}"
            )
            if tier.capped:
                line += (
                    f" [capped: {tier.factor:g} x {_pct(budget)} would need more than "
                    f"{_pct(alerting.max_error_ratio * 100)} errors, so this tier fires at "
                    f"{_pct(alerting.max_error_ratio * 100)} instead of never]"
                )
            lines.append(line)
        if alerting.min_events > 1:
            lines.append(f"      burn alerts need at least {alerting.min_events} events in the long window")
        if alerting.any_bad:
            lines.append(f"      any counted bad event raises a {alerting.any_bad} (rare-event SLO)")
    return lines


def explain(spec: Spec, volume_per_day: float) -> str:
    out = [f"{spec.source}: agent {spec.agent}: {len(spec.slos)} SLOs over {len(spec.flows)} flows, OK"]
    for slo in spec.slos:
        out.extend(explain_slo(spec, slo, volume_per_day))
    governing = ", ".join(spec.governing_slos())
    out.append(
        f"  autonomy: governed by {governing}; warning at 1h burn >= "
        f"{spec.autonomy.warning_burn:g}, critical at "
        f">= {spec.autonomy.critical_burn:g}; when Prometheus is unreachable: {spec.autonomy.fail_safe}"
    )
    if spec.synthetic is not None:
        out.append(
            f"  synthetic: every {spec.synthetic.interval} ({parse_duration(spec.synthetic.interval)} s)"
        )
    out.extend(explain_workflows(spec))
    out.extend(explain_extras(spec))
    out.extend(explain_otel(spec))
    return "\n".join(out)


def explain_extras(spec: Spec) -> list[str]:
    """The pipeline stages, the health score's weights and the budget tiers, in one line each."""
    lines = []
    if spec.pipeline is not None:
        lines.append(f"  pipeline: stage latency by {', '.join(spec.pipeline.stages)} (P50/P95/P99, share)")
    if (health := spec.health) is not None:
        total = sum(health.weights.values())
        weights = ", ".join(f"{c} {w / total:.0%}" for c, w in health.weights.items() if w > 0)
        lines.append(
            f"  health score over {health.window}: {weights} (steps ≤ {health.max_steps}, turns ≤ "
            f"{health.llm_latency_under:g}s); triage only, never alerts"
        )
        kinds = {slo.sli.kind for slo in spec.slos.values()}
        sourceless = [
            c
            for c, missing in (
                ("task_completion", "task" not in kinds),
                ("synthetic_pass_rate", spec.synthetic is None),
                ("escalation", "escalation" not in kinds),
            )
            if missing and {str(k): w for k, w in health.weights.items()}.get(c, 0) > 0
        ]
        if sourceless:
            lines.append(
                f"    no source for {', '.join(sourceless)} (no such SLO or no synthetic section): left out, "
                "the other weights re-normalised"
            )
    if (alloc := spec.budget_allocation) is not None and alloc.end_to_end != "auto":
        tiers = ", ".join(
            f"{t} {_pct(100 - float(tier.objective))}"
            for t, tier in alloc.tiers.items()
            if tier.objective != "auto"
        )
        lines.append(
            f"  budget tiers sharing {_pct(100 - float(alloc.end_to_end))} end to end: {tiers}; "
            "a tier that spends its share tickets (AgentSLOBudgetTierSpent)"
        )
    return lines


def explain_otel(spec: Spec) -> list[str]:
    """How `POST /v1/traces` reads this agent's OpenTelemetry GenAI spans (the spec's `otel:` section)."""
    otel = spec.otel
    flows = " or ".join(f"`{a}`" for a in otel.flow_attributes)
    lines = [
        f"  otel: spans whose gen_ai.agent.name (else resource service.name) is {spec.agent}; "
        f"flow from {flows} on the span, its nearest ancestor that has one, or the resource",
    ]
    for rule in otel.flow_rules:
        test = f"= {rule.equals!r}" if rule.equals is not None else f"matches {rule.matches!r}"
        lines.append(f"    else flow {rule.flow} when `{rule.attribute}` {test}")
    tasks = ", ".join(otel.task_operations)
    lines.append(
        f"    task: the outermost {tasks} span (outcome from `{otel.outcome_attribute}`, else status ERROR → "
        "failure); turn: chat/text_completion/generate_content; tool_call: execute_tool (ERROR or error.type "
        "→ error); judge: gen_ai.evaluation.result"
    )
    lines.append(
        f"    version `{otel.version_attribute}`, prompt version `{otel.prompt_version_attribute}`, "
        f"exclusion `{otel.exclude_attribute}` (or agent_slo.synthetic=true → synthetic)"
    )
    if otel.prices:
        priced = "; ".join(
            f"{model} ${p.input_per_mtok:g}/${p.output_per_mtok:g} per M tokens in/out"
            for model, p in otel.prices.items()
        )
        lines.append(f"    cost: tokens of the task's chat spans × {priced}; other models add no cost")
    else:
        lines.append("    cost: no otel.prices, so tasks read from spans carry tokens but no cost")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("specs", nargs="+", metavar="SPEC", help="SLO spec files (one agent each)")
    parser.add_argument(
        "--volume",
        type=_volume,
        default=DEFAULT_VOLUME_PER_DAY,
        metavar="N/day",
        help=f"daily event volume for the budget arithmetic (default {DEFAULT_VOLUME_PER_DAY:,})",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only report problems")


def run(args: argparse.Namespace) -> int:
    specs = load_specs(args.specs)
    problems = []
    scenario_counts: dict[str, int] = {}
    for spec in specs:
        if spec.synthetic is not None:
            try:
                scenario_counts[spec.agent] = len(load_scenarios(spec))
            except SpecError as exc:
                problems.extend(exc.problems)
    if problems:
        raise SpecError(problems)
    if not args.quiet:
        for spec in specs:
            print(explain(spec, args.volume))
            if spec.agent in scenario_counts:
                print(f"  scenarios: {scenario_counts[spec.agent]} loaded and valid")
    return 0
