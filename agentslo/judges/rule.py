"""Rule judges: deterministic regex, keyword and JSON-field checks on a session's text.

A rule judge scores 1 when every check passes and 0 otherwise, and its explanation names each
failed check. Regular expressions are used as written, in RE2 syntax (add `(?i)` for
case-insensitive matching); keyword checks (`fail_if_contains`, `require_contains`) ignore case.

Every check takes time linear in the session's text, whatever the text and the pattern: regexes run
on RE2 (no backtracking, so no lookarounds or backreferences; the spec loader refuses those), and
keyword checks are plain substring searches. A judge therefore cannot be made to hang by what a user
writes, though a long session still costs its length: the judging pipeline runs rule judges on a
worker thread (RE2 releases the GIL while it matches), never on the event loop.

`applies_to` picks the text: `assistant` (the agent's messages and final output, the default),
`tool_output` (the outputs of its tool calls) or `all` (every message, the retrieved context and
tool outputs). JSON checks read the final output parsed as JSON (a fenced ```json block is accepted).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import re2

from agentslo.judges.model import FAIL_LABEL, OK, PASS_LABEL, JudgeInput, Verdict
from agentslo.spec import JsonCheck, RuleJudge

_MISSING = object()
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_FENCED_JSON = re2.compile(r"(?s)```(?:json)?\s*(.*?)```", _RE2_OPTIONS)
# How much of a forbidden match the explanation quotes: enough to see why, never a whole transcript.
MAX_QUOTE_CHARS = 80


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    """The RE2 program of a spec regex (the spec loader has already checked that it compiles)."""
    return re2.compile(pattern, _RE2_OPTIONS)


# RE2's `\s` is ASCII whitespace where Python's also matched Unicode spaces (no-break, thin, ...):
# regexes read the text with those mapped to a plain space, so `\s` keeps matching what it did.
_UNICODE_SPACES = (0x0B, *range(0x1C, 0x20), 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029)
_SPACES = {c: " " for c in (*_UNICODE_SPACES, 0x202F, 0x205F, 0x3000)}


def _quote(text: str) -> str:
    return repr(text if len(text) <= MAX_QUOTE_CHARS else text[: MAX_QUOTE_CHARS - 1] + "…")


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def subject_text(judge: RuleJudge, case: JudgeInput) -> str:
    """The text the judge's checks read, per its `applies_to`."""
    tool_outputs = [_as_text(t.get("output", t.get("result"))) for t in case.tool_calls]
    if judge.applies_to == "tool_output":
        parts = tool_outputs
    elif judge.applies_to == "all":
        parts = [_as_text(m.get("content")) for m in case.messages] + list(case.context) + tool_outputs
        parts.append(case.output)
    else:
        parts = [_as_text(m.get("content")) for m in case.messages if m.get("role") == "assistant"]
        if case.output and case.output not in parts:
            parts.append(case.output)
    return "\n".join(p for p in parts if p)


def _parse_json(text: str) -> Any:
    fenced = _FENCED_JSON.search(text)
    return json.loads(fenced.group(1) if fenced else text)


def _lookup(data: Any, path: str) -> Any:
    node = data
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _json_problems(checks: tuple[JsonCheck, ...], output: str) -> list[str]:
    try:
        data = _parse_json(output)
    except ValueError:
        return ["the output is not JSON, so its fields cannot be checked"]
    problems = []
    for check in checks:
        value = _lookup(data, check.path)
        if value is _MISSING:
            if check.present:
                problems.append(f"JSON field `{check.path}` is missing")
            continue
        if not check.present:
            problems.append(f"JSON field `{check.path}` must be absent")
        if check.equals is not None and value != check.equals:
            problems.append(f"JSON field `{check.path}` is {value!r}, expected {check.equals!r}")
        if check.matches is not None and not _compiled(check.matches).search(_as_text(value)):
            problems.append(f"JSON field `{check.path}` does not match /{check.matches}/")
    return problems


def evaluate(judge: RuleJudge, case: JudgeInput) -> Verdict:
    """Run every check of a rule judge; score 1 and label `pass` when none fails."""
    text = subject_text(judge, case)
    lowered = text.lower()
    spaced = text.translate(_SPACES) if judge.fail_if_matches or judge.pass_if_matches else text
    problems: list[str] = []
    for pattern in judge.fail_if_matches:
        if m := _compiled(pattern).search(spaced):
            problems.append(f"matched forbidden pattern /{pattern}/ ({_quote(m.group())})")
    if judge.pass_if_matches and not any(_compiled(p).search(spaced) for p in judge.pass_if_matches):
        problems.append(
            "matched none of the required patterns " + ", ".join(f"/{p}/" for p in judge.pass_if_matches)
        )
    for word in judge.fail_if_contains:
        if word.lower() in lowered:
            problems.append(f"contains forbidden text {word!r}")
    for word in judge.require_contains:
        if word.lower() not in lowered:
            problems.append(f"does not contain required text {word!r}")
    if judge.json_fields:
        problems.extend(_json_problems(judge.json_fields, case.output))
    if problems:
        return Verdict(0.0, FAIL_LABEL, "; ".join(problems), OK)
    return Verdict(1.0, PASS_LABEL, "every check passed", OK)
