"""Head sampling: deterministic per session, independent per judge version, and at the stated rate."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentslo.feedback.sampling import sampled

N = 10_000


@given(st.text(min_size=1, max_size=40), st.floats(min_value=0, max_value=1))
def test_the_same_session_gets_the_same_decision(session_id: str, rate: float) -> None:
    assert sampled(session_id, "faithfulness", "3", rate) == sampled(session_id, "faithfulness", "3", rate)


@pytest.mark.parametrize("rate", [0.01, 0.05, 0.2, 0.5])
def test_rate_is_within_statistical_bounds_over_10000_sessions(rate: float) -> None:
    hits = sum(sampled(f"session-{i}", "faithfulness", "3", rate) for i in range(N))
    sigma = math.sqrt(N * rate * (1 - rate))
    # 4 sigma: a correct sampler fails this about once in 16,000 runs; a biased one fails reliably.
    assert abs(hits - N * rate) <= 4 * sigma, (hits, N * rate)


def test_rates_zero_and_one_are_exact() -> None:
    assert not any(sampled(f"s{i}", "j", "1", 0.0) for i in range(1000))
    assert all(sampled(f"s{i}", "j", "1", 1.0) for i in range(1000))


def test_samples_are_nested_as_the_rate_grows() -> None:
    low = {i for i in range(N) if sampled(f"s{i}", "j", "1", 0.05)}
    high = {i for i in range(N) if sampled(f"s{i}", "j", "1", 0.2)}
    assert low <= high


def test_judges_and_versions_draw_independent_samples() -> None:
    a = {i for i in range(N) if sampled(f"s{i}", "faithfulness", "3", 0.1)}
    b = {i for i in range(N) if sampled(f"s{i}", "faithfulness", "4", 0.1)}
    c = {i for i in range(N) if sampled(f"s{i}", "tone", "3", 0.1)}
    # Independent 10% samples overlap on about 1% of sessions (100 ± 40), not on 10%.
    assert len(a & b) < 200 and len(a & c) < 200
