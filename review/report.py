"""`agent-slo report`: the weekly SLO review, as one self-contained HTML page or as Markdown.

    agent-slo report examples/cx-support.slo.yaml --prometheus http://127.0.0.1:9090 -o review.html
    agent-slo report examples/cx-support.slo.yaml --prometheus http://127.0.0.1:9090 \\
        --days 7 --format markdown -o review.md

For every SLO and flow of the specs it shows the objective, the SLI over the window (`--days`, 7 by
default) and over the SLO's period, the error budget spent and left, a burn-down chart (the budget
left against the even-spend line), the burn rate of the fastest page tier's long window with every
tier's threshold, the alerts that fired (Prometheus' own `ALERTS`) with start and duration, release
markers (changes of `agent_slo_build_info`), top failure modes, judge agreement and drift, the
synthetic pass rate and the autonomy-state timeline; then a short list of decisions (see
`review.report_model.decisions`).

Where the numbers come from: `review.history` reads the raw event counters, so the review works on
any Prometheus that scraped the exporter, whether or not it ran the rules. Window and period counts
are `increase()` over exactly those intervals; the burn-down is the period's hourly counts summed
(the budget left after each hour, against the budget of all the period's events); the burn rate is
the error ratio over the tier's long window divided by the error budget. The autonomy timeline is
the recorded `agent_slo:autonomy_state:code` where the rules ran; otherwise it is derived here from
the same inputs the rule uses (the 1h burn rate and the budget left over the rolling period), and the
report says so. Failure modes, judge scores and synthetic runs are read with a few bounded queries
(one instant query each, or one point per day).

History shorter than `--days` is refused with a clear message (exit 2), as `suggest` and `backtest`
do, unless `--allow-short`: then the report covers what there is and says so at the top. A period
longer than the history (a new agent's 30d SLO) is always reported, with a note. An unreachable
Prometheus is one line on stderr and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final

from agentslo import burn, names
from agentslo.durations import parse_duration
from agentslo.prometheus import PrometheusClient
from agentslo.review.history import (
    DAY,
    WEEK,
    BuildChange,
    EventCounts,
    History,
    SLOKey,
    Span,
    StateInterval,
    iso,
)
from agentslo.review.options import add_history_arguments, guarded, history_from
from agentslo.review.report_model import (
    FlowReview,
    JudgeReview,
    Report,
    Series,
    SLOReview,
    Threshold,
    autonomy_codes,
    burn_down,
    decisions,
    state_timeline,
)
from agentslo.review.report_render import render_html, render_markdown
from agentslo.review.suggest import low_traffic_advice
from agentslo.spec import Spec, load_specs

EXIT_OK: Final = 0
DEFAULT_DAYS: Final = 7
HOUR: Final = 3600
TOP_FAILURE_MODES: Final = 5
# ALERTS are read every 5 minutes: alert starts and durations to 5 minutes, whatever the window
# (the series are sparse, so the finer step costs a few range queries, not memory).
ALERTS_STEP_S: Final = 300
FORMATS: Final = ("html", "markdown")


def _q(value: str) -> str:
    """A PromQL string literal's body."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _slo_keys(spec: Spec) -> list[SLOKey]:
    """Every SLO × flow the spec defines that the event counter carries (not `promql` SLIs)."""
    return [
        SLOKey(spec.agent, slo, flow)
        for flow in spec.flows
        for slo, s in spec.slos.items()
        if s.sli.kind != "promql" and flow in spec.flows_of(slo)
    ]


def _by_key(counts: Iterable[EventCounts]) -> dict[SLOKey, list[EventCounts]]:
    out: dict[SLOKey, list[EventCounts]] = {}
    for c in counts:
        out.setdefault(c.key, []).append(c)
    return out


def _empty(key: SLOKey, span: Span) -> EventCounts:
    return EventCounts(key, span.start, span.end, 0.0, 0.0)


