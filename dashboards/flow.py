"""The flow drill-down: for one flow (and SLO), what in it is responsible for the burn.

SLI and burn rate by window, tool-call outcomes per tool, latency by kind, cost and steps per task,
token use by model, and failure modes, with every release (a new `agent_slo_build_info` label set)
marked on the time axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from agentslo import names
from agentslo.dashboards import _panels as p
from agentslo.dashboards import attribution
from agentslo.dashboards._panels import AGENT, FLOW, SLO, sel, steps, target
from agentslo.spec import Spec

TITLE: Final = "agent-slo · flow drill-down"
BURN_WINDOWS: Final = ("5m", "1h", "6h", "1d", "3d")  # each tier's short or long window, shortest first
QUANTILES: Final = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))  # P99 beside P50/P95 wherever latency shows
DEFAULT_TOOL_OBJECTIVE: Final = 0.95  # colours the tool success bars when no spec has a tool_calls SLO
BY: Final = "agent, flow, slo"


def _quantiles(metric: str, by: str = "", legend: str = "") -> list[Any]:
    """p50/p95/p99 from a histogram's buckets, plus the mean from its _sum/_count."""
    group = f"{by}, le" if by else "le"
    out = [
        target(
            f"histogram_quantile({q}, sum by ({group}) (rate({sel(metric + '_bucket', AGENT, FLOW)}"
            f"[$__rate_interval])))",
            f"{name} {legend}".strip(),
        )
        for name, q in QUANTILES
    ]
    mean_by = f" by ({by})" if by else ""
    out.append(
        target(
            f"sum{mean_by} (rate({sel(metric + '_sum', AGENT, FLOW)}[$__rate_interval])) / "
            f"sum{mean_by} (rate({sel(metric + '_count', AGENT, FLOW)}[$__rate_interval]))",
            f"mean {legend}".strip(),
        )
    )
    return out


def _tool_objective(specs: Sequence[Spec]) -> float:
    objectives = [
        s.objective_for(slo, f) / 100
        for s in specs
        for slo, o in s.slos.items()
        if o.sli.kind == "tool_calls"
        for f in s.flows_of(slo)
    ]
    return min(objectives, default=DEFAULT_TOOL_OBJECTIVE)


