"""LLM judges against a scripted local OpenAI-compatible provider: verdicts, faults, cost, limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentslo.judges import JudgeInput, run_judge
from agentslo.judges.llm import MalformedVerdict, close_clients, parse_verdict
from agentslo.spec import LLMJudge
from tests.doubles.fake_provider import FakeProvider, Step

CASE = JudgeInput(
    session_id="s-1",
    agent="cx-support",
    flow="refund",
    messages=[
        {"role": "user", "content": "When do I get my refund?"},
        {"role": "assistant", "content": "Refunds arrive within 10 days."},
    ],
    context=["Refunds are issued within 10 days of approval."],
    tool_calls=[{"tool": "get_order", "input": {"id": 7}, "output": {"status": "refunded"}}],
    output="Refunds arrive within 10 days.",
)


def judge_at(base_url: str, **overrides: Any) -> LLMJudge:
    fields: dict[str, Any] = {
        "type": "llm",
        "model": "judge-model-2024-08-06",
        "version": "3",
        "rubric": "Is it grounded?",
        "pass_threshold": 0.8,
        "timeout": 2,
        "max_retries": 2,
        "concurrency": 4,
        "base_url": base_url,
        "usd_per_1k_input_tokens": 0.15,
        "usd_per_1k_output_tokens": 0.6,
    }
    return LLMJudge.model_validate(fields | overrides)


@pytest.fixture
async def provider() -> AsyncIterator[FakeProvider]:
    async with FakeProvider() as p:
        yield p


@pytest.fixture(autouse=True)
async def judge_clients_closed() -> AsyncIterator[None]:
    """`run_judge` opens the judges' HTTP clients per event loop; like every caller, each test closes
    those of its loop before the loop ends (else: 'Unclosed client session')."""
    yield
    await close_clients()


async def test_verdict_is_parsed_and_priced_from_usage(provider: FakeProvider) -> None:
    provider.script.append(
        Step(verdict={"score": 0.9, "label": "pass", "explanation": "grounded"}, usage=(1000, 200))
    )
    verdict = await run_judge("faithfulness", judge_at(provider.base_url), CASE)
    assert (verdict.outcome, verdict.score, verdict.label, verdict.explanation) == (
        "ok",
        0.9,
        "pass",
        "grounded",
    )
    assert (verdict.input_tokens, verdict.output_tokens) == (1000, 200)
    assert verdict.cost_usd == pytest.approx(0.15 + 0.12)


async def test_request_pins_model_temperature_json_mode_and_rubric(provider: FakeProvider) -> None:
    await run_judge("faithfulness", judge_at(provider.base_url), CASE)
    (request,) = provider.requests
    assert request["model"] == "judge-model-2024-08-06"
    assert request["temperature"] == 0
    assert request["response_format"] == {"type": "json_object"}
    system, user = request["messages"]
    assert "Is it grounded?" in system["content"] and "version 3" in system["content"]
    assert "Refunds are issued within 10 days" in user["content"] and "get_order" in user["content"]


async def test_429_then_success_retries_and_ends_ok(provider: FakeProvider) -> None:
    provider.script.extend([Step(status=429, headers={"retry-after-ms": "20"}), Step(verdict={"score": 1})])
    verdict = await run_judge("faithfulness", judge_at(provider.base_url), CASE)
    assert verdict.outcome == "ok" and verdict.score == 1.0 and verdict.label == "pass"
    assert len(provider.requests) == 2


async def test_429_beyond_retries_is_rate_limited(provider: FakeProvider) -> None:
    provider.script.extend([Step(status=429, headers={"retry-after-ms": "5"})] * 3)
    verdict = await run_judge("faithfulness", judge_at(provider.base_url, max_retries=2), CASE)
    assert verdict.outcome == "rate_limited" and verdict.score is None
    assert len(provider.requests) == 3 and verdict.cost_usd == 0


async def test_500_is_retried_then_reported_as_error(provider: FakeProvider) -> None:
    provider.script.extend([Step(status=500), Step(status=503)])
    verdict = await run_judge("faithfulness", judge_at(provider.base_url, max_retries=1), CASE)
    assert verdict.outcome == "error" and "503" in verdict.explanation
    assert len(provider.requests) == 2


async def test_500_then_success_is_ok(provider: FakeProvider) -> None:
    provider.script.extend([Step(status=500), Step(verdict={"score": 0.2, "label": "fail"})])
    verdict = await run_judge("faithfulness", judge_at(provider.base_url), CASE)
    assert (verdict.outcome, verdict.score, verdict.label) == ("ok", 0.2, "fail")


async def test_400_is_not_retried(provider: FakeProvider) -> None:
    provider.script.append(Step(status=400))
    verdict = await run_judge("faithfulness", judge_at(provider.base_url), CASE)
    assert verdict.outcome == "error" and len(provider.requests) == 1


async def test_timeout_is_the_judges_outcome_within_its_bound(provider: FakeProvider) -> None:
    provider.script.append(Step(delay_s=5))
    started = time.monotonic()
    verdict = await run_judge("faithfulness", judge_at(provider.base_url, timeout=0.3), CASE)
    assert verdict.outcome == "timeout" and verdict.score is None
    assert time.monotonic() - started < 2.0


async def test_slow_answer_within_timeout_is_ok(provider: FakeProvider) -> None:
    provider.script.append(Step(delay_s=0.4, verdict={"score": 0.7}))
    verdict = await run_judge("faithfulness", judge_at(provider.base_url, timeout=2), CASE)
    assert verdict.outcome == "ok" and verdict.score == 0.7 and verdict.label == "fail"


async def test_malformed_answer_is_malformed_and_still_costs(provider: FakeProvider) -> None:
    provider.script.append(Step(content="Looks fine to me!", usage=(500, 10)))
    verdict = await run_judge("faithfulness", judge_at(provider.base_url), CASE)
    assert verdict.outcome == "malformed" and verdict.score is None
    assert verdict.input_tokens == 500 and verdict.cost_usd == pytest.approx(0.075 + 0.006)


@pytest.mark.parametrize(
    "raw", ["<html>bad gateway</html>", '{"choices": []}', '{"choices": [{"message": 3}]}']
)
async def test_an_answer_that_is_not_a_completion_is_malformed(provider: FakeProvider, raw: str) -> None:
    provider.script.append(Step(raw_body=raw))
    verdict = await run_judge("faithfulness", judge_at(provider.base_url), CASE)
    assert verdict.outcome == "malformed" and verdict.score is None


async def test_score_out_of_range_is_malformed(provider: FakeProvider) -> None:
    provider.script.append(Step(content='{"score": 7, "label": "pass"}'))
    verdict = await run_judge("faithfulness", judge_at(provider.base_url), CASE)
    assert verdict.outcome == "malformed" and "outside 0-1" in verdict.explanation


async def test_refusal_is_refused(provider: FakeProvider) -> None:
    provider.script.append(Step(refusal="I can't help with that."))
    verdict = await run_judge("faithfulness", judge_at(provider.base_url), CASE)
    assert verdict.outcome == "refused" and "can't" in verdict.explanation and verdict.input_tokens == 120


async def test_unreachable_provider_is_an_error_not_an_exception() -> None:
    judge = judge_at("http://127.0.0.1:9/v1", max_retries=1)
    verdict = await run_judge("faithfulness", judge, CASE)
    assert verdict.outcome == "error" and "reach" in verdict.explanation


async def test_missing_api_key_without_base_url_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    judge = judge_at("x", api_key_env="AGENT_SLO_TEST_NO_SUCH_KEY").model_copy(update={"base_url": None})
    verdict = await run_judge("faithfulness", judge, CASE)
    assert verdict.outcome == "error" and "AGENT_SLO_TEST_NO_SUCH_KEY" in verdict.explanation


async def test_concurrency_limit_per_judge(provider: FakeProvider) -> None:
    provider.delay_s = 0.1
    judge = judge_at(provider.base_url, concurrency=2)
    verdicts = await asyncio.gather(*(run_judge("limited", judge, CASE) for _ in range(6)))
    assert all(v.outcome == "ok" for v in verdicts)
    assert provider.max_in_flight == 2


async def test_judge_not_covering_the_flow_is_skipped_without_a_call(provider: FakeProvider) -> None:
    verdict = await run_judge("faithfulness", judge_at(provider.base_url, flows=["order-status"]), CASE)
    assert verdict.outcome == "skipped" and provider.requests == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('```json\n{"score": 0.5, "label": "meh", "explanation": "x"}\n```', (0.5, "meh", "x")),
        ('Verdict: {"score": "0.95", "reason": "fine"} done', (0.95, "pass", "fine")),
        ('{"score": 0.1}', (0.1, "fail", "")),
    ],
)
def test_parse_verdict_is_lenient_about_wrapping(content: str, expected: tuple[float, str, str]) -> None:
    assert parse_verdict(content, 0.8) == expected


@pytest.mark.parametrize(
    "content", ["", "[]", '{"score": true}', '{"score": "high"}', '{"label": "pass"}', '{"score": NaN}']
)
def test_parse_verdict_rejects_what_has_no_valid_score(content: str) -> None:
    with pytest.raises(MalformedVerdict):
        parse_verdict(content, 0.8)
