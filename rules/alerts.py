"""Alerting rules: multiwindow burn-rate tiers, budget floors and the agent-health signals.

Each alert reads series recorded earlier in its own group, so it never lags its inputs. Labels:
`severity` (critical pages, warning tickets, info budget floors), `burn_tier`, `owner` and the
owner's routing labels, and the spec's labels. Annotations: a plain `summary`, a `description`
templated with the values, and `runbook_url` / `dashboard_url` when the spec gives them.
"""

from __future__ import annotations

from typing import Any, Final

from agentslo import burn, names
from agentslo.rules._plan import BUCKET, Plan
from agentslo.rules._promql import BY_SLO, ON_SLO, num, percent, selector
from agentslo.spec import Spec

Rule = dict[str, Any]

BUDGET_LOW_REMAINING: Final = 0.2  # design: less than 20% of the period budget left
SYNTHETIC_FAILURES_IN_A_ROW: Final = 3  # design: three consecutive failures of a scenario
# Judge scores are 0-1; a spread below one hundredth is measurement noise, not a baseline to beat.
MIN_SCORE_STDDEV: Final = 0.01
FAILURE_MODE_RECENT: Final = "1d"  # "seen in the last day"
FAILURE_MODE_HISTORY: Final = "7d"  # "absent the 7 days before"
FAILURE_MODE_MIN_HISTORY: Final = "8d"  # only once 8 days of history exist
SPEC_MISMATCH_FOR: Final = "10m"  # a rolling deploy runs two hashes for a few minutes
SCRAPE_DOWN_FOR: Final = "5m"
# `reason` on AgentSLOTelemetryAbsent: a silent flow, or an exporter Prometheus cannot scrape.
REASON_SILENT_FLOW, REASON_SCRAPE = "silent_flow", "scrape"
SEVERITY_CRITICAL, SEVERITY_WARNING, SEVERITY_INFO = "critical", "warning", "info"


def _alert(
    name: str,
    expr: str,
    labels: dict[str, str],
    summary: str,
    description: str,
    for_: str | None = None,
    urls: dict[str, str] | None = None,
) -> Rule:
    rule: Rule = {"alert": name, "expr": expr}
    if for_:
        rule["for"] = for_
    rule["labels"] = dict(labels)
    rule["annotations"] = {"summary": summary, "description": description, **(urls or {})}
    return rule


def runbook_page(agent: str, rule: Rule) -> str:
    """An alert's runbook page, relative to the runbooks folder: its SLO's page (`<agent>/<slo>.md`)
    when the alert is about one SLO, else the alert's own (`<agent>/<AlertName>.md`)."""
    return f"{agent}/{rule['labels'].get(names.L_SLO) or rule['alert']}.md"


