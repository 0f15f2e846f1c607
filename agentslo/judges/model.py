"""The judges' input and output values, and the outcomes a judge call can end in.

A `JudgeInput` is one session reduced to what a judge reads; a `Verdict` is what it decided and what
the decision cost. Both are frozen so a verdict can be shared between the store, the metrics and the
review queue without copies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

# Outcomes of one judge call (the `outcome` label of agent_slo_judge_calls_total). Only `ok` carries a
# score; every other outcome is the judge's failure and never counts against the agent.
OK: Final = "ok"
ERROR: Final = "error"  # provider answered 4xx/5xx (after retries), connection failed, or no API key
TIMEOUT: Final = "timeout"  # no answer within the judge's timeout
RATE_LIMITED: Final = "rate_limited"  # still 429 after the judge's retries
MALFORMED: Final = "malformed"  # answered, but not a verdict we can read
REFUSED: Final = "refused"  # the model declined to judge (refusal / content filter)
SKIPPED: Final = "skipped"  # the judge does not apply to this session's flow
SHED: Final = "shed"  # the judging queue was full; the session was not judged
OUTCOMES: Final = (OK, ERROR, TIMEOUT, RATE_LIMITED, MALFORMED, REFUSED, SKIPPED, SHED)

PASS_LABEL: Final = "pass"
FAIL_LABEL: Final = "fail"


@dataclass(frozen=True)
class JudgeInput:
    """One session as a judge sees it. `output` is the agent's final assistant text."""

    session_id: str
    agent: str
    flow: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    context: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    output: str = ""

    @classmethod
    def from_session(cls, session: Mapping[str, Any]) -> JudgeInput:
        """Build from a `POST /v1/sessions` body (or a dataset line); `output` defaults to the last
        assistant message."""
        messages = [dict(m) for m in session.get("messages") or []]
        output = session.get("output")
        if output is None:
            output = next(
                (str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "assistant"), ""
            )
        return cls(
            session_id=str(session.get("session_id", "")),
            agent=str(session.get("agent", "")),
            flow=str(session.get("flow", "")),
            messages=messages,
            context=[str(c) for c in session.get("context") or []],
            tool_calls=[dict(t) for t in session.get("tool_calls") or []],
            output=str(output),
        )


@dataclass(frozen=True)
class Verdict:
    """A judge's decision. `score` is 0-1 when `outcome` is `ok`, else None; cost is the judge's own."""

    score: float | None
    label: str
    explanation: str
    outcome: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome == OK and self.score is not None

    def passed(self, threshold: float) -> bool | None:
        """True/False against a pass threshold, None when the judge produced no score."""
        return None if self.score is None else self.score >= threshold


def failed(
    outcome: str, explanation: str, *, input_tokens: int = 0, output_tokens: int = 0, cost_usd: float = 0.0
) -> Verdict:
    """A verdict for a judge call that produced no score."""
    return Verdict(None, outcome, explanation, outcome, input_tokens, output_tokens, cost_usd)
