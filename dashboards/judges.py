"""Judges & calibration: can the judges' verdicts be trusted, and what do they cost?

Score distributions by judge and version, each version's hourly mean against its rolling baseline with
the spec's sigma bands (what `AgentSLOJudgeScoreDrift` alerts on), agreement with human labels against
the judge's floor, the judges' calls and cost, and the judge SLOs themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from typing import Any, Final

from agentslo import names
from agentslo.dashboards import _panels as p
from agentslo.dashboards._panels import AGENT, FLOW, SLO, sel, steps, target
from agentslo.spec import Spec

TITLE: Final = "agent-slo · judges & calibration"
BY_VERSION: Final = "agent, judge, judge_version"
BY_FLOW: Final = "agent, flow, judge, judge_version"  # the labels of the rules' judge recordings
SCORE_QUANTILES: Final = (("p10", 0.1), ("p50", 0.5), ("p90", 0.9))
DEFAULT_AGREEMENT_FLOOR: Final = 0.85  # the design's default floor for AgentSLOJudgeAgreementLow


def _mean(window: str, *matchers: str) -> str:
    """A judge version's mean score over `window` (increase of _sum over increase of _count)."""
    score = names.JUDGE_SCORE
    return (
        f"sum by ({BY_VERSION}) (increase({sel(score + '_sum', *matchers)}[{window}])) / "
        f"sum by ({BY_VERSION}) (increase({sel(score + '_count', *matchers)}[{window}]))"
    )


def _drift_targets(specs: Sequence[Spec]) -> list[Any]:
    """Windowed mean, baseline and ± sigma band from the rules' judge recordings, per group of agents
    sharing one drift configuration (the window is part of the mean's rule name)."""
    out = []
    key = lambda s: (s.drift.window, s.drift.sigma, s.drift.min_samples)  # noqa: E731
    legend = "{{judge}} v{{judge_version}} {{flow}}"
    for (window, sigma, min_samples), group in groupby(sorted(specs, key=key), key=key):
        matchers = (AGENT, f'agent=~"{p.alternation(s.agent for s in group)}"', FLOW)
        mean = sel(names.judge_score_mean(window), *matchers)
        count = sel(names.judge_score_count(window), *matchers)
        base = sel(names.JUDGE_SCORE_BASELINE_MEAN, *matchers)
        spread = sel(names.JUDGE_SCORE_BASELINE_STDDEV, *matchers)
        out += [
            target(f"{mean} and on ({BY_FLOW}) {count} >= {min_samples}", f"{legend} {window} mean"),
            target(base, f"{legend} baseline"),
            target(f"{base} + on ({BY_FLOW}) ({sigma:g} * {spread})", f"{legend} +{sigma:g}σ"),
            target(f"{base} - on ({BY_FLOW}) ({sigma:g} * {spread})", f"{legend} −{sigma:g}σ"),
        ]
    return out


def judge_slos(specs: Sequence[Spec]) -> list[str]:
    return sorted({slo for s in specs for slo, o in s.slos.items() if o.sli.kind == "judge"})


