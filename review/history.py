"""What Prometheus remembers about an agent's SLOs, read in bounded queries: the history layer of
`agent-slo report`, `suggest` and `backtest`.

Everything here reads Prometheus through the core's one client (`agentslo.prometheus`, so bearer
tokens, basic auth and TLS work as they do for the gate and the autonomy API), and everything comes
back as the small frozen dataclasses below, keyed by `SLOKey(agent, slo, flow)`:

    from agentslo.prometheus import PrometheusClient
    from agentslo.review.history import History

    history = History(PrometheusClient("http://127.0.0.1:9090"))
    span = history.span("cx-support", days=30)        # raises ShortHistory if Prometheus has less
    for c in history.counts(span, "cx-support", every_s=86_400):   # one EventCounts per day
        print(c.key.slo, c.key.flow, c.start, c.good, c.total, c.sli)
    history.error_ratios(span, "cx-support", "1h")     # SLOKey → [(t, bad/total over the last 1h)]
    history.alerts(span, "cx-support")                 # AlertInterval per firing interval (ALERTS)
    history.releases(span, "cx-support")               # BuildChange per agent_slo_build_info change
    history.autonomy(span, "cx-support")               # flow → [StateInterval] (if it was recorded)
    history.raw_counters("cx-support", start, end)     # raw agent_slo_events_total samples (backtest)

Where the numbers come from: good and bad events are the raw counters `agent_slo_events_total`
with `exclusion=""` (what the rules count, see `rules/recording.py`), so a spec that was never
deployed can be reviewed, suggested and backtested over the history its agent already has. Events of
`promql` SLIs are not in that counter and are not reviewed here.

Bounds: every range query's step is chosen from the range so no series returns more than
`max_points` points (Prometheus itself refuses more than 11,000), longer raw reads are cut in
chunks, and a read that would return more than `max_series` series is refused with `TooManySeries`
(before the data is pulled) instead of exhausting memory. `span()` finds the first sample of the
agent's counters and raises `ShortHistory` when Prometheus holds less than was asked (or returns the
shorter span with `allow_short=True`, for a report that says so). Both are `HistoryError`, a
`ValueError`: the commands turn them, and every `PrometheusError`, into a message and exit 2.
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

from agentslo import names
from agentslo.durations import parse_duration
from agentslo.prometheus import MAX_POINTS_PER_SERIES, PrometheusClient, Series

DAY: Final = 86_400
WEEK: Final = 7 * DAY
# Default bounds of one read: points per series per range query (Prometheus' own limit is 11,000) and
# series per query (five replicas × 100 SLO/flow pairs × two outcomes is 1,000 raw counter series).
DEFAULT_MAX_POINTS: Final = 2_000
DEFAULT_MAX_SERIES: Final = 5_000
# Steps a chart may use, smallest first: whole minutes, hours, days, so points line up with clocks.
NICE_STEPS_S: Final = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, DAY)
# Raw samples are read one chunk of this length at a time (an instant query of `counter[chunk]`):
# short enough that one answer, parsed, stays small (1,000 series x 6h at 15s is 1.4M samples).
RAW_CHUNK_S: Final = 6 * 3600
# How finely `span()` locates the first sample: a coarse scan, at most this many steps over the range.
FIRST_SAMPLE_SCAN_POINTS: Final = 1_000
# The SLO labels every SLO series carries; together they identify one SLO on one flow.
SLO_LABELS: Final = (names.L_AGENT, names.L_SLO, names.L_FLOW)


class HistoryError(ValueError):
    """History cannot answer what was asked; the message says what was asked and what is there."""


class ShortHistory(HistoryError):
    """Prometheus holds less history than asked for (`first_sample` is where it begins, or None)."""

    def __init__(self, message: str, *, first_sample: float | None) -> None:
        super().__init__(message)
        self.first_sample = first_sample


class TooManySeries(HistoryError):
    """A read would return more series than the bound allows."""


class SLOKey(NamedTuple):
    """One SLO on one flow of one agent: the identity every SLO series carries."""

    agent: str
    slo: str
    flow: str

    @classmethod
    def of(cls, labels: Mapping[str, str]) -> SLOKey:
        return cls(labels.get(names.L_AGENT, ""), labels.get(names.L_SLO, ""), labels.get(names.L_FLOW, ""))


# (unix seconds, value) points, oldest first.
Points = list[tuple[float, float]]


@dataclass(frozen=True)
class Span:
    """The time range a review reads: [start, end] in unix seconds, with the agent's first sample.

    `asked_s` is the length that was asked for; `start` is later than `end - asked_s` only when the
    span was allowed to be short (then `short` is True and `first_sample` says where history begins).
    """

    start: float
    end: float
    asked_s: float
    first_sample: float | None

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def short(self) -> bool:
        return self.seconds < self.asked_s

    def step(self, max_points: int = DEFAULT_MAX_POINTS, at_least: float = 60) -> int:
        """The smallest nice step (1m, 5m, ... 1d, then whole days) that keeps a series of this span
        under `max_points` points, and not under `at_least` seconds."""
        wanted = max(at_least, self.seconds / max(1, max_points - 1))
        for step in NICE_STEPS_S:
            if step >= wanted:
                return step
        return int(math.ceil(wanted / DAY) * DAY)


@dataclass(frozen=True)
class EventCounts:
    """Good and bad events of one SLO on one flow over [start, end] (excluded events left out).

    From the raw counters with `increase()` over exactly that interval, so the counts are Prometheus'
    (extrapolated to the interval's edges, as every rule's are); an interval before the history began
    counts nothing."""

    key: SLOKey
    start: float
    end: float
    good: float
    bad: float

    @property
    def total(self) -> float:
        return self.good + self.bad

    @property
    def sli(self) -> float | None:
        """Percent of good events, or None without events (an SLI of nothing is not 100%)."""
        return 100.0 * self.good / self.total if self.total > 0 else None

    @property
    def per_day(self) -> float:
        return self.total * DAY / (self.end - self.start) if self.end > self.start else 0.0


@dataclass(frozen=True)
class AlertInterval:
    """One firing interval of one alert, from Prometheus' `ALERTS{alertstate="firing"}` (report) or
    from a backtest (same shape, so the two compare directly).

    `start` is the first evaluation at which it was firing; `end` the first at which it no longer was
    (None: still firing at the end of the range). `labels` are all the alert's labels."""

    alertname: str
    labels: Mapping[str, str]
    start: float
    end: float | None

    @property
    def key(self) -> SLOKey:
        return SLOKey.of(self.labels)

    @property
    def severity(self) -> str | None:
        return self.labels.get(names.L_SEVERITY)

    @property
    def burn_tier(self) -> str | None:
        return self.labels.get(names.L_BURN_TIER)

    def duration(self, until: float) -> float:
        """Seconds it fired, counting an open interval up to `until`."""
        return (self.end if self.end is not None else until) - self.start