def _page_window(spec: Spec, slo: str, objective: float) -> str:
    """The long window of the SLO's fastest page tier (as `suggest` picks it), else of its fastest
    tier, else the catalog's fastest: the window whose burn rate the chart draws (1h for 30d)."""
    tiers = burn.tiers(spec, slo, objective)
    pages = [t for t in tiers if t.name in burn.PAGE_TIERS] or tiers
    if pages:
        return min(pages, key=lambda t: parse_duration(t.long)).long
    catalog = burn.catalog(spec, spec.period_seconds(slo)).values()
    return min((long for long, _, _ in catalog), key=parse_duration)


def _derive_autonomy(
    spec: Spec,
    flow: str,
    reviews: Sequence[SLOReview],
    hourly: Mapping[SLOKey, list[EventCounts]],
    span: Span,
) -> tuple[StateInterval, ...]:
    """The autonomy timeline of a flow where the rules' recording is missing: each hour of the window,
    the worst state over the flow's governing SLOs."""
    codes: dict[float, int] = {}
    governing = set(spec.governing_slos())
    for r in reviews:
        if r.slo not in governing:
            continue
        period_s = spec.period_seconds(r.slo)
        warning, critical = spec.autonomy.warning_burn, spec.autonomy.critical_burn
        for t, code in autonomy_codes(hourly.get(r.key, []), period_s, r.budget, warning, critical):
            if t > span.start:
                codes[t] = max(codes.get(t, 0), code)
    return state_timeline(flow, codes, HOUR)


class _Extras:
    """Failure modes, judge scores and agreement, synthetic runs of one agent over a span: what
    explains the SLIs. One bounded query each (instant, or one point per day)."""

    def __init__(self, client: PrometheusClient, spec: Spec, span: Span) -> None:
        agent = f'{names.L_AGENT}="{_q(spec.agent)}"'
        window = f"{max(60, int(span.seconds))}s"
        fm = names.L_FAILURE_MODE
        self.failure_modes: dict[str, list[tuple[str, float]]] = {}
        promql = (
            f"topk by ({names.L_FLOW}) ({TOP_FAILURE_MODES}, sum by ({names.L_FLOW}, {fm}) "
            f"(increase({names.FAILURE_MODES_TOTAL}{{{agent}}}[{window}])) > 0)"
        )
        for s in client.query(promql, at=span.end):
            self.failure_modes.setdefault(s.labels.get(names.L_FLOW, ""), []).append(
                (s.labels.get(fm, ""), s.value)
            )
        for modes in self.failure_modes.values():
            modes.sort(key=lambda m: (-m[1], m[0]))

        self.synthetic: dict[str, EventCounts] = {}
        promql = (
            f"sum by ({names.L_FLOW}, {names.L_OUTCOME}) "
            f"(increase({names.SYNTHETIC_RUNS_TOTAL}{{{agent}}}[{window}]))"
        )
        runs: dict[str, dict[str, float]] = {}
        for s in client.query(promql, at=span.end):
            runs.setdefault(s.labels.get(names.L_FLOW, ""), {})[s.labels.get(names.L_OUTCOME, "")] = s.value
        for flow, outcomes in runs.items():
            key = SLOKey(spec.agent, "", flow)  # prober errors are the prober's, not the agent's: left out
            passed = outcomes.get(names.SYNTHETIC_PASSED, 0.0)
            failed = outcomes.get(names.SYNTHETIC_FAILED, 0.0)
            if passed + failed > 0:
                self.synthetic[flow] = EventCounts(key, span.start, span.end, passed, failed)

        judge = (names.L_FLOW, names.L_JUDGE, names.L_JUDGE_VERSION)
        by = ", ".join(judge)
        score = f"sum by ({by}) (increase({names.JUDGE_SCORE}_sum{{{agent}}}[1d]))"
        count = f"sum by ({by}) (increase({names.JUDGE_SCORE}_count{{{agent}}}[1d]))"
        first_day = span.start + DAY if span.seconds >= DAY else span.end
        self.judge_means: dict[tuple[str, str, str], Series] = {}
        for series in client.query_range(f"{score} / ({count} > 0)", first_day, span.end, DAY):
            k = tuple(series.labels.get(label, "") for label in judge)
            self.judge_means[(k[0], k[1], k[2])] = tuple((t, v) for t, v in series.points if math.isfinite(v))
        agreement = (
            f"max by ({names.L_JUDGE}, {names.L_JUDGE_VERSION}) "
            f"(last_over_time({names.JUDGE_AGREEMENT_RATIO}{{{agent}}}[{window}]))"
        )
        self.agreement = {
            (s.labels.get(names.L_JUDGE, ""), s.labels.get(names.L_JUDGE_VERSION, "")): s.value
            for s in client.query(agreement, at=span.end)
        }

    def judges(self, flow: str) -> tuple[JudgeReview, ...]:
        return tuple(
            JudgeReview(judge, version, means, self.agreement.get((judge, version)))
            for (f, judge, version), means in sorted(self.judge_means.items())
            if f == flow
        )


