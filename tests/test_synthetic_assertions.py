"""Assertions: each type passes and fails on the right evidence, and says what was expected and what came."""

from __future__ import annotations

import re
from typing import Any

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentslo.scenario import Assertion
from agentslo.spec import load_spec
from agentslo.synthetic.assertions import View, evaluate_one, group_passes
from agentslo.synthetic.records import AssertionResult, ToolCall
from agentslo.synthetic.rubric import judge_for, make_rubric
from tests.doubles.fake_provider import FakeProvider

REFUND_REPLY = "Done: refund R-778 is accepted. You'll see the money in 5-10 business days."
CALLS = [
    ToolCall("get_order", {"order_id": "A-1001"}, {"status": "delivered"}),
    ToolCall("issue_refund", {"order_id": "A-1001", "amount_usd": 49.9}, {"status": "accepted"}),
]


def view(output: str = REFUND_REPLY, **kw: Any) -> View:
    base: dict[str, Any] = {"tool_calls": CALLS, "steps": 5, "latency_s": 0.8, "cost_usd": 0.01}
    return View("turn 1", output, output, **(base | kw))


def a(type_: str, value: Any = None, **kw: Any) -> Assertion:
    return Assertion.model_validate({"type": type_, "value": value, **kw})


async def check(assertion: Assertion, v: View | None = None) -> AssertionResult:
    return await evaluate_one(assertion, v or view(), None)


PASSING = [
    a("equals", REFUND_REPLY),
    a("contains", "5-10 business days"),
    a("icontains", "REFUND R-778"),
    a("contains-any", ["3 days", "5-10 business days"]),
    a("contains-all", ["R-778", "accepted"]),
    a("icontains-all", ["r-778", "ACCEPTED"]),
    a("regex", r"\b5\s*-\s*10 business days\b"),
    a("not-regex", r"\b3\s*-\s*5 business days\b"),
    a("not-contains", "3-5 business days"),
    a("tool-called", "issue_refund"),
    a("not-tool-called", "reset_password"),
    a("tool-args-match", {"tool": "issue_refund", "args": {"order_id": "A-1001"}}),
    a("tool-sequence", ["get_order", "issue_refund"]),
    a("step-count", {"min": 3, "max": 5}),
    a("step-count", 5),
    a("latency-under", "1.2s"),
    a("cost-under", 0.02),
]


@pytest.mark.parametrize("assertion", PASSING, ids=lambda x: x.type)
async def test_assertion_passes_on_matching_evidence(assertion: Assertion) -> None:
    result = await check(assertion)
    assert result.passed and result.score == 1.0, result.message


# (assertion, view overrides, fragments the failure message must contain: the expectation and what came)
FAILING = [
    (a("equals", "Done."), {}, ["expected exactly 'Done.'", 'got "Done: refund R-778']),
    (
        a("contains", "5-10 business days"),
        {"output": "It takes 3-5 business days."},
        ["expected the reply to contain '5-10 business days'", "got 'It takes 3-5 business days.'"],
    ),
    (
        a("not-regex", r"\b3\s*-\s*5 business days\b"),
        {"output": "Refunds take 3-5 business days."},
        ["expected not a match for /", "matched '3-5 business days'"],
    ),
    (
        a("contains-all", ["R-778", "refunded"]),
        {},
        ["expected all of ['R-778', 'refunded']", "missing ['refunded']"],
    ),
    (a("icontains-any", ["weeks", "months"]), {}, ["expected any of ['weeks', 'months']", "found none"]),
    (
        a("tool-called", "get_order"),
        {"tool_calls": [ToolCall("get_account_balance", {})]},
        ["expected a call to `get_order`", "got [get_account_balance]"],
    ),
    (
        a("not-tool-called", "issue_refund"),
        {},
        ["expected not a call to `issue_refund`", "got [get_order, issue_refund]"],
    ),
    (
        a("tool-args-match", {"tool": "issue_refund", "args": {"order_id": "B-2002"}}),
        {},
        ['expected `issue_refund` called with {"order_id": "B-2002"}', '"order_id": "A-1001"'],
    ),
    (
        a("tool-sequence", ["issue_refund", "get_order"]),
        {},
        ["expected tools in order ['issue_refund', 'get_order']", "got [get_order, issue_refund]"],
    ),
    (a("step-count", 3), {}, ["expected at most 3 steps", "got 5"]),
    (a("latency-under", "500ms"), {}, ["expected a reply within 0.5s", "took 0.800s"]),
    (a("cost-under", 0.001), {}, ["expected cost under $0.001", "got $0.010000"]),
    (a("cost-under", 0.5), {"cost_usd": None}, ["the target reported no cost"]),
    (
        a("is-json"),
        {"output": '{"reply": "Your order'},
        ["expected the reply to be JSON", "Unterminated string"],
    ),
    (
        a("json-path", {"path": "refund.days", "equals": 10}),
        {"output": '{"refund": {"days": 5}}'},
        ["expected `refund.days` = 10", "got 5"],
    ),
    (
        a("json-path", {"path": "$.refund.window", "matches": "^5-10"}),
        {"output": '{"refund": {}}'},
        ["expected `$.refund.window` to match /^5-10/", "no such field"],
    ),
    (
        a("json-path", {"path": "reply"}),
        {"output": "not json"},
        ["expected JSON with `reply`", "the reply is not JSON"],
    ),
]


