"""PromQL text helpers: numbers without float noise, quoting, one-value regexes, open ranges."""

from __future__ import annotations

import re

import pytest

from agentslo.durations import parse_duration
from agentslo.rules._promql import num, open_range, selector


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (14.4 * (1 - 0.999), "0.0144"),
        (1 - 0.995, "0.005"),
        (2592000.0, "2592000"),
        (0.5, "0.5"),
        (97.0, "97"),
    ],
)
def test_numbers_are_written_without_float_noise(value: float, text: str) -> None:
    assert num(value) == text


def test_selectors_quote_escape_and_collapse_one_value_regexes() -> None:
    assert selector("m", {"a": 'x"y'}) == 'm{a="x\\"y"}'
    assert selector("m", {"a": "x"}, {"slo": ["b", "a.b", "b"]}) == 'm{a="x", slo=~"a\\\\.b|b"}'
    assert selector("m", None, {"slo": ["only"]}) == 'm{slo="only"}'
    assert selector("m") == "m"


@pytest.mark.parametrize("window", ["5m", "6h", "1d", "3d", "30d", "4w"])
def test_open_range_is_one_millisecond_short(window: str) -> None:
    text = open_range(parse_duration(window))
    units = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}
    total = sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|d|h|m|s)", text))
    assert total == parse_duration(window) * 1000 - 1
