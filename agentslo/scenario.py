"""Synthetic scenarios (`version: agent-slo/scenarios/v1`): scripted conversations the prober plays.

A scenario file names one or more scenarios; each belongs to a flow of the spec's agent, has user
turns with assertions, scripted tool results, and scenario-wide assertions. The spec's
`synthetic.scenarios` globs (relative to the spec file) say which files belong to an agent.

    >>> from agentslo.spec import load_spec
    >>> from agentslo.scenario import load_scenarios
    >>> spec = load_spec("examples/cx-support.slo.yaml")
    >>> sorted({s.flow for s in load_scenarios(spec)})
    ['order-status', 'password-reset', 'refund']

Validation reports every problem at once with file, line and key path (`SpecError`), like specs.
Assertion names follow promptfoo where they overlap; see `ASSERTION_TYPES`.
"""

from __future__ import annotations

import difflib
import glob
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import Field, PrivateAttr, ValidationError

from agentslo._yamlmap import Path as KeyPath
from agentslo._yamlmap import line_for, load_with_lines
from agentslo.durations import parse_threshold_seconds
from agentslo.spec import JsonCheck, LLMJudge, Spec, SpecError
from agentslo.spec_model import Model, Name, Ratio, Seconds
from agentslo.spec_model import _name as check_name

# isort: split
from agentslo import _validate as v

VERSION: Final = "agent-slo/scenarios/v1"
Problem = v.Problem

# Base assertion types; text and tool checks may be negated with a `not-` prefix.
NEGATABLE: Final = (
    "equals",
    "contains",
    "icontains",
    "contains-any",
    "contains-all",
    "icontains-any",
    "icontains-all",
    "regex",
    "is-json",
    "json-path",
    "tool-called",
    "tool-args-match",
    "tool-sequence",
    "llm-rubric",
)
PLAIN: Final = ("step-count", "latency-under", "cost-under", "assert-set")
ASSERTION_TYPES: Final = (*NEGATABLE, *(f"not-{t}" for t in NEGATABLE), *PLAIN)
# Types whose `threshold` means something: the judge score to reach, or the weighted share of a set.
THRESHOLD_TYPES: Final = ("llm-rubric", "assert-set")
TOOL_TYPES: Final = ("tool-called", "tool-args-match", "tool-sequence")
DEFAULT_MAX_STEPS: Final = 8  # LLM calls + tool calls in one turn before the prober calls it a loop


class Assertion(Model):
    """One check. `value` depends on `type` (checked by the loader with a precise key path)."""

    type: str = Field(json_schema_extra={"enum": list(ASSERTION_TYPES)}, description="what to check")
    value: Any = Field(None, description="what to expect; its shape depends on `type`")
    weight: float = Field(1.0, ge=0, description="share in a weighted score; 0 reports without deciding")
    threshold: Ratio | None = Field(
        None, description="llm-rubric: score to reach; assert-set: weighted share"
    )
    assert_: tuple[Assertion, ...] | None = Field(None, alias="assert", description="assert-set: its checks")
    judge: Name | None = Field(None, description="llm-rubric: a judge of the spec instead of a rubric")
    model: str | None = Field(None, description="llm-rubric: model (default: the spec's first llm judge's)")
    description: str = Field("", description="the name shown in reports")

    @property
    def negated(self) -> bool:
        return self.type.startswith("not-")

    @property
    def base(self) -> str:
        return self.type.removeprefix("not-")

    def label(self) -> str:
        """A short human name for reports (`not-contains "3-5 business days"`)."""
        if self.description:
            return self.description
        if self.base == "assert-set":
            return f"assert-set ({len(self.assert_ or ())} checks)"
        if self.base == "llm-rubric" and self.judge:
            return f"{self.type} judge={self.judge}"
        shown = repr(self.value) if not isinstance(self.value, str) else f'"{self.value}"'
        return f"{self.type} {shown if len(shown) <= 60 else shown[:57] + '...'}".strip()


class ToolResult(Model):
    """A scripted result returned when the call's arguments contain every key/value of `when`."""

    when: dict[str, Any] = Field(default_factory=dict)
    result: Any


