"""Datasets built from human-labelled sessions, and the reader `agent-slo calibrate` uses.

- **calibration** (JSONL): one line per labelled judge verdict, with the session, the judge's score
  and what the human said the verdict should have been (`human_pass`), balanced per judge so that
  passes and failures are equally represented (agreement on a 95%-pass sample says little).
- **regression** (JSONL): one line per session a human confirmed as a `real_failure`.
- **regression scenarios** (YAML, `agent-slo/scenarios/v1`): the regression set as scripted probes
  that replay each failed conversation's user turns and tool results and assert that the judges
  that failed it now pass, so every production failure becomes a synthetic check.

A calibration line (also what `calibrate --dataset` reads; `human_pass` may instead be given as
`label` + `judge_passed`, or `expected: pass|fail`):

    {"session_id": "s-1", "agent": "cx-support", "flow": "refund", "judge": "faithfulness",
     "judge_version": "3", "judge_score": 0.42, "judge_passed": false, "label": "false_positive",
     "human_pass": true, "messages": [...], "context": [...], "tool_calls": [...], "output": "..."}
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from agentslo.feedback.sampling import sample_point
from agentslo.judges.model import JudgeInput
from agentslo.spec import LLMJudge, Spec

CORRECT, FALSE_POSITIVE, REAL_FAILURE, EDGE_CASE = "correct", "false_positive", "real_failure", "edge_case"
_SESSION_FIELDS = ("messages", "context", "tool_calls", "output")
_SCENARIO_NAME_BAD = re.compile(r"[^a-z0-9_.-]+")
# The rubric of a regression scenario whose failure no judge caught (an SLI or a reviewer did).
DEFAULT_RUBRIC = "The agent resolves the user's request correctly and within policy."


def human_pass(label: str | None, judge_passed: bool | None) -> bool | None:
    """What a review label says the right verdict was; None when it says nothing usable."""
    if label == CORRECT:
        return judge_passed
    if label == FALSE_POSITIVE:
        return True
    if label == REAL_FAILURE:
        return False
    return None


def _session_part(session: dict[str, Any]) -> dict[str, Any]:
    case = JudgeInput.from_session(session)
    return {
        "messages": case.messages,
        "context": case.context,
        "tool_calls": case.tool_calls,
        "output": case.output,
    }


def calibration_set(
    reviews: Iterable[dict[str, Any]], *, balanced: bool = True
) -> tuple[list[dict[str, Any]], bool]:
    """Calibration lines from labelled reviews, and whether every judge's set could be balanced."""
    by_judge: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    for r in reviews:
        if not r.get("judge"):
            continue
        truth = human_pass(r.get("label"), r.get("passed"))
        if truth is None:
            continue
        line = {
            "session_id": r["session_id"],
            "agent": r["agent"],
            "flow": r["flow"],
            "judge": r["judge"],
            "judge_version": r["judge_version"],
            "judge_score": r["score"],
            "judge_passed": r["passed"],
            "label": r["label"],
            "human_pass": truth,
            "note": r.get("note"),
        } | _session_part(r["session"])
        by_judge.setdefault(r["judge"], ([], []))[0 if truth else 1].append(line)
    out: list[dict[str, Any]] = []
    all_balanced = True
    for judge, (passes, fails) in sorted(by_judge.items()):
        k = min(len(passes), len(fails))
        if not balanced or k == 0:
            all_balanced = all_balanced and (not balanced or len(passes) == len(fails))
            out += passes + fails
            continue

        def order(line: dict[str, Any], judge: str = judge) -> float:
            return sample_point(line["session_id"], judge, "calibration")

        out += sorted(passes, key=order)[:k] + sorted(fails, key=order)[:k]
    return out, all_balanced


