"""Dashboard rows for the practice signals: pipeline attribution and workflow chains (flow
drill-down), the health score and the budget tiers (overview).

Each row reads the series `rules/attribution.py` records, and appears only when a loaded spec
declares what feeds it (`pipeline:`, `workflows:`, `health:`, `budget_allocation:`), so a spec
without them gets no empty panels.

    >>> from agentslo.spec import load_spec
    >>> grid = p.Grid()
    >>> pipeline_row(grid, [load_spec("examples/voice-booking.slo.yaml")])
    >>> [getattr(panel, "title", "") for panel in grid.panels][:2]
    ['Pipeline attribution', 'Stage latency: P50, P95 and P99']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from agentslo import names
from agentslo.dashboards import _panels as p
from agentslo.dashboards._panels import AGENT, FLOW, sel, steps, target
from agentslo.spec import Spec

# The health score is a triage aid: below these it is worth a look, never a page.
HEALTH_STEPS: Final = steps(("red", None), ("orange", 0.8), ("green", 0.9))
# A budget tier at 100% has spent its share of the end-to-end budget (AgentSLOBudgetTierSpent).
TIER_STEPS: Final = steps(("green", None), ("orange", 0.75), ("red", 1.0))


def pipeline_row(grid: p.Grid, specs: Sequence[Spec]) -> None:
    """Which stage owns a slow turn: per-stage P50/P95/P99 over time, and who owns the P95/P99 now."""
    if not any(s.pipeline is not None for s in specs):
        return
    grid.row("Pipeline attribution")
    quantiles = [(f"p{round(q * 100)}", names.stage_latency_quantile(q)) for q in names.STAGE_QUANTILES]
    grid.add(
        p.panel(
            "timeseries",
            "Stage latency: P50, P95 and P99",
            "Latency of each pipeline stage (telephony, ASR, LLM, TTS, tools as the spec declares them) "
            "over 5m windows, from the agent's `stage` events.",
            [
                target(f"max by (stage) ({sel(record, AGENT, FLOW)})", f"{{{{stage}}}} {label}")
                for label, record in quantiles
            ],
            unit="s",
        ),
        12,
        8,
    )
    for label, record in quantiles[1:]:
        grid.add(
            p.panel(
                "bargauge",
                f"Who owns the {label.upper()}",
                f"Each stage's {label.upper()} latency now, slowest first: the top bar is the stage to "
                "work on when turns are slow.",
                [
                    target(
                        f"sort_desc(max by (stage) ({sel(record, AGENT, FLOW)}))", "{{stage}}", instant=True
                    )
                ],
                unit="s",
                thresholds=steps(("blue", None)),
            ),
            6,
            8,
        )
    grid.add(
        p.panel(
            "timeseries",
            "Share of turn time by stage",
            "Each stage's share of the summed stage time over 5m windows (stacked to 100%).",
            [
                target(
                    f"avg by (stage) ({sel(names.STAGE_LATENCY_SHARE, AGENT, FLOW)})",
                    "{{stage}}",
                )
            ],
            unit="percentunit",
            max_=1,
            custom={"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 40},
        ),
        24,
        7,
    )


def workflow_row(grid: p.Grid, specs: Sequence[Spec]) -> None:
    """The workflow chain: each step's success over the last hour and what they compound to."""
    if not any(s.workflows for s in specs):
        return
    grid.row("Workflow chain")
    # Every workflow of the agent, whichever flow is selected: a workflow often serves one flow, and an
    # empty panel on the others would hide the chain rather than scope it.
    step_success = sel(names.WORKFLOW_STEP_SUCCESS, AGENT)
    chain = sel(names.WORKFLOW_CHAIN_SUCCESS, AGENT)
    grid.add(
        p.panel(
            "bargauge",
            "Step success (1h)",
            "Share of each workflow step's runs that succeeded over the last hour (every workflow of "
            "the agent, in any flow); a weak step drags the whole chain down.",
            [
                target(
                    f"max by (flow, workflow, step) ({step_success})",
                    "{{flow}} · {{workflow}} · {{step}}",
                    instant=True,
                )
            ],
            unit="percentunit",
            min_=0,
            max_=1,
            thresholds=steps(("red", None), ("orange", 0.95), ("green", 0.99)),
        ),
        12,
        8,
    )
    grid.add(
        p.panel(
            "stat",
            "End-to-end chain success (1h)",
            "The product of the steps' success ratios: the share of runs that get through every step "
            "(ten steps at 99% each make 90.4%).",
            [target(f"min by (flow, workflow) ({chain})", "{{flow}} · {{workflow}}")],
            unit="percentunit",
            thresholds=steps(("red", None), ("orange", 0.9), ("green", 0.95)),
            decimals=1,
        ),
        12,
        8,
    )


def health_row(grid: p.Grid, specs: Sequence[Spec]) -> None:
    """The health score per flow (triage, never alerts) and the budget tiers' spend."""
    health = any(s.health is not None for s in specs)
    tiers = any(s.budget_allocation is not None for s in specs)
    if not (health or tiers):
        return
    grid.row("Triage: health score and budget tiers")
    if health:
        grid.add(
            p.panel(
                "stat",
                "Health score per flow",
                "A weighted score (0-100%) over task completion, synthetic pass rate, step count, "
                "escalation and LLM latency, with the spec's weights. Secondary to the SLOs: for "
                "triage only, it never alerts.",
                [target(f"max by (flow) ({sel(names.HEALTH_SCORE, AGENT, FLOW)})", "{{flow}}")],
                unit="percentunit",
                thresholds=HEALTH_STEPS,
                decimals=1,
            ),
            12 if tiers else 24,
            6,
        )
    if tiers:
        grid.add(
            p.panel(
                "bargauge",
                "Budget tiers: share spent",
                "How much of its share of the end-to-end error budget each tier (infrastructure, "
                "provider, execution, quality) has spent over the period; end_to_end is the whole "
                "stack. At 100% AgentSLOBudgetTierSpent tickets.",
                [
                    target(
                        f"max by (tier) ({sel(names.BUDGET_TIER_CONSUMED, AGENT)})", "{{tier}}", instant=True
                    )
                ],
                unit="percentunit",
                min_=0,
                thresholds=TIER_STEPS,
            ),
            12 if health else 24,
            6,
        )
