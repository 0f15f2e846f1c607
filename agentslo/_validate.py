"""Loading and validation of SLO specs: every problem at once, each with file, line and key path.

Structure is checked by the pydantic models in `agentslo.spec`; entries with structural problems
are set aside and the rest is checked for meaning (references, `auto` objectives, budget
allocation), so one run reports everything a user has to fix.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from agentslo import names
from agentslo import spec_model as m
from agentslo._yamlmap import Path as KeyPath
from agentslo._yamlmap import line_for, load_with_lines

_NAMED = ("flows", "owners", "judges", "slos")
_REQUIRED_PLACEHOLDERS: dict[str, Any] = {
    "version": m.VERSION,
    "agent": "unnamed",
    "owners": {},
    "flows": {},
    "slos": {},
}


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f" {self.path}:" if self.path else ""
        return f"{self.file}:{self.line}:{where} {self.message}"


class SpecError(ValueError):
    """One or more problems in spec files; `str()` lists them all, one per line."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


def _vocabulary() -> set[str]:
    words: set[str] = set(m.SLI_KINDS)
    for obj in vars(m).values():
        if isinstance(obj, type) and issubclass(obj, BaseModel) and obj is not BaseModel:
            for fname, field in obj.model_fields.items():
                words.add(field.alias or fname)
    return words


_VOCABULARY = _vocabulary()