@dataclass(frozen=True)
class BuildChange:
    """A release marker: at `at`, `agent_slo_build_info` of the agent took a new label set."""

    agent: str
    at: float
    version: str
    prompt_version: str
    model: str


@dataclass(frozen=True)
class StateInterval:
    """An interval in one autonomy state (`healthy`, `warning`, `critical`, `exhausted`), from the
    recorded `agent_slo:autonomy_state:code`; `end` is None while it lasted to the end of the range."""

    flow: str
    state: str
    start: float
    end: float | None


@dataclass(frozen=True)
class RawSeries:
    """Every stored sample of one raw counter series (one replica's): times and values, oldest first."""

    labels: Mapping[str, str]
    t: npt.NDArray[np.float64]
    v: npt.NDArray[np.float64]


def _events(agent: str, extra: str = "") -> str:
    return f'{names.EVENTS_TOTAL}{{{names.L_AGENT}="{_esc(agent)}", {names.L_EXCLUSION}=""{extra}}}'


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def intervals(points: Points, step: float, end: float) -> list[tuple[float, float | None]]:
    """Runs of consecutive points (no gap over one step) as (first point, first time after the run);
    the last run is open (None) when it reaches `end`."""
    out: list[tuple[float, float | None]] = []
    run_start: float | None = None
    previous = 0.0
    for t, _ in points:
        if run_start is None:
            run_start = t
        elif t - previous > step * 1.5:
            out.append((run_start, previous + step))
            run_start = t
        previous = t
    if run_start is not None:
        out.append((run_start, None if previous + step > end else previous + step))
    return out


