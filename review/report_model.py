"""The weekly SLO review as plain, immutable data: what `agent-slo report` knows before it renders.

`review.report` fills a `Report` from Prometheus history (through `review.history`) and renders it
as HTML (`review.svg` draws the charts) or Markdown. Keeping the numbers here, apart from both
renderers, is what makes the two formats say the same thing: every figure a reader sees is a
property of these objects, formatted once by the `fmt_*` helpers below.

    >>> from agentslo.review.history import WEEK, EventCounts, SLOKey
    >>> key = SLOKey("cx", "task-success", "refund")
    >>> review = SLOReview(key, sli_kind="task", objective=97.0,
    ...     week=EventCounts(key, 0, WEEK, good=985, bad=15),
    ...     period=EventCounts(key, 0, 4 * WEEK, good=3940, bad=60))
    >>> fmt_pct(review.week.sli), fmt_share(review.budget_spent), fmt_share(review.budget_left)
    ('98.500%', '50.0%', '50.0%')

The events, alert intervals, releases and autonomy intervals are `review.history`'s own objects:
the review adds what the spec says (objectives, thresholds) and what is derived for reading.

The decisions section applies the seeds' guidance to these numbers (`decisions()`): an objective met
with a wide margin in every week of the period may be tightened; a budget spent in full in several
weeks needs an investigation, or a looser objective with a written reason; a flow whose traffic is
too thin for its fastest page to mean anything (`suggest`'s criterion and advice, so both commands say
the same) needs a `min_events` guard, longer windows or synthetic traffic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from agentslo import names
from agentslo.review.history import AlertInterval, BuildChange, EventCounts, SLOKey, StateInterval

# A time series as (unix seconds, value) pairs, oldest first.
Series = tuple[tuple[float, float], ...]

# "Met with a wide margin": every week spent at most this share of its error budget.
WIDE_MARGIN_BUDGET_SHARE: Final = 0.5
# "Exhausted repeatedly": this many weeks (or more) each spent their whole error budget.
REPEATED_EXHAUSTION_WEEKS: Final = 2


@dataclass(frozen=True)
class Threshold:
    """One burn-rate alert tier drawn on the burn-rate chart, as a burn rate (×budget)."""

    tier: str  # page_fast, page_slow, ticket_fast, ticket_slow
    severity: str  # critical or warning
    long: str  # the tier's long window (the chart plots this window's burn)
    burn: float  # the threshold as a burn rate: the tier's error ratio / the error budget


@dataclass(frozen=True)
class JudgeReview:
    """One judge version on one flow: agreement with human labels and the drift of its daily mean."""

    judge: str
    version: str
    daily_mean: Series  # mean score per day
    agreement: float | None = None  # latest agreement ratio with human labels (0-1), if measured

    @property
    def drift(self) -> float | None:
        """Change of the daily mean score from the first to the last day with verdicts."""
        if len(self.daily_mean) < 2:
            return None
        return self.daily_mean[-1][1] - self.daily_mean[0][1]


@dataclass(frozen=True)
class SLOReview:
    """One SLO on one flow over the report window (`week`) and the SLO's period (`period`)."""

    key: SLOKey
    sli_kind: str
    objective: float  # percent
    week: EventCounts
    period: EventCounts
    weekly: tuple[EventCounts, ...] = ()  # each whole week of the period, oldest first
    daily_sli: Series = ()  # percent good per day of the report window (days without events left out)
    burn_down: Series = ()  # share of the period's error budget left, over the period so far
    ideal: Series = ()  # the even-spend line: the budget reaching 0 exactly at the period's end
    burn_rate: Series = ()  # the fastest page tier's long-window burn rate over the report window
    burn_window: str = "1h"
    thresholds: tuple[Threshold, ...] = ()
    alerts: tuple[AlertInterval, ...] = ()
    low_traffic: str = ""  # why the traffic is too thin for burn-rate alerting, and what to do (suggest's)

    @property
    def agent(self) -> str:
        return self.key.agent

    @property
    def slo(self) -> str:
        return self.key.slo

    @property
    def flow(self) -> str:
        return self.key.flow

    @property
    def budget(self) -> float:
        """The error budget as a ratio (1 − objective)."""
        return 1 - self.objective / 100

    @property
    def budget_spent(self) -> float | None:
        """Share of the period's error budget spent (1 = all of it; above 1 overspent)."""
        if self.period.total <= 0:
            return None
        return self.period.bad / (self.budget * self.period.total)

    @property
    def budget_left(self) -> float | None:
        spent = self.budget_spent
        return None if spent is None else 1 - spent

    @property
    def pages(self) -> int:
        return sum(1 for a in self.alerts if a.severity == "critical")

    @property
    def tickets(self) -> int:
        return sum(1 for a in self.alerts if a.severity == "warning")


@dataclass(frozen=True)
class FlowReview:
    """One agent's flow: its SLOs and what explains them (failures, judges, probes, autonomy)."""

    agent: str
    flow: str
    events_per_day: float  # tasks (or the busiest SLO's events) per day over the report window
    slos: tuple[SLOReview, ...]
    failure_modes: tuple[tuple[str, float], ...] = ()  # (failure mode, count in the window), top first
    judges: tuple[JudgeReview, ...] = ()
    synthetic: EventCounts | None = None  # prober runs passed / run (None: no probes on this flow)
    autonomy: tuple[StateInterval, ...] = ()
    autonomy_derived: bool = False  # computed here from the SLIs: the rules' recording was not found
    alerts: tuple[AlertInterval, ...] = ()  # the flow's alerts that belong to no one SLO (judge drift, …)
    markers: tuple[BuildChange, ...] = ()  # the agent's releases over the period (the charts' markers)