def build(specs: Sequence[Spec]) -> dict[str, Any]:
    """The judges & calibration dashboard for every agent in `specs`."""
    floor = min(
        (j.agreement_floor for s in specs for j in s.judges.values()), default=DEFAULT_AGREEMENT_FLOOR
    )
    grid = p.Grid()
    grid.row("Scores")
    grid.add(
        p.panel(
            "timeseries",
            "Mean score by judge and version (1h)",
            "Each judge version's mean score over the last hour; a new version's line starting "
            "where the old one stops shows whether the rubric change moved scores.",
            [target(_mean("1h", AGENT, FLOW), "{{judge}} v{{judge_version}}")],
            unit="percentunit",
            min_=0,
            max_=1,
        ),
        8,
        8,
    )
    buckets = sel(names.JUDGE_SCORE + "_bucket", AGENT, FLOW)
    grid.add(
        p.panel(
            "timeseries",
            "Score quantiles by judge and version",
            "The 10th, 50th and 90th percentile score of each judge version: the shape of its "
            "distribution over time (a falling p10 is a growing tail of bad verdicts).",
            [
                target(
                    f"histogram_quantile({q}, sum by ({BY_VERSION}, le) (rate({buckets}[$__rate_interval])))",
                    f"{{{{judge}}}} v{{{{judge_version}}}} {name}",
                )
                for name, q in SCORE_QUANTILES
            ],
            unit="percentunit",
            min_=0,
            max_=1,
        ),
        8,
        8,
    )
    grid.add(
        p.panel(
            "bargauge",
            "Score distribution in the time range",
            "How many verdicts fell in each score bucket (upper bound shown) during the time "
            "range, all selected judges together; a bimodal shape is healthy for pass/fail rubrics.",
            [
                target(
                    f"sum by (le) (increase({buckets}[$__range]))",
                    "≤ {{le}}",
                    instant=True,
                    buckets=True,
                )
            ],
            unit="short",
            thresholds=steps(("blue", None)),
            options={"displayMode": "basic", "orientation": "vertical"},
        ),
        8,
        8,
    )
    grid.add(
        p.panel(
            "timeseries",
            "Score drift vs baseline (σ bands)",
            "Each judge version's windowed mean against its rolling baseline ± the spec's drift "
            "sigma; the mean is "
            "drawn only once the window holds the minimum sample count. Leaving the band is what fires "
            "AgentSLOJudgeScoreDrift.",
            _drift_targets(specs),
            unit="percentunit",
        ),
        24,
        9,
    )
    grid.row("Calibration and cost")
    grid.add(
        p.panel(
            "bargauge",
            "Agreement with human labels",
            f"Share of reviewed verdicts where the judge agreed with the human label; red below the floor "
            f"({floor:g}) that fires AgentSLOJudgeAgreementLow.",
            [
                target(
                    f"max by ({BY_VERSION}) ({sel(names.JUDGE_AGREEMENT_RATIO, AGENT)})",
                    "{{judge}} v{{judge_version}}",
                    instant=True,
                )
            ],
            unit="percentunit",
            min_=0,
            max_=1,
            thresholds=steps(("red", None), ("green", floor)),
        ),
        8,
        8,
    )
    grid.add(
        p.panel(
            "timeseries",
            "Judge cost per hour",
            "USD spent by each judge version over the last hour (LLM judges; rule judges cost nothing).",
            [
                target(
                    f"sum by ({BY_VERSION}) (increase({sel(names.JUDGE_COST_USD_TOTAL, AGENT)}[1h]))",
                    "{{judge}} v{{judge_version}}",
                )
            ],
            unit="currencyUSD",
        ),
        8,
        8,
    )
    grid.add(
        p.panel(
            "timeseries",
            "Judge calls by outcome",
            "Judge calls per second by judge and outcome; errors and timeouts leave sessions unjudged.",
            [
                target(
                    "sum by (judge, outcome) "
                    f"(rate({sel(names.JUDGE_CALLS_TOTAL, AGENT)}[$__rate_interval]))",
                    "{{judge}} {{outcome}}",
                )
            ],
            unit="cps",
        ),
        8,
        8,
    )
    grid.row("Judge SLOs")
    grid.add(
        p.panel(
            "timeseries",
            "Judge SLOs: SLI (1h) vs objective",
            "The SLOs whose SLI is a judge's verdict: share of verdicts at or above the pass "
            "threshold over the last hour, beside the objective.",
            [
                target(
                    f"1 - max by (agent, flow, slo) ({sel(names.sli_error_ratio('1h'), AGENT, FLOW, SLO)})",
                    "{{slo}} {{flow}} SLI (1h)",
                ),
                target(
                    f"max by (agent, flow, slo) ({sel(names.OBJECTIVE_RATIO, AGENT, FLOW, SLO)})",
                    "{{slo}} {{flow}} objective",
                ),
            ],
            unit="percentunit",
        ),
        24,
        8,
    )
    slo_regex = p.alternation(judge_slos(specs)) or "^$"
    return p.render(
        "judges",
        TITLE,
        "Judge score distributions, drift against the baseline, agreement with human labels and judge cost. "
        "Generated by agent-slo from the SLO specs; do not edit by hand.",
        grid,
        p.scope_variables("Judge SLO", (f'slo=~"{slo_regex}"',)),
        p.links(p.runbooks(specs)),
        [p.release_annotation()],
    )
