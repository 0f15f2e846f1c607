"""`llm-rubric` through the judge catalogue (`agentslo.judges.run_judge`).

An assertion either names a judge of the spec (`judge: faithfulness`, LLM or rule; it passes at the
judge's `pass_threshold` unless the assertion sets `threshold`) or gives an ad-hoc rubric, which
becomes an `LLMJudge` (pass threshold: the assertion's, else 0.5) borrowing model, endpoint, API key
variable and prices from the spec's first LLM judge unless the assertion sets `model`.
"""

from __future__ import annotations

from typing import Any, Final

from agentslo.judges import JudgeInput, run_judge
from agentslo.scenario import Assertion
from agentslo.spec import LLMJudge, RuleJudge, Spec
from agentslo.synthetic.assertions import DEFAULT_RUBRIC_THRESHOLD, RubricFn, View

ADHOC_VERSION: Final = "scenario"  # judge version reported for ad-hoc rubrics


def judge_for(a: Assertion, spec: Spec) -> tuple[str, LLMJudge | RuleJudge]:
    """The (name, judge) an llm-rubric assertion is graded by."""
    if a.judge is not None:
        return a.judge, spec.judges[a.judge]
    base = next((j for j in spec.judges.values() if isinstance(j, LLMJudge)), None)
    fields: dict[str, Any] = {
        "type": "llm",
        "model": a.model or (base.model if base else ""),
        "version": ADHOC_VERSION,
        "rubric": str(a.value),
        "pass_threshold": a.threshold if a.threshold is not None else DEFAULT_RUBRIC_THRESHOLD,
    }
    if base is not None:
        fields |= {
            "base_url": base.base_url,
            "api_key_env": base.api_key_env,
            "timeout": base.timeout,
            "usd_per_1k_input_tokens": base.usd_per_1k_input_tokens,
            "usd_per_1k_output_tokens": base.usd_per_1k_output_tokens,
        }
    return "llm-rubric", LLMJudge.model_validate(fields)


def make_rubric(spec: Spec, *, client: Any = None) -> RubricFn:
    """A grader for llm-rubric assertions of `spec`'s scenarios (`client`: an openai.AsyncOpenAI to use)."""

    async def grade(a: Assertion, view: View) -> tuple[float | None, str, float]:
        name, judge = judge_for(a, spec)
        threshold = judge.pass_threshold
        case = JudgeInput(
            session_id=view.session_id,
            agent=spec.agent,
            flow=view.flow,
            messages=[
                m for m in view.messages if m.get("role") in ("user", "assistant") and m.get("content")
            ],
            context=[],
            tool_calls=[
                {"name": c.name, "arguments": c.arguments, "result": c.result} for c in view.tool_calls
            ],
            output=view.final,
        )
        try:
            verdict = await run_judge(name, judge, case, client=client)
        except Exception as exc:  # a judge outage must fail the assertion, not crash the prober
            return None, f"the judge failed: {type(exc).__name__}: {exc}", threshold
        if not verdict.ok:
            return None, f"judge {name}: {verdict.outcome}: {verdict.explanation}", threshold
        return verdict.score, verdict.explanation or verdict.label, threshold

    return grade
