"""`agent-slo suggest` over four weeks of known history in a real Prometheus (tests/doubles/history.py).

Tolerance: the observed SLI is within 0.01 percentage points of the history's own good ratio and
events per day within 0.5% of its traffic (Prometheus' `increase()` extrapolates at the edges), and
the suggested objective is exactly the sensible value the history implies (computed by the stated
method from the double's own counts, not read back from Prometheus).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from agentslo import cli
from agentslo.demo.servers import free_port
from agentslo.review.history import WEEK
from agentslo.review.suggest import snap, supported_bound
from agentslo.spec import load_spec
from tests.doubles import history as h
from tests.doubles.history import ReviewHistory, needs_prometheus, review_history  # noqa: F401

pytestmark = [needs_prometheus(), pytest.mark.timeout(240)]
# What four weeks of this history support, per flow (see the double's table).
IMPLIED = {"steady": 99.5, "outage": 99.0, "drift": 85.0, "quiet": 99.5}


def suggest(capsys: pytest.CaptureFixture[str], history: ReviewHistory, *argv: str) -> tuple[int, str, str]:
    code = cli.main(
        ["suggest", str(history.spec_path), "--prometheus", history.url, "--end", str(history.end), *argv]
    )
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def suggested(review_history: ReviewHistory) -> dict[str, dict[str, Any]]:  # noqa: F811
    # (a module-scoped fixture cannot take capsys: stdout is captured by hand)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = cli.main(
            [
                "suggest",
                str(review_history.spec_path),
                "--prometheus",
                review_history.url,
                "--end",
                str(review_history.end),
                "--days",
                str(h.DAYS),
                "--json",
            ]
        )
    assert code == 0
    return {row["flow"]: row for row in json.loads(buffer.getvalue())}


def test_suggest_recovers_the_objectives_the_history_implies(suggested: dict[str, dict[str, Any]]) -> None:
    assert set(suggested) == set(h.PER_MIN)
    for flow, row in suggested.items():
        assert set(row) >= {
            "agent",
            "slo",
            "flow",
            "events_per_day",
            "observed",
            "suggested_objective",
            "low_traffic",
        }
        weeks = [h.expected_counts(flow, w * WEEK, (w + 1) * WEEK) for w in range(h.DAYS * 86400 // WEEK)]
        good, bad = h.expected_counts(flow, 0, h.DAYS * 86400)
        assert row["observed"] == pytest.approx(100 * good / (good + bad), abs=0.01)
        assert row["events_per_day"] == pytest.approx(h.PER_MIN[flow] * 1440, rel=0.005)
        implied = snap(supported_bound([100 * g / (g + b) for g, b in weeks], good, good + bad))
        assert row["suggested_objective"] == implied == IMPLIED[flow], flow
        assert row["suggested_objective"] <= row["observed"]  # never above what the data supports


def test_suggest_flags_the_low_traffic_flow_and_says_what_to_do(suggested: dict[str, dict[str, Any]]) -> None:
    assert [f for f, row in suggested.items() if row["low_traffic"]] == ["quiet"]
    advice = suggested["quiet"]["advice"]
    assert "min_events" in advice and "synthetic" in advice and "page_fast" in advice


def test_write_fills_in_the_objective_and_keeps_the_comments(
    review_history: ReviewHistory,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    target = tmp_path / "suggested.slo.yaml"
    code, _, err = suggest(capsys, review_history, "--days", str(h.DAYS), "--write", str(target))
    assert code == 0, err
    text = target.read_text(encoding="utf-8")
    assert "# The review tests' agent" in text and "# who is paged" in text
    written = load_spec(target)
    assert written.slos[h.SLO].objective == min(IMPLIED.values())  # one objective holds for every flow


def test_unreachable_prometheus_is_a_message_and_exit_2(
    review_history: ReviewHistory,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code = cli.main(["suggest", str(review_history.spec_path), "--prometheus", url, "--timeout", "2"])
    out = capsys.readouterr()
    assert code == 2 and out.out == "" and "could not be reached" in out.err and "Traceback" not in out.err


def test_history_shorter_than_asked_is_a_message_and_exit_2(
    review_history: ReviewHistory,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = suggest(capsys, review_history, "--days", "35")
    assert code == 2 and out == "" and "less than the 35 days asked" in err