def _agent_flows(history: History, spec: Spec, span: Span, notes: list[str]) -> list[FlowReview]:
    """The review of one agent's flows over `span` (its SLOs' periods end where the span ends)."""
    agent = spec.agent
    keys = _slo_keys(spec)
    week = history.totals(span, agent)
    daily = _by_key(history.counts(span, agent, DAY))
    alerts = history.alerts(span, agent, step=ALERTS_STEP_S)
    recorded = history.autonomy(span, agent)
    extras = _Extras(history.client, spec, span)

    period_of = {k: spec.period_seconds(k.slo) for k in keys}
    objectives = {k: spec.objective_for(k.slo, k.flow) for k in keys}
    pages = {k: _page_window(spec, k.slo, objectives[k]) for k in keys}
    budgets = {(k.slo, k.flow): 1 - objectives[k] / 100 for k in keys}
    # Per distinct period: the period's span, totals, weeks and hours (rolling: a period before the window).
    period: dict[SLOKey, EventCounts] = {}
    weekly: dict[SLOKey, list[EventCounts]] = {}
    hourly: dict[SLOKey, list[EventCounts]] = {}
    period_start: dict[int, float] = {}
    markers: tuple[BuildChange, ...] = ()
    for seconds in sorted(set(period_of.values())):
        pspan = history.span(agent, seconds / DAY, end=span.end, allow_short=True)
        period_start[seconds] = pspan.start
        if pspan.short:
            notes.append(
                f"{agent}: the period SLI and budget ({seconds // DAY}d period) cover only "
                f"{pspan.seconds / DAY:.1f} days of history (since {iso(pspan.first_sample)})."
            )
        if seconds == max(period_of.values()):  # release markers over the longest burn-down
            first_step = pspan.start + pspan.step(history.max_points)
            markers = tuple(r for r in history.releases(pspan, agent) if r.at > first_step)
        mine = [k for k in keys if period_of[k] == seconds]
        totals = history.totals(pspan, agent)
        weeks = _by_key(history.counts(pspan, agent, WEEK)) if pspan.seconds >= WEEK else {}
        # hours from one period before the window opens: the rolling period at each hour of the window
        rolling = Span(span.start - seconds, span.end, span.seconds + seconds, None)
        hours = _by_key(history.counts(rolling, agent, HOUR))
        for k in mine:
            period[k] = totals.get(k, _empty(k, pspan))
            weekly[k] = weeks.get(k, [])
            hourly[k] = hours.get(k, [])
    burns: dict[SLOKey, list[tuple[float, float]]] = {}
    for window in sorted(set(pages.values())):
        for key, points in history.burn_rates(span, agent, window, budgets).items():
            if pages.get(key) == window:
                burns[key] = points

    flows: list[FlowReview] = []
    for flow in spec.flows:
        reviews = []
        for k in (k for k in keys if k.flow == flow):
            budget = 1 - objectives[k] / 100
            this_week = week.get(k, _empty(k, span))
            down, ideal = burn_down(hourly[k], period_start[period_of[k]], period_of[k], budget)
            thresholds = tuple(
                Threshold(t.name, t.severity, t.long, t.error_ratio / budget)
                for t in burn.tiers(spec, k.slo, objectives[k])
            )
            reviews.append(
                SLOReview(
                    k,
                    sli_kind=spec.slos[k.slo].sli.kind,
                    objective=objectives[k],
                    week=this_week,
                    period=period[k],
                    weekly=tuple(weekly[k]),
                    daily_sli=tuple((c.end, c.sli) for c in daily.get(k, []) if c.sli is not None),
                    burn_down=down,
                    ideal=ideal,
                    burn_rate=tuple(burns.get(k, [])),
                    burn_window=pages[k],
                    thresholds=thresholds,
                    alerts=tuple(a for a in alerts if a.key == k),
                    low_traffic=low_traffic_advice(spec, k.slo, objectives[k], this_week.per_day)
                    if this_week.total > 0
                    else "",
                )
            )
        autonomy = tuple(recorded.get(flow, ()))
        derived = not autonomy and bool(reviews)
        if derived:
            autonomy = _derive_autonomy(spec, flow, reviews, hourly, span)
        flows.append(
            FlowReview(
                agent,
                flow,
                events_per_day=max((r.week.per_day for r in reviews), default=0.0),
                slos=tuple(reviews),
                failure_modes=tuple(extras.failure_modes.get(flow, [])),
                judges=extras.judges(flow),
                synthetic=extras.synthetic.get(flow),
                autonomy=autonomy,
                autonomy_derived=derived and bool(autonomy),
                alerts=tuple(a for a in alerts if not a.key.slo and a.key.flow == flow),
                markers=markers,
            )
        )
    return flows


