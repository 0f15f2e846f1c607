"""Rule judges: each kind of check, `applies_to`, and the spec's refund-policy example."""

from __future__ import annotations

import time
from typing import Any

import pytest

from agentslo.judges import JudgeInput, run_judge
from agentslo.judges.rule import evaluate
from agentslo.spec import RuleJudge, SpecError, load_spec, parse_spec


def rule(**checks: Any) -> RuleJudge:
    return RuleJudge.model_validate({"type": "rule", "version": "1"} | checks)


def case(
    output: str, *, tool_output: Any = None, user: str = "hi", context: tuple[str, ...] = ()
) -> JudgeInput:
    calls = [] if tool_output is None else [{"tool": "get_order", "input": {}, "output": tool_output}]
    return JudgeInput(
        "s",
        "cx-support",
        "refund",
        [{"role": "user", "content": user}, {"role": "assistant", "content": output}],
        list(context),
        calls,
        output,
    )


async def test_spec_refund_policy_fails_the_3_to_5_days_answer_and_passes_others() -> None:
    spec = load_spec("examples/cx-support.slo.yaml")
    judge = spec.judges["refund-policy"]
    bad = await run_judge("refund-policy", judge, case("Your refund takes 3 - 5 business days."))
    good = await run_judge("refund-policy", judge, case("Your refund takes up to 10 business days."))
    assert (bad.score, bad.label, bad.outcome) == (0.0, "fail", "ok")
    assert "3 - 5 business days" in bad.explanation
    assert (good.score, good.label) == (1.0, "pass")


async def test_rule_judge_outside_its_flows_is_skipped() -> None:
    judge = rule(flows=["order-status"], fail_if_contains=["x"])
    assert (await run_judge("r", judge, case("x"))).outcome == "skipped"


def test_regex_is_case_sensitive_as_written_keywords_are_not() -> None:
    assert evaluate(rule(fail_if_matches=["Refund"]), case("refund")).score == 1.0
    assert evaluate(rule(fail_if_matches=["(?i)Refund"]), case("refund")).score == 0.0
    assert evaluate(rule(fail_if_contains=["REFUND"]), case("refund")).score == 0.0


def test_pass_if_matches_needs_one_match() -> None:
    judge = rule(pass_if_matches=[r"ticket #\d+", r"case \d+"])
    assert evaluate(judge, case("opened case 12")).score == 1.0
    verdict = evaluate(judge, case("opened"))
    assert verdict.score == 0.0 and "none of the required patterns" in verdict.explanation


def test_require_contains_needs_every_word_and_names_the_missing_one() -> None:
    judge = rule(require_contains=["sorry", "reference"])
    assert evaluate(judge, case("Sorry, your Reference is 5")).score == 1.0
    verdict = evaluate(judge, case("sorry"))
    assert verdict.score == 0.0 and "'reference'" in verdict.explanation


def test_assistant_scope_ignores_user_text_but_all_scope_reads_it() -> None:
    c = case("ok", user="my card is stolen")
    assert evaluate(rule(fail_if_contains=["stolen"]), c).score == 1.0
    assert evaluate(rule(fail_if_contains=["stolen"], applies_to="all"), c).score == 0.0


def test_tool_output_scope_reads_tool_results() -> None:
    c = case("done", tool_output={"error": "timeout"})
    assert evaluate(rule(fail_if_contains=['"error"'], applies_to="tool_output"), c).score == 0.0
    assert evaluate(rule(fail_if_contains=['"error"']), c).score == 1.0


@pytest.mark.parametrize(
    ("output", "score"),
    [
        ('{"refund": {"days": 10, "currency": "EUR"}, "items": [{"sku": "A-1"}]}', 1.0),
        ('```json\n{"refund": {"days": 10, "currency": "EUR"}, "items": [{"sku": "A-1"}]}\n```', 1.0),
        ('{"refund": {"days": 5, "currency": "EUR"}, "items": [{"sku": "A-1"}]}', 0.0),
        ('{"refund": {"days": 10, "currency": "EUR"}, "items": [{"sku": "bad"}]}', 0.0),
        ('{"refund": {"days": 10, "currency": "EUR"}, "items": [{"sku": "A-1"}], "internal": 1}', 0.0),
        ('{"refund": {"days": 10}, "items": [{"sku": "A-1"}]}', 0.0),
        ("not json", 0.0),
    ],
)
def test_json_fields(output: str, score: float) -> None:
    judge = rule(
        json_fields=[
            {"path": "refund.days", "equals": 10},
            {"path": "refund.currency"},
            {"path": "items.0.sku", "matches": r"^[A-Z]-\d+$"},
            {"path": "internal", "present": False},
        ]
    )
    assert evaluate(judge, case(output)).score == score


