"""A finished task as events, built from what its scope saw (pure functions: no I/O, no client).

`task_event` is the `task` event, `escalation_event` the `escalation` event when the task knows
anything about escalation (it escalated, or whether a person was needed was said), and
`task_session` the session document `task.attach_session()` asked for, completed with the task's
outcome, duration, cost and ids. The client adds what every event carries (agent, flow, ids, time).
"""

from __future__ import annotations

from typing import Any

from agentslo_client._scopes import Task, outcome_of

_COPIED = ("model", "version", "prompt_version")  # task attributes that are event fields as they are
_TO_SESSION = ("outcome", "failure_mode", "cost_usd", "duration_s", "model", "version", "prompt_version")


def task_event(task: Task, error: BaseException | None) -> dict[str, Any]:
    """The `task` event. An exception leaving the block overrides no outcome or `success` (a task
    that called success() and then raised did not succeed); an explicit failure, abandonment or
    escalation stays."""
    outcome = task.outcome
    if error is not None and outcome in (None, "success"):
        outcome = outcome_of(error)
    event: dict[str, Any] = {"type": "task", "outcome": outcome or "success", "duration_s": task.duration_s}
    if task.escalation_required is not None:
        event["escalation_required"] = bool(task.escalation_required)
    if task.failure_mode is not None:
        event["failure_mode"] = task.failure_mode
    if task.cost_usd is not None:
        event["cost_usd"] = task.cost_usd
    steps = task.steps if task.steps is not None else task._steps
    if steps:
        event["steps"] = steps
    if task.input_tokens or task.output_tokens:
        event["tokens"] = {"input": task.input_tokens, "output": task.output_tokens}
    for name in _COPIED:
        value = getattr(task, name)
        if value is not None:
            event[name] = value
    return event


def escalation_event(task: Task) -> dict[str, Any] | None:
    """The `escalation` event of a task that escalated or said whether it needed to, else None."""
    if not task.escalated and task.escalation_required is None:
        return None
    event: dict[str, Any] = {
        "type": "escalation",
        "required": bool(task.escalation_required),
        "performed": task.escalated,
    }
    if task.escalated:
        event["context_preserved"] = task.context_preserved is not False
    return event


def task_session(task: Task, event: dict[str, Any]) -> dict[str, Any] | None:
    """The session document the task was asked to submit (`attach_session`), else None."""
    if task._session is None:
        return None
    session = dict(task._session)
    if session.get("tool_calls") is None:
        session["tool_calls"] = task.tool_calls
    metadata = dict(session.get("metadata") or {})
    if task.reason:
        metadata["failure_reason"] = task.reason
    session["metadata"] = metadata
    session.update((name, event[name]) for name in _TO_SESSION if name in event)
    if task.escalation_required is not None:
        session["escalation_required"] = bool(task.escalation_required)
    session["session_id"] = task.session_id
    session["trace_id"] = task.trace_id
    session["exclude"] = task.exclude
    return session