class ToolScript(Model):
    """How a tool answers during a scenario: a default `result` and/or argument-matched `results`."""

    description: str = ""
    parameters: dict[str, Any] | None = Field(None, description="JSON Schema declared to openai-chat agents")
    result: Any = None
    results: tuple[ToolResult, ...] = ()

    def answer(self, arguments: dict[str, Any]) -> Any:
        """The scripted result for these arguments (first matching `results` entry, else `result`)."""
        for option in self.results:
            if all(arguments.get(k) == want for k, want in option.when.items()):
                return option.result
        if self.result is None and self.results:
            return {"error": f"no scripted result matches arguments {arguments}"}
        return self.result


class Turn(Model):
    """One user message and the checks on the agent's answer to it."""

    user: str = Field(min_length=1)
    assert_: tuple[Assertion, ...] = Field((), alias="assert")


class Pricing(Model):
    """Token prices used for `cost-under` when the target reports token usage but no cost."""

    usd_per_1k_input_tokens: float = Field(0.0, ge=0)
    usd_per_1k_output_tokens: float = Field(0.0, ge=0)


class ScenarioBody(Model):
    """A scenario as written under `scenarios:` (its name is its key)."""

    flow: Name
    description: str = ""
    system: str | None = None
    tags: tuple[str, ...] = ()
    timeout: Seconds | None = Field(None, description="default: the spec's synthetic.timeout")
    max_steps: int = Field(
        DEFAULT_MAX_STEPS, ge=1, le=100, description="LLM + tool calls per turn; more is a loop"
    )
    tools: dict[str, ToolScript] = Field(default_factory=dict)
    turns: tuple[Turn, ...] = Field(min_length=1)
    assert_: tuple[Assertion, ...] = Field((), alias="assert")
    threshold: Ratio | None = Field(None, description="pass on the weighted score instead of every assertion")


class Scenario(ScenarioBody):
    """A loaded scenario: the body plus its name, agent and file-wide pricing."""

    name: Name
    agent: Name
    pricing: Pricing | None = None
    _source: str = PrivateAttr(default="<memory>")
    _line: int = PrivateAttr(default=1)

    @property
    def source(self) -> str:
        """`file:line` of the scenario's key, for messages and reports."""
        return f"{self._source}:{self._line}"


class ScenarioFile(Model):
    """The document: a version, an optional agent (the spec's), pricing and named scenarios."""

    version: Literal["agent-slo/scenarios/v1"] = VERSION
    agent: Name | None = None
    pricing: Pricing | None = None
    scenarios: dict[Name, ScenarioBody] = Field(min_length=1)


