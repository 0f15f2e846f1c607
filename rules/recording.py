"""Recording rules: SLO constants, event counts per window, error ratios, burn rates, budget and states.

Rules are written per window across all SLOs of an agent (every event SLI shares
`agent_slo_events_total`), so the rule count grows with windows, not with SLOs:

1. `agent_slo_info` per SLO and flow, and the objective, error budget and period derived from it
   (one rule per distinct value);
2. `agent_slo:events:increase<w>` by agent, slo, flow, outcome: from raw counters for windows under
   6h, and for longer windows and the period as sums of `agent_slo:events_bucket:increase5m`, a series
   recorded once per 5 minutes. The period ratio is therefore event-weighted (bad events / all
   events over the period, not a mean of ratios) and reads 8,640 samples per series for 30 days;
3. `agent_slo:sli_error:ratio_rate<w>`, defined as 0 when the window saw no events (never NaN);
4. burn rates, budget remaining, exhaustion forecast, autonomy and release states.
"""

from __future__ import annotations

from typing import Any

from agentslo import names
from agentslo.durations import parse_duration
from agentslo.rules._plan import BUCKET, Plan
from agentslo.rules._promql import BY_SLO, ON_SLO, num, open_range, percent, selector
from agentslo.spec import Spec, period_label

Rule = dict[str, Any]


def _record(name: str, expr: str, labels: dict[str, str] | None = None) -> Rule:
    rule: Rule = {"record": name, "expr": expr}
    if labels:
        rule["labels"] = dict(labels)
    return rule


def info_rules(plan: Plan) -> list[Rule]:
    """`agent_slo_info` (1) per SLO and flow, carrying objective, owner, SLI kind, period and labels."""
    spec = plan.spec
    out = []
    for slo, definition in spec.slos.items():
        for flow in spec.flows_of(slo):
            labels = {
                **plan.routing_labels(slo),
                names.L_AGENT: spec.agent,
                names.L_SLO: slo,
                names.L_FLOW: flow,
                names.L_OBJECTIVE: percent(spec.objective_for(slo, flow)),
                names.L_SLI: definition.sli.kind,
                names.L_PERIOD: period_label(spec.period_seconds(slo)),
            }
            out.append(_record(names.SLO_INFO, "vector(1)", labels))
    return out


def constant_rules(plan: Plan) -> list[Rule]:
    """Objective, error budget and period per SLO and flow, read off `agent_slo_info`.

    One rule per series name, an `or` of one term per distinct value, so the rule count does not grow
    with SLOs and the numbers are exact literals (0.001, not 1 - 0.999).
    """
    spec = plan.spec
    objectives = sorted({spec.objective_for(s, f) for s in spec.slos for f in spec.flows_of(s)})

    def per_value(label: str, values: dict[str, float]) -> str:
        terms = []
        for text, value in values.items():
            info = selector(names.SLO_INFO, {names.L_AGENT: spec.agent, label: text})
            terms.append(f"{num(value)} * sum {BY_SLO} ({info})")
        return "\nor ".join(terms)

    return [
        _record(
            names.OBJECTIVE_RATIO, per_value(names.L_OBJECTIVE, {percent(o): o / 100 for o in objectives})
        ),
        _record(
            names.ERROR_BUDGET_RATIO,
            per_value(names.L_OBJECTIVE, {percent(o): 1 - o / 100 for o in objectives}),
        ),
        _record(
            names.PERIOD_SECONDS, per_value(names.L_PERIOD, {p: parse_duration(p) for p in plan.periods})
        ),
    ]


def _promql_window(spec: Spec, slo: str, window: str) -> str:
    """Good and bad counts of a `promql` SLI over a window, labelled like the event counts."""
    sli = spec.slos[slo].sli.promql
    assert sli is not None
    total = f"sum({sli.total.replace('$window', window)})"
    if sli.bad is not None:
        bad = f"sum({sli.bad.replace('$window', window)})"
        good = f"({total} - {bad})"
    else:
        good = f"sum({(sli.good or '').replace('$window', window)})"
        bad = f"({total} - {good})"
    outcomes = (
        f'label_replace({bad}, "{names.L_OUTCOME}", "{names.BAD}", "", "")'
        f' or label_replace({good}, "{names.L_OUTCOME}", "{names.GOOD}", "", "")'
    )
    per_flow = [
        f'label_replace({outcomes}, "{names.L_FLOW}", "{flow}", "", "")' for flow in spec.flows_of(slo)
    ]
    return "\n or ".join(per_flow)


