"""What one spec needs from the rules, resolved once: windows, periods, objectives, labels.

The recording and alerting steps both read a `Plan`, so they agree on which windows exist and which
SLOs share a period without re-deriving it from the spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Final

from agentslo import burn, names
from agentslo.durations import parse_duration
from agentslo.spec import Spec, period_label

# Every group evaluates once a minute: fast enough for a 2-minute page, and the 5m event buckets need
# an interval that divides the bucket (exactly one evaluation per bucket records it).
EVAL_INTERVAL: Final = "1m"
# Granularity of the stored event buckets that feed the long windows and the period: the long
# windows lag by at most one bucket, and a 30d period reads 8,640 samples per series, not 30d of raw.
BUCKET: Final = "5m"
# Windows shorter than this are computed from raw counters, so the page tiers (1h/5m, 6h/30m short
# windows) react within one evaluation; longer windows are sums of buckets.
RAW_WINDOW_LIMIT_SECONDS: Final = 6 * 3600


@dataclass(frozen=True)
class Plan:
    """The resolved rule plan of one spec."""

    spec: Spec
    eval_interval: str = EVAL_INTERVAL

    @property
    def agent(self) -> str:
        return self.spec.agent

    @cached_property
    def event_slos(self) -> tuple[str, ...]:
        """SLOs counted in `agent_slo_events_total` (every SLI kind but `promql`)."""
        return tuple(s for s, slo in self.spec.slos.items() if slo.sli.kind != "promql")

    @cached_property
    def promql_slos(self) -> tuple[str, ...]:
        return tuple(s for s, slo in self.spec.slos.items() if slo.sli.kind == "promql")

    @cached_property
    def periods(self) -> dict[str, tuple[str, ...]]:
        """Period name (`30d`, `4w`) → the SLOs measured over it, in spec order."""
        out: dict[str, list[str]] = {}
        for slo in self.spec.slos:
            out.setdefault(period_label(self.spec.period_seconds(slo)), []).append(slo)
        return {p: tuple(s) for p, s in out.items()}

    @cached_property
    def tier_windows(self) -> set[str]:
        windows: set[str] = set()
        for slo in self.spec.slos:
            for flow in self.spec.flows_of(slo):
                for tier in burn.tiers(self.spec, slo, self.spec.objective_for(slo, flow)):
                    windows.update((tier.long, tier.short))
        return windows

    @cached_property
    def windows(self) -> tuple[str, ...]:
        """Every window recorded for all SLOs, shortest first (design, tiers, absence)."""
        wanted = {*names.SLI_WINDOWS, *self.tier_windows, self.spec.telemetry.absent_for}
        canonical = {period_label(parse_duration(w)) for w in wanted}
        return tuple(sorted(canonical, key=parse_duration))

    @cached_property
    def period_only(self) -> tuple[str, ...]:
        """Periods that are not also an all-SLO window (recorded only for the SLOs measured over them)."""
        return tuple(p for p in self.periods if p not in self.windows)

    def is_raw(self, window: str) -> bool:
        return parse_duration(window) < RAW_WINDOW_LIMIT_SECONDS

    @property
    def interval_seconds(self) -> int:
        return parse_duration(self.eval_interval)

    def objectives(self, slo: str) -> dict[float, tuple[str, ...]]:
        """Objective (percent) → the SLO's flows with it (`auto` objectives differ by risk tier)."""
        out: dict[float, list[str]] = {}
        for flow in self.spec.flows_of(slo):
            out.setdefault(self.spec.objective_for(slo, flow), []).append(flow)
        return {o: tuple(f) for o, f in out.items()}

    def routing_labels(self, slo: str) -> dict[str, str]:
        """Labels on the SLO's alerts and info series: the spec's labels, then the owner's routing labels."""
        return {**self.spec.labels, **self.spec.owner_labels(slo), names.L_OWNER: self.spec.slos[slo].owner}

    def agent_labels(self) -> dict[str, str]:
        """Labels on agent-wide alerts: the spec's labels and, when every SLO has one owner, its routing."""
        owners = {slo.owner for slo in self.spec.slos.values()}
        labels = dict(self.spec.labels)
        if len(owners) == 1:
            owner = owners.pop()
            labels |= {**self.spec.owners[owner], names.L_OWNER: owner}
        return labels
