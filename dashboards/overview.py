"""The SLO overview: the one page an on-call engineer opens first.

Top to bottom it answers: are users affected (SLI vs objective, budget left, days to exhaustion),
which SLO is burning (1h burn against the alert tiers), should we keep shipping (autonomy and
release state), and what is failing (raw vs budget-counting failures, recent alerts, the sessions
behind them in the exporter's API). Every panel reads the recording rules, not raw counters, where
a rule exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from agentslo import names
from agentslo.dashboards import _panels as p
from agentslo.dashboards import attribution
from agentslo.dashboards._panels import AGENT, FLOW, SLO, sel, steps, target
from agentslo.spec import Spec

TITLE: Final = "agent-slo · SLO overview"
SECONDS_PER_DAY: Final = 86400
BY_SLO: Final = "agent, slo, flow"
BUDGET_STEPS: Final = steps(
    ("red", None), ("orange", 0.0), ("yellow", 0.2), ("green", 0.5)
)  # freeze/watch floors
DAYS_STEPS: Final = steps(("red", None), ("orange", 1.0), ("yellow", 3.0), ("green", 7.0))
AUTONOMY_COLORS: Final = ("green", "yellow", "orange", "red")
TOP_SESSIONS_WINDOW: Final = "1h"


def _by_slo(expr: str) -> str:
    return f"max by ({BY_SLO}) ({expr})"


def _slo_table(specs: Sequence[Spec]) -> Any:
    sli = f"1 - {_by_slo(p.period_error_ratio(specs, AGENT, FLOW, SLO))}"
    objective = _by_slo(sel(names.OBJECTIVE_RATIO, AGENT, FLOW, SLO))
    columns = [
        ("A", "SLI (period)", sli, "percentunit", None),
        ("B", "Objective", objective, "percentunit", None),
        ("C", "Margin", f"({sli}) - {objective}", "percentunit", steps(("red", None), ("green", 0.0))),
        (
            "D",
            "Budget remaining",
            _by_slo(sel(names.ERROR_BUDGET_REMAINING, AGENT, FLOW, SLO)),
            "percentunit",
            BUDGET_STEPS,
        ),
        ("E", "Exhaustion in", _by_slo(sel(names.ERROR_BUDGET_EXHAUSTION, AGENT, FLOW, SLO)), "s", None),
        (
            "F",
            "Burn (1h)",
            _by_slo(sel(names.burn_rate("1h"), AGENT, FLOW, SLO)),
            "none",
            p.burn_steps(specs),
        ),
    ]
    overrides = []
    for ref, label, _, unit, thresholds in columns:
        props: list[dict[str, Any]] = [{"id": "displayName", "value": label}, {"id": "unit", "value": unit}]
        if thresholds:
            props += [
                {"id": "thresholds", "value": thresholds},
                {"id": "custom.cellOptions", "value": {"type": "color-background", "mode": "basic"}},
            ]
        overrides.append({"matcher": {"id": "byName", "options": f"Value #{ref}"}, "properties": props})
    link = p.dashboard_link(
        "flow",
        "Drill into ${__data.fields.flow}",
        agent="${__data.fields.agent}",
        flow="${__data.fields.flow}",
        slo="${__data.fields.slo}",
    )
    return p.panel(
        "table",
        "SLI vs objective, per SLO and flow",
        "Each SLO and flow over its compliance period: the event-weighted SLI, the objective, the margin "
        "(red when the SLI is below the objective), the error budget left (1 untouched, 0 spent, negative "
        "overspent), the forecast time to exhaustion at the 1h burn rate, and the 1h burn rate against the "
        "alert tiers. Click a row to drill into the flow.",
        [target(expr, instant=True, table=True) for _, _, expr, _, _ in columns],
        unit="none",
        links=[link],
        overrides=overrides,
        transformations=[
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {"excludeByName": {"Time": True}, "indexByName": {}, "renameByName": {}},
            },
        ],
        options={"sortBy": [{"displayName": "Margin", "desc": False}]},
    )


def _catalog(specs: Sequence[Spec]) -> str:
    """A Markdown table of every SLO: its SLI, objective, owner, runbook and top-sessions link."""
    lines = [
        "| agent | SLO | SLI | objective | owner | runbook | sessions behind it |",
        "|---|---|---|---|---|---|---|",
    ]
    for spec in specs:
        for slo, s in spec.slos.items():
            objectives = sorted({spec.objective_for(slo, f) for f in spec.flows_of(slo)})
            objective = " / ".join(f"{o:g}%" for o in objectives)
            runbook = spec.alerting_for(slo).runbook_url
            runbook_md = f"[runbook]({runbook})" if runbook else "none set (`alerting.runbook_url`)"
            top = f"${{exporter}}/v1/sessions/top?slo={slo}&window={TOP_SESSIONS_WINDOW}"
            lines.append(
                f"| {spec.agent} | {slo} | {s.sli.kind} | {objective} | {s.owner} | {runbook_md} | "
                f"[top sessions ({TOP_SESSIONS_WINDOW})]({top}) |"
            )
    return "\n".join(lines)


def build(specs: Sequence[Spec]) -> dict[str, Any]:
    """The overview dashboard for every agent in `specs` (pick one with the `agent` variable)."""
    events = names.EVENTS_TOTAL
    bad = f'{names.L_OUTCOME}="{names.BAD}"'
    counted = f'{names.L_EXCLUSION}=""'
    excluded = f'{names.L_EXCLUSION}!=""'
    grid = p.Grid()
    grid.row("Are users affected?")
    grid.add(
        p.panel(
            "stat",
            "SLOs below objective",
            "How many SLO × flow pairs have an SLI below their objective over the compliance period.",
            [
                target(
                    f"count((1 - {_by_slo(p.period_error_ratio(specs, AGENT, FLOW, SLO))}) < "
                    f"{_by_slo(sel(names.OBJECTIVE_RATIO, AGENT, FLOW, SLO))}) or vector(0)",
                    "below objective",
                )
            ],
            unit="none",
            thresholds=steps(("green", None), ("red", 1.0)),
        ),
        6,
        5,
    )
    grid.add(
        p.panel(
            "stat",
            "Lowest error budget remaining",
            "The error budget left in the worst SLO × flow (1 untouched, 0 spent, negative overspent).",
            [target(f"min({sel(names.ERROR_BUDGET_REMAINING, AGENT, FLOW, SLO)})", "lowest budget")],
            unit="percentunit",
            thresholds=BUDGET_STEPS,
        ),
        6,
        5,
    )
    grid.add(
        p.panel(
            "stat",
            "Days to budget exhaustion (soonest)",
            "Forecast days until the first error budget runs out, at each SLO's current 1h burn rate.",
            [
                target(
                    f"min({sel(names.ERROR_BUDGET_EXHAUSTION, AGENT, FLOW, SLO)}) / {SECONDS_PER_DAY}", "days"
                )
            ],
            unit="d",
            thresholds=DAYS_STEPS,
            decimals=1,
        ),
        6,
        5,
    )
    grid.add(
        p.panel(
            "stat",
            "Budget-counting bad events (1h)",
            "Bad events that spent error budget in the last hour (excluded events not counted).",
            [
                target(
                    f"sum(increase({sel(events, AGENT, FLOW, SLO, bad, counted)}[1h])) or vector(0)",
                    "bad events",
                )
            ],
            unit="short",
            thresholds=steps(("green", None), ("orange", 1.0)),
        ),
        6,
        5,
    )
    grid.add(_slo_table(specs), 24, 9)
    attribution.health_row(grid, specs)
    grid.row("Which SLO is burning?")
    grid.add(
        p.panel(
            "timeseries",
            "Burn rate (1h) against the alert tiers",
            "1h burn rate per SLO and flow over the last 24 hours; 1 spends exactly the budget "
            "over the period. "
            "The shaded bands are the alert tiers' burn factors (ticket: yellow/orange, page: red).",
            [target(_by_slo(sel(names.burn_rate("1h"), AGENT, FLOW, SLO)), "{{agent}} {{slo}} {{flow}}")],
            unit="none",
            thresholds=p.burn_steps(specs),
            custom={"thresholdsStyle": {"mode": "line+area"}},
            time_from="24h",
        ),
        12,
        9,
    )
    grid.add(
        p.panel(
            "bargauge",
            "Error budget remaining",
            "Share of each SLO × flow's period error budget still unspent. Click a bar to drill "
            "into the flow.",
            [
                target(
                    _by_slo(sel(names.ERROR_BUDGET_REMAINING, AGENT, FLOW, SLO)),
                    "{{agent}} {{slo}} {{flow}}",
                    instant=True,
                )
            ],
            unit="percentunit",
            thresholds=BUDGET_STEPS,
            min_=0,
            max_=1,
            links=[
                p.dashboard_link(
                    "flow",
                    "Drill into ${__field.labels.flow}",
                    agent="${__field.labels.agent}",
                    flow="${__field.labels.flow}",
                    slo="${__field.labels.slo}",
                )
            ],
        ),
        12,
        9,
    )
    grid.row("Should we keep shipping?")
    grid.add(
        p.panel(
            "state-timeline",
            "Autonomy state per agent and flow",
            "What the agent may do on its own, from its governing SLOs: healthy (autonomous, "
            "draft, escalate), "
            "warning (draft, escalate), critical (escalate; deploy freeze), exhausted (circuit break).",
            [
                target(
                    f"max by (agent, flow) ({sel(names.AUTONOMY_STATE, AGENT, FLOW)})", "{{agent}} {{flow}}"
                )
            ],
            unit="none",
            thresholds=steps(*zip(AUTONOMY_COLORS, (None, 1.0, 2.0, 3.0), strict=True)),
            mappings=p.state_mappings(names.AUTONOMY_STATES, AUTONOMY_COLORS),
        ),
        12,
        8,
    )
    grid.add(
        p.panel(
            "state-timeline",
            "Release state per flow and SLO",
            "The release gate's view of each SLO × flow: healthy, watch (budget < 50% or 6h burn > "
            "1), freeze (budget < 20% and 1h burn > 1), exhausted (no budget left).",
            [target(_by_slo(sel(names.RELEASE_STATE, AGENT, FLOW, SLO)), "{{agent}} {{flow}} {{slo}}")],
            unit="none",
            thresholds=steps(*zip(AUTONOMY_COLORS, (None, 1.0, 2.0, 3.0), strict=True)),
            mappings=p.state_mappings(names.RELEASE_STATES, AUTONOMY_COLORS),
        ),
        12,
        8,
    )
    grid.row("What is failing?")
    grid.add(
        p.panel(
            "timeseries",
            "Bad events: raw vs budget-counting",
            "Every bad event per SLO (raw) beside the ones that spend budget; the gap is events "
            "left out for a "
            "declared exclusion reason (test calls, abuse, provider outages, synthetic probes…).",
            [
                target(
                    f"sum by (slo) (rate({sel(events, AGENT, FLOW, SLO, bad)}[$__rate_interval]))",
                    "{{slo}} raw",
                ),
                target(
                    f"sum by (slo) (rate({sel(events, AGENT, FLOW, SLO, bad, counted)}[$__rate_interval]))",
                    "{{slo}} budget-counting",
                ),
            ],
            unit="cps",
        ),
        12,
        8,
    )
    grid.add(
        p.panel(
            "timeseries",
            "Excluded bad events by reason",
            "Bad events left out of the budget, by exclusion reason: check that exclusions stay "
            "rare and explained.",
            [
                target(
                    "sum by (exclusion) "
                    f"(rate({sel(events, AGENT, FLOW, SLO, bad, excluded)}[$__rate_interval]))",
                    "{{exclusion}}",
                )
            ],
            unit="cps",
        ),
        12,
        8,
    )
    grid.add(
        p.panel(
            "table",
            "Recent alerts",
            "Alerts pending or firing for the selected agents during the dashboard's time range "
            "(Prometheus' ALERTS series; Alertmanager routes and silences them).",
            [
                target(
                    f"max by (alertname, alertstate, severity, burn_tier, agent, slo, flow) "
                    f"(max_over_time({sel(names.PROMETHEUS_ALERTS, AGENT)}[$__range]))",
                    instant=True,
                    table=True,
                )
            ],
            unit="none",
            transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}}}],
        ),
        12,
        8,
    )
    grid.add(
        p.text(
            "SLO catalog, runbooks and the sessions behind each SLO",
            "Every SLO of the loaded specs with its owner and runbook, and a link to the exporter's API "
            "listing the stored sessions that burned the most budget (set the exporter URL in the "
            "`exporter` variable; the API asks for the exporter's token when one is configured).",
            _catalog(specs),
        ),
        12,
        8,
    )
    return p.render(
        "overview",
        TITLE,
        "Are users affected, which SLO is burning, and should we keep shipping? Generated by agent-slo from "
        "the SLO specs; do not edit by hand.",
        grid,
        [*p.scope_variables(), p.textbox_variable("exporter", "Exporter URL", p.EXPORTER_URL)],
        p.links(p.runbooks(specs)),
        [p.release_annotation()],
    )