class History:
    """Bounded reads of one Prometheus for the SLO review (see the module docstring)."""

    def __init__(
        self,
        client: PrometheusClient,
        *,
        max_points: int = DEFAULT_MAX_POINTS,
        max_series: int = DEFAULT_MAX_SERIES,
    ) -> None:
        if not 2 <= max_points <= MAX_POINTS_PER_SERIES:
            raise ValueError(f"max_points must be between 2 and {MAX_POINTS_PER_SERIES}, not {max_points}")
        self.client = client
        self.max_points = max_points
        self.max_series = max_series

    # --- the range, and whether history covers it ---

    def first_sample(self, agent: str, start: float, end: float) -> float | None:
        """When the agent's event counters first had a sample in [start, end] (to within one scan
        step), or None when there is none at all."""
        span = Span(start, end, end - start, None)
        step = span.step(FIRST_SAMPLE_SCAN_POINTS)
        found = self._range(f"count({_events(agent)})", start, end, step)
        times = [t for s in found for t, _ in s.points]
        return min(times) if times else None

    def span(self, agent: str, days: float, *, end: float | None = None, allow_short: bool = False) -> Span:
        """The last `days` up to `end` (default: now, to the minute). Raises ShortHistory when the
        agent's counters begin later than the span's start (by more than one scan step), unless
        `allow_short`, which returns the span from the first sample instead."""
        if days <= 0:
            raise HistoryError(f"--days must be positive, not {days}")
        if end is None:
            end = math.floor(time.time() / 60) * 60
        asked = days * DAY
        start = end - asked
        scan_step = Span(start, end, asked, None).step(FIRST_SAMPLE_SCAN_POINTS)
        first = self.first_sample(agent, start, end)
        if first is None:
            raise ShortHistory(
                f"Prometheus at {self.client.url} has no {names.EVENTS_TOTAL} samples of agent {agent!r} "
                f"in the last {_days(asked)} (is the exporter scraped, and is the agent's name right?)",
                first_sample=None,
            )
        if first > start + scan_step:
            have = end - first
            if not allow_short:
                raise ShortHistory(
                    f"Prometheus at {self.client.url} holds {_days(have)} of history for agent {agent!r} "
                    f"(since {_iso(first)}), less than the {_days(asked)} asked: ask for --days "
                    f"{max(1, int(have // DAY))} or fewer, or wait for more history",
                    first_sample=first,
                )
            return Span(first, end, asked, first)
        return Span(start, end, asked, first)

    # --- events per interval ---

    def counts(self, span: Span, agent: str, every_s: int = DAY) -> list[EventCounts]:
        """Good/bad events per SLO and flow in consecutive `every_s` intervals ending at `span.end`
        (only whole intervals inside the span; a span shorter than one interval gives one interval
        of the whole span). One range query, step `every_s`, of the window's `increase()`."""
        n = int(span.seconds // every_s)
        window = every_s if n >= 1 else int(span.seconds)
        n = max(n, 1)
        first_end = span.end - (n - 1) * window
        by = ", ".join((*SLO_LABELS, names.L_OUTCOME))
        promql = f"sum by ({by}) (increase({_events(agent)}[{window}s]))"
        self._guard(f"count(count by ({by}) ({_events(agent)}))", span.end, "event series")
        series = self._range(promql, first_end, span.end, window)
        table: dict[tuple[SLOKey, float], dict[str, float]] = {}
        for s in series:
            key, outcome = SLOKey.of(s.labels), s.labels.get(names.L_OUTCOME, "")
            for t, v in s.points:
                if math.isfinite(v):
                    table.setdefault((key, t), {})[outcome] = v
        return [
            EventCounts(key, t - window, t, c.get(names.GOOD, 0.0), c.get(names.BAD, 0.0))
            for (key, t), c in sorted(table.items())
        ]

    def totals(self, span: Span, agent: str) -> dict[SLOKey, EventCounts]:
        """Good/bad events per SLO and flow over the whole span."""
        return {c.key: c for c in self.counts(span, agent, every_s=max(1, int(span.seconds)))}

    # --- series over time ---

    def error_ratios(
        self, span: Span, agent: str, window: str, step: int | None = None
    ) -> dict[SLOKey, Points]:
        """Bad / all events over the trailing `window`, per SLO and flow, every `step` (default: the
        span's bounded step), from the raw counters. Divide by the error budget for a burn rate."""
        step = step or span.step(self.max_points)
        parse_duration(window)  # a bad window is refused here, not by Prometheus
        by = ", ".join(SLO_LABELS)
        bad_only = f', {names.L_OUTCOME}="{names.BAD}"'
        bad = f"sum by ({by}) (increase({_events(agent, bad_only)}[{window}]))"
        total = f"sum by ({by}) (increase({_events(agent)}[{window}]))"
        promql = f"{bad} / on({by}) ({total} > 0)"
        return {SLOKey.of(s.labels): s.points for s in self._range(promql, span.start, span.end, step)}

    def burn_rates(
        self,
        span: Span,
        agent: str,
        window: str,
        budgets: Mapping[tuple[str, str], float],
        step: int | None = None,
    ) -> dict[SLOKey, Points]:
        """Burn rate over the trailing `window` (error ratio / error budget) per SLO and flow; `budgets`
        maps (slo, flow) to the error budget as a ratio (0.01 for a 99% objective)."""
        out = {}
        for key, points in self.error_ratios(span, agent, window, step).items():
            budget = budgets.get((key.slo, key.flow))
            if budget:
                out[key] = [(t, v / budget) for t, v in points]
        return out

    def alerts(self, span: Span, agent: str, step: int | None = None) -> list[AlertInterval]:
        """The firing intervals of the agent's alerts in the span, from Prometheus' `ALERTS` series
        (sampled every `step`, default the span's bounded step: intervals are exact to one step)."""
        step = step or span.step(self.max_points)
        selector = f'{names.PROMETHEUS_ALERTS}{{{names.L_AGENT}="{_esc(agent)}", alertstate="firing"}}'
        out = []
        for s in self._range(selector, span.start, span.end, step):
            labels = {k: v for k, v in s.labels.items() if k not in {"__name__", "alertstate"}}
            for start, end in intervals(s.points, step, span.end):
                out.append(AlertInterval(labels.get("alertname", ""), labels, start, end))
        return sorted(out, key=lambda a: (a.start, a.alertname, sorted(a.labels.items())))

    def releases(self, span: Span, agent: str, step: int | None = None) -> list[BuildChange]:
        """Every change of the agent's `agent_slo_build_info` label set in the span (the first build
        seen is included, at the time it was first seen)."""
        step = step or span.step(self.max_points)
        selector = f'{names.BUILD_INFO}{{{names.L_AGENT}="{_esc(agent)}"}}'
        seen: list[tuple[float, Mapping[str, str]]] = []
        for s in self._range(selector, span.start, span.end, step):
            seen += [(t, s.labels) for t, _ in s.points]
        out: list[BuildChange] = []
        current: tuple[str, str, str] | None = None
        for t, labels in sorted(seen, key=lambda x: x[0]):
            build = (
                labels.get(names.L_VERSION, ""),
                labels.get(names.L_PROMPT_VERSION, ""),
                labels.get(names.L_MODEL, ""),
            )
            if build != current and not (out and out[-1].at == t):
                out.append(BuildChange(agent, t, *build))
            current = build
        return out

    def autonomy(self, span: Span, agent: str, step: int | None = None) -> dict[str, list[StateInterval]]:
        """flow → the intervals spent in each autonomy state, from the recorded
        `agent_slo:autonomy_state:code` (empty when the rules never ran on this Prometheus)."""
        step = step or span.step(self.max_points)
        selector = f'{names.AUTONOMY_STATE}{{{names.L_AGENT}="{_esc(agent)}"}}'
        out: dict[str, list[StateInterval]] = {}
        for s in self._range(selector, span.start, span.end, step):
            flow = s.labels.get(names.L_FLOW, "")
            runs: list[StateInterval] = []
            for t, v in s.points:
                code = int(v) if math.isfinite(v) and 0 <= v < len(names.AUTONOMY_STATES) else 0
                state = names.AUTONOMY_STATES[code]
                if runs and runs[-1].state == state and runs[-1].end is None:
                    continue
                if runs:
                    runs[-1] = StateInterval(flow, runs[-1].state, runs[-1].start, t)
                runs.append(StateInterval(flow, state, t, None))
            out[flow] = runs
        return out

    # --- raw samples (backtest) ---

    def raw_counters(self, agent: str, start: float, end: float) -> list[RawSeries]:
        """Every stored sample of the agent's counted event series (`exclusion=""`) in [start, end],
        one RawSeries per stored series (per replica), read in `RAW_CHUNK_S` chunks of range selectors
        and kept as arrays (30 days of 1,000 series is tens of millions of samples)."""
        self._guard(f"count({_events(agent)})", end, "raw event series")
        chunks: dict[tuple[tuple[str, str], ...], list[npt.NDArray[np.float64]]] = {}
        t = end
        while t > start:
            length = min(RAW_CHUNK_S, t - start)
            # `[length]` includes both edges on Prometheus 2.x: the next chunk stops 1 ms short.
            selector = f"{_events(agent)}[{int(length * 1000)}ms]"
            for s in self.client.query_matrix(selector, at=t):
                points = np.asarray(s.points, dtype=np.float64).reshape(-1, 2)
                chunks.setdefault(tuple(sorted(s.labels.items())), []).append(points)
            t -= length + 0.001
        out = []
        while chunks:  # each series' chunks are let go as soon as they are joined
            key, parts = chunks.popitem()
            points = np.concatenate(parts[::-1])  # chunks were read newest first
            del parts
            order = np.argsort(points[:, 0], kind="stable")
            out.append(RawSeries(dict(key), points[order, 0], points[order, 1]))
        return out

    # --- plumbing ---

    def _guard(self, count_promql: str, at: float, what: str) -> None:
        """Refuse a read of more than `max_series` series, before pulling it."""
        found = self.client.query(count_promql, at=at)
        n = max((s.value for s in found), default=0.0)
        if n > self.max_series:
            raise TooManySeries(
                f"Prometheus at {self.client.url} has {n:.0f} {what} for this read, more than the "
                f"limit of {self.max_series}: narrow the read or raise the limit (--max-series)"
            )

    def _range(self, promql: str, start: float, end: float, step: float) -> list[Series]:
        """A range query cut into pieces of at most `max_points` steps, series joined by labels."""
        merged: dict[tuple[tuple[str, str], ...], Points] = {}
        piece = step * (self.max_points - 1)
        t = start
        while t <= end:
            stop = min(end, t + piece)
            result = self.client.query_range(promql, t, stop, step)
            if len(result) > self.max_series:
                raise TooManySeries(
                    f"{promql!r} returned {len(result)} series from Prometheus at {self.client.url}, more "
                    f"than the limit of {self.max_series}"
                )
            for s in result:
                merged.setdefault(tuple(sorted(s.labels.items())), []).extend(s.points)
            t = stop + step
        return [Series(dict(k), v) for k, v in merged.items()]


def _days(seconds: float) -> str:
    days = seconds / DAY
    return f"{days:.0f} days" if abs(days - round(days)) < 0.05 else f"{days:.1f} days"


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso(t: float | None) -> str | None:
    """RFC 3339 (UTC, seconds) of a unix time, or None."""
    return None if t is None else _iso(t)


def keys(items: Iterable[EventCounts]) -> list[SLOKey]:
    """The distinct SLO keys of some counts, sorted."""
    return sorted({c.key for c in items})
