"""Plans: what one categorical combination of an event does, built once and cached (`Planner`).

A *plan* is everything an event's categorical fields decide (agent, flow, exclusion, outcome,
tool, kind, judge, ...): which counter slots it increments, which histograms its numbers go to and
which SLO thresholds they are compared with. A 1,000-event batch has a handful of combinations, so
the per-event work at ingest is a dictionary lookup plus vectorised arithmetic (`exporter.classify`).

Building a plan is the classification of the design's tables, written once per combination: the
task truth table, which SLOs an event counts for (SLI kind, flows, judge, tools, scenarios), the
`exclusion` label, and the cardinality guard (undeclared tools, failure modes and models fold into
`other`, through the catalog). Unknown agents, flows, judges, exclusions and outcomes are refused:
`build` returns a `(field, problem)` pair that the API reports with the event's index.

    >>> planner = Planner(catalog)   # the exporter's one, `Ingestor.planner`
    >>> planner.plan("turn", ("cx-support", "returns", None, "turn"))   # PLAN_KEY["turn"]
    ('flow', "'returns' is not one of: refund, order-status, password-reset")
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentslo import names
from agentslo.exporter.catalog import UNDECLARED, Catalog
from agentslo.exporter.events import (
    MAX_LABEL_CHARS,
    PLAN_KEY,
    TASK_OUTCOMES,
    TOKEN_TYPES,
    TOOL_OUTCOMES,
    TURN_KINDS,
    TYPES,
)
from agentslo.spec import PROBER_ERROR_EXCLUSION, Spec

Problem = tuple[str, str]  # (field, what is wrong)


@dataclass
class NumberPlan:
    """Where one numeric field goes: a histogram series and the SLOs judged by a threshold on it."""

    base: int  # histogram base slot
    family: str
    slos: list[tuple[int, int, int]] = field(default_factory=list)  # (threshold bucket index, good, bad)


@dataclass
class Plan:
    """What every event of one categorical combination does: counter slots and where its numbers go."""

    incs: list[int] = field(default_factory=list)  # slots +1 per event
    exemplar_slots: list[int] = field(default_factory=list)
    numbers: dict[str, NumberPlan] = field(default_factory=dict)  # event field → histogram and SLOs
    judge: tuple[int, list[tuple[int, int]]] | None = None  # (threshold index in score bounds, [(good, bad)])
    tokens: tuple[int, int] | None = None  # (input slot, output slot)
    streak: tuple[int, bool] | None = None  # synthetic: (consecutive-failures gauge slot, passed)
    last_run: int | None = None  # synthetic: the last-run timestamp gauge slot (every run, prober errors too)


class Planner:
    """The plan of each categorical combination, built on first sight and cached either way."""

    MAX_PLANS = 50_000  # distinct combinations cached; bounded against hostile variety

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self._plans: dict[tuple[Any, ...], Plan | Problem] = {}
        self.built: list[tuple[Any, ...]] = []  # cache keys of the plans built since `begin()`

    def begin(self) -> None:
        """Start recording which plans are built, for a `forget_built()`."""
        self.built.clear()

    def forget_built(self) -> None:
        """Drop the plans built since `begin()` (their series were rolled back)."""
        for key in self.built:
            self._plans.pop(key, None)
        self.built.clear()

    def plan(self, kind: str, key: tuple[Any, ...]) -> Plan | Problem:
        """The plan for the values of `PLAN_KEY[kind]` as sent, or the problem with them."""
        key = self.folded(kind, key)
        # Types are part of the key: True == 1 == 1.0 hash alike, and only `true` is a boolean.
        cache_key = (kind, *key, *map(type, key))
        found = self._plans.get(cache_key)
        if found is None:
            if len(self._plans) >= self.MAX_PLANS:
                self._plans.clear()
            found = self._plans[cache_key] = build(self.catalog, kind, key)
            self.built.append(cache_key)
        return found

    def folded(self, kind: str, key: tuple[Any, ...]) -> tuple[Any, ...]:
        """The key with undeclared tools, failure modes and models as UNDECLARED: one plan (folded
        into `other`) for all of them, however many distinct values arrive."""
        declared = self.catalog.declared
        return tuple(
            declared[f].get(v, UNDECLARED) if f in declared and type(v) is str else v
            for f, v in zip(PLAN_KEY[kind], key, strict=True)
        )


def _one_of(value: Any, allowed: tuple[str, ...]) -> str:
    return f"{value!r:.64} is not one of: {', '.join(allowed)}"


def _need_bool(value: Any, fname: str, default: bool | None = None) -> bool | Problem:
    if value is None and default is not None:
        return default
    if type(value) is not bool:
        return (
            fname,
            f"must be true or false, got {value!r:.64}"
            if value is not None
            else "is required (true or false)",
        )
    return value


def _text(value: Any, fname: str) -> str | Problem:
    if type(value) is not str or not value:
        return fname, f"must be a non-empty string, got {value!r:.64}"
    if len(value) > MAX_LABEL_CHARS or not value.isprintable():
        return fname, f"must be at most {MAX_LABEL_CHARS} printable characters"
    return value


class _Builder:
    """Accumulates one plan for an (agent, flow, exclude) and the type-specific fields."""

    def __init__(self, catalog: Catalog, spec: Spec, flow: str, exclude: str | None):
        self.c, self.spec, self.agent, self.flow, self.exclude = catalog, spec, spec.agent, flow, exclude
        self.plan = Plan()

    def slos(self, kind: str) -> list[str]:
        return [
            name
            for name, s in self.spec.slos.items()
            if s.sli.kind == kind and self.flow in self.spec.flows_of(name)
        ]

    def pair(self, slo: str) -> tuple[int, int]:
        """(good, bad) slots of `agent_slo_events_total` for this SLO, with the exclusion it honours."""
        excl = self.exclude if self.exclude in self.spec.exclusions_of(slo) else ""
        st = self.c.store
        labels = (self.agent, self.flow, slo)
        return (
            st.slot(names.EVENTS_TOTAL, (*labels, names.GOOD, excl or "")),
            st.slot(names.EVENTS_TOTAL, (*labels, names.BAD, excl or "")),
        )

    def count(self, slo: str, good: bool) -> None:
        slot = self.pair(slo)[0 if good else 1]
        self.plan.incs.append(slot)
        self.plan.exemplar_slots.append(slot)

    def fold(self, label: str, value: str, declared: Any) -> str:
        folded, slot = self.c.fold(self.agent, label, value, declared)
        if slot is not None:
            self.plan.incs.append(slot)
        return folded

    def number(
        self, fname: str, family: str, labels: tuple[str, ...], slo_thresholds: list[tuple[str, float]]
    ) -> None:
        base = self.c.store.slot(family, labels)
        plan = NumberPlan(base, family)
        for slo, threshold in slo_thresholds:
            good, bad = self.pair(slo)
            plan.slos.append((self.c.threshold_index(family, threshold), good, bad))
        self.plan.numbers[fname] = plan


def _task(
    b: _Builder, outcome: Any, escalation_required: Any, failure_mode: Any, model: Any
) -> Problem | None:
    if outcome not in TASK_OUTCOMES or type(outcome) is not str:
        return "outcome", _one_of(outcome, TASK_OUTCOMES) if outcome is not None else "is required"
    required = _need_bool(escalation_required, "escalation_required", default=False)
    if isinstance(required, tuple):
        return required
    # The task truth table (DESIGN.md): None means "not counted for task SLIs".
    good = {
        "success": not required,
        "failure": False,
        "abandoned": False,
        "escalated": None if required else False,
    }
    verdict = good[outcome]
    if verdict is not None:
        for slo in b.slos("task"):
            b.count(slo, verdict)
    if failure_mode is not None:
        if type(failure_mode) is not str:
            return "failure_mode", f"must be a string, got {failure_mode!r:.64}"
        mode = b.fold(names.L_FAILURE_MODE, failure_mode, b.spec.failure_modes)
        b.plan.incs.append(b.c.store.slot(names.FAILURE_MODES_TOTAL, (b.agent, b.flow, mode)))
    problem = _tokens(b, model)
    if problem is not None:
        return problem
    slos = b.spec.slos
    latency = [(s, slos[s].sli.latency.under) for s in b.slos("latency") if slos[s].sli.latency.of == "task"]  # type: ignore[union-attr]
    b.number("duration_s", names.TASK_DURATION_SECONDS, (b.agent, b.flow), latency)
    cost = [(s, slos[s].sli.cost.under_usd) for s in b.slos("cost")]  # type: ignore[union-attr]
    b.number("cost_usd", names.TASK_COST_USD, (b.agent, b.flow), cost)
    b.number("steps", names.TASK_STEPS, (b.agent, b.flow), [])
    return None


def _tokens(b: _Builder, model: Any) -> Problem | None:
    """The token counters of an event that may carry tokens: by its model (undeclared ones folded)."""
    model_label = ""
    if model is not None:
        if type(model) is not str:
            return "model", f"must be a string, got {model!r:.64}"
        model_label = b.fold(names.L_MODEL, model, b.spec.models)
    st = b.c.store
    b.plan.tokens = tuple(  # type: ignore[assignment]
        st.slot(names.TOKENS_TOTAL, (b.agent, b.flow, model_label, kind)) for kind in TOKEN_TYPES
    )
    return None


def _turn(b: _Builder, kind: Any, model: Any) -> Problem | None:
    kind = "turn" if kind is None else kind
    if kind not in TURN_KINDS or type(kind) is not str:
        return "kind", _one_of(kind, TURN_KINDS)
    problem = _tokens(b, model)
    if problem is not None:
        return problem
    slos = b.spec.slos
    latency = [(s, slos[s].sli.latency.under) for s in b.slos("latency") if slos[s].sli.latency.of == kind]  # type: ignore[union-attr]
    b.number("latency_s", names.TURN_LATENCY_SECONDS, (b.agent, b.flow, kind), latency)
    return None


def _tool_call(b: _Builder, tool: Any, outcome: Any) -> Problem | None:
    if type(tool) is not str or not tool:
        return "tool", f"must be a non-empty string, got {tool!r:.64}" if tool is not None else "is required"
    if outcome not in TOOL_OUTCOMES or type(outcome) is not str:
        return "outcome", _one_of(outcome, TOOL_OUTCOMES) if outcome is not None else "is required"
    declared = tool in b.spec.tools
    label = b.fold(names.L_TOOL, tool, b.spec.tools)
    slot = b.c.store.slot(names.TOOL_CALLS_TOTAL, (b.agent, b.flow, label, outcome))
    b.plan.incs.append(slot)
    b.plan.exemplar_slots.append(slot)
    for slo in b.slos("tool_calls"):
        only = b.spec.slos[slo].sli.tool_calls.tools  # type: ignore[union-attr]
        if only is None or (declared and tool in only):
            b.count(slo, outcome == names.TOOL_OK)
    b.number("latency_s", names.TOOL_CALL_LATENCY_SECONDS, (b.agent, b.flow, label), [])
    return None


def _judge(b: _Builder, judge: Any, judge_version: Any) -> Problem | None:
    if judge not in b.spec.judges or type(judge) is not str:
        declared = tuple(b.spec.judges) or ("(none declared)",)
        return "judge", _one_of(judge, declared) if judge is not None else "is required"
    version = b.spec.judges[judge].version
    if judge_version is not None:
        text = _text(judge_version, "judge_version")
        if isinstance(text, tuple):
            return text
        version, folded = b.c.judge_version(b.agent, judge, text)
        if folded is not None:
            b.plan.incs.append(folded)
    threshold = b.spec.judges[judge].pass_threshold
    pairs = [b.pair(s) for s in b.slos("judge") if b.spec.slos[s].sli.judge == judge]
    b.number("score", names.JUDGE_SCORE, (b.agent, b.flow, judge, version), [])
    b.plan.judge = (b.c.threshold_index(names.JUDGE_SCORE, threshold), pairs)
    return None


def _escalation(b: _Builder, required: Any, performed: Any, context_preserved: Any) -> Problem | None:
    req = _need_bool(required, "required")
    if isinstance(req, tuple):
        return req
    done = _need_bool(performed, "performed")
    if isinstance(done, tuple):
        return done
    kept = _need_bool(context_preserved, "context_preserved", default=None if done else True)
    if isinstance(kept, tuple):
        return "context_preserved", "is required (true or false) when performed is true"
    for slo in b.slos("escalation"):
        # `correct` judges every decision, `recall` those that required a hand-off, `unnecessary`
        # and `context` the hand-offs performed (EscalationSLI.verdict)
        verdict = b.spec.slos[slo].sli.escalation.verdict(req, done, bool(kept))  # type: ignore[union-attr]
        if verdict is not None:
            b.count(slo, verdict)
    return None


def _stage(b: _Builder, stage: Any) -> Problem | None:
    if b.spec.pipeline is None:
        return "stage", "this agent's spec declares no `pipeline:`, so stage latencies are not taken"
    if stage not in b.spec.pipeline.stages or type(stage) is not str:
        return "stage", _one_of(stage, b.spec.pipeline.stages) if stage is not None else "is required"
    b.number("latency_s", names.STAGE_LATENCY_SECONDS, (b.agent, b.flow, stage), [])
    return None


def _workflow_step(b: _Builder, workflow: Any, step: Any, ok: Any) -> Problem | None:
    if workflow not in b.spec.workflows or type(workflow) is not str:
        declared = tuple(b.spec.workflows) or ("(none declared)",)
        return "workflow", _one_of(workflow, declared) if workflow is not None else "is required"
    if b.flow not in b.spec.workflow_flows(workflow):
        return "flow", f"workflow {workflow!r} does not run in flow {b.flow!r}"
    steps = b.spec.workflows[workflow].steps
    if step not in steps or type(step) is not str:
        return "step", _one_of(step, steps) if step is not None else "is required"
    good = _need_bool(ok, "ok")
    if isinstance(good, tuple):
        return good
    slot = b.c.store.slot(
        names.WORKFLOW_STEPS_TOTAL, (b.agent, b.flow, workflow, step, names.GOOD if good else names.BAD)
    )
    b.plan.incs.append(slot)
    b.plan.exemplar_slots.append(slot)
    for slo in b.slos("workflow"):
        sli = b.spec.slos[slo].sli.workflow
        assert sli is not None
        if sli.name != workflow:
            continue
        if sli.step is not None:  # one step's success
            if sli.step == step:
                b.count(slo, good)
        elif not good or step == steps[-1]:  # end to end: a failed step, or the last one done
            b.count(slo, good)
    return None


def _connection(b: _Builder, ok: Any) -> Problem | None:
    good = _need_bool(ok, "ok")
    if isinstance(good, tuple):
        return good
    for slo in b.slos("connection"):
        b.count(slo, good)
    return None


def _synthetic(b: _Builder, scenario: Any, passed: Any) -> Problem | None:
    name = _text(scenario, "scenario")
    if isinstance(name, tuple):
        return name
    ok = _need_bool(passed, "passed")
    if isinstance(ok, tuple):
        return ok
    declared = tuple(
        sc
        for s in b.slos("synthetic")
        for sc in (b.spec.slos[s].sli.synthetic.scenarios or ())  # type: ignore[union-attr]
    )
    label, folded = b.c.bounded(
        b.c.scenarios, (b.agent, b.flow), names.L_SCENARIO, name, b.c.config.max_scenarios, declared
    )
    if folded is not None:
        b.plan.incs.append(folded)
    b.c.scenario_series(b.agent, b.flow, label)
    st = b.c.store
    b.plan.last_run = st.slot(names.SYNTHETIC_LAST_RUN_TIMESTAMP_SECONDS, (b.agent, b.flow, label))
    if b.exclude == PROBER_ERROR_EXCLUSION:  # the prober failed, not the agent: counted, no streak
        outcome = names.SYNTHETIC_PROBER_ERROR
    else:
        outcome = names.SYNTHETIC_PASSED if ok else names.SYNTHETIC_FAILED
        b.plan.streak = (st.slot(names.SYNTHETIC_CONSECUTIVE_FAILURES, (b.agent, b.flow, label)), ok)
    b.plan.incs.append(st.slot(names.SYNTHETIC_RUNS_TOTAL, (b.agent, b.flow, label, outcome)))
    for slo in b.slos("synthetic"):
        only = b.spec.slos[slo].sli.synthetic.scenarios  # type: ignore[union-attr]
        if only is None or name in only:
            b.count(slo, ok)
    return None


_TYPED: dict[str, Callable[..., Problem | None]] = {
    "task": _task,
    "turn": _turn,
    "tool_call": _tool_call,
    "judge": _judge,
    "escalation": _escalation,
    "connection": _connection,
    "synthetic": _synthetic,
    "stage": _stage,
    "workflow_step": _workflow_step,
}


def build(catalog: Catalog, kind: str, key: tuple[Any, ...]) -> Plan | Problem:
    """Validate the categorical fields `key` = (agent, flow, exclude, *type fields) and plan the event."""
    agent, flow, exclude, *rest = key
    spec = catalog.specs.get(agent) if type(agent) is str else None
    if spec is None:
        served = ", ".join(catalog.specs)
        return (
            "agent",
            f"unknown agent {agent!r:.64}; this exporter serves: {served}"
            if agent is not None
            else "is required",
        )
    if type(flow) is not str or flow not in spec.flows:
        return "flow", _one_of(flow, tuple(spec.flows)) if flow is not None else "is required"
    if exclude is not None and (type(exclude) is not str or exclude not in spec.all_exclusions()):
        return "exclude", _one_of(exclude, spec.all_exclusions())
    builder = _Builder(catalog, spec, flow, exclude)
    problem = _TYPED[kind](builder, **dict(zip(TYPES[kind].plan_key, rest, strict=True)))
    return problem if problem is not None else builder.plan