def _dotted(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(err: Any) -> str:
    kind, loc, msg = err["type"], err["loc"], str(err["msg"])
    if kind == "extra_forbidden":
        key = str(loc[-1])
        if len(loc) >= 2 and loc[-2] == "sli":
            close = difflib.get_close_matches(key, m.SLI_KINDS, n=1, cutoff=0.6)
            hint = f"did you mean `{close[0]}`?" if close else f"one of: {', '.join(m.SLI_KINDS)}"
            return f"unknown SLI kind `{key}`; {hint}"
        close = difflib.get_close_matches(key, _VOCABULARY, n=1, cutoff=0.75)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        return f"unknown key `{key}`{hint}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        ctx = err.get("ctx", {})
        got = f" (got {ctx['tag']!r})" if "tag" in ctx else ""
        key = ctx.get("discriminator", "type").strip("'")
        return f"`{key}` must be one of {ctx.get('expected_tags', '')}{got}"
    if kind == "missing":
        return f"`{loc[-1]}` is required"
    if kind == "literal_error":
        return f"{msg.replace('Input should be', 'must be')} (got {err.get('input')!r})"
    if kind == "too_short" and isinstance(err.get("input"), dict):
        return "must declare at least one entry"
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return msg[0].lower() + msg[1:] if msg else msg


def _clean_loc(loc: Sequence[str | int]) -> KeyPath:
    # pydantic puts the discriminator tag and union branch names in `loc`; drop them from key paths.
    out: list[str | int] = []
    for i, part in enumerate(loc):
        if i >= 2 and loc[0] == "judges" and i == 2 and part in ("llm", "rule"):
            continue
        if isinstance(part, str) and ("[" in part or part in ("function-after", "function-before")):
            continue
        out.append(part)
    return tuple(out)


def _prune(data: dict[str, Any], loc: KeyPath, pruned: set[KeyPath]) -> bool:
    """Set aside the smallest entry holding a structural error; False when nothing could be removed."""
    if not loc:
        return False
    head = loc[0]
    if head in _NAMED and len(loc) >= 2 and isinstance(data.get(head), dict):
        if loc[:2] in pruned:
            return True
        if loc[1] in data[head]:
            del data[head][loc[1]]
            pruned.add(loc[:2])
            return True
    if head in data:
        if head in _REQUIRED_PLACEHOLDERS:
            if data[head] == _REQUIRED_PLACEHOLDERS[head]:
                return False
            data[head] = copy.deepcopy(_REQUIRED_PLACEHOLDERS[head])
        else:
            del data[head]
        return True
    if head in _REQUIRED_PLACEHOLDERS:
        data[head] = copy.deepcopy(_REQUIRED_PLACEHOLDERS[head])
        return True
    return False


def parse_spec(text: str, file: str = "<spec>") -> m.Spec:
    """Validate one spec document; raise SpecError listing every problem."""
    data, lines, yaml_problems = load_with_lines(text)
    problems = [Problem(file, p.line, _dotted(p.path), p.message) for p in yaml_problems]
    if data is None and not yaml_problems:
        raise SpecError(
            [Problem(file, 1, "", "the file is empty; a spec starts with `version: agent-slo/v1`")]
        )
    if not isinstance(data, dict):
        if not yaml_problems:
            problems.append(
                Problem(file, 1, "", "a spec must be a mapping of keys such as version, agent, flows, slos")
            )
        raise SpecError(problems)

    def add(path: KeyPath, message: str) -> None:
        problems.append(Problem(file, line_for(lines, path), _dotted(path), message))

    if data.get("version") != m.VERSION:
        add(("version",), f"must be `{m.VERSION}` (got {data.get('version')!r})")
        data = {**data, "version": m.VERSION}
    for key in ("flows", "slos"):
        if key in data and not data[key]:
            add((key,), f"declare at least one entry under `{key}`")
    declared = {k: set(v) if isinstance(v := data.get(k), dict) else set() for k in _NAMED}
    work = copy.deepcopy(data)
    spec: m.Spec | None = None
    pruned: set[KeyPath] = set()
    for _ in range(200):
        try:
            spec = m.Spec.model_validate(work)
            break
        except ValidationError as exc:
            progressed = False
            for err in exc.errors():
                loc = _clean_loc(err["loc"])
                if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
                    loc = (*loc, "type")
                add(loc, _message(err))
                progressed = _prune(work, loc, pruned) or progressed
            if not progressed:
                break
    if spec is not None:
        for path, message in _semantic_problems(spec, declared):
            add(path, message)
    # The entries set aside for structural errors still have their references checked, so a broken
    # SLO that also names an undeclared owner gets both problems in this one run.
    for path, message in _set_aside_problems(data, pruned, declared):
        add(path, message)
    if problems or spec is None:
        raise SpecError(problems)
    spec._source = file
    return spec


def _undeclared(
    path: KeyPath, values: Iterable[str] | str | None, known: set[str], what: str
) -> list[tuple[KeyPath, str]]:
    """A problem for each value that is not among the declared names, with the closest as a hint."""
    out = []
    single = isinstance(values, str)
    for i, value in enumerate([values] if isinstance(values, str) else values or ()):
        if value not in known:
            close = difflib.get_close_matches(value, known, n=1, cutoff=0.6)
            hint = (
                f"; did you mean `{close[0]}`?"
                if close
                else f"; declared: {', '.join(sorted(known)) or 'none'}"
            )
            out.append((path if single else (*path, i), f"{what} `{value}` is not declared{hint}"))
    return out


def _names(value: Any) -> list[str] | None:
    """A raw list of names as written (None when it is not one: its structural error says so)."""
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def _no_flows(path: KeyPath) -> tuple[KeyPath, str]:
    return (path, "selects no flows, so it would measure nothing; list at least one declared flow")


def _set_aside_problems(
    data: dict[str, Any], pruned: set[KeyPath], declared: dict[str, set[str]]
) -> list[tuple[KeyPath, str]]:
    """The reference problems of SLOs and judges set aside for structural errors, read from the raw
    YAML (only values of the right shape: a wrong shape is already its own structural problem)."""
    out: list[tuple[KeyPath, str]] = []
    for section, name in sorted((str(p[0]), str(p[1])) for p in pruned):
        entry = data.get(section, {}).get(name) if isinstance(data.get(section), dict) else None
        if section not in ("slos", "judges") or not isinstance(entry, dict):
            continue  # flows and owners refer to nothing
        base: KeyPath = (section, name)
        flows = _names(entry.get("flows"))
        out += _undeclared((*base, "flows"), flows, declared["flows"], "flow")
        if flows == []:
            out.append(_no_flows((*base, "flows")))
        if section != "slos":
            continue
        if isinstance(owner := entry.get("owner"), str):
            out += _undeclared((*base, "owner"), owner, declared["owners"], "owner")
        sli = entry.get("sli")
        if isinstance(sli, dict) and isinstance(judge := sli.get("judge"), str):
            out += _undeclared((*base, "sli", "judge"), judge, declared["judges"], "judge")
    return out


def _semantic_problems(spec: m.Spec, declared: dict[str, set[str]]) -> list[tuple[KeyPath, str]]:
    out: list[tuple[KeyPath, str]] = []
    flows, slos, judges = declared["flows"], declared["slos"], declared["judges"]
    exclusions = set(spec.exclusions) | set(m.BUILTIN_EXCLUSIONS)

    def refs(path: KeyPath, values: Iterable[str] | str | None, known: set[str], what: str) -> None:
        out.extend(_undeclared(path, values, known, what))

    for name, judge in spec.judges.items():
        refs(("judges", name, "flows"), judge.flows, flows, "flow")
    for name, slo in spec.slos.items():
        base = ("slos", name)
        if slo.owner not in declared["owners"]:
            refs((*base, "owner"), slo.owner, declared["owners"], "owner")
        refs((*base, "flows"), slo.flows, flows, "flow")
        if not spec.flows_of(name) and spec.flows:  # `flows: []`, or a judge that judges no flow
            judge_flows = ("judges", slo.sli.judge or "", "flows")
            out.append(_no_flows((*base, "flows") if slo.flows is not None else judge_flows))
        refs((*base, "exclusions"), slo.exclusions, exclusions, "exclusion")
        kind = slo.sli.kind
        if kind == "judge" and slo.sli.judge not in judges:
            refs((*base, "sli", "judge"), slo.sli.judge or "", judges, "judge")
        if kind == "tool_calls" and slo.sli.tool_calls and slo.sli.tool_calls.tools:
            refs((*base, "sli", "tool_calls", "tools"), slo.sli.tool_calls.tools, set(spec.tools), "tool")
        slo_judge = spec.judges.get(slo.sli.judge or "")
        if slo_judge is not None and slo_judge.flows is not None and slo.flows is not None:
            for i, flow in enumerate(slo.flows):
                if flow not in slo_judge.flows:
                    out.append(((*base, "flows", i), f"judge `{slo.sli.judge}` does not judge flow `{flow}`"))
        if slo.objective == "auto":
            if kind not in ("task", "judge"):
                out.append(
                    (
                        (*base, "objective"),
                        f"`auto` is only for task and judge SLIs; a {kind} SLI needs a number",
                    )
                )
            elif not (slo.flows and set(slo.flows) - flows):
                for flow in spec.flows_of(name):
                    if flow in spec.flows and spec.flows[flow].risk is None:
                        out.append(
                            (
                                (*base, "objective"),
                                f"`auto` needs a risk tier on flow `{flow}` "
                                "(risk: faq, account, billing or medical)",
                            )
                        )
        if kind == "workflow" and (wf := slo.sli.workflow) is not None:
            if wf.name not in spec.workflows:
                refs((*base, "sli", "workflow", "name"), wf.name, set(spec.workflows), "workflow")
            elif wf.step is not None and wf.step not in spec.workflows[wf.name].steps:
                refs((*base, "sli", "workflow", "step"), wf.step, set(spec.workflows[wf.name].steps), "step")
        if kind == "synthetic" and spec.synthetic is None:
            out.append(
                (
                    (*base, "sli"),
                    "a synthetic SLI needs a top-level `synthetic:` section (target and scenarios)",
                )
            )
    for name, workflow in spec.workflows.items():
        refs(("workflows", name, "flows"), workflow.flows, flows, "flow")
        if len(set(workflow.steps)) != len(workflow.steps):
            out.append((("workflows", name, "steps"), "each step of a workflow must have its own name"))
    if spec.pipeline is not None and len(set(spec.pipeline.stages)) != len(spec.pipeline.stages):
        out.append((("pipeline", "stages"), "each stage must be named once"))
    if spec.health is not None and spec.health.window not in names.SLI_WINDOWS:
        out.append(
            (
                ("health", "window"),
                f"the health score reads recorded windows: use one of {', '.join(names.SLI_WINDOWS)}",
            )
        )
    refs(("autonomy", "governed_by"), spec.autonomy.governed_by, slos, "SLO")
    refs(("release_gate", "slos"), spec.release_gate.slos, slos, "SLO")
    for kind_name, kind_slos in spec.release_gate.change_kinds.items():
        refs(("release_gate", "change_kinds", kind_name), kind_slos, slos, "SLO")
    refs(("drift", "judges"), spec.drift.judges, judges, "judge")
    for i, rule in enumerate(spec.otel.flow_rules):
        refs(("otel", "flow_rules", i, "flow"), rule.flow, flows, "flow")
    if spec.burn_rates is not None:
        missing = [t for t in m.BURN_TIER_NAMES if t not in spec.burn_rates]
        if missing:
            out.append(
                (
                    ("burn_rates",),
                    f"a custom burn-rate catalog must define every tier; missing {', '.join(missing)}",
                )
            )
    if (alloc := spec.budget_allocation) is not None:
        e2e = float(alloc.end_to_end) if alloc.end_to_end != "auto" else None
        if e2e is None:
            out.append((("budget_allocation", "end_to_end"), "the end-to-end objective needs a number"))
        spent = 0.0
        for tier_name, tier in alloc.tiers.items():
            refs(("budget_allocation", "tiers", tier_name, "slos"), tier.slos, slos, "SLO")
            if tier.objective == "auto":
                out.append(
                    (("budget_allocation", "tiers", tier_name, "objective"), "a budget tier needs a number")
                )
            else:
                spent += 100 - float(tier.objective)
        if e2e is not None and spent > (100 - e2e) + 1e-9:
            out.append(
                (
                    ("budget_allocation", "tiers"),
                    f"the tiers spend {spent:.4g}% of errors but the end-to-end objective "
                    f"{e2e:g}% allows only "
                    f"{100 - e2e:.4g}%; raise the tier objectives or lower the end-to-end one",
                )
            )
    return out


def load_spec(path: str | Path) -> m.Spec:
    """Load and validate one spec file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Problem(str(p), 1, "", f"cannot read the file: {exc}")]) from None
    return parse_spec(text, str(p))


def load_specs(paths: Sequence[str | Path]) -> list[m.Spec]:
    """Load several spec files (one agent each); raise one SpecError with the problems of all of them."""
    specs: list[m.Spec] = []
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for path in paths:
        try:
            spec = load_spec(path)
        except SpecError as exc:
            problems.extend(exc.problems)
            continue
        if spec.agent in seen:
            problems.append(
                Problem(
                    str(path), 1, "agent", f"agent `{spec.agent}` is already defined in {seen[spec.agent]}"
                )
            )
            continue
        seen[spec.agent] = str(path)
        specs.append(spec)
    if problems:
        raise SpecError(problems)
    return specs
