"""The session document (`POST /v1/sessions`) and what its own fields say about the SLOs.

A session carries the whole conversation for the judges and the store: messages, the retrieved
context, tool calls with inputs, outputs and outcomes, and the task's outcome. Its own fields mark
it bad for the event SLIs they describe (the task truth table, tool calls, task latency, cost,
escalation), so tail-based retention keeps it and the top-contributors view can rank it; the
counting of those SLIs stays with `POST /v1/events` (a session never counts twice).

    {"session_id": "s-1", "agent": "cx-support", "flow": "refund",
     "messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}],
     "context": ["Refunds are issued within 10 days."],
     "tool_calls": [{"tool": "issue_refund", "input": {"order": "A-1"}, "output": {"ok": true},
                     "outcome": "ok", "input_hash": "sha256:9f2c…", "parent_task_id": "t-1"}],
     "outcome": "success", "failure_mode": null, "version": "2026-11-20", "model": "gpt-4o",
     "time": "2026-11-22T04:00:00Z"}
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Literal

import re2
from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentslo.spec import Spec

MAX_ID = 256  # session and trace ids are ids, not text
MAX_MESSAGES = 2_000
MAX_ITEMS = 1_000  # context passages, tool calls
MAX_FUTURE_S = 300.0  # like events: a time more than 5 minutes ahead is a clock bug, refused
TOP_GROUPS, TOP_SESSIONS = 10, 20
GROUP_BY = ("flow", "failure_mode", "tool", "version")
# A term is "what the group is about" when at least this share of the group's sessions use it.
COMMON_TERM_SHARE = 0.5
_STOPWORDS = frozenset(
    "that this with have from your what when will would could there their about please thanks thank hello "
    "want need just like know where which been were they them then than into also only does help".split()
)
_WORD = re2.compile(r"[a-z][a-z'-]{3,}")  # RE2: linear in what users wrote

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID)]
Short = Annotated[str, Field(min_length=1, max_length=128)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Short
    content: Any = None


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="allow")
    tool: Short
    input: Any = None
    output: Any = None
    outcome: Literal["ok", "wrong_tool", "invalid_params", "empty_result", "error"] | None = None
    latency_s: NonNegative | None = None
    # Evidence, as on `tool_call` events: digests of what went in and came out, and the task the call
    # served. Kept with the stored session (see `SessionStore.encode`), never a label.
    input_hash: Id | None = None
    output_hash: Id | None = None
    parent_task_id: Id | None = None


# The tool-call fields that make a call traceable (`ToolCall` above, `tool_call` events).
EVIDENCE = ("input_hash", "output_hash", "parent_task_id")


class Session(BaseModel):
    """A posted session; unknown top-level keys are refused (a typo would silently lose data)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    session_id: Id
    agent: Short
    flow: Short
    messages: list[Message] = Field(default_factory=list, max_length=MAX_MESSAGES)
    context: list[str] = Field(default_factory=list, max_length=MAX_ITEMS)
    tool_calls: list[ToolCall] = Field(default_factory=list, max_length=MAX_ITEMS)
    output: str | None = None
    outcome: Literal["success", "failure", "abandoned", "escalated"] | None = None
    escalation_required: bool = False
    duration_s: NonNegative | None = None
    cost_usd: NonNegative | None = None
    failure_mode: Short | None = None
    version: Short | None = None
    prompt_version: Short | None = None
    model: Short | None = None
    exclude: Short | None = None
    trace_id: Id | None = None
    time: float | None = None
    bad_slos: list[Short] = Field(default_factory=list, max_length=100)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("time", mode="before")
    @classmethod
    def _time(cls, value: Any) -> float | None:
        return parse_time(value)

    def document(self) -> dict[str, Any]:
        """The session as stored and judged (defaults dropped, time resolved)."""
        return self.model_dump(mode="json", exclude_none=True, exclude_defaults=True) | {"time": self.time}


# The JSON Schema of the document (for the OpenAPI description of POST /v1/sessions and editors).
_MESSAGE = {"type": "object", "required": ["role"], "properties": {"role": {"type": "string"}, "content": {}}}
_TOOL_CALL = {
    "type": "object",
    "required": ["tool"],
    "properties": {
        "tool": {"type": "string"},
        "input": {},
        "output": {},
        "latency_s": {"type": "number", "minimum": 0},
        "outcome": {"enum": ["ok", "wrong_tool", "invalid_params", "empty_result", "error"]},
        **{f: {"type": "string", "minLength": 1, "maxLength": MAX_ID} for f in EVIDENCE},
    },
}
SESSION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["session_id", "agent", "flow"],
    "additionalProperties": False,
    "properties": {
        "session_id": {"type": "string", "minLength": 1, "maxLength": 256},
        "agent": {"type": "string"},
        "flow": {"type": "string"},
        "messages": {"type": "array", "items": _MESSAGE},
        "context": {"type": "array", "items": {"type": "string"}},
        "tool_calls": {"type": "array", "items": _TOOL_CALL},
        "output": {"type": "string"},
        "outcome": {"enum": ["success", "failure", "abandoned", "escalated"]},
        "escalation_required": {"type": "boolean"},
        "duration_s": {"type": "number", "minimum": 0},
        "cost_usd": {"type": "number", "minimum": 0},
        "failure_mode": {"type": "string"},
        "version": {"type": "string"},
        "prompt_version": {"type": "string"},
        "model": {"type": "string"},
        "exclude": {"type": "string"},
        "trace_id": {"type": "string"},
        "time": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "number", "minimum": 0}]},
        "bad_slos": {"type": "array", "items": {"type": "string"}},
        "metadata": {"type": "object"},
    },
}


