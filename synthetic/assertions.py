"""Evaluate scenario assertions against what the agent did (promptfoo semantics where they overlap).

Every assertion yields a score in [0, 1] and a pass/fail; `not-` inverts both. A group (a turn, the
scenario, an `assert-set`) passes when every member with weight > 0 passes, or, with a `threshold`,
when the weighted mean score reaches it. Messages always say what was expected and what came.

Scope: turn assertions see that turn's reply, tool calls, steps, latency and cost. Scenario
assertions see every turn's tool calls, steps, latency and cost summed, the final reply for
`equals`/`is-json`/`json-path`, and every reply joined for the text checks (so `not-contains` at the
scenario level means "never said").
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from agentslo.durations import parse_threshold_seconds
from agentslo.scenario import Assertion
from agentslo.synthetic.records import AssertionResult, ToolCall

EXCERPT: Final = 160  # characters of the agent's reply quoted in a failure message
STRUCTURED: Final = ("equals", "is-json", "json-path")

# llm-rubric is delegated (it needs the spec and a judge client):
# (assertion, view) -> (score or None when the judge failed, explanation, the judge's pass threshold)
RubricFn = Callable[[Assertion, "View"], Awaitable[tuple[float | None, str, float]]]
DEFAULT_RUBRIC_THRESHOLD: Final = 0.5


@dataclass
class View:
    """What one scope of a conversation shows an assertion."""

    scope: str
    output: str  # the reply (turn) or every reply joined (scenario)
    final: str  # the last reply of the scope
    tool_calls: list[ToolCall] = field(default_factory=list)
    steps: int = 0
    latency_s: float = 0.0
    cost_usd: float | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)  # the transcript so far (for judges)
    flow: str = ""
    session_id: str = ""


def _quote(text: str) -> str:
    text = text.replace("\n", " ")
    return repr(text if len(text) <= EXCERPT else text[: EXCERPT - 3] + "...")


def _tools_seen(calls: Sequence[ToolCall]) -> str:
    return "[" + ", ".join(c.name for c in calls) + "]" if calls else "no tool call"


def _json_get(data: Any, path: str) -> tuple[bool, Any]:
    """Follow a dotted path (`refund.days`, `items.0.sku`, optional leading `$.`) into parsed JSON."""
    node = data
    for part in path.removeprefix("$.").split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _parse_json(text: str) -> tuple[bool, Any, str]:
    try:
        return True, json.loads(text), ""
    except (TypeError, ValueError) as exc:
        return False, None, str(exc)


def _check(a: Assertion, view: View) -> tuple[bool, str]:
    """(holds, message) for the base type of a deterministic assertion, before negation."""
    base, val = a.base, a.value
    text = view.final if base in STRUCTURED else view.output
    got = f"got {_quote(text)}"
    if base == "equals":
        if isinstance(val, dict | list):
            ok, parsed, _ = _parse_json(text)
            return ok and parsed == val, f"expected JSON equal to {json.dumps(val)}; {got}"
        return text.strip() == str(val).strip(), f"expected exactly {_quote(str(val))}; {got}"
    if base in ("contains", "icontains"):
        hay, needle = (text.lower(), val.lower()) if base == "icontains" else (text, val)
        return needle in hay, f"expected the reply to contain {_quote(val)}; {got}"
    if base in ("contains-any", "contains-all", "icontains-any", "icontains-all"):
        fold = base.startswith("i")
        hay = text.lower() if fold else text
        found = [s for s in val if (s.lower() if fold else s) in hay]
        if base.endswith("any"):
            return bool(found), f"expected any of {val}; found {found or 'none'} in {_quote(text)}"
        missing = [s for s in val if s not in found]
        return not missing, f"expected all of {val}; missing {missing or 'none'} in {_quote(text)}"
    if base == "regex":
        match = re.search(val, text)
        seen = f"matched {match.group(0)!r} in" if match else "no match in"
        return match is not None, f"expected a match for /{val}/; {seen} {_quote(text)}"
    if base == "is-json":
        ok, _, err = _parse_json(text)
        return ok, f"expected the reply to be JSON; {got}" + (f" ({err})" if err else "")
    if base == "json-path":
        ok, parsed, err = _parse_json(text)
        path = val["path"]
        if not ok:
            return False, f"expected JSON with `{path}`; the reply is not JSON ({err}): {_quote(text)}"
        present, found = _json_get(parsed, path)
        if "equals" in val:
            return present and found == val["equals"], (
                f"expected `{path}` = {json.dumps(val['equals'])}; got "
                + (json.dumps(found) if present else "no such field")
            )
        if "matches" in val:
            holds = present and re.search(val["matches"], str(found)) is not None
            return holds, f"expected `{path}` to match /{val['matches']}/; got " + (
                json.dumps(found) if present else "no such field"
            )
        want = val.get("present", True)
        return present == want, f"expected `{path}` to be {'present' if want else 'absent'}; " + (
            f"got {json.dumps(found)}" if present else "it is absent"
        )
    if base == "tool-called":
        names = [c.name for c in view.tool_calls]
        return val in names, f"expected a call to `{val}`; got {_tools_seen(view.tool_calls)}"
    if base == "tool-args-match":
        calls = [c for c in view.tool_calls if c.name == val["tool"]]
        want = val["args"]
        holds = any(all(c.arguments.get(k) == w for k, w in want.items()) for c in calls)
        seen = "; ".join(json.dumps(c.arguments, sort_keys=True) for c in calls) or "no call to it"
        return holds, f"expected `{val['tool']}` called with {json.dumps(want, sort_keys=True)}; got {seen}"
    if base == "tool-sequence":
        remaining = iter(c.name for c in view.tool_calls)
        holds = all(any(n == want for n in remaining) for want in val)  # ordered subsequence
        return holds, f"expected tools in order {val}; got {_tools_seen(view.tool_calls)}"
    if base == "step-count":
        lo, hi = (0, val) if isinstance(val, int) else (val.get("min", 0), val.get("max"))
        holds = view.steps >= lo and (hi is None or view.steps <= hi)
        bounds = (
            f"between {lo} and {hi}"
            if hi is not None and lo
            else (f"at most {hi}" if hi is not None else f"at least {lo}")
        )
        return holds, f"expected {bounds} steps (LLM calls + tool calls); got {view.steps}"
    if base == "latency-under":
        limit = parse_threshold_seconds(val)
        return view.latency_s < limit, f"expected a reply within {limit:g}s; took {view.latency_s:.3f}s"
    if base == "cost-under":
        if view.cost_usd is None:
            return (
                False,
                f"expected cost under ${val:g}; the target reported no cost (add `pricing:` to the file)",
            )
        return view.cost_usd < val, f"expected cost under ${val:g}; got ${view.cost_usd:.6f}"
    raise AssertionError(f"unhandled assertion type {a.type}")  # the loader refuses unknown types


def group_passes(results: Sequence[AssertionResult], threshold: float | None) -> tuple[bool, float]:
    """(passed, weighted score) of a group: all weighted members pass, or the weighted mean ≥ threshold."""
    weighted = [r for r in results if r.weight > 0]
    total = sum(r.weight for r in weighted)
    score = sum(r.score * r.weight for r in weighted) / total if total else 1.0
    if threshold is not None:
        return score >= threshold - 1e-12, score
    return all(r.passed for r in weighted), score


async def evaluate(
    assertions: Sequence[Assertion], view: View, rubric: RubricFn | None = None
) -> list[AssertionResult]:
    """Evaluate assertions on one scope; llm-rubric goes through `rubric` (the judge catalogue)."""
    return [await evaluate_one(a, view, rubric) for a in assertions]


async def evaluate_one(a: Assertion, view: View, rubric: RubricFn | None) -> AssertionResult:
    if a.base == "assert-set":
        children = await evaluate(a.assert_ or (), view, rubric)
        passed, weighted = group_passes(children, a.threshold)
        failed = [c.label for c in children if not c.passed]
        rule = f"weighted score ≥ {a.threshold:g}" if a.threshold is not None else "every check to pass"
        message = f"expected {rule}; got score {weighted:.2f}" + (
            f", failed: {'; '.join(failed)}" if failed else ""
        )
        return AssertionResult(
            view.scope, a.type, a.label(), passed, weighted, a.weight, message, children=children
        )
    definite = True
    score: float | None
    if a.base == "llm-rubric":
        if rubric is None:
            score, why, judge_threshold = (
                None,
                "no judge available to grade the rubric",
                DEFAULT_RUBRIC_THRESHOLD,
            )
        else:
            score, why, judge_threshold = await rubric(a, view)
        threshold = a.threshold if a.threshold is not None else judge_threshold
        definite = score is not None  # no score (judge error) fails either way, negated or not
        holds = score is not None and score >= threshold
        shown = f"{score:.2f}" if score is not None else "no score"
        message = f"expected a judge score ≥ {threshold:g}; got {shown}" + (f" ({why})" if why else "")
        raw = score if score is not None else 0.0
    else:
        holds, message = _check(a, view)
        raw = 1.0 if holds else 0.0
    if a.negated and definite:
        holds, raw = not holds, 1.0 - raw
        message = message.replace("expected ", "expected not ", 1)
    return AssertionResult(view.scope, a.type, a.label(), holds, raw, a.weight, message)
