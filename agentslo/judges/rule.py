"""Rule judges: deterministic regex, keyword and JSON-field checks on a session's text.

A rule judge scores 1 when every check passes and 0 otherwise, and its explanation names each
failed check. Regular expressions are used as written (add `(?i)` for case-insensitive matching);
keyword checks (`fail_if_contains`, `require_contains`) ignore case.

`applies_to` picks the text: `assistant` (the agent's messages and final output, the default),
`tool_output` (the outputs of its tool calls) or `all` (every message, the retrieved context and
tool outputs). JSON checks read the final output parsed as JSON (a fenced ```json block is accepted).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from agentslo.judges.model import FAIL_LABEL, OK, PASS_LABEL, JudgeInput, Verdict
from agentslo.spec import JsonCheck, RuleJudge

_MISSING = object()
_FENCED_JSON = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


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
    problems: list[str] = []
    for pattern in judge.fail_if_matches:
        if m := _compiled(pattern).search(text):
            problems.append(f"matched forbidden pattern /{pattern}/ ({m.group()!r})")
    if judge.pass_if_matches and not any(_compiled(p).search(text) for p in judge.pass_if_matches):
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
