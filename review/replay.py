"""The SLO alerts a spec generates, evaluated over stored raw counters exactly as Prometheus would.

`agent-slo backtest` asks: had these rules been running, which alerts would have fired, and when? It
must not read recordings (a candidate spec never had any), and it must answer what a real Prometheus
running the generated rules over that history fires. This module does it by replaying the rule
chain of `rules/recording.py` and `rules/alerts.py`, evaluation by evaluation, over the raw
`agent_slo_events_total` samples (read once, through `review.history`), with Prometheus' own
semantics written out in numpy:

- `increase()` is Prometheus' `extrapolatedRate`: the counter's rise in the range (resets added
  back), extrapolated to the range's edges when the first/last sample lies within 1.1 average
  sample intervals of them, else by half an interval, and never below the counter's zero point.
  A range `[w]` holds the samples in `[t - w, t]` (Prometheus 2.x; 3.x drops the left edge: pass
  `left_open=True`). Fewer than two samples: no result;
- rules evaluate every `interval` (the rules' `1m`) at multiples of it, in group order, so a
  recording is seen by later rules at the same instant and is absent (stale) when it was not produced
  (a live Prometheus evaluates each group at its own offset within the interval, so its alert times
  can differ from these by less than one interval);
- the 5m event bucket is kept at the one evaluation per 5-minute slot (`time() % 300 < interval`),
  and long windows and the period are `sum_over_time` of buckets in `(t - w, t]`, or the current 5m
  increase while no bucket exists;
- an alert is pending from the first evaluation its expression returns a series, firing once it has
  been pending for its `for:` (at once without one), and resolved at the first evaluation that no
  longer returns it.

Which alerts: the SLO alerts, `AgentSLOBurnRate` (every tier, with the `min_events` guard),
`AgentSLOBudgetLow`, `AgentSLOBudgetExhausted` and `AgentSLORareEvent`. The telemetry and signal
alerts (silent flows, scrape health, synthetic, judges, spec mismatch) watch the pipeline rather
than the objectives and are not replayed. Labels are taken from the generated alert rules
themselves, so a backtest's alerts carry the same labels a live one would.

Why not another route: `promtool tsdb create-blocks-from rules` evaluates recording rules only, and
one dependency level per run (each level needs a Prometheus restarted on the previous level's
blocks; it cannot evaluate alerts or `for:` at all); vmalert's replay needs its results written back
into a store that accepts 30-day-old samples; range queries with the rules inlined cannot express
the once-per-slot buckets. Replaying from the raw samples reads each sample once and costs one
vectorised pass per window. That it equals Prometheus is a test
(`tests/test_review_backtest.py`): Prometheus' own rule engine (`promtool test rules`) evaluates the
generated rules over the same history and fires the same alerts at the same evaluations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from agentslo import burn, names
from agentslo.durations import parse_duration
from agentslo.review.history import AlertInterval, RawSeries
from agentslo.rules import alerts
from agentslo.rules._plan import BUCKET, Plan
from agentslo.rules._promql import ROUND_DIGITS, percent
from agentslo.spec import Spec, period_label

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
# A recorded series over the evaluation grid: its value at each evaluation, and whether it existed.
Recorded = tuple[Floats, Bools]
BUCKET_S: Final = parse_duration(BUCKET)
EXTRAPOLATION_ALLOWANCE: Final = 1.1  # Prometheus: a sample within 1.1 mean intervals of the edge
OPEN_RANGE_S: Final = 0.001  # the rules' long windows stop 1 ms short (rules._promql.open_range)


@dataclass(frozen=True)
class _Counter:
    """One stored counter series: times, values, and values with counter resets added back."""

    t: Floats
    v: Floats
    adjusted: Floats


def _counter(t: Floats, v: Floats) -> _Counter:
    resets = np.flatnonzero(v[1:] < v[:-1]) + 1
    if len(resets) == 0:
        return _Counter(t, v, v)  # the usual case: no copy
    # A drop is a reset: Prometheus adds the value before it to the increase.
    drops = np.zeros_like(v)
    drops[resets] = v[resets - 1]
    return _Counter(t, v, v + np.cumsum(drops))


def increase(c: _Counter, at: Floats, window: float, *, left_open: bool = False) -> Recorded:
    """`increase(counter[window])` evaluated at each time of `at` (Prometheus' extrapolatedRate)."""
    lo = np.searchsorted(c.t, at - window, side="right" if left_open else "left")
    hi = np.searchsorted(c.t, at, side="right") - 1
    ok = (hi - lo) >= 1
    lo_c, hi_c = np.where(ok, lo, 0), np.where(ok, hi, 0)
    first_t, last_t = c.t[lo_c], c.t[hi_c]
    result = c.adjusted[hi_c] - c.adjusted[lo_c]
    sampled = last_t - first_t
    with np.errstate(divide="ignore", invalid="ignore"):
        average = sampled / np.maximum(hi_c - lo_c, 1)
        to_start = first_t - (at - window)
        to_end = at - last_t
        first_v = c.v[lo_c]
        to_zero = np.where(
            (result > 0) & (first_v >= 0), sampled * (first_v / np.where(result > 0, result, 1)), np.inf
        )
        to_start = np.minimum(to_start, to_zero)
        threshold = average * EXTRAPOLATION_ALLOWANCE
        span = sampled + np.where(to_start < threshold, to_start, average / 2)
        span = span + np.where(to_end < threshold, to_end, average / 2)
        # Prometheus' order of operations, so results agree to the last bit.
        value = np.where(ok & (sampled > 0), result * (span / np.where(sampled > 0, sampled, 1)), 0.0)
    return value, ok & (sampled > 0)


def _sum(parts: Sequence[Recorded], n: int) -> Recorded:
    """`sum` of recorded series: present where any part is."""
    value = np.zeros(n)
    present = np.zeros(n, dtype=bool)
    for v, p in parts:
        value += np.where(p, v, 0.0)
        present |= p
    return value, present


def _bucket_sums(
    buckets: Mapping[tuple[str, str, str], Recorded],
    bucket_at: Floats,
    at: Floats,
    window: float,
) -> dict[tuple[str, str, str], Recorded]:
    """`sum_over_time(buckets[window - 1ms])` at each of `at`: the buckets recorded in (t - w, t]."""
    lo = np.searchsorted(bucket_at, at - window + OPEN_RANGE_S, side="left")
    hi = np.searchsorted(bucket_at, at, side="right")
    out = {}
    for key, (value, present) in buckets.items():
        sums = np.concatenate(([0.0], np.cumsum(np.where(present, value, 0.0))))
        counts = np.concatenate(([0], np.cumsum(present)))
        out[key] = (sums[hi] - sums[lo], (counts[hi] - counts[lo]) > 0)
    return out


Key = tuple[str, str, str]  # (slo, flow, outcome)


@dataclass(frozen=True)
class Replay:
    """The evaluation grid and the raw counters, per (slo, flow, outcome); `events(slo)` records
    one SLO's event counts on the grid (one SLO at a time keeps memory to one SLO's windows)."""

    spec: Spec
    plan: Plan
    at: Floats  # evaluation times in the backtest range
    bucket_at: Floats  # the evaluations that keep a 5m bucket, from as far back as the longest window
    counters: Mapping[Key, Sequence[_Counter]]
    left_open: bool

    def events(self, slo: str) -> dict[str, dict[Key, Recorded]]:
        """window → (slo, flow, outcome) → `agent_slo:events:increase<window>` of one SLO."""
        plan, at = self.plan, self.at
        counters = {k: cs for k, cs in self.counters.items() if k[0] == slo}
        raw_windows = [w for w in plan.windows if plan.is_raw(w)]
        if BUCKET not in raw_windows:
            raw_windows.insert(0, BUCKET)
        out: dict[str, dict[Key, Recorded]] = {}
        for w in raw_windows:
            seconds = parse_duration(w)
            out[w] = {
                key: _sum([increase(c, at, seconds, left_open=self.left_open) for c in cs], len(at))
                for key, cs in counters.items()
            }
        buckets = {
            key: _sum(
                [increase(c, self.bucket_at, BUCKET_S, left_open=self.left_open) for c in cs],
                len(self.bucket_at),
            )
            for key, cs in counters.items()
        }
        five = out[BUCKET]
        for w in _long_windows(plan):
            summed = _bucket_sums(buckets, self.bucket_at, at, parse_duration(w))
            # `or` the current 5m increase: only for series without any bucket in the window.
            out[w] = {key: (np.where(p, v, five[key][0]), p | five[key][1]) for key, (v, p) in summed.items()}
        return out


def _long_windows(plan: Plan) -> list[str]:
    """Windows (and periods) recorded as sums of 5m buckets."""
    return [w for w in plan.windows if not plan.is_raw(w)] + list(plan.period_only)


def replay(
    spec: Spec, raw: Sequence[RawSeries], start: float, end: float, *, left_open: bool = False
) -> Replay:
    """The replay of `spec`'s rules over [start, end] at the rules' evaluation interval, from the
    agent's raw counter series (all replicas; samples before `start` feed the long windows)."""
    plan = Plan(spec)
    iv = plan.interval_seconds
    at = np.arange(math.ceil(start / iv) * iv, end + 1e-9, iv, dtype=np.float64)
    counters: dict[Key, list[_Counter]] = {}
    for s in raw:
        if s.labels.get(names.L_EXCLUSION, "") != "" or len(s.t) == 0:
            continue
        key = (
            s.labels.get(names.L_SLO, ""),
            s.labels.get(names.L_FLOW, ""),
            s.labels.get(names.L_OUTCOME, ""),
        )
        counters.setdefault(key, []).append(_counter(s.t, s.v))
    longest = max((parse_duration(w) for w in _long_windows(plan)), default=0)
    # Buckets: the 5m increase at the one evaluation of each 5-minute slot, from `longest` before start.
    first_raw = min((c.t[0] for cs in counters.values() for c in cs), default=start)
    bucket_start = max(start - longest, first_raw)
    bucket_at = np.arange(
        math.ceil(bucket_start / BUCKET_S) * BUCKET_S, end + 1e-9, BUCKET_S, dtype=np.float64
    )
    return Replay(spec, plan, at, bucket_at, counters, left_open)


def _ratio(events: Mapping[Key, Recorded], n: int) -> dict[str, tuple[Recorded, Recorded]]:
    """flow → (error ratio, all events) of one SLO over a window, as the ratio rule records them:
    bad / all when there were events, 0 when the window saw none, absent without series."""
    flows: dict[str, dict[str, Recorded]] = {}
    for (_, flow, outcome), rec in events.items():
        flows.setdefault(flow, {})[outcome] = rec
    out = {}
    for flow, outcomes in flows.items():
        total = _sum(list(outcomes.values()), n)
        bad = outcomes.get(names.BAD, (np.zeros(n), np.zeros(n, dtype=bool)))
        divide = bad[1] & total[1] & (total[0] > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(divide, bad[0] / np.where(divide, total[0], 1), 0.0)
        out[flow] = ((value, total[1]), total)
    return out


def _fired(
    rep: Replay, condition: Bools, for_s: float, alertname: str, labels: Mapping[str, str]
) -> list[AlertInterval]:
    """Firing intervals of one alert series from its per-evaluation condition (pending, `for:`)."""
    out = []
    iv = rep.plan.interval_seconds
    hold = math.ceil(for_s / iv - 1e-9) if for_s > 0 else 0
    padded = np.concatenate(([False], condition, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    for run_start, run_end in zip(edges[::2], edges[1::2], strict=True):  # run: [run_start, run_end)
        fires = run_start + hold
        if fires < run_end:
            end = float(rep.at[run_end]) if run_end < len(rep.at) else None
            out.append(
                AlertInterval(alertname, {"alertname": alertname, **labels}, float(rep.at[fires]), end)
            )
    return out


def _rule(rules: Sequence[dict[str, Any]], **wanted: str) -> dict[str, Any]:
    for rule in rules:
        if all(rule["labels"].get(k) == v for k, v in wanted.items()):
            return rule
    raise LookupError(f"no generated alert rule with labels {wanted}")


def alerts_of(rep: Replay) -> list[AlertInterval]:
    """Every SLO alert the spec's rules fire over the replayed range, oldest first."""
    spec, plan = rep.spec, rep.plan
    n = len(rep.at)
    out: list[AlertInterval] = []
    burn_rules = alerts.burn_alerts(plan)
    budget_rules = alerts.budget_alerts(plan)
    rare_rules = alerts.rare_event_alerts(plan)
    for slo in spec.slos:
        if spec.slos[slo].sli.kind == "promql":
            continue  # not in agent_slo_events_total
        alerting = spec.alerting_for(slo)
        period = period_label(spec.period_seconds(slo))
        windows = {period} | {
            w for o in plan.objectives(slo) for t in burn.tiers(spec, slo, o) for w in (t.long, t.short)
        }
        recorded = rep.events(slo)
        ratio = {w: _ratio(recorded[w], n) for w in windows}
        spec_flows = spec.flows_of(slo)
        for objective, flows in plan.objectives(slo).items():
            # The rule selects these flows by regex only when the objective does not cover them all.
            selected = set(flows) if len(flows) < len(spec_flows) else None
            for tier in burn.tiers(spec, slo, objective):
                rule = _rule(
                    burn_rules, slo=slo, burn_tier=tier.name, **{names.L_OBJECTIVE: percent(objective)}
                )
                for_s = parse_duration(rule["for"]) if rule.get("for") else 0
                long, short = ratio[tier.long], ratio[tier.short]
                for flow in sorted(long):
                    if (selected is not None and flow not in selected) or flow not in short:
                        continue
                    (lr, lp), (events, ep) = long[flow]
                    (sr, sp), _ = short[flow]
                    threshold = round(tier.error_ratio, ROUND_DIGITS)  # as the rule writes it
                    cond = lp & sp & ep & (lr > threshold) & (sr > threshold)
                    cond &= events >= alerting.min_events
                    labels = {names.L_AGENT: spec.agent, names.L_FLOW: flow, **rule["labels"]}
                    out += _fired(rep, cond, for_s, names.ALERT_BURN_RATE, labels)
        for flow, ((pr, pp), (events, ep)) in sorted(ratio[period].items()):
            if flow not in spec_flows:
                continue  # no error budget series: the rules know only the spec's flows
            budget = round(1 - spec.objective_for(slo, flow) / 100, ROUND_DIGITS)  # the rule's literal
            remaining = 1 - pr / budget
            guard = (
                ep & (events >= alerting.min_events) if alerting.min_events > 1 else np.ones(n, dtype=bool)
            )
            for alertname, cond in (
                (names.ALERT_BUDGET_LOW, pp & (remaining < alerts.BUDGET_LOW_REMAINING) & (remaining > 0)),
                (names.ALERT_BUDGET_EXHAUSTED, pp & (remaining <= 0)),
            ):
                rule = next(
                    r for r in budget_rules if r["alert"] == alertname and r["labels"][names.L_SLO] == slo
                )
                labels = {names.L_AGENT: spec.agent, names.L_FLOW: flow, **rule["labels"]}
                out += _fired(rep, cond & guard, 0, alertname, labels)
        if alerting.any_bad is not None:
            rule = next(r for r in rare_rules if r["labels"][names.L_SLO] == slo)
            for (_, flow, outcome), (value, present) in sorted(recorded[BUCKET].items()):
                if outcome == names.BAD:
                    labels = {names.L_AGENT: spec.agent, names.L_FLOW: flow, **rule["labels"]}
                    out += _fired(rep, present & (value > 0), 0, names.ALERT_RARE_EVENT, labels)
    return sorted(out, key=lambda a: (a.start, a.alertname, sorted(a.labels.items())))