@dataclass(frozen=True)
class Decision:
    """One point for the review meeting: what the numbers suggest, and why."""

    kind: str  # tighten, investigate, low_traffic
    agent: str
    slo: str
    flow: str
    text: str


@dataclass(frozen=True)
class Report:
    """The whole review: the window, what history covered, each agent's flows and releases."""

    start: float
    end: float
    days: float  # asked for
    flows: tuple[FlowReview, ...]
    releases: tuple[BuildChange, ...] = ()  # build changes in the report window
    notes: tuple[str, ...] = ()  # what readers must know (history shorter than asked, …)
    decisions: tuple[Decision, ...] = field(default=())


def decisions(flows: tuple[FlowReview, ...]) -> tuple[Decision, ...]:
    """The seeds' guidance applied to each SLO and flow (see the module docstring)."""
    out: list[Decision] = []
    for flow in flows:
        for s in flow.slos:
            weeks = [w for w in s.weekly if w.total > 0]
            shares = [w.bad / (s.budget * w.total) for w in weeks]
            low_traffic = bool(s.low_traffic)
            # a thin flow's clean weeks prove little: it gets the low-traffic point, not "tighten"
            if len(weeks) >= 2 and max(shares) <= WIDE_MARGIN_BUDGET_SHARE and not low_traffic:
                best = min(w.sli or 0.0 for w in weeks)
                out.append(
                    Decision(
                        "tighten",
                        s.agent,
                        s.slo,
                        s.flow,
                        f"met with a wide margin in each of the period's {len(weeks)} weeks "
                        f"(worst week {fmt_pct(best)}, never more than {fmt_share(max(shares))} of the "
                        f"budget against {s.objective:g}%): "
                        "tighten the objective?",
                    )
                )
            exhausted = sum(1 for share in shares if share >= 1)
            if exhausted >= REPEATED_EXHAUSTION_WEEKS:
                out.append(
                    Decision(
                        "investigate",
                        s.agent,
                        s.slo,
                        s.flow,
                        f"budget spent in full in {exhausted} of {len(weeks)} weeks: investigate the cause, "
                        "or loosen the objective with a written reason",
                    )
                )
            if low_traffic:
                out.append(
                    Decision(
                        "low_traffic",
                        s.agent,
                        s.slo,
                        s.flow,
                        f"{fmt_count(s.week.per_day)} events/day, {s.low_traffic}",
                    )
                )
    return tuple(out)


# --- derived series ---


def burn_down(
    hourly: Sequence[EventCounts], start: float, period_s: float, budget: float
) -> tuple[Series, Series]:
    """The burn-down: share of the budget left after each hour since `start` (the budget of all the
    events counted since), and the even-spend line that reaches 0 at the period's end."""
    hours = [c for c in hourly if c.start >= start - 1]
    total = sum(c.total for c in hours)
    if not hours or total <= 0:
        return (), ()
    allowed = budget * total
    left, bad = [(start, 1.0)], 0.0
    for c in hours:
        bad += c.bad
        left.append((c.end, 1 - bad / allowed))
    end = hours[-1].end
    return tuple(left), ((start, 1.0), (end, 1 - (end - start) / period_s))


def autonomy_codes(
    hourly: Sequence[EventCounts], period_s: float, budget: float, warning_burn: float, critical_burn: float
) -> list[tuple[float, int]]:
    """The autonomy rule's state code (rules/recording.py `autonomy_rule`) of one SLO after each hour,
    from that hour's burn rate and the budget left over the rolling period ending with it. With
    x = budget left ≤ 0, y = burn ≥ warning, z = burn ≥ critical: exhausted (3) x and y, critical (2)
    z or x alone, warning (1) y, healthy (0)."""
    out: list[tuple[float, int]] = []
    good = bad = 0.0
    first = 0
    for c in hourly:
        good, bad = good + c.good, bad + c.bad
        while hourly[first].end <= c.end - period_s:  # slide the period's window past old hours
            good, bad = good - hourly[first].good, bad - hourly[first].bad
            first += 1
        x = good + bad > 0 and bad >= budget * (good + bad)
        rate = c.bad / (budget * c.total) if c.total > 0 else 0.0
        y, z = rate >= warning_burn, rate >= critical_burn
        out.append((c.end, (2 + y) if x else (y + z)))
    return out


def state_timeline(flow: str, codes: Mapping[float, int], step: float) -> tuple[StateInterval, ...]:
    """Runs of equal state codes, each code covering the `step` before its time; the last run is open."""
    out: list[StateInterval] = []
    for t in sorted(codes):
        state = names.AUTONOMY_STATES[codes[t]]
        if out and out[-1].state == state:
            continue
        if out:
            out[-1] = StateInterval(flow, out[-1].state, out[-1].start, t - step)
        out.append(StateInterval(flow, state, t - step, None))
    return tuple(out)


# --- formatting, shared by both renderers so they print the same numbers ---


def fmt_pct(value: float | None) -> str:
    """An SLI in percent, with enough digits to tell 99.9 from 99.95."""
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}%"


def fmt_share(value: float | None) -> str:
    """A share of a budget (1 = 100%), as a percentage with one decimal."""
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def fmt_count(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def fmt_duration(seconds: float) -> str:
    """A duration as `2h05m`, `45m`, `3d04h`."""
    minutes = round(seconds / 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{mins:02d}m"
    return f"{mins}m"