@pytest.mark.parametrize(
    ("assertion", "overrides", "fragments"), FAILING, ids=lambda x: getattr(x, "type", "")
)
async def test_assertion_fails_saying_what_was_expected_and_what_came(
    assertion: Assertion, overrides: dict[str, Any], fragments: list[str]
) -> None:
    v = view(**overrides)
    if "output" in overrides:
        v.final = v.output
    result = await check(assertion, v)
    assert not result.passed and result.score == 0.0
    for fragment in fragments:
        assert fragment in result.message, result.message


async def test_json_path_reads_lists_and_presence() -> None:
    v = view('{"items": [{"sku": "X1"}], "error": null}')
    assert (await check(a("json-path", {"path": "items.0.sku", "equals": "X1"}), v)).passed
    assert (await check(a("json-path", {"path": "items.1.sku", "present": False}), v)).passed
    assert not (await check(a("not-json-path", {"path": "items.0.sku"}), v)).passed


async def test_equals_with_a_mapping_compares_parsed_json() -> None:
    assert (await check(a("equals", {"b": 2, "a": 1}), view('{"a": 1, "b": 2}'))).passed
    assert not (await check(a("equals", {"a": 1}), view('{"a": 2}'))).passed


def _result(passed: bool, weight: float = 1.0, score: float | None = None) -> AssertionResult:
    return AssertionResult(
        "turn 1", "contains", "x", passed, float(passed) if score is None else score, weight, ""
    )


def test_group_needs_every_weighted_member_or_the_threshold() -> None:
    assert group_passes([_result(True), _result(False, weight=0)], None) == (True, 1.0)
    assert group_passes([_result(True), _result(False)], None)[0] is False
    assert group_passes([_result(True, weight=3), _result(False)], 0.75) == (True, 0.75)
    assert group_passes([_result(True), _result(False, weight=3)], 0.75) == (False, 0.25)


async def test_assert_set_passes_on_its_threshold_and_lists_what_failed() -> None:
    loose = a(
        "assert-set",
        threshold=0.5,
        **{"assert": [{"type": "contains", "value": "R-778"}, {"type": "contains", "value": "weeks"}]},
    )
    result = await check(loose)
    assert result.passed and result.score == 0.5 and len(result.children) == 2
    strict = loose.model_copy(update={"threshold": None})
    result = await check(strict)
    assert not result.passed
    assert 'expected every check to pass; got score 0.50, failed: contains "weeks"' in result.message


@pytest.fixture
def spec():
    return load_spec("examples/cx-support.slo.yaml")


def test_adhoc_rubric_borrows_the_specs_llm_judge_provider(spec) -> None:
    name, judge = judge_for(a("llm-rubric", "declines politely", threshold=0.8), spec)
    assert name == "llm-rubric" and judge.model == "gpt-4o-mini" and judge.rubric == "declines politely"
    assert judge.pass_threshold == 0.8
    assert judge_for(a("llm-rubric", judge="refund-policy"), spec) == (
        "refund-policy",
        spec.judges["refund-policy"],
    )


async def test_llm_rubric_is_graded_by_the_judge_over_an_openai_compatible_api(spec) -> None:
    def rubric_judge(prompt: str) -> dict[str, Any]:
        declined = "outside our 30-day refund policy" in prompt
        return {
            "score": 0.9 if declined else 0.2,
            "label": "pass" if declined else "fail",
            "explanation": "checked",
        }

    async with FakeProvider(judge=rubric_judge) as provider:
        client = openai.AsyncOpenAI(base_url=provider.base_url, api_key="test", max_retries=0)
        grade = make_rubric(spec, client=client)
        rubric = a("llm-rubric", "declines and cites the 30-day policy", threshold=0.8)
        good = view("Sorry, that order is outside our 30-day refund policy.", tool_calls=[])
        bad = view("Sure, refunded!", tool_calls=[])
        ok = await evaluate_one(rubric, good, grade)
        nok = await evaluate_one(rubric, bad, grade)
        negated = await evaluate_one(a("not-llm-rubric", "declines", threshold=0.8), bad, grade)
        await client.close()
    assert ok.passed and ok.score == pytest.approx(0.9)
    assert not nok.passed and "expected a judge score ≥ 0.8; got 0.20" in nok.message
    assert negated.passed
    assert len(provider.requests) == 3


async def test_llm_rubric_with_a_rule_judge_needs_no_model(spec) -> None:
    grade = make_rubric(spec)
    bad = view("Refunds take 3-5 business days.", tool_calls=[], flow="refund")
    result = await evaluate_one(a("llm-rubric", judge="refund-policy"), bad, grade)
    assert not result.passed and "got 0.00" in result.message


async def test_llm_rubric_judge_failure_fails_even_when_negated(spec) -> None:
    async with FakeProvider() as provider:
        await provider.stop()  # nothing listens any more
        client = openai.AsyncOpenAI(base_url=provider.base_url, api_key="test", max_retries=0)
        grade = make_rubric(spec, client=client)
        result = await evaluate_one(a("not-llm-rubric", "x"), view(), grade)
        await client.close()
    assert not result.passed and "got no score" in result.message


@given(text=st.text(max_size=40), needle=st.text(min_size=1, max_size=5))
@settings(max_examples=200, deadline=None)
def test_negation_is_the_exact_opposite(text: str, needle: str) -> None:
    import asyncio

    for kind in ("contains", "icontains", "regex"):
        value = re.escape(needle) if kind == "regex" else needle
        plain = asyncio.run(check(a(kind, value), view(text)))
        negated = asyncio.run(check(a(f"not-{kind}", value), view(text)))
        assert plain.passed != negated.passed and plain.score + negated.score == 1.0
        assert plain.passed == ((needle.lower() in text.lower()) if kind == "icontains" else (needle in text))
