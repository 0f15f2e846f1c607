"""Prometheus durations (whole numbers: `5m`, `30d`) and decimal thresholds (`1.2s`, `4500ms`).

Windows and periods end up inside PromQL range selectors, which take whole-number durations only;
thresholds are compared against observed values and may be decimals, but never enter a selector.
"""

from __future__ import annotations

import re
from typing import Final

UNIT_SECONDS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION_RE: Final = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_THRESHOLD_RE: Final = re.compile(r"^(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h)?$")


def parse_duration(text: str) -> int:
    """Seconds in a Prometheus duration such as `5m`, `1h30m` or `30d`; raises ValueError otherwise."""
    m = _DURATION_RE.match(text) if isinstance(text, str) else None
    if not text or m is None or not any(m.groups()):
        raise ValueError(
            f"{text!r} is not a Prometheus duration: use a whole number and a unit, such as 5m, 6h or 30d"
        )
    units = ("y", "w", "d", "h", "m", "s", "ms")
    total = sum(int(g) * UNIT_SECONDS[u] for g, u in zip(m.groups(), units, strict=True) if g)
    if total <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    if total != int(total):
        raise ValueError(f"{text!r} must be a whole number of seconds")
    return int(total)


def format_duration(seconds: int) -> str:
    """The shortest Prometheus spelling of a whole number of seconds (`2592000` → `30d`)."""
    if seconds <= 0:
        raise ValueError("duration must be positive")
    for unit in ("w", "d", "h", "m", "s"):
        size = int(UNIT_SECONDS[unit])
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError("unreachable: every whole number of seconds divides by 1")


def parse_threshold_seconds(value: object) -> float:
    """Seconds in a threshold: a number (seconds) or a string like `1.2s`, `4500ms`, `2m`."""
    if isinstance(value, bool):
        raise ValueError("a threshold must be a number of seconds or a string like 1.2s or 4500ms")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _THRESHOLD_RE.match(value.strip())):
        seconds = float(m.group(1)) * UNIT_SECONDS[m.group(2) or "s"]
    else:
        raise ValueError(f"{value!r} is not a threshold: use seconds such as 1.2s, 4500ms or 2m")
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{value!r} must be a positive, finite time")
    return seconds


def humanize(seconds: float) -> str:
    """A short reading of a span for people (`2.1 h`, `43.2 min`, `3 d`)."""
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.3g} d"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 120:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.3g} s"