def scenario_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario file (for editors and the README)."""
    schema = ScenarioFile.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://agent-slo.dev/schema/agent-slo-scenarios.schema.json"
    schema["title"] = f"agent-slo synthetic scenarios ({VERSION})"
    return schema


def _vocabulary() -> set[str]:
    words: set[str] = set()
    for model in (Assertion, ToolResult, ToolScript, Turn, Pricing, ScenarioBody, ScenarioFile):
        words.update(f.alias or n for n, f in model.model_fields.items())
    return words


_VOCABULARY = _vocabulary()


def _pydantic_problems(exc: ValidationError, prefix: KeyPath) -> list[tuple[KeyPath, str]]:
    out = []
    for err in exc.errors():
        loc = (*prefix, *v._clean_loc(err["loc"]))
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            close = difflib.get_close_matches(key, _VOCABULARY, n=1, cutoff=0.75)
            out.append((loc, f"unknown key `{key}`" + (f"; did you mean `{close[0]}`?" if close else "")))
        elif err["type"] == "too_short":
            out.append((loc, f"`{loc[-1]}` needs at least one entry"))
        else:
            out.append((loc, v._message(err)))
    return out


def _suggest(value: str, known: Iterable[str], what: str) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(value, known, n=1, cutoff=0.6)
    hint = f"did you mean `{close[0]}`?" if close else f"declared: {', '.join(known) or 'none'}"
    return f"{what} `{value}` is not declared in the spec; {hint}"


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(x, str) and x for x in value)


def _value_problem(a: Assertion) -> tuple[tuple[str, ...], str] | None:
    """What is wrong with an assertion's `value` for its type (relative key path, message), if anything."""
    base, val = a.base, a.value
    if base in ("contains", "icontains"):
        if not isinstance(val, str) or not val:
            return ("value",), f"{a.type} needs a non-empty string value (got {val!r})"
    elif base == "regex":
        if not isinstance(val, str) or not val:
            return ("value",), f"regex needs a pattern string (got {val!r})"
        try:
            re.compile(val)
        except re.error as exc:
            return ("value",), f"regular expression {val!r} does not compile: {exc}"
    elif base in ("contains-any", "contains-all", "icontains-any", "icontains-all", "tool-sequence"):
        if not _str_list(val):
            return ("value",), f"{a.type} needs a non-empty list of strings (got {val!r})"
    elif base == "equals":
        if val is None:
            return ("value",), "equals needs a value: the exact reply (a string) or the JSON it must parse to"
    elif base == "is-json":
        if val is not None:
            return ("value",), "is-json takes no value; check fields with json-path"
    elif base == "json-path":
        if isinstance(val, dict) and isinstance(val.get("path"), str):
            val = {**val, "path": val["path"].removeprefix("$.")}
        try:
            JsonCheck.model_validate(val)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ("value", *map(str, err["loc"]))
            return where, "json-path takes {path, equals | matches | present}: " + v._message(err)
    elif base == "tool-called":
        if not isinstance(val, str) or not val:
            return ("value",), f"{a.type} needs a tool name (got {val!r})"
    elif base == "tool-args-match":
        if not (
            isinstance(val, dict) and isinstance(val.get("tool"), str) and isinstance(val.get("args"), dict)
        ):
            return ("value",), f"{a.type} needs {{tool: NAME, args: {{key: value}}}} (got {val!r})"
        if extra := sorted(set(val) - {"tool", "args"}):
            return ("value", extra[0]), f"unknown key `{extra[0]}`; tool-args-match takes tool and args"
    elif base == "step-count":
        ok_int = isinstance(val, int) and not isinstance(val, bool) and val >= 0
        ok_map = (
            isinstance(val, dict)
            and val
            and set(val) <= {"min", "max"}
            and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in val.values())
        )
        if not (ok_int or ok_map):
            return ("value",), f"step-count needs a maximum (an integer) or {{min: N, max: N}} (got {val!r})"
    elif base == "latency-under":
        try:
            parse_threshold_seconds(val)
        except ValueError as exc:
            return ("value",), f"latency-under: {exc}"
    elif base == "cost-under":
        if isinstance(val, bool) or not isinstance(val, int | float) or val <= 0:
            return ("value",), f"cost-under needs a positive number of USD (got {val!r})"
    elif base == "llm-rubric":
        if a.judge is None and (not isinstance(val, str) or not val.strip()):
            return (
                "value",
            ), "llm-rubric needs the rubric text as value, or `judge:` naming a judge of the spec"
    return None


def _assertion_problems(a: Assertion, path: KeyPath, spec: Spec) -> list[tuple[KeyPath, str]]:
    out: list[tuple[KeyPath, str]] = []
    if a.type not in ASSERTION_TYPES:
        close = difflib.get_close_matches(a.type, ASSERTION_TYPES, n=1, cutoff=0.6)
        if a.type.startswith("not-") and a.base in PLAIN:
            msg = f"`{a.base}` cannot be negated with not-"
        else:
            msg = f"unknown assertion type `{a.type}`; " + (
                f"did you mean `{close[0]}`?" if close else f"one of: {', '.join(ASSERTION_TYPES)}"
            )
        return [((*path, "type"), msg)]
    if a.threshold is not None and a.base not in THRESHOLD_TYPES:
        out.append(
            ((*path, "threshold"), f"threshold applies to llm-rubric and assert-set only, not {a.type}")
        )
    if a.base == "assert-set":
        if not a.assert_:
            out.append(((*path, "assert"), "assert-set needs a non-empty `assert:` list of assertions"))
        if a.value is not None:
            out.append(((*path, "value"), "assert-set takes no value; put its checks under `assert:`"))
        for i, child in enumerate(a.assert_ or ()):
            out += _assertion_problems(child, (*path, "assert", i), spec)
        return out
    if a.assert_ is not None:
        out.append(((*path, "assert"), "nested `assert:` belongs to assert-set only"))
    if (a.judge or a.model) and a.base != "llm-rubric":
        key = "judge" if a.judge else "model"
        out.append(((*path, key), f"`{key}` belongs to llm-rubric only"))
    if problem := _value_problem(a):
        out.append(((*path, *problem[0]), problem[1]))
        return out
    tools = set(spec.tools)
    if a.base in TOOL_TYPES and tools:
        names = {"tool-called": [a.value], "tool-sequence": a.value}.get(a.base) or [a.value["tool"]]
        for i, name in enumerate(names):
            if name not in tools:
                sub = {"tool-called": ("value",), "tool-sequence": ("value", i)}.get(
                    a.base, ("value", "tool")
                )
                out.append(((*path, *sub), _suggest(name, tools, "tool")))
    if a.base == "llm-rubric":
        if a.judge is not None and a.judge not in spec.judges:
            out.append(
                (
                    (*path, "judge"),
                    f"judge `{a.judge}` is not declared in the spec; "
                    + (f"declared: {', '.join(sorted(spec.judges)) or 'none'}"),
                )
            )
        elif (
            a.judge is None
            and a.model is None
            and not any(isinstance(j, LLMJudge) for j in spec.judges.values())
        ):
            out.append(
                ((*path, "model"), "llm-rubric needs `model:` (the spec has no llm judge to take one from)")
            )
    return out