def build_report(
    history: History,
    specs: Sequence[Spec],
    days: float,
    *,
    end: float | None = None,
    allow_short: bool = False,
) -> Report:
    """Read history for every spec's agent and assemble the review (raises HistoryError, PrometheusError)."""
    notes: list[str] = []
    flows: list[FlowReview] = []
    releases = []
    spans = []
    for spec in specs:
        span = history.span(spec.agent, days, end=end, allow_short=allow_short)
        end = span.end  # every agent's window ends at the same minute
        spans.append(span)
        if span.short:
            notes.append(
                f"History is shorter than asked: {span.seconds / DAY:.1f} days of history for agent "
                f"{spec.agent!r} (since {iso(span.first_sample)}), {days:g} asked; the report covers what "
                "there is."
            )
        flows += _agent_flows(history, spec, span, notes)
        # the build already running when the window opens is no release in it
        first_step = span.start + span.step(history.max_points)
        releases += [r for r in history.releases(span, spec.agent) if r.at > first_step]
    flows_t = tuple(flows)
    return Report(
        start=min(s.start for s in spans),
        end=max(s.end for s in spans),
        days=days,
        flows=flows_t,
        releases=tuple(sorted(releases, key=lambda r: (r.at, r.agent))),
        notes=tuple(notes),
        decisions=decisions(flows_t),
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_history_arguments(parser, days=DEFAULT_DAYS)
    parser.add_argument("-o", "--output", default="-", metavar="FILE", help="write here (default: stdout)")
    parser.add_argument("--format", choices=FORMATS, default="html", help="html (default) or markdown")
    parser.add_argument(
        "--allow-short",
        action="store_true",
        help="history shorter than --days: report what there is (and say so) instead of exit 2",
    )


def run(args: argparse.Namespace) -> int:
    specs = load_specs(args.specs)
    return guarded("agent-slo report", lambda: _report(args, specs))


def _report(args: argparse.Namespace, specs: Sequence[Spec]) -> int:
    """Read, render, then write: a failed read leaves no file behind."""
    report = build_report(history_from(args), specs, args.days, end=args.end, allow_short=args.allow_short)
    text = render_html(report) if args.format == "html" else render_markdown(report)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        print(
            f"wrote {args.output} ({len(report.flows)} flows, {len(report.decisions)} decisions)",
            file=sys.stderr,
        )
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    return EXIT_OK
