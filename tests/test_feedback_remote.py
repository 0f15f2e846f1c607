"""Judge calls in a child process: same verdicts as in-process, and a dead child is an error, then
replaced."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import warnings
from collections.abc import AsyncIterator

import pytest

from agentslo.feedback.remote import JudgeProcess
from agentslo.judges import JudgeInput
from agentslo.spec import LLMJudge, RuleJudge
from tests.doubles.fake_provider import FakeProvider, Step

CASE = JudgeInput(
    "s",
    "cx-support",
    "refund",
    [{"role": "assistant", "content": "3-5 business days"}],
    ["ctx"],
    [],
    "3-5 business days",
)


@pytest.fixture
async def runner() -> AsyncIterator[JudgeProcess]:
    r = JudgeProcess()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


def llm(url: str, **extra: object) -> LLMJudge:
    return LLMJudge.model_validate(
        {
            "type": "llm",
            "model": "m",
            "version": "2",
            "rubric": "r",
            "pass_threshold": 0.5,
            "base_url": url,
            "usd_per_1k_input_tokens": 1.0,
        }
        | extra
    )


async def test_verdicts_and_faults_come_back_from_the_child(runner: JudgeProcess) -> None:
    async with FakeProvider() as provider:
        provider.script.extend(
            [Step(verdict={"score": 0.75, "label": "pass"}, usage=(500, 5)), Step(status=400)]
        )
        ok = await runner.judge("faithfulness", llm(provider.base_url), CASE)
        failed = await runner.judge("faithfulness", llm(provider.base_url), CASE)
    assert (ok.outcome, ok.score, ok.input_tokens, ok.cost_usd) == ("ok", 0.75, 500, 0.5)
    assert failed.outcome == "error" and failed.score is None
    rule = RuleJudge.model_validate({"type": "rule", "version": "1", "fail_if_contains": ["3-5"]})
    assert (await runner.judge("policy", rule, CASE)).score == 0.0
    assert runner.pid is not None and runner.pid != os.getpid()


async def test_a_killed_child_ends_calls_as_errors_and_is_replaced(runner: JudgeProcess) -> None:
    async with FakeProvider(delay_s=5) as provider:
        call = asyncio.create_task(runner.judge("faithfulness", llm(provider.base_url, timeout=10), CASE))
        await asyncio.sleep(0.5)
        first = runner.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        verdict = await asyncio.wait_for(call, 10)
        assert verdict.outcome == "error" and "exited" in verdict.explanation
        provider.delay_s = 0
        again = await runner.judge("faithfulness", llm(provider.base_url), CASE)
    assert again.outcome == "ok" and runner.pid not in (None, first)


async def test_a_lost_child_is_reaped_not_left_running_or_a_zombie() -> None:
    runner = JudgeProcess()
    await runner.start()
    first = runner.pid
    assert first is not None
    rule = RuleJudge.model_validate({"type": "rule", "version": "1", "fail_if_contains": ["x"]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        os.kill(first, signal.SIGKILL)
        for _ in range(50):  # the runner notices the dead child on its socket, or on the next call
            if runner.pid != first:
                break
            await runner.judge("policy", rule, CASE)
            await asyncio.sleep(0.05)
        await runner.stop()  # waits for the lost child too
        gc.collect()  # a dropped, unwaited Popen warns "subprocess ... is still running" here
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    with pytest.raises(ChildProcessError):
        os.waitpid(first, os.WNOHANG)  # already reaped: no zombie left behind