def event_rules(plan: Plan) -> list[Rule]:
    """`agent_slo:events:increase<w>` for every window and period, and the 5m buckets behind the long ones."""
    spec, agent = plan.spec, plan.spec.agent
    events = selector(names.EVENTS_TOTAL, {names.L_AGENT: agent, names.L_EXCLUSION: ""})
    bucket_seconds = parse_duration(BUCKET)
    out: list[Rule] = []
    raw = [w for w in plan.windows if plan.is_raw(w)]
    if BUCKET not in raw:
        raw.insert(0, BUCKET)
    for window in raw:
        if plan.event_slos:
            key = f"{names.L_AGENT}, {names.L_SLO}, {names.L_FLOW}, {names.L_OUTCOME}"
            expr = f"sum by ({key}) (increase({events}[{window}]))"
            out.append(_record(names.events_rate(window), expr))
        for slo in plan.promql_slos:
            labels = {names.L_AGENT: agent, names.L_SLO: slo}
            out.append(_record(names.events_rate(window), _promql_window(spec, slo, window), labels))
    # One sample per bucket: kept only at the evaluation that opens each 5-minute slot, so consecutive
    # samples cover adjacent, non-overlapping 5m windows and their sum over w counts each event once.
    latest = selector(names.events_rate(BUCKET), {names.L_AGENT: agent})
    slot = f"vector(time()) % {bucket_seconds} < {plan.interval_seconds}"
    out.append(_record(names.events_bucket(BUCKET), f"{latest} and on() ({slot})"))
    long_windows: list[tuple[str, tuple[str, ...] | None]] = [
        (w, None) for w in plan.windows if not plan.is_raw(w)
    ]
    long_windows += [(p, plan.periods[p]) for p in plan.period_only]
    for window, slos in long_windows:
        regex = {names.L_SLO: slos} if slos is not None and len(slos) < len(spec.slos) else None
        buckets = selector(names.events_bucket(BUCKET), {names.L_AGENT: agent}, regex)
        # Until the first bucket is recorded (a Prometheus with no history), every event so far lies in
        # the last 5m, so that increase stands in; budgets and states exist from the first evaluation.
        first = selector(names.events_rate(BUCKET), {names.L_AGENT: agent}, regex)
        expr = f"sum_over_time({buckets}[{open_range(parse_duration(window))}])\nor {first}"
        out.append(_record(names.events_rate(window), expr))
    return out


def ratio_rules(plan: Plan) -> list[Rule]:
    """`agent_slo:sli_error:ratio_rate<w>`: bad / all events, and 0 (not NaN) when there were none."""
    agent = plan.spec.agent
    out = []
    for window in (*plan.windows, *plan.period_only):
        counts = names.events_rate(window)
        bad = f"sum {BY_SLO} ({selector(counts, {names.L_AGENT: agent, names.L_OUTCOME: names.BAD})})"
        total = f"sum {BY_SLO} ({selector(counts, {names.L_AGENT: agent})})"
        expr = f"{bad}\n  / {ON_SLO} ({total} > 0)\nor {ON_SLO}\n  {total} * 0"
        out.append(_record(names.sli_error_ratio(window), expr))
    return out


def burn_rules(plan: Plan) -> list[Rule]:
    """`agent_slo:burn_rate:ratio_rate<w>`: the window's error ratio in units of the error budget."""
    agent = {names.L_AGENT: plan.spec.agent}
    budget = selector(names.ERROR_BUDGET_RATIO, agent)
    return [
        _record(names.burn_rate(w), f"{selector(names.sli_error_ratio(w), agent)} / {ON_SLO} {budget}")
        for w in (*plan.windows, *plan.period_only)
    ]


def budget_rules(plan: Plan) -> list[Rule]:
    """Budget remaining over each SLO's own period, and the exhaustion forecast at the 1h burn."""
    spec = plan.spec
    agent = {names.L_AGENT: spec.agent}
    budget = selector(names.ERROR_BUDGET_RATIO, agent)
    terms = []
    for period, slos in plan.periods.items():
        regex = {names.L_SLO: slos} if len(slos) < len(spec.slos) else None
        terms.append(f"(1 - {selector(names.sli_error_ratio(period), agent, regex)} / {ON_SLO} {budget})")
    out = [_record(names.ERROR_BUDGET_REMAINING, "\nor ".join(terms))]
    remaining = selector(names.ERROR_BUDGET_REMAINING, agent)
    seconds = selector(names.PERIOD_SECONDS, agent)
    burn1h = selector(names.burn_rate("1h"), agent)
    # Time left = remaining share of the budget × period / burn rate; absent while nothing burns.
    expr = f"clamp_min({remaining}, 0) * {ON_SLO} {seconds}\n  / {ON_SLO} ({burn1h} > 0)"
    out.append(_record(names.ERROR_BUDGET_EXHAUSTION, expr))
    return out


