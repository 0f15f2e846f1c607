"""Small, exact builders for PromQL text: numbers, selectors, label sets and durations.

Everything the generator writes goes through these helpers, so numbers never show float noise
(`0.0144`, not `0.014400000000000001`) and label values are always quoted and escaped the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from agentslo import names

# Series produced for one SLO carry exactly these labels; every join between SLO series names them.
SLO_KEY: Final = (names.L_AGENT, names.L_SLO, names.L_FLOW)
ON_SLO: Final = f"on({', '.join(SLO_KEY)})"
BY_SLO: Final = f"by ({', '.join(SLO_KEY)})"
# Digits kept in generated numbers: enough for any objective or threshold, few enough to drop float noise.
ROUND_DIGITS: Final = 10


def num(value: float) -> str:
    """A number as PromQL/YAML text without float noise: `0.0144`, `2592000`, `0.5`."""
    rounded = round(float(value), ROUND_DIGITS)
    if rounded == int(rounded) and abs(rounded) < 1e15:
        return str(int(rounded))
    return repr(rounded)


def percent(value: float) -> str:
    """An objective in percent as people write it: `99.9`, `97`."""
    return num(value)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def alternation(values: Iterable[str]) -> str:
    """A regex matching exactly `values` (names use `[a-z0-9_.-]`; only `.` is special in RE2 here)."""
    return "|".join(v.replace(".", "\\.") for v in sorted(set(values)))


def selector(
    metric: str, eq: Mapping[str, str] | None = None, regex: Mapping[str, Iterable[str]] | None = None
) -> str:
    """`metric{k="v", k2=~"a|b"}`: equality matchers first; a one-value regex becomes an equality."""
    parts = [f"{k}={_quote(v)}" for k, v in (eq or {}).items()]
    for k, values in (regex or {}).items():
        distinct = sorted(set(values))
        parts.append(
            f"{k}={_quote(distinct[0])}" if len(distinct) == 1 else f"{k}=~{_quote(alternation(distinct))}"
        )
    return f"{metric}{{{', '.join(parts)}}}" if parts else metric


def open_range(seconds: int) -> str:
    """A range selector duration one millisecond short of `seconds`.

    Prometheus 2.x range selectors include both ends, so a window exactly N buckets long can catch
    N + 1 buckets when one sits on its left edge; one millisecond less makes the window (t - w, t]
    on Prometheus and on VictoriaMetrics alike.
    """
    ms = seconds * 1000 - 1
    out = ""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            out += f"{ms // size}{unit}"
            ms %= size
    return out
