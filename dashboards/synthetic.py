"""Synthetic probes: are the scripted scenarios passing, and is the prober still running?

Pass rate per scenario, consecutive failures (three in a row fire `AgentSLOSyntheticFailing`), time
since each scenario's last run, and runs by outcome. Probe conversations never spend production
budgets (they carry the built-in `synthetic` exclusion); this page is where they are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from agentslo import names
from agentslo.dashboards import _panels as p
from agentslo.dashboards._panels import AGENT, FLOW, sel, steps, target
from agentslo.durations import parse_duration
from agentslo.spec import Spec

TITLE: Final = "agent-slo · synthetic probes"
BY: Final = "agent, flow, scenario"
FAILING_RUNS: Final = 3  # AgentSLOSyntheticFailing fires on three consecutive failures (DESIGN.md)
DEFAULT_INTERVAL: Final = "5m"  # the prober's default schedule
PASS_STEPS: Final = steps(("red", None), ("orange", 0.9), ("green", 0.99))


def _pass_ratio(window: str) -> str:
    runs = names.SYNTHETIC_RUNS_TOTAL
    passed = f'{names.L_OUTCOME}="{names.SYNTHETIC_PASSED}"'
    # runs the prober itself failed (outcome prober_error) say nothing about the agent
    judged = f'{names.L_OUTCOME}=~"{names.SYNTHETIC_PASSED}|{names.SYNTHETIC_FAILED}"'
    return (
        f"sum by ({BY}) (increase({sel(runs, AGENT, FLOW, passed)}[{window}])) / "
        f"sum by ({BY}) (increase({sel(runs, AGENT, FLOW, judged)}[{window}]))"
    )


def _interval_seconds(specs: Sequence[Spec]) -> int:
    return min(parse_duration(s.synthetic.interval if s.synthetic else DEFAULT_INTERVAL) for s in specs)


def build(specs: Sequence[Spec]) -> dict[str, Any]:
    """The synthetic probes dashboard for every agent in `specs`."""
    runs = names.SYNTHETIC_RUNS_TOTAL
    interval = _interval_seconds(specs)
    grid = p.Grid()
    grid.row("Scenarios")
    grid.add(
        p.panel(
            "bargauge",
            "Pass rate per scenario (time range)",
            "Share of each scenario's runs that passed every assertion during the dashboard's time range.",
            [target(_pass_ratio("$__range"), "{{agent}} {{flow}} {{scenario}}", instant=True)],
            unit="percentunit",
            min_=0,
            max_=1,
            thresholds=PASS_STEPS,
        ),
        12,
        9,
    )
    grid.add(
        p.panel(
            "table",
            "Consecutive failures and last run",
            f"Per scenario: failures in a row right now ({FAILING_RUNS} fire "
            "AgentSLOSyntheticFailing) and the time "
            "since its last run reached the exporter (red after three missed intervals).",
            [
                target(
                    f"max by ({BY}) ({sel(names.SYNTHETIC_CONSECUTIVE_FAILURES, AGENT, FLOW)})",
                    instant=True,
                    table=True,
                ),
                # The exporter's exact last-run time (0 until a scenario's first run: left out).
                target(
                    f"time() - max by ({BY}) "
                    f"({sel(names.SYNTHETIC_LAST_RUN_TIMESTAMP_SECONDS, AGENT, FLOW)} > 0)",
                    instant=True,
                    table=True,
                ),
            ],
            unit="none",
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "Value #A"},
                    "properties": [
                        {"id": "displayName", "value": "Consecutive failures"},
                        {
                            "id": "thresholds",
                            "value": steps(("green", None), ("orange", 1.0), ("red", float(FAILING_RUNS))),
                        },
                        {"id": "custom.cellOptions", "value": {"type": "color-background", "mode": "basic"}},
                    ],
                },
                {
                    "matcher": {"id": "byName", "options": "Value #B"},
                    "properties": [
                        {"id": "displayName", "value": "Since last run"},
                        {"id": "unit", "value": "s"},
                        {
                            "id": "thresholds",
                            "value": steps(
                                ("green", None), ("orange", 2.0 * interval), ("red", 3.0 * interval)
                            ),
                        },
                        {"id": "custom.cellOptions", "value": {"type": "color-background", "mode": "basic"}},
                    ],
                },
            ],
            transformations=[
                {"id": "merge", "options": {}},
                {"id": "organize", "options": {"excludeByName": {"Time": True}}},
            ],
        ),
        12,
        9,
    )
    grid.add(
        p.panel(
            "timeseries",
            "Pass rate per scenario (1h)",
            "Share of each scenario's runs that passed over the last hour.",
            [target(_pass_ratio("1h"), "{{flow}} {{scenario}}")],
            unit="percentunit",
            min_=0,
            max_=1,
        ),
        12,
        8,
    )
    grid.add(
        p.panel(
            "timeseries",
            "Runs by outcome",
            "Scenario runs per second by outcome; a gap means the prober stopped.",
            [
                target(
                    f"sum by (scenario, outcome) (rate({sel(runs, AGENT, FLOW)}[$__rate_interval]))",
                    "{{scenario}} {{outcome}}",
                )
            ],
            unit="cps",
            custom={"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 30},
        ),
        12,
        8,
    )
    grid.add(
        p.panel(
            "state-timeline",
            "Consecutive failures over time",
            f"Failures in a row per scenario over time; red at {FAILING_RUNS}, when the alert fires.",
            [
                target(
                    f"max by ({BY}) ({sel(names.SYNTHETIC_CONSECUTIVE_FAILURES, AGENT, FLOW)})",
                    "{{flow}} {{scenario}}",
                )
            ],
            unit="none",
            thresholds=steps(("green", None), ("orange", 1.0), ("red", float(FAILING_RUNS))),
        ),
        24,
        8,
    )
    return p.render(
        "synthetic",
        TITLE,
        "Scripted scenarios run by the prober: pass rate, consecutive failures and last run. Generated by "
        "agent-slo from the SLO specs; do not edit by hand.",
        grid,
        p.scope_variables(slo_label=None),
        p.links(p.runbooks(specs)),
    )
