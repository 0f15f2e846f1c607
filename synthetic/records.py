"""What a probe run produced: turns, tool calls, assertion results, and the scenario's verdict.

Plain dataclasses so the runner, the assertions, the JUnit writer and the sinks share one shape.
`ScenarioResult.event()` is the `synthetic` event the exporter ingests (DESIGN.md, events table).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from agentslo.scenario import Scenario
from agentslo.spec import PROBER_ERROR_EXCLUSION

SYNTHETIC_EVENT = "synthetic"


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]
    result: Any = None


@dataclass
class TurnRecord:
    """One user turn and everything the agent did until it answered."""

    user: str
    output: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    steps: int = 0  # LLM calls + tool calls, as in the `steps` of a task event
    latency_s: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None  # None: the target reported no cost and no pricing applies


@dataclass
class AssertionResult:
    scope: str  # "turn 1", "turn 2", ..., or "scenario"
    type: str
    label: str
    passed: bool
    score: float
    weight: float
    message: str  # what was expected and what came (also on success, for the JUnit report)
    skipped: bool = False  # the turn never ran (the target failed earlier)
    children: list[AssertionResult] = field(default_factory=list)


@dataclass
class ScenarioResult:
    scenario: Scenario
    passed: bool
    duration_s: float
    turns: list[TurnRecord]
    assertions: list[AssertionResult]
    error: str | None = None  # the target failed: unreachable, timed out, malformed reply, loop
    session_id: str = ""
    finished_at: float = field(default_factory=time.time)
    internal: bool = False  # the prober itself failed: reported, exit 1, and sent excluded (prober_error)

    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def agent(self) -> str:
        return self.scenario.agent

    @property
    def flow(self) -> str:
        return self.scenario.flow

    def failures(self) -> list[AssertionResult]:
        """Failed assertions, innermost first for assert-sets."""
        out: list[AssertionResult] = []

        def walk(results: list[AssertionResult]) -> None:
            for r in results:
                if not r.passed and not r.skipped:
                    if r.children:
                        walk(r.children)
                    else:
                        out.append(r)

        walk(self.assertions)
        return out

    def summary(self) -> str:
        """One line for logs: verdict, time and the first reason."""
        verdict = "PASS" if self.passed else "FAIL"
        reason = self.error or next((f"{f.scope}: {f.label}: {f.message}" for f in self.failures()), "")
        return f"{verdict} {self.agent}/{self.name} ({self.flow}) {self.duration_s:.2f}s" + (
            f" — {reason}" if reason and not self.passed else ""
        )

    def event(self) -> dict[str, Any]:
        """The `synthetic` event for the exporter's POST /v1/events. A prober's own failure is sent
        excluded (`prober_error`): counted and shown, never spent from the agent's budget."""
        event: dict[str, Any] = {
            "type": SYNTHETIC_EVENT,
            "agent": self.agent,
            "flow": self.flow,
            "scenario": self.name,
            "passed": self.passed,
            "duration_s": round(self.duration_s, 6),
            "time": self.finished_at,
        }
        if self.session_id:
            event["session_id"] = self.session_id
        if self.internal:
            event["exclude"] = PROBER_ERROR_EXCLUSION
        return event