def test_every_failed_check_is_explained() -> None:
    verdict = evaluate(rule(fail_if_contains=["a"], require_contains=["zzz"]), case("a"))
    assert "forbidden text 'a'" in verdict.explanation and "required text 'zzz'" in verdict.explanation


# --- linear time: RE2, whatever the text and the pattern (issue 17: 2) ---

LONG = 250_000


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        (r"(a+)+$", "a" * LONG + "!"),  # nested quantifiers: exponential on a backtracking engine
        (r"(a|aa)*c", "a" * LONG),
        (r"(\w+\s?)*$", "word " * (LONG // 5) + "!"),
        (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+\.[a-z]{2,}", "a" * LONG),  # the old email pattern: O(n²)
        (r"\b3\s*-\s*5 business days\b", "3 - " * (LONG // 4)),
    ],
    ids=["nested", "alternation", "words", "email", "spec-example"],
)
def test_rule_regexes_take_linear_time_on_hostile_text(pattern: str, text: str) -> None:
    judge = rule(fail_if_matches=[pattern], applies_to="all")
    started = time.perf_counter()
    verdict = evaluate(judge, case(text, user=text, context=(text,)))
    assert time.perf_counter() - started < 2.0
    assert verdict.outcome == "ok"


def test_a_forbidden_match_is_quoted_briefly_not_whole() -> None:
    verdict = evaluate(rule(fail_if_matches=[r"a+"]), case("a" * LONG))
    assert verdict.score == 0.0 and len(verdict.explanation) < 200 and "…" in verdict.explanation


@pytest.mark.parametrize("space", ["\u00a0", "\u202f", "\u2009", "\u3000", "\x0b"])
def test_whitespace_classes_still_match_unicode_spaces(space: str) -> None:
    judge = load_spec("examples/cx-support.slo.yaml").judges["refund-policy"]
    assert isinstance(judge, RuleJudge)
    verdict = evaluate(judge, case(f"Refunds take 3{space}-{space}5 business days."))
    assert verdict.score == 0.0 and "3" in verdict.explanation


def test_fenced_json_is_found_in_a_long_answer() -> None:
    judge = rule(json_fields=[{"path": "ok", "equals": True}])
    output = "x" * LONG + '\n```json\n{"ok": true}\n```\n' + "`" * 1000
    assert evaluate(judge, case(output)).score == 1.0


@pytest.mark.parametrize(
    ("key", "pattern"),
    [
        ("fail_if_matches", r"(?<=refund )\d+"),  # lookbehind
        ("pass_if_matches", r"(?!no)\w+"),  # lookahead
        ("fail_if_matches", r"(\w)\1"),  # backreference
    ],
)
def test_the_spec_refuses_what_re2_cannot_match_naming_the_key(key: str, pattern: str) -> None:
    text = f"""
version: agent-slo/v1
agent: a
owners: {{o: {{team: t}}}}
flows: {{f: {{risk: faq}}}}
judges:
  policy: {{type: rule, version: "1", {key}: ['{pattern}']}}
slos:
  s: {{sli: {{judge: policy}}, objective: 99, owner: o}}
"""
    with pytest.raises(SpecError) as err:
        parse_spec(text)
    message = str(err.value)
    assert f"judges.policy.{key}[0]" in message and "RE2" in message and "lookarounds" in message


def test_json_check_regexes_are_re2_too() -> None:
    with pytest.raises(ValueError, match="RE2"):
        rule(json_fields=[{"path": "a", "matches": r"(?<=x)y"}])
