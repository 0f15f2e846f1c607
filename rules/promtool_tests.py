"""promtool unit tests for the generated rules, written beside them by `agent-slo build`.

Every event SLO (on its first flow) is checked twice, in two test groups shared by all SLOs (their
series share no labels): after an hour of clean traffic a full outage pages (its first page tier)
within the time the tier's threshold allows, and a burn at half the sustainable rate for three hours
raises no burn-rate alert. A user's CI runs them with
`promtool test rules <agent>.rules.test.yaml`; `promql` SLIs have no generic input and are skipped.
"""

from __future__ import annotations

import math
from typing import Any, Final

from agentslo import burn, names
from agentslo.durations import parse_duration
from agentslo.rules._plan import BUCKET, EVAL_INTERVAL, Plan
from agentslo.rules._promql import num
from agentslo.rules.generate import dump
from agentslo.spec import Spec

CLEAN_MINUTES: Final = 60  # "after an hour of clean traffic"
EVENTS_PER_MINUTE: Final = 1000  # enough events that every window clears any minimum-events guard
QUIET_BURN: Final = 0.5  # "stays quiet in budget": half the sustainable burn
QUIET_MINUTES: Final = 180
MARGIN_MINUTES: Final = 2  # evaluations allowed after the theoretical firing time


def _counter(phases: list[tuple[int, float]]) -> str:
    """promtool series notation for a counter growing by `per_minute` for `minutes`, phase after phase."""
    out, value = [], 0.0
    for i, (minutes, per_minute) in enumerate(phases):
        start = value if i == 0 else value + per_minute
        count = minutes if i == 0 else minutes - 1
        out.append(f"{num(start)}+{num(per_minute)}x{count}")
        value += per_minute * minutes
    return " ".join(out)


def _series(spec: Spec, slo: str, flow: str, good: str, bad: str) -> list[dict[str, str]]:
    def labels(outcome: str) -> str:
        return (
            f'{names.EVENTS_TOTAL}{{agent="{spec.agent}", flow="{flow}", slo="{slo}", outcome="{outcome}"}}'
        )

    return [{"series": labels(names.GOOD), "values": good}, {"series": labels(names.BAD), "values": bad}]


def _minutes_to_fire(plan: Plan, tier: burn.Tier, for_: str | None) -> int:
    """Minutes of full outage (after clean traffic) until the tier fires, with the buckets' lag."""
    minutes = [
        math.floor(tier.error_ratio * parse_duration(window) / 60)
        + 1
        + (0 if plan.is_raw(window) else parse_duration(BUCKET) // 60)
        for window in (tier.long, tier.short)
    ]
    return max(minutes) + (parse_duration(for_) // 60 if for_ else 0)


def _count(expr: str, eval_minutes: int, value: int) -> dict[str, Any]:
    return {
        "expr": f"{expr} or vector(0)",
        "eval_time": f"{eval_minutes}m",
        "exp_samples": [{"labels": "{}", "value": value}],
    }


class _Group:
    """One promtool test group: every SLO's series side by side (they share no labels) and its checks."""

    def __init__(self) -> None:
        self.series: list[dict[str, str]] = []
        self.checks: list[dict[str, Any]] = []
        self.minutes = 0

    def data(self, spec: Spec) -> dict[str, Any]:
        up = f'{names.UP}{{job="{spec.telemetry.scrape_job}", instance="exporter"}}'
        series = [{"series": up, "values": f"1x{self.minutes}"}, *self.series]
        return {"interval": EVAL_INTERVAL, "input_series": series, "promql_expr_test": self.checks}


def _add_slo(plan: Plan, slo: str, outage: _Group, quiet: _Group) -> None:
    spec = plan.spec
    flow = spec.flows_of(slo)[0]
    objective = spec.objective_for(slo, flow)
    tiers = burn.tiers(spec, slo, objective)
    pages = [t for t in tiers if t.name in burn.PAGE_TIERS]
    alerting = spec.alerting_for(slo)
    rate = max(EVENTS_PER_MINUTE, alerting.min_events)
    match = f'alertname="{names.ALERT_BURN_RATE}", agent="{spec.agent}", slo="{slo}", flow="{flow}"'
    if pages:
        tier = pages[0]
        minutes = _minutes_to_fire(plan, tier, alerting.for_) + MARGIN_MINUTES
        good = _counter([(CLEAN_MINUTES, rate), (minutes, 0)])
        bad = _counter([(CLEAN_MINUTES, 0), (minutes, rate)])
        firing = f'count(ALERTS{{{match}, alertstate="firing", burn_tier="{tier.name}"}})'
        outage.series += _series(spec, slo, flow, good, bad)
        outage.checks += [_count(firing, CLEAN_MINUTES, 0), _count(firing, CLEAN_MINUTES + minutes, 1)]
        outage.minutes = max(outage.minutes, CLEAN_MINUTES + minutes)
    factor = min([QUIET_BURN, *(t.factor / 2 for t in tiers)])
    bad_rate = rate * (1 - objective / 100) * factor
    good = _counter([(CLEAN_MINUTES, rate), (QUIET_MINUTES, rate - bad_rate)])
    bad = _counter([(CLEAN_MINUTES, 0), (QUIET_MINUTES, bad_rate)])
    end = CLEAN_MINUTES + QUIET_MINUTES
    quiet.series += _series(spec, slo, flow, good, bad)
    quiet.checks.append(_count(f"count(count_over_time(ALERTS{{{match}}}[{end}m]))", end, 0))
    quiet.minutes = end


def generate_promtool_tests(specs: list[Spec], rule_files: list[str]) -> dict[str, str]:
    """Relative path → promtool test file (`<agent>.rules.test.yaml`) for each spec; `rule_files` are
    the rule files' paths relative to the test file."""
    out = {}
    for spec in sorted(specs, key=lambda s: s.agent):
        plan = Plan(spec)
        outage, quiet = _Group(), _Group()
        for slo in plan.event_slos:
            _add_slo(plan, slo, outage, quiet)
        tests = [g.data(spec) for g in (outage, quiet) if g.checks]
        data = {
            "rule_files": list(rule_files),
            "evaluation_interval": EVAL_INTERVAL,
            "tests": tests,
        }
        header = (
            f"# Generated by agent-slo from the {spec.agent} spec: each SLO pages on a full outage after an\n"
            "# hour of clean traffic and stays quiet at half its sustainable burn.\n"
            "# Run: promtool test rules FILE\n"
        )
        out[f"{spec.agent}.rules.test.yaml"] = header + dump(data)
    return out
