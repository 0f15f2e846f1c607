"""Burn-rate arithmetic shared by `validate`, the rules and the dashboards.

A burn rate of 1 spends exactly the error budget over the period. A tier alerts when both its
long and short windows burn faster than `factor`; the factor is the share of the budget the tier
tolerates spending in its long window, times period / long window (Google SRE workbook, ch. 5:
2% of a 30d budget in 1h → 0.02 × 720 = 14.4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from agentslo.durations import format_duration, parse_duration
from agentslo.spec import Spec

DAY: Final = 86400
# The design's catalogs: tier → (long window, short window, factor) for 30d, 28d and 7d periods.
CATALOGS: Final[dict[int, dict[str, tuple[str, str, float]]]] = {
    30 * DAY: {
        "page_fast": ("1h", "5m", 14.4),  # 2% of the budget in 1h
        "page_slow": ("6h", "30m", 6.0),  # 5% in 6h
        "ticket_fast": ("1d", "2h", 3.0),  # 10% in 1d
        "ticket_slow": ("3d", "6h", 1.0),  # 10% in 3d
    },
    28 * DAY: {
        "page_fast": ("1h", "5m", 13.44),
        "page_slow": ("6h", "30m", 5.6),
        "ticket_fast": ("1d", "2h", 2.8),
        "ticket_slow": ("3d", "6h", 0.933),
    },
    7 * DAY: {
        "page_fast": ("1h", "5m", 13.44),
        "page_slow": ("6h", "30m", 3.5),
        "ticket_fast": ("1d", "2h", 1.4),
        "ticket_slow": ("3d", "6h", 0.98),
    },
}
SEVERITY: Final = {
    "page_fast": "critical",
    "page_slow": "critical",
    "ticket_fast": "warning",
    "ticket_slow": "warning",
}
PAGE_TIERS: Final = ("page_fast", "page_slow")
TICKET_TIERS: Final = ("ticket_fast", "ticket_slow")


@dataclass(frozen=True)
class Tier:
    """One burn-rate alert tier for one SLO and flow, with its error-ratio threshold resolved."""

    name: str
    long: str
    short: str
    factor: float
    severity: str
    error_ratio: float  # the threshold both windows' error ratios must exceed
    capped: bool  # factor × (1 − objective) would reach 1; capped at the SLO's max_error_ratio

    @property
    def time_to_fire_full_outage(self) -> float:
        """Seconds of a 100% error rate after clean traffic until the long window crosses the threshold."""
        return self.error_ratio * parse_duration(self.long)


def catalog(spec: Spec, period_seconds: int) -> dict[str, tuple[str, str, float]]:
    """The tier windows and factors for a period: the spec's own, the design's, or 30d scaled."""
    if spec.burn_rates is not None:
        return {name: (t.long, t.short, t.factor) for name, t in spec.burn_rates.items()}
    if period_seconds in CATALOGS:
        return CATALOGS[period_seconds]
    scale = period_seconds / (30 * DAY)
    out = {}
    for name, (long, short, factor) in CATALOGS[30 * DAY].items():
        out[name] = (
            format_duration(max(60, round(parse_duration(long) * scale / 60) * 60)),
            format_duration(max(60, round(parse_duration(short) * scale / 60) * 60)),
            factor,
        )
    return out


def tiers(spec: Spec, slo: str, objective_percent: float) -> list[Tier]:
    """The enabled tiers of an SLO at one objective, thresholds capped where the factor is too high."""
    alerting = spec.alerting_for(slo)
    budget = 1 - objective_percent / 100
    out = []
    for name, (long, short, factor) in catalog(spec, spec.period_seconds(slo)).items():
        if (name in PAGE_TIERS and not alerting.page) or (name in TICKET_TIERS and not alerting.ticket):
            continue
        ratio = factor * budget
        capped = ratio >= alerting.max_error_ratio
        out.append(
            Tier(name, long, short, factor, SEVERITY[name], min(ratio, alerting.max_error_ratio), capped)
        )
    return out


def allowed_bad(objective_percent: float, events: float) -> float:
    return events * (1 - objective_percent / 100)
