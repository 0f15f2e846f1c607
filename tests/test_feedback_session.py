"""The session document: validation, what its own fields say about SLOs, and top-contributor grouping."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from agentslo.feedback.session import (
    Session,
    parse_time,
    primary_tool,
    sli_bad_events,
    spec_problems,
    top_contributors,
)
from agentslo.spec import load_spec

SPEC = load_spec("examples/cx-support.slo.yaml")


def s(**fields: Any) -> Session:
    return Session.model_validate({"session_id": "s", "agent": "cx-support", "flow": "refund"} | fields)


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"outcome": "success"}, {}),
        (
            {"outcome": "success", "escalation_required": True},
            {"task-success": 1, "escalation-correctness": 1},
        ),
        ({"outcome": "failure"}, {"task-success": 1}),
        ({"outcome": "abandoned"}, {"task-success": 1}),
        ({"outcome": "escalated"}, {"task-success": 1, "escalation-correctness": 1}),
        ({"outcome": "escalated", "escalation_required": True}, {}),
        ({}, {}),
    ],
)
def test_task_truth_table_and_escalation(fields: dict[str, Any], bad: dict[str, int]) -> None:
    assert sli_bad_events(SPEC, s(**fields)) == bad


def test_tool_latency_and_cost_slis() -> None:
    calls = [
        {"tool": "get_order", "outcome": "ok"},
        {"tool": "issue_refund", "outcome": "wrong_tool"},
        {"tool": "issue_refund", "outcome": "error"},
    ]
    bad = sli_bad_events(SPEC, s(tool_calls=calls, duration_s=9.0, cost_usd=0.5))
    assert bad == {"tool-call-accuracy": 2, "e2e-latency": 1, "cost-per-task": 1}
    assert sli_bad_events(SPEC, s(duration_s=1.0, cost_usd=0.01)) == {}


def test_caller_declared_bad_slos_are_kept() -> None:
    assert sli_bad_events(SPEC, s(bad_slos=["turn-latency"])) == {"turn-latency": 1}


def test_primary_tool_is_the_first_failed_else_the_last() -> None:
    calls = [
        {"tool": "get_order", "outcome": "ok"},
        {"tool": "issue_refund", "outcome": "error"},
        {"tool": "reset_password", "outcome": "ok"},
    ]
    assert primary_tool(s(tool_calls=calls)) == "issue_refund"
    assert primary_tool(s(tool_calls=calls[:1])) == "get_order"
    assert primary_tool(s()) is None


def test_spec_problems_name_the_field() -> None:
    problems = spec_problems(SPEC, s(flow="billing", exclude="vip", bad_slos=["nope"], time=4e9), now=1.8e9)
    assert [f for f, _ in problems] == ["flow", "exclude", "bad_slos[0]", "time"]
    assert spec_problems(None, s(), now=0)[0][0] == "agent"


def test_time_formats() -> None:
    assert parse_time("1970-01-01T00:01:00Z") == 60.0
    assert parse_time("1970-01-01T01:00:00+01:00") == 0.0
    assert parse_time(12.5) == 12.5
    for bad in ("2026-01-01T00:00:00", "yesterday", True, -1, float("inf")):
        with pytest.raises(ValueError):
            parse_time(bad)


def test_unknown_keys_and_bad_types_are_refused() -> None:
    with pytest.raises(ValidationError):
        s(transcript=[])
    with pytest.raises(ValidationError):
        s(messages=[{"content": "no role"}])
    with pytest.raises(ValidationError):
        s(duration_s=float("nan"))


def row(
    sid: str,
    burn: float,
    *,
    flow: str = "refund",
    mode: str | None = "wrong_refund_window",
    tool: str | None = "issue_refund",
    version: str = "v1",
    text: str = "refund please",
) -> dict[str, Any]:
    return {
        "session_id": sid,
        "agent": "cx-support",
        "flow": flow,
        "time": 100.0,
        "failure_mode": mode,
        "tool": tool,
        "version": version,
        "bad_events": 1,
        "burn": burn,
        "body": {"messages": [{"role": "user", "content": text}]},
    }


def test_top_contributors_rank_groups_by_burn_and_name_what_they_share() -> None:
    rows = [
        row(f"promo-{i}", 10.0, text=f"Is the promotional pricing for item {i} refundable?")
        for i in range(12)
    ]
    rows += [row(f"pw-{i}", 3.3, flow="password-reset", mode=None, tool="reset_password") for i in range(20)]
    rows += [row("v2", 10.0, version="v2")]
    top = top_contributors(sorted(rows, key=lambda r: -r["burn"]))
    first, second, third = top["groups"]
    assert first["by"] == {
        "flow": "refund",
        "failure_mode": "wrong_refund_window",
        "tool": "issue_refund",
        "version": "v1",
    }
    assert first["sessions"] == 12 and first["burn"] == 120.0
    assert first["share"] == pytest.approx(120 / (120 + 66 + 10), abs=1e-4)
    assert set(first["common_terms"]) >= {"promotional", "pricing", "refundable"}
    assert second["sessions"] == 20 and second["common_terms"] == ["refund"]
    assert third["by"]["version"] == "v2" and third["common_terms"] == []  # one session has nothing in common
    flows = {f["value"]: f["sessions"] for f in top["facets"]["flow"]}
    assert flows == {"refund": 13, "password-reset": 20}
    assert top["total_sessions"] == 33 and len(top["sessions"]) == 20


def test_top_contributors_of_nothing() -> None:
    assert top_contributors([]) == {
        "total_sessions": 0,
        "total_burn": 0.0,
        "groups": [],
        "facets": {"flow": [], "failure_mode": [], "tool": [], "version": []},
        "sessions": [],
    }


@pytest.mark.parametrize(
    "doc",
    [
        {"session_id": "s", "agent": "a", "flow": "f"},
        {
            "session_id": "s",
            "agent": "a",
            "flow": "f",
            "time": "2026-11-22T04:00:00Z",
            "outcome": "failure",
            "messages": [{"role": "user", "content": "hi"}],
            "tool_calls": [{"tool": "t", "outcome": "error"}],
        },
        {"session_id": "", "agent": "a", "flow": "f"},
        {"session_id": "s", "agent": "a", "flow": "f", "outcome": "great"},
        {"session_id": "s", "agent": "a", "flow": "f", "extra": 1},
        {"session_id": "s", "agent": "a", "flow": "f", "tool_calls": [{"input": {}}]},
        {"session_id": "s", "agent": "a"},
    ],
)
def test_the_published_json_schema_agrees_with_the_model(doc: dict[str, Any]) -> None:
    import jsonschema

    from agentslo.feedback.session import SESSION_SCHEMA

    schema_ok = jsonschema.Draft7Validator(SESSION_SCHEMA).is_valid(doc)
    try:
        Session.model_validate(doc)
        model_ok = True
    except ValidationError:
        model_ok = False
    assert schema_ok == model_ok


def test_each_escalation_measure_judges_only_its_own_population() -> None:
    voice = load_spec("examples/voice-booking.slo.yaml")

    def bad(**fields: Any) -> dict[str, int]:
        found = sli_bad_events(
            voice, Session.model_validate({"session_id": "s", "agent": "voice-booking"} | fields)
        )
        return {k: v for k, v in found.items() if "escalation" in k}

    # required, not escalated: a missed hand-off (recall), not an unnecessary one
    assert bad(flow="book", outcome="success", escalation_required=True) == {
        "escalation-correctness": 1,
        "escalation-recall": 1,
    }
    # escalated, not required: an unnecessary hand-off, which recall does not count
    assert bad(flow="book", outcome="escalated") == {
        "escalation-correctness": 1,
        "unnecessary-escalations": 1,
    }
    assert bad(flow="book", outcome="escalated", escalation_required=True) == {}
