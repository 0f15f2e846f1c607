"""Judges: named, versioned evaluators that turn a session into a 0-1 score.

`rule` judges are deterministic checks (regex, keywords, JSON fields) that score 1 or 0; `llm` judges
ask a pinned model to score the session against a versioned rubric through any OpenAI-compatible
API. Both are run through one function that never raises for a judge's own failures: those come
back as the verdict's `outcome` (a judge failure is the judge's, never the agent's).

    import asyncio
    from agentslo.judges import JudgeInput, run_judge
    from agentslo.spec import load_spec

    spec = load_spec("examples/cx-support.slo.yaml")
    case = JudgeInput(session_id="s1", agent="cx-support", flow="refund",
                      messages=[{"role": "assistant", "content": "Refunds take 3-5 business days."}],
                      context=[], tool_calls=[], output="Refunds take 3-5 business days.")
    verdict = asyncio.run(run_judge("refund-policy", spec.judges["refund-policy"], case))
    assert verdict.score == 0.0 and verdict.outcome == "ok"

This is the pure judge logic shared by the feedback wing (`agentslo.feedback`: sessions, the judging
pipeline and its head samples, the session store, calibration) and the prober's `llm-rubric`.
"""

from __future__ import annotations

import openai

from agentslo.judges import model
from agentslo.judges.llm import judge_llm
from agentslo.judges.model import JudgeInput, Verdict
from agentslo.judges.rule import evaluate
from agentslo.spec import LLMJudge, RuleJudge


def applies(judge: LLMJudge | RuleJudge, flow: str) -> bool:
    """Whether a judge covers a flow (no `flows:` means every flow)."""
    return judge.flows is None or flow in judge.flows


async def run_judge(
    name: str, judge: LLMJudge | RuleJudge, case: JudgeInput, *, client: openai.AsyncOpenAI | None = None
) -> Verdict:
    """Judge one session. Sessions of flows the judge does not cover come back `skipped`."""
    if not applies(judge, case.flow):
        return model.failed(model.SKIPPED, f"judge {name} does not cover flow {case.flow!r}")
    if isinstance(judge, RuleJudge):
        return evaluate(judge, case)
    return await judge_llm(name, judge, case, client=client)


__all__ = ["JudgeInput", "Verdict", "applies", "run_judge"]