def parse_time(value: Any) -> float | None:
    """RFC 3339 with an offset, or epoch seconds; None stays None (the caller uses arrival time)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("time must be RFC 3339 with an offset or epoch seconds, not a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError("time in epoch seconds must be a finite, non-negative number")
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise ValueError(f"time {value!r} is not RFC 3339 with an offset (such as 2026-11-22T04:00:00Z)")
        return parsed.timestamp()
    raise ValueError("time must be RFC 3339 with an offset or epoch seconds")


def spec_problems(spec: Spec | None, session: Session, now: float) -> list[tuple[str, str]]:
    """(field, problem) for what the schema cannot know: the spec's agents, flows, exclusions, SLOs."""
    if spec is None:
        return [("agent", f"unknown agent {session.agent!r}")]
    out = []
    if session.flow not in spec.flows:
        out.append(
            (
                "flow",
                f"unknown flow {session.flow!r} of agent {spec.agent}; declared: {', '.join(spec.flows)}",
            )
        )
    if session.exclude is not None and session.exclude not in spec.all_exclusions():
        out.append(
            (
                "exclude",
                f"unknown exclusion {session.exclude!r}; declared: {', '.join(spec.all_exclusions())}",
            )
        )
    for i, slo in enumerate(session.bad_slos):
        if slo not in spec.slos:
            out.append((f"bad_slos[{i}]", f"unknown SLO {slo!r}"))
    if session.time is not None and session.time > now + MAX_FUTURE_S:
        out.append(("time", "time is more than 5 minutes in the future"))
    return out


def _task_bad(session: Session) -> bool | None:
    """The design's task truth table: None when the task SLI does not count this session."""
    if session.outcome is None:
        return None
    if session.outcome == "success":
        return session.escalation_required
    if session.outcome == "escalated":
        return None if session.escalation_required else True
    return True


def sli_bad_events(spec: Spec, session: Session) -> dict[str, int]:
    """SLO → bad events this session's own fields show (before any judge looks at it)."""
    bad: dict[str, int] = {slo: 1 for slo in session.bad_slos}
    for name, slo in spec.slos.items():
        if session.flow not in spec.flows_of(name):
            continue
        sli = slo.sli
        n = 0
        if sli.task is not None:
            n = int(bool(_task_bad(session)))
        elif sli.tool_calls is not None:
            tools = sli.tool_calls.tools
            n = sum(
                1
                for c in session.tool_calls
                if c.outcome not in (None, "ok") and (tools is None or c.tool in tools)
            )
        elif sli.latency is not None and sli.latency.of == "task" and session.duration_s is not None:
            n = int(session.duration_s > sli.latency.under)
        elif sli.cost is not None and session.cost_usd is not None:
            n = int(session.cost_usd > sli.cost.under_usd)
        elif sli.escalation is not None and session.outcome is not None:
            # a session does not say whether context was kept: only the decision is judged here
            verdict = sli.escalation.verdict(
                session.escalation_required, session.outcome == "escalated", True
            )
            n = int(verdict is False)
        if n:
            bad[name] = max(bad.get(name, 0), n)
    return bad


def primary_tool(session: Session) -> str | None:
    """The tool a session is grouped by: its first failed tool call, else its last tool call."""
    failed = next((c.tool for c in session.tool_calls if c.outcome not in (None, "ok")), None)
    return failed or (session.tool_calls[-1].tool if session.tool_calls else None)


def _terms(session: dict[str, Any]) -> set[str]:
    text = " ".join(
        str(m.get("content") or "") for m in session.get("messages", []) if m.get("role") == "user"
    )
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def top_contributors(
    rows: list[dict[str, Any]],
    dims: Iterable[str] = GROUP_BY,
    *,
    groups: int = TOP_GROUPS,
    sessions: int = TOP_SESSIONS,
) -> dict[str, Any]:
    """Rank bad sessions by budget burned, grouped by the dimensions they share, with facet counts
    per dimension and the terms most of a group's users wrote (what the group is "about")."""
    dims = tuple(dims)
    total = sum(r["burn"] for r in rows) or 0.0
    buckets: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        buckets.setdefault(tuple(r[d] for d in dims), []).append(r)
    ranked = sorted(buckets.items(), key=lambda kv: (-sum(r["burn"] for r in kv[1]), -len(kv[1])))

    def share(burn: float) -> float:
        return round(burn / total, 4) if total else 0.0

    out_groups = []
    for key, members in ranked[:groups]:
        burn = sum(r["burn"] for r in members)
        counts = Counter(t for r in members for t in _terms(r["body"]))
        common = [
            t for t, n in counts.most_common(5) if n >= max(2, math.ceil(COMMON_TERM_SHARE * len(members)))
        ]
        out_groups.append(
            {
                "by": dict(zip(dims, key, strict=True)),
                "sessions": len(members),
                "bad_events": sum(r["bad_events"] for r in members),
                "burn": round(burn, 6),
                "share": share(burn),
                "common_terms": common,
                "first": min(r["time"] for r in members),
                "last": max(r["time"] for r in members),
                "session_ids": [r["session_id"] for r in members[:sessions]],
            }
        )
    facets: dict[str, list[dict[str, Any]]] = {}
    for d in dims:
        per: dict[Any, list[float]] = {}
        for r in rows:
            per.setdefault(r[d], []).append(r["burn"])
        facets[d] = [
            {"value": v, "sessions": len(b), "burn": round(sum(b), 6), "share": share(sum(b))}
            for v, b in sorted(per.items(), key=lambda kv: -sum(kv[1]))
        ]
    top = [
        {k: r[k] for k in ("session_id", "agent", "flow", "time", "burn", "bad_events", *dims)}
        for r in rows[:sessions]
    ]
    return {
        "total_sessions": len(rows),
        "total_burn": round(total, 6),
        "groups": out_groups,
        "facets": facets,
        "sessions": top,
    }