def _scenario_problems(sc: Scenario, path: KeyPath, spec: Spec) -> list[tuple[KeyPath, str]]:
    out: list[tuple[KeyPath, str]] = []
    if sc.flow not in spec.flows:
        out.append(((*path, "flow"), _suggest(sc.flow, spec.flows, "flow")))
    if spec.tools:
        for name in sc.tools:
            if name not in spec.tools:
                out.append(((*path, "tools", name), _suggest(name, spec.tools, "tool")))
    for name, script in sc.tools.items():
        if script.result is None and not script.results:
            out.append(((*path, "tools", name), "a scripted tool needs `result:` or `results:`"))
    for t, turn in enumerate(sc.turns):
        for i, a in enumerate(turn.assert_):
            out += _assertion_problems(a, (*path, "turns", t, "assert", i), spec)
    for i, a in enumerate(sc.assert_):
        out += _assertion_problems(a, (*path, "assert", i), spec)
    return out


def parse_scenarios(text: str, file: str, spec: Spec) -> list[Scenario]:
    """Validate one scenario file against its spec (flows, agent, tools, judges).

    Raises SpecError listing every problem with file, line and key path.
    """
    data, lines, yaml_problems = load_with_lines(text)
    problems = [Problem(file, p.line, v._dotted(p.path), p.message) for p in yaml_problems]

    def add(path: KeyPath, message: str) -> None:
        problems.append(Problem(file, line_for(lines, path), v._dotted(path), message))

    if data is None and not yaml_problems:
        empty = f"the file is empty; a scenario file has `version: {VERSION}` and `scenarios:`"
        raise SpecError([Problem(file, 1, "", empty)])
    if not isinstance(data, dict):
        if not yaml_problems:
            add((), "a scenario file must be a mapping with `scenarios:` (name → flow, turns, assert)")
        raise SpecError(problems)
    raw = data.get("scenarios")
    try:
        # Scenarios are checked one by one below; a placeholder lets the file-wide keys validate alone.
        placeholder = {"placeholder": {"flow": "x", "turns": [{"user": "x"}]}}
        head = ScenarioFile.model_validate({**data, "scenarios": placeholder})
    except ValidationError as exc:
        for where, message in _pydantic_problems(exc, ()):
            if where[:1] != ("scenarios",) or where == ("scenarios",):
                add(where, message)
        head = None
    if raw is None:
        add(("scenarios",), "`scenarios` is required: a mapping of scenario name → flow, turns, assert")
    elif not isinstance(raw, dict) or not raw:
        add(("scenarios",), "`scenarios` must be a non-empty mapping of scenario name → flow, turns, assert")
    agent = head.agent if head else None
    if agent is not None and agent != spec.agent:
        add(
            ("agent",),
            f"scenarios of agent `{agent}` listed by the spec of agent `{spec.agent}` ({spec.source})",
        )
    out: list[Scenario] = []
    for name, body in raw.items() if isinstance(raw, dict) else ():
        path: KeyPath = ("scenarios", name)
        try:
            check_name(str(name))
        except ValueError as exc:
            add(path, f"scenario name: {exc}")
            continue
        if isinstance(body, dict) and "name" in body:
            add((*path, "name"), "a scenario's name is its key under `scenarios:`; remove `name:`")
            continue
        try:
            ScenarioBody.model_validate(body)
            sc = Scenario.model_validate(
                {**(body or {}), "name": name, "agent": spec.agent, "pricing": head.pricing if head else None}
            )
        except ValidationError as exc:
            for p, message in _pydantic_problems(exc, path):
                add(p, message)
            continue
        found = _scenario_problems(sc, path, spec)
        for p, message in found:
            add(p, message)
        if not found:
            sc._source, sc._line = file, line_for(lines, path)
            out.append(sc)
    if problems:
        raise SpecError(problems)
    return out


