"""A trace's conversation, from the message content its GenAI spans carry, as a session document.

When an instrumentation captures content, the conventions put it on the spans: the latest
experimental names as `gen_ai.input.messages` / `gen_ai.output.messages` (JSON: role and parts) on
chat spans and `gen_ai.tool.call.arguments` / `gen_ai.tool.call.result` on tool spans; v1.36 and
before as span events (`gen_ai.user.message`, `gen_ai.assistant.message`, `gen_ai.choice`...). Each
chat or tool span's content is kept with its note (`content_of`, bounded per span), and when the task
span is read, `session_of` assembles the session document of `POST /v1/sessions`: the first chat's
input, then each chat's output in order, the tool calls with inputs, outputs and outcomes.

    >>> session_of({"agent": "bot", "flow": "refund", "session_id": "c-1", "outcome": "success"}, notes)
    {'session_id': 'c-1', 'agent': 'bot', 'flow': 'refund', 'messages': [...], 'tool_calls': [...], ...}
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

INPUT_MESSAGES, OUTPUT_MESSAGES = "gen_ai.input.messages", "gen_ai.output.messages"
TOOL_ARGUMENTS, TOOL_RESULT = "gen_ai.tool.call.arguments", "gen_ai.tool.call.result"
# v1.36 and before: one span event per message
MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
CHOICE_EVENT = "gen_ai.choice"
MAX_CONTENT_CHARS = 64 * 1024  # bytes per span (the trace memory bounds the total)
SESSION_FIELDS: tuple[str, ...] = (
    *("outcome", "escalation_required", "duration_s", "cost_usd", "failure_mode", "version"),
    *("prompt_version", "model", "exclude", "trace_id", "time"),
)


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _text(parts: Any) -> str:
    """The text of a message's parts (the latest conventions) or of its content (older ones)."""
    if isinstance(parts, str):
        return parts
    if isinstance(parts, list):
        return "\n".join(
            str(p.get("content", ""))
            for p in parts
            if isinstance(p, dict) and p.get("type", "text") == "text"
        )
    return ""


def _messages(value: Any) -> list[dict[str, Any]]:
    out = []
    for message in _json(value) if isinstance(_json(value), list) else []:
        if isinstance(message, dict) and isinstance(message.get("role"), str):
            content = message.get("parts", message.get("content"))
            out.append({"role": message["role"], "content": _text(content)})
    return out


def may_carry(attrs: dict[str, Any]) -> bool:
    """Whether a span's attributes may hold content (without span events, `content_of` finds none
    otherwise: the usual case, content capture being off by default)."""
    return (
        INPUT_MESSAGES in attrs or OUTPUT_MESSAGES in attrs or TOOL_ARGUMENTS in attrs or TOOL_RESULT in attrs
    )


def content_of(
    name: str, start: int, status: int, events: Iterable[Any], attrs: dict[str, Any], kind: str | None
) -> tuple[dict[str, Any] | None, int]:
    """The content a chat or tool span (its name, start, status code, span events and attributes)
    carries and its size in bytes, or (None, 0) (content capture off, too much of it, another span)."""
    if kind == "turn":
        inputs, outputs = _messages(attrs.get(INPUT_MESSAGES)), _messages(attrs.get(OUTPUT_MESSAGES))
        for event in events:  # the older conventions
            role = MESSAGE_EVENTS.get(event.name)
            fields = {kv.key: kv.value.string_value for kv in event.attributes}
            if role is not None and fields.get("content"):
                inputs.append({"role": role, "content": fields["content"]})
            elif event.name == CHOICE_EVENT:
                message = _json(fields.get("message", ""))
                text = message.get("content") if isinstance(message, dict) else fields.get("content")
                if text:
                    outputs.append({"role": "assistant", "content": str(text)})
        if not inputs and not outputs:
            return None, 0
        content: dict[str, Any] = {"start": start, "inputs": inputs, "outputs": outputs}
    elif kind == "tool":
        if TOOL_ARGUMENTS not in attrs and TOOL_RESULT not in attrs:
            return None, 0
        content = {
            "start": start,
            "tool": attrs.get("gen_ai.tool.name") or name.partition(" ")[2],
            "input": _json(attrs.get(TOOL_ARGUMENTS)),
            "output": _json(attrs.get(TOOL_RESULT)),
            "outcome": "error" if status == 2 or "error.type" in attrs else "ok",
        }
    else:
        return None, 0
    # as JSON, the way a posted session arrives: bytes or other non-JSON attribute values become text
    raw = orjson.dumps(content, default=str)
    return (orjson.loads(raw), len(raw)) if len(raw) <= MAX_CONTENT_CHARS else (None, 0)


def session_of(task: dict[str, Any], contents: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The session document of a task whose chat and tool spans carried content (None without any)."""
    if not contents:
        return None
    ordered = sorted(contents, key=lambda c: c["start"])
    chats = [c for c in ordered if "inputs" in c]
    messages = list(chats[0]["inputs"]) if chats else []
    for chat in chats:
        messages += chat["outputs"]
    tools = [
        {"tool": c["tool"], "input": c["input"], "output": c["output"], "outcome": c["outcome"]}
        for c in ordered
        if "tool" in c
    ]
    session: dict[str, Any] = {
        "session_id": task["session_id"],
        "agent": task["agent"],
        "flow": task["flow"],
        "messages": messages,
        "tool_calls": tools,
    }
    answers = [m["content"] for m in messages if m["role"] == "assistant" and m["content"]]
    if answers:
        session["output"] = answers[-1]
    session |= {k: task[k] for k in SESSION_FIELDS if task.get(k) is not None}
    return session