def build(specs: Sequence[Spec]) -> dict[str, Any]:
    """The flow drill-down dashboard for every agent in `specs`."""
    tools = names.TOOL_CALLS_TOTAL
    ok = f'{names.L_OUTCOME}="{names.TOOL_OK}"'
    grid = p.Grid()
    grid.row("The flow's SLIs")
    grid.add(
        p.panel(
            "timeseries",
            "SLI (1h) vs objective",
            "The share of good events over the last hour for each selected SLO in this flow, "
            "beside its objective.",
            [
                target(
                    f"1 - max by ({BY}) ({sel(names.sli_error_ratio('1h'), AGENT, FLOW, SLO)})",
                    "{{slo}} SLI (1h)",
                ),
                target(
                    f"max by ({BY}) ({sel(names.OBJECTIVE_RATIO, AGENT, FLOW, SLO)})", "{{slo}} objective"
                ),
            ],
            unit="percentunit",
        ),
        12,
        8,
    )
    grid.add(
        p.panel(
            "timeseries",
            "Burn rate by window",
            "Burn rate of each selected SLO over the alert tiers' windows: short windows show a fix taking "
            "effect, long ones how much budget an incident spent. Bands are the tiers' burn factors.",
            [
                target(f"max by ({BY}) ({sel(names.burn_rate(w), AGENT, FLOW, SLO)})", f"{{{{slo}}}} {w}")
                for w in BURN_WINDOWS
            ],
            unit="none",
            thresholds=p.burn_steps(specs),
            custom={"thresholdsStyle": {"mode": "dashed"}},
        ),
        12,
        8,
    )
    grid.row("Tools")
    grid.add(
        p.panel(
            "timeseries",
            "Tool-call outcomes per tool",
            "Tool calls per second by tool and outcome (ok, wrong_tool, invalid_params, "
            "empty_result, error).",
            [
                target(
                    f"sum by (tool, outcome) (rate({sel(tools, AGENT, FLOW)}[$__rate_interval]))",
                    "{{tool}} {{outcome}}",
                )
            ],
            unit="cps",
            custom={"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 30},
        ),
        8,
        8,
    )
    grid.add(
        p.panel(
            "bargauge",
            "Tool-call success per tool",
            "Share of each tool's calls with outcome ok over the dashboard's time range; red below "
            "the tool-call SLO's objective.",
            [
                target(
                    f"sum by (tool) (increase({sel(tools, AGENT, FLOW, ok)}[$__range])) / "
                    f"sum by (tool) (increase({sel(tools, AGENT, FLOW)}[$__range]))",
                    "{{tool}}",
                    instant=True,
                )
            ],
            unit="percentunit",
            min_=0,
            max_=1,
            thresholds=steps(("red", None), ("green", _tool_objective(specs))),
        ),
        8,
        8,
    )
    grid.add(
        p.panel(
            "timeseries",
            "Tool-call latency per tool (p95, p99)",
            "95th and 99th percentile latency of each tool's calls: the tool share of a slow turn.",
            [
                target(
                    f"histogram_quantile({q}, sum by (tool, le) (rate("
                    f"{sel(names.TOOL_CALL_LATENCY_SECONDS + '_bucket', AGENT, FLOW)}[$__rate_interval])))",
                    f"{{{{tool}}}} {name}",
                )
                for name, q in QUANTILES[1:]
            ],
            unit="s",
        ),
        8,
        8,
    )
    grid.row("Latency, cost and effort")
    grid.add(
        p.panel(
            "timeseries",
            "Turn latency by kind",
            "p50, p95, p99 and mean latency of turns, first responses and tool turns. Which pipeline "
            "stage (telephony, ASR, LLM, TTS, tools) owns them: the Pipeline attribution row.",
            _quantiles(names.TURN_LATENCY_SECONDS, "kind", "{{kind}}"),
            unit="s",
        ),
        12,
        8,
    )
    grid.add(
        p.panel(
            "timeseries",
            "Task duration",
            "End-to-end task time including tool calls: p50, p95, p99 and mean.",
            _quantiles(names.TASK_DURATION_SECONDS),
            unit="s",
        ),
        12,
        8,
    )
    grid.add(
        p.panel(
            "timeseries",
            "Cost per task",
            "USD per task (every outcome): p50, p95, p99 and mean.",
            _quantiles(names.TASK_COST_USD),
            unit="currencyUSD",
        ),
        8,
        8,
    )
    grid.add(
        p.panel(
            "timeseries",
            "Steps per task",
            "LLM calls plus tool calls per task: p50, p95, p99 and mean; a rising p95 often means loops.",
            _quantiles(names.TASK_STEPS),
            unit="short",
        ),
        8,
        8,
    )
    grid.add(
        p.panel(
            "timeseries",
            "Tokens by model",
            "Tokens per second by model and type (input, output).",
            [
                target(
                    f"sum by (model, type) (rate({sel(names.TOKENS_TOTAL, AGENT, FLOW)}[$__rate_interval]))",
                    "{{model}} {{type}}",
                )
            ],
            unit="short",
        ),
        8,
        8,
    )
    attribution.pipeline_row(grid, specs)
    attribution.workflow_row(grid, specs)
    grid.row("Failure modes")
    grid.add(
        p.panel(
            "timeseries",
            "Failure modes over time",
            "Labelled failure clusters per second; a new line is a failure mode that just emerged.",
            [
                target(
                    "sum by (failure_mode) "
                    f"(rate({sel(names.FAILURE_MODES_TOTAL, AGENT, FLOW)}[$__rate_interval]))",
                    "{{failure_mode}}",
                )
            ],
            unit="cps",
        ),
        12,
        8,
    )
    grid.add(
        p.panel(
            "bargauge",
            "Failure modes in the time range",
            "How many tasks failed in each labelled way during the dashboard's time range, most "
            "frequent first.",
            [
                target(
                    f"sort_desc(sum by (failure_mode) (increase({sel(names.FAILURE_MODES_TOTAL, AGENT, FLOW)}"
                    "[$__range])))",
                    "{{failure_mode}}",
                    instant=True,
                )
            ],
            unit="short",
            thresholds=steps(("orange", None)),
        ),
        12,
        8,
    )
    return p.render(
        "flow",
        TITLE,
        "Which tool, kind of latency, cost, model or failure mode is behind a flow's burn, with releases "
        "marked. Generated by agent-slo from the SLO specs; do not edit by hand.",
        grid,
        p.scope_variables(),
        p.links(p.runbooks(specs)),
        [p.release_annotation()],
    )