def autonomy_rule(plan: Plan) -> Rule:
    """`agent_slo:autonomy_state:code` per agent and flow: the worst state over the governing SLOs.

    Per SLO, with x = [remaining ≤ 0], y = [1h burn ≥ warning], z = [1h burn ≥ critical]:
    exhausted (3) when x and y; critical (2) when z, or x without y; warning (1) when y; healthy (0).
    That is x·(2 + y) + (1 − x)·(y + z).
    """
    spec = plan.spec
    scope = {names.L_AGENT: spec.agent}
    governing = spec.governing_slos()
    regex = {names.L_SLO: governing} if len(governing) < len(spec.slos) else None
    remaining = selector(names.ERROR_BUDGET_REMAINING, scope, regex)
    burn1h = selector(names.burn_rate("1h"), scope, regex)
    x = f"({remaining} <= bool 0)"
    y = f"({burn1h} >= bool {num(spec.autonomy.warning_burn)})"
    z = f"({burn1h} >= bool {num(spec.autonomy.critical_burn)})"
    per_slo = f"{x} * {ON_SLO} (2 + {y})\n  + {ON_SLO}\n  (1 - {x}) * {ON_SLO} ({y} + {ON_SLO} {z})"
    expr = f"max by ({names.L_AGENT}, {names.L_FLOW}) (\n  {per_slo}\n)"
    return _record(names.AUTONOMY_STATE, expr)


def release_rule(plan: Plan) -> Rule:
    """`agent_slo:release_state:code` per agent, flow and SLO.

    exhausted (3) remaining ≤ 0; freeze (2) remaining < 0.2 and 1h burn > 1; watch (1) remaining < 0.5
    or 6h burn > 1; healthy (0). With x3, x2, x1 those conditions: 3·x3 + (1 − x3)·(2·x2 + (1 − x2)·x1).
    """
    spec, gate = plan.spec, plan.spec.release_gate
    scope = {names.L_AGENT: spec.agent}
    remaining = selector(names.ERROR_BUDGET_REMAINING, scope)
    burn1h = selector(names.burn_rate("1h"), scope)
    burn6h = selector(names.burn_rate("6h"), scope)
    x3 = f"({remaining} <= bool 0)"
    x2 = (
        f"(({remaining} < bool {num(gate.freeze_remaining)})"
        f" * {ON_SLO} ({burn1h} > bool {num(gate.freeze_burn)}))"
    )
    x1 = (
        f"clamp_max(({remaining} < bool {num(gate.watch_remaining)})"
        f" + {ON_SLO} ({burn6h} > bool {num(gate.watch_burn)}), 1)"
    )
    expr = (
        f"3 * {x3}\n+ {ON_SLO} (1 - {x3}) * {ON_SLO} (\n"
        f"  2 * {x2}\n  + {ON_SLO} (1 - {x2}) * {ON_SLO} {x1}\n)"
    )
    return _record(names.RELEASE_STATE, expr)


def judge_rules(plan: Plan) -> list[Rule]:
    """Judge score count and mean over the drift window, and the baseline mean and spread of that mean."""
    spec, drift = plan.spec, plan.spec.drift
    judges = drift.judges if drift.judges is not None else tuple(spec.judges)
    key = f"{names.L_AGENT}, {names.L_FLOW}, {names.L_JUDGE}, {names.L_JUDGE_VERSION}"
    scope = {names.L_AGENT: spec.agent}
    regex = {names.L_JUDGE: judges}
    count = (
        f"sum by ({key}) (increase({selector(names.JUDGE_SCORE + '_count', scope, regex)}[{drift.window}]))"
    )
    total = f"sum by ({key}) (increase({selector(names.JUDGE_SCORE + '_sum', scope, regex)}[{drift.window}]))"
    mean = selector(names.judge_score_mean(drift.window), scope)
    counted = f"({selector(names.judge_score_count(drift.window), scope)} > 0)"
    # The baseline leaves out the current window, so a shift does not dilute its own reference.
    baseline = f"{mean}[{drift.baseline}] offset {drift.window}"
    return [
        _record(names.judge_score_count(drift.window), count),
        _record(names.judge_score_mean(drift.window), f"{total} / on({key}) {counted}"),
        _record(names.JUDGE_SCORE_BASELINE_MEAN, f"avg_over_time({baseline})"),
        _record(names.JUDGE_SCORE_BASELINE_STDDEV, f"stddev_over_time({baseline})"),
    ]
