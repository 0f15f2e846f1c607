"""Durations (whole, for PromQL selectors) and thresholds (decimal, for comparisons)."""

from __future__ import annotations

import pytest

from agentslo.durations import format_duration, parse_duration, parse_threshold_seconds


@pytest.mark.parametrize(
    ("text", "seconds"), [("5m", 300), ("1h30m", 5400), ("30d", 2592000), ("4w", 2419200), ("1000ms", 1)]
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "1.5d", "m", "0m", "5 m", "-5m", "500ms"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(300, "5m"), (2592000, "30d"), (604800, "1w"), (5400, "90m"), (7, "7s")]
)
def test_format_duration_is_shortest(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("value", "seconds"), [("1.2s", 1.2), ("4500ms", 4.5), (2, 2.0), ("2m", 120.0), (".5", 0.5)]
)
def test_parse_threshold(value: object, seconds: float) -> None:
    assert parse_threshold_seconds(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["fast", "-1s", 0, True, float("inf"), "1.2.3s", None])
def test_parse_threshold_refuses(value: object) -> None:
    with pytest.raises(ValueError):
        parse_threshold_seconds(value)
