"""`POST /v1/gate/overrides`: a release-gate override, recorded where Prometheus sees it.

`agent-slo gate --override REASON --exporter URL` ships a held change (an incident fix through an
exhausted budget) and tells the exporter, which counts it in `agent_slo_release_overrides_total`
by agent and flow and logs who and why as one JSON line. Who and why never become labels: they are
free text, and a label is a series forever.

    POST /v1/gate/overrides
    {"agent": "cx-support", "flow": "refund", "reason": "hotfix INC-42", "who": "alice"}
    → 201 {"agent": "cx-support", "flow": "refund", "recorded": true}

`flow` is optional (absent: the whole agent, counted under `flow=""`). `parse()` checks the body
against the specs and names every wrong field at once; nothing is counted unless all is right.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from agentslo import names
from agentslo.spec import Spec

PATH: Final = names.OVERRIDES_PATH
MAX_REASON_CHARS: Final = 1000  # a sentence or a ticket reference, not an incident report
MAX_WHO_CHARS: Final = 128
FIELDS: Final = ("agent", "flow", "reason", "who")
REQUIRED: Final = ("agent", "reason", "who")


@dataclass(frozen=True)
class Override:
    agent: str
    flow: str  # "" for the whole agent
    reason: str
    who: str

    def log_record(self) -> dict[str, str]:
        """The audit line the exporter logs (the same keys `agent-slo gate` prints)."""
        fields = {"agent": self.agent, "flow": self.flow, "reason": self.reason, "who": self.who}
        return {"event": "release_gate_override", **fields}


class OverrideError(ValueError):
    """The body is not an override; `problems` are (field, problem) pairs, every one found."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{field}: {problem}" for field, problem in problems))


def _text(body: Mapping[str, Any], field: str, most: int) -> tuple[str | None, str | None]:
    """(value, problem) of a printable text field."""
    value = body.get(field)
    if value is None:
        return None, None if field not in REQUIRED else f"`{field}` is required"
    if not isinstance(value, str) or not value.strip():
        return None, f"`{field}` must be a non-empty string"
    if len(value) > most or not value.isprintable():
        return None, f"`{field}` must be at most {most} printable characters"
    return value, None


def parse(body: Any, specs: Mapping[str, Spec]) -> Override:
    """The override in `body` (decoded JSON), checked against the served specs; raises OverrideError."""
    if not isinstance(body, dict):
        raise OverrideError([("", "the body must be a JSON object with agent, reason, who and maybe flow")])
    problems = [(str(k), f"unknown field; expected {', '.join(FIELDS)}") for k in body if k not in FIELDS]
    values: dict[str, str | None] = {}
    for field, most in (("agent", MAX_WHO_CHARS), ("flow", MAX_WHO_CHARS), ("reason", MAX_REASON_CHARS),
                        ("who", MAX_WHO_CHARS)):  # fmt: skip
        values[field], problem = _text(body, field, most)
        if problem:
            problems.append((field, problem))
    agent, flow = values["agent"], values["flow"]
    spec = specs.get(agent) if agent is not None else None
    if agent is not None and spec is None:
        problems.append(("agent", f"unknown agent {agent!r}; this exporter serves: {', '.join(specs)}"))
    if spec is not None and flow is not None and flow not in spec.flows:
        problems.append(("flow", f"unknown flow {flow!r}; {spec.agent} has: {', '.join(spec.flows)}"))
    if problems:
        raise OverrideError(problems)
    assert agent is not None and values["reason"] is not None and values["who"] is not None
    return Override(agent, flow or "", values["reason"], values["who"])