def regression_set(reviews: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per session confirmed as a real failure, with the judges that failed it."""
    sessions: dict[str, dict[str, Any]] = {}
    for r in reviews:
        entry = sessions.setdefault(
            r["session_id"],
            {
                "session_id": r["session_id"],
                "agent": r["agent"],
                "flow": r["flow"],
                "real_failure": False,
                "failed_judges": [],
                "notes": [],
            }
            | _session_part(r["session"]),
        )
        if r.get("label") == REAL_FAILURE:
            entry["real_failure"] = True
            if r.get("judge") and r["judge"] not in entry["failed_judges"]:
                entry["failed_judges"].append(r["judge"])
            if r.get("note"):
                entry["notes"].append(r["note"])
    lines = [s for s in sessions.values() if s.pop("real_failure")]
    return sorted(lines, key=lambda s: s["session_id"])


def _scenario_name(session_id: str, taken: set[str]) -> str:
    base = "regression-" + _SCENARIO_NAME_BAD.sub("-", session_id.lower()).strip("-.")
    name = base[:63]
    if name in taken or len(base) > 63:
        digest = hashlib.sha256(session_id.encode()).hexdigest()[:8]
        name = f"{base[:54]}-{digest}"
    taken.add(name)
    return name


def _tool_scripts(calls: list[dict[str, Any]]) -> dict[str, Any]:
    tools: dict[str, Any] = {}
    for call in calls:
        name = call.get("tool") or call.get("name")
        if not isinstance(name, str) or not name:
            continue
        result = call.get("output", call.get("result"))
        script = tools.setdefault(name, {"results": [], "result": result})
        script["result"] = result if result is not None else script["result"]
        args = call.get("input", call.get("arguments"))
        if isinstance(args, dict) and args:
            script["results"].append({"when": args, "result": result})
    for script in tools.values():
        if not script["results"]:
            del script["results"]
        if script.get("result") is None:
            script["result"] = {"ok": True}
    return tools


def regression_scenarios(lines: Iterable[dict[str, Any]], spec: Spec) -> tuple[dict[str, Any], list[str]]:
    """A scenario file (agent-slo/scenarios/v1) from regression lines of `spec`'s agent, and the ids of
    sessions that could not become a scenario (no user turn, or nothing to assert)."""
    scenarios: dict[str, Any] = {}
    skipped: list[str] = []
    taken: set[str] = set()
    has_llm = any(isinstance(j, LLMJudge) for j in spec.judges.values())
    for line in lines:
        users = [m.get("content") for m in line.get("messages", []) if m.get("role") == "user"]
        users = [u for u in users if isinstance(u, str) and u.strip()]
        judges = [j for j in line.get("failed_judges", []) if j in spec.judges]
        asserts: list[dict[str, Any]] = [{"type": "llm-rubric", "judge": j} for j in judges]
        if not asserts and has_llm:
            rubric = " ".join([DEFAULT_RUBRIC, *line.get("notes", [])])
            asserts.append({"type": "llm-rubric", "value": rubric})
        if line.get("agent") != spec.agent or line.get("flow") not in spec.flows or not users or not asserts:
            skipped.append(line["session_id"])
            continue
        body: dict[str, Any] = {
            "flow": line["flow"],
            "description": f"Replays session {line['session_id']}, labelled a real failure."
            + (f" Reviewer: {'; '.join(line['notes'])}" if line.get("notes") else ""),
            "tags": ["regression"],
        }
        if tools := _tool_scripts(line.get("tool_calls", [])):
            body["tools"] = tools
        body["turns"] = [{"user": u} for u in users]
        body["assert"] = asserts
        scenarios[_scenario_name(line["session_id"], taken)] = body
    document = {"version": "agent-slo/scenarios/v1", "agent": spec.agent, "scenarios": scenarios}
    return document, skipped


@dataclass(frozen=True)
class LabelledCase:
    """One line of a calibration dataset: the session and the verdict a human says is right."""

    case: JudgeInput
    human_pass: bool
    judge: str | None
    line: int


class DatasetError(ValueError):
    """A dataset file that cannot be read; the message names the file and line."""


def read_dataset(path: str | Path) -> list[LabelledCase]:
    """Read a calibration JSONL file (see the module docstring); every bad line is reported at once."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the dataset: {exc}") from None
    cases: list[LabelledCase] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            problems.append(f"{path}:{number}: not JSON: {exc}")
            continue
        if not isinstance(data, dict):
            problems.append(f"{path}:{number}: a line must be a JSON object (a labelled session)")
            continue
        truth = data.get("human_pass")
        if truth is None and "expected" in data:
            truth = {"pass": True, "fail": False}.get(str(data["expected"]).lower())
        if truth is None:
            truth = human_pass(data.get("label"), data.get("judge_passed"))
        if not isinstance(truth, bool):
            problems.append(
                f"{path}:{number}: no usable label: give `human_pass` (true/false), `expected` (pass/fail), "
                "or `label` (correct/false_positive/real_failure) with `judge_passed`"
            )
            continue
        if not isinstance(data.get("messages", []), list) or not isinstance(data.get("context", []), list):
            problems.append(f"{path}:{number}: `messages` and `context` must be lists")
            continue
        cases.append(LabelledCase(JudgeInput.from_session(data), truth, data.get("judge"), number))
    if problems:
        raise DatasetError("\n".join(problems))
    return cases


def dumps_jsonl(lines: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)