def scenario_files(spec: Spec) -> tuple[list[Path], list[Problem]]:
    """The files the spec's `synthetic.scenarios` globs name (relative to the spec file).

    Also returns a problem for each glob that matches no file or a file outside the spec's folder.
    """
    if spec.synthetic is None:
        return [], []
    base = Path(spec.source).parent if spec.source != "<memory>" else Path(".")
    files: list[Path] = []
    problems: list[Problem] = []
    spec_lines = _spec_lines(spec)
    inside = base.resolve()
    for i, pattern in enumerate(spec.synthetic.scenarios):
        path = ("synthetic", "scenarios", i)
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        matched = sorted(Path(p) for p in glob.glob(full, recursive=True) if Path(p).is_file())
        # A spec names scenario files in its own folder tree, never elsewhere on the machine
        # (`../../etc/passwd`, `/etc/*`): a spec may come from a repository anyone can change.
        outside = [p for p in matched if not p.resolve().is_relative_to(inside)]
        if outside:
            message = f"`{pattern}` reaches outside the spec's folder ({inside}/): {outside[0]}"
        elif not matched:
            message = f"`{pattern}` matches no file (looked in {base}/)"
        else:
            files += [p for p in matched if p not in files]
            continue
        problems.append(Problem(spec.source, line_for(spec_lines, path), v._dotted(path), message))
    return files, problems


def _spec_lines(spec: Spec) -> dict[KeyPath, int]:
    try:
        return load_with_lines(Path(spec.source).read_text(encoding="utf-8"))[1]
    except (OSError, UnicodeDecodeError):
        return {}


def load_scenarios(spec: Spec) -> list[Scenario]:
    """Every scenario of the spec's `synthetic.scenarios` files, checked against the spec.

    Raises SpecError listing every problem of every file (and unknown scenarios named by synthetic SLIs).
    """
    files, problems = scenario_files(spec)
    out: list[Scenario] = []
    first: dict[str, Scenario] = {}
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
            loaded = parse_scenarios(text, str(file), spec)
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(str(file), 1, "", f"cannot read the file: {exc}"))
            continue
        except SpecError as exc:
            problems += exc.problems
            continue
        for sc in loaded:
            if sc.name in first:
                problems.append(
                    Problem(
                        str(file),
                        sc._line,
                        f"scenarios.{sc.name}",
                        f"scenario `{sc.name}` is already defined at {first[sc.name].source}",
                    )
                )
                continue
            first[sc.name] = sc
            out.append(sc)
    problems += _sli_reference_problems(spec, set(first), bool(files) and not problems)
    if problems:
        raise SpecError(problems)
    return out


def _sli_reference_problems(spec: Spec, known: set[str], complete: bool) -> list[Problem]:
    """Synthetic SLIs that name scenarios no file defines (checked only once every file loaded)."""
    if not complete:
        return []
    out: list[Problem] = []
    spec_lines: dict[KeyPath, int] | None = None
    for slo_name, slo in spec.slos.items():
        wanted = slo.sli.synthetic.scenarios if slo.sli.synthetic else None
        for i, name in enumerate(wanted or ()):
            if name not in known:
                spec_lines = spec_lines if spec_lines is not None else _spec_lines(spec)
                path = ("slos", slo_name, "sli", "synthetic", "scenarios", i)
                close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
                hint = f"; did you mean `{close[0]}`?" if close else ""
                out.append(
                    Problem(
                        spec.source,
                        line_for(spec_lines, path),
                        v._dotted(path),
                        f"scenario `{name}` is not defined in any scenario file{hint}",
                    )
                )
    return out


__all__ = [
    "ASSERTION_TYPES",
    "Assertion",
    "Pricing",
    "Scenario",
    "ScenarioBody",
    "ScenarioFile",
    "ToolResult",
    "ToolScript",
    "Turn",
    "load_scenarios",
    "parse_scenarios",
    "scenario_files",
    "scenario_schema",
]