def link_runbooks(spec: Spec, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give every alert that has no `runbook_url` of its own `alerting.runbook_base_url` + its page
    (the SLO's alerting options when the alert is about an SLO, else the spec's)."""
    for group in groups:
        for rule in group["rules"]:
            if "alert" not in rule or names.RUNBOOK_URL in rule["annotations"]:
                continue
            slo = rule["labels"].get(names.L_SLO)
            base = (spec.alerting_for(slo) if slo in spec.slos else spec.alerting).runbook_base_url
            if base:
                page = runbook_page(spec.agent, rule)
                rule["annotations"][names.RUNBOOK_URL] = f"{base.rstrip('/')}/{page}"
    return groups


def _urls(plan: Plan, slo: str | None = None) -> dict[str, str]:
    alerting = plan.spec.alerting_for(slo) if slo is not None else plan.spec.alerting
    urls = {"runbook_url": alerting.runbook_url, "dashboard_url": alerting.dashboard_url}
    return {k: v for k, v in urls.items() if v}


def burn_alerts(plan: Plan) -> list[Rule]:
    """`AgentSLOBurnRate` per SLO and tier: both windows above the threshold, with enough events."""
    spec, out = plan.spec, []
    for slo in spec.slos:
        alerting = spec.alerting_for(slo)
        period = spec.period_of(slo)
        for objective, flows in plan.objectives(slo).items():
            scope: dict[str, Any] = {names.L_AGENT: spec.agent, names.L_SLO: slo}
            regex = {names.L_FLOW: flows} if len(flows) < len(spec.flows_of(slo)) else None
            for tier in burn.tiers(spec, slo, objective):
                threshold = num(tier.error_ratio)
                long_ratio = selector(names.sli_error_ratio(tier.long), scope, regex)
                short_ratio = selector(names.sli_error_ratio(tier.short), scope, regex)
                events = selector(names.events_rate(tier.long), scope, regex)
                expr = (
                    f"{long_ratio} > {threshold}\n"
                    f"and {ON_SLO} {short_ratio} > {threshold}\n"
                    f"and {ON_SLO} sum {BY_SLO} ({events}) >= {alerting.min_events}"
                )
                capped = (
                    f" The threshold is capped at {num(tier.error_ratio * 100)}%:"
                    f" a {percent(objective)}% objective"
                    f" cannot burn {num(tier.factor)} times its budget."
                    if tier.capped
                    else ""
                )
                description = (
                    f"{{{{ $value | humanizePercentage }}}} of {slo} events failed on flow"
                    f" {{{{ $labels.flow }}}} over the last {tier.long}, and over {tier.short} too, above the"
                    f" {num(tier.error_ratio * 100)}% threshold: the objective is {percent(objective)}%,"
                    f" so the {period} error budget burns at"
                    f" {num(tier.factor)}x the sustainable rate or faster ({tier.name}).{capped}"
                )
                labels = {
                    **plan.routing_labels(slo),
                    names.L_SLO: slo,
                    names.L_OBJECTIVE: percent(objective),
                    names.L_SEVERITY: tier.severity,
                    names.L_BURN_TIER: tier.name,
                }
                summary = f"The {slo} SLO of {spec.agent} is burning its error budget too fast."
                out.append(
                    _alert(
                        names.ALERT_BURN_RATE,
                        expr,
                        labels,
                        summary,
                        description,
                        alerting.for_,
                        _urls(plan, slo),
                    )
                )
    return out


def budget_alerts(plan: Plan) -> list[Rule]:
    """`AgentSLOBudgetLow` (info) below 20% of the period budget, `AgentSLOBudgetExhausted` at 0.

    The SLO's `min_events` guard applies to the period too: one bad event among the first three of a
    fresh period is no spent budget worth an alert."""
    spec, out = plan.spec, []
    for slo in spec.slos:
        scope = {names.L_AGENT: spec.agent, names.L_SLO: slo}
        period = spec.period_of(slo)
        min_events = spec.alerting_for(slo).min_events
        guard = ""
        if min_events > 1:
            events = selector(names.events_rate(period), scope)
            guard = f"\nand {ON_SLO} sum {BY_SLO} ({events}) >= {min_events}"
        remaining = selector(names.ERROR_BUDGET_REMAINING, scope)
        labels = {**plan.routing_labels(slo), names.L_SLO: slo}
        out.append(
            _alert(
                names.ALERT_BUDGET_LOW,
                f"{remaining} < {num(BUDGET_LOW_REMAINING)} > 0{guard}",
                {**labels, names.L_SEVERITY: SEVERITY_INFO},
                f"The {slo} SLO of {spec.agent} has less than {num(BUDGET_LOW_REMAINING * 100)}%"
                " of its error budget left.",
                f"{{{{ $value | humanizePercentage }}}} of the {period} error budget of {slo} remains on flow"
                " {{ $labels.flow }}; risky changes should wait.",
                urls=_urls(plan, slo),
            )
        )
        out.append(
            _alert(
                names.ALERT_BUDGET_EXHAUSTED,
                f"{remaining} <= 0{guard}",
                {**labels, names.L_SEVERITY: SEVERITY_WARNING},
                f"The {slo} SLO of {spec.agent} has spent its whole error budget.",
                f"The {period} error budget of {slo} on flow {{{{ $labels.flow }}}} is spent"
                " (remaining {{ $value | humanizePercentage }}); the release gate is closed.",
                urls=_urls(plan, slo),
            )
        )
    return out


def rare_event_alerts(plan: Plan) -> list[Rule]:
    """`AgentSLORareEvent`: any counted bad event of an SLO marked `any_bad`."""
    spec, out = plan.spec, []
    for slo in spec.slos:
        alerting = spec.alerting_for(slo)
        if alerting.any_bad is None:
            continue
        bad = selector(
            names.events_rate(BUCKET),
            {names.L_AGENT: spec.agent, names.L_SLO: slo, names.L_OUTCOME: names.BAD},
        )
        severity = SEVERITY_CRITICAL if alerting.any_bad == "page" else SEVERITY_WARNING
        out.append(
            _alert(
                names.ALERT_RARE_EVENT,
                f"sum {BY_SLO} ({bad}) > 0",
                {**plan.routing_labels(slo), names.L_SLO: slo, names.L_SEVERITY: severity},
                f"A {slo} event of {spec.agent} failed.",
                f"{{{{ $value }}}} bad {slo} event(s) on flow {{{{ $labels.flow }}}} in the last {BUCKET};"
                " this SLO alerts on every bad event.",
                urls=_urls(plan, slo),
            )
        )
    return out


def silent_flow_alert(plan: Plan) -> Rule:
    """`AgentSLOTelemetryAbsent` for a flow that reported in the last day and then went quiet."""
    spec = plan.spec
    scope = {names.L_AGENT: spec.agent}
    window = spec.telemetry.absent_for
    by_flow = f"by ({names.L_AGENT}, {names.L_FLOW})"
    day = f"sum {by_flow} ({selector(names.events_rate('1d'), scope)}) > 0"
    recent = f"sum {by_flow} ({selector(names.events_rate(window), scope)}) > 0"
    return _alert(
        names.ALERT_TELEMETRY_ABSENT,
        f"{day}\nunless on({names.L_AGENT}, {names.L_FLOW}) {recent}",
        {**plan.agent_labels(), names.L_SEVERITY: SEVERITY_WARNING, names.L_REASON: REASON_SILENT_FLOW},
        f"A flow of {spec.agent} stopped reporting events.",
        f"Flow {{{{ $labels.flow }}}} reported events in the last day but none in the last {window};"
        " its SLOs are blind until it reports again.",
        urls=_urls(plan),
    )


def signal_alerts(plan: Plan) -> list[Rule]:
    """Synthetic failures, judge agreement, emerging failure modes, spec mismatch and scrape health."""
    spec = plan.spec
    scope = {names.L_AGENT: spec.agent}
    labels = plan.agent_labels()
    warn = {**labels, names.L_SEVERITY: SEVERITY_WARNING}
    urls = _urls(plan)
    out = []
    failures = selector(names.SYNTHETIC_CONSECUTIVE_FAILURES, scope)
    out.append(
        _alert(
            names.ALERT_SYNTHETIC_FAILING,
            f"max by ({names.L_AGENT}, {names.L_FLOW}, {names.L_SCENARIO}) ({failures})"
            f" >= {SYNTHETIC_FAILURES_IN_A_ROW}",
            {**labels, names.L_SEVERITY: SEVERITY_CRITICAL},
            f"A synthetic scenario of {spec.agent} keeps failing.",
            "Scenario {{ $labels.scenario }} on flow {{ $labels.flow }} failed {{ $value }} times in a row.",
            urls=urls,
        )
    )
    floors: dict[float, list[str]] = {}
    for judge, definition in spec.judges.items():
        floors.setdefault(definition.agreement_floor, []).append(judge)
    for floor, judges in floors.items():
        agreement = selector(names.JUDGE_AGREEMENT_RATIO, scope, {names.L_JUDGE: judges})
        out.append(
            _alert(
                names.ALERT_JUDGE_AGREEMENT_LOW,
                f"min by ({names.L_AGENT}, {names.L_JUDGE}, {names.L_JUDGE_VERSION}) ({agreement})"
                f" < {num(floor)}",
                warn,
                f"A judge of {spec.agent} disagrees with human labels too often.",
                "Judge {{ $labels.judge }} version {{ $labels.judge_version }}"
                " agrees with human labels"
                f" {{{{ $value | humanizePercentage }}}} of the time, below its {num(floor * 100)}% floor;"
                " its verdicts should not drive budgets until it is recalibrated.",
                urls=urls,
            )
        )
    modes = selector(names.FAILURE_MODES_TOTAL, scope)
    key = f"{names.L_AGENT}, {names.L_FLOW}, {names.L_FAILURE_MODE}"
    expr = (
        f"sum by ({key}) (increase({modes}[{FAILURE_MODE_RECENT}])) > 0\n"
        f"unless on({key})"
        f" sum by ({key}) (increase({modes}[{FAILURE_MODE_HISTORY}] offset {FAILURE_MODE_RECENT})) > 0\n"
        f"and on({names.L_AGENT}) group by ({names.L_AGENT}) ({modes} offset {FAILURE_MODE_MIN_HISTORY})"
    )
    out.append(
        _alert(
            names.ALERT_FAILURE_MODE_EMERGED,
            expr,
            warn,
            f"A new failure mode appeared in {spec.agent}.",
            "Failure mode {{ $labels.failure_mode }} was seen {{ $value }} times on flow {{ $labels.flow }}"
            " in the"
            f" last {FAILURE_MODE_RECENT} and not at all in the {FAILURE_MODE_HISTORY} before.",
            urls=urls,
        )
    )
    hashes = selector(names.SPEC_INFO, scope)
    out.append(
        _alert(
            names.ALERT_SPEC_MISMATCH,
            f"count by ({names.L_AGENT}) (count by ({names.L_AGENT}, {names.L_SPEC_HASH}) ({hashes})) > 1",
            warn,
            f"Exporter replicas of {spec.agent} run different SLO specs.",
            "{{ $value }} different spec hashes are live; alerts and budgets mix definitions until every"
            " replica runs the same spec.",
            for_=SPEC_MISMATCH_FOR,
            urls=urls,
        )
    )
    up = selector(names.UP, {"job": spec.telemetry.scrape_job})
    out.append(
        _alert(
            names.ALERT_TELEMETRY_ABSENT,
            f"{up} == 0\nor absent({up})",
            {**warn, names.L_AGENT: spec.agent, names.L_REASON: REASON_SCRAPE},
            f"The agent-slo exporter of {spec.agent} is not scraped.",
            f"Job {spec.telemetry.scrape_job} target {{{{ $labels.instance }}}} is down or missing;"
            f" the SLOs of {spec.agent} are not measured.",
            for_=SCRAPE_DOWN_FOR,
            urls=urls,
        )
    )
    return out


def drift_alert(plan: Plan) -> Rule:
    """`AgentSLOJudgeScoreDrift`: the window's mean is more than N sigma from its baseline mean."""
    spec, drift = plan.spec, plan.spec.drift
    scope = {names.L_AGENT: spec.agent}
    on = f"on({names.L_AGENT}, {names.L_FLOW}, {names.L_JUDGE}, {names.L_JUDGE_VERSION})"
    mean = selector(names.judge_score_mean(drift.window), scope)
    base = selector(names.JUDGE_SCORE_BASELINE_MEAN, scope)
    spread = selector(names.JUDGE_SCORE_BASELINE_STDDEV, scope)
    count = selector(names.judge_score_count(drift.window), scope)
    expr = (
        f"{mean}\nand {on} abs({mean} - {on} {base})\n"
        f"  > {on} ({num(drift.sigma)} * clamp_min({spread}, {num(MIN_SCORE_STDDEV)}))\n"
        f"and {on} {count} >= {drift.min_samples}"
    )
    return _alert(
        names.ALERT_JUDGE_DRIFT,
        expr,
        {**plan.agent_labels(), names.L_SEVERITY: SEVERITY_WARNING},
        f"A judge's scores of {spec.agent} drifted from their baseline.",
        f"The {drift.window} mean score of judge {{{{ $labels.judge }}}}"
        " version {{ $labels.judge_version }} on flow {{ $labels.flow }}"
        f' is {{{{ $value | printf "%.3f" }}}}, more than {num(drift.sigma)} sigma'
        f" from its {drift.baseline} baseline (at least {drift.min_samples} verdicts in the window).",
        urls=_urls(plan),
    )
