"""The SLO spec's typed, immutable models (pydantic), with the constants they are built from.

Import them from `agentslo.spec`, which adds the loader: this module holds the models alone so the
loader (`agentslo._validate`) can build on them without importing back.
"""

from __future__ import annotations

import hashlib
import re
import zoneinfo
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import orjson
import re2
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    WithJsonSchema,
    model_validator,
)

from agentslo import names
from agentslo.durations import format_duration, parse_duration, parse_threshold_seconds

VERSION = "agent-slo/v1"
RiskTier = Literal["faq", "account", "billing", "medical"]
# Objectives supplied by `objective: auto`, by risk tier, for the SLI kinds that have one (percent).
TIER_OBJECTIVES: Mapping[str, Mapping[str, float]] = {
    "faq": {"task": 90.0, "judge": 94.0},
    "account": {"task": 94.0, "judge": 97.0},
    "billing": {"task": 97.0, "judge": 99.0},
    "medical": {"task": 98.0, "judge": 99.5},
}
SLI_KINDS = (
    "task",
    "tool_calls",
    "judge",
    "latency",
    "cost",
    "escalation",
    "connection",
    "synthetic",
    "promql",
    "workflow",
)
BUILTIN_EXCLUSIONS = ("synthetic",)
# The prober's own failures (a bug or crash of the prober, not the agent's answer): sent to the
# synthetic SLIs excluded with this reason, so they are counted and shown but spend no budget.
# Honoured by synthetic SLOs only.
PROBER_ERROR_EXCLUSION = "prober_error"
BURN_TIER_NAMES = ("page_fast", "page_slow", "ticket_fast", "ticket_slow")
# A voice pipeline's stages, in the order a turn passes them, when `pipeline:` names none.
DEFAULT_STAGES = ("telephony", "asr", "llm", "tts", "tools")
# What an `escalation` SLI measures (see EscalationSLI); `correct` is the combined one.
ESCALATION_MEASURES = ("correct", "recall", "unnecessary", "context")
HealthComponent = Literal["task_completion", "synthetic_pass_rate", "step_count", "escalation", "llm_latency"]
# The health score's default weights (percent), by component: the usual voice/CX triage score.
DEFAULT_HEALTH_WEIGHTS: Mapping[HealthComponent, float] = {
    "task_completion": 30.0,
    "synthetic_pass_rate": 30.0,
    "step_count": 20.0,
    "escalation": 10.0,
    "llm_latency": 10.0,
}

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(
            f"{value!r} is not a valid name: use 1-63 lowercase letters, digits, '-', '_' or '.', "
            "starting with a letter or digit"
        )
    return value


def _label_name(value: str) -> str:
    if not _LABEL_RE.match(value):
        raise ValueError(
            f"{value!r} is not a Prometheus label name (letters, digits, '_'; not starting with a digit)"
        )
    if value in names.RESERVED_LABELS or value.startswith("__"):
        raise ValueError(f"label {value!r} is set by agent-slo itself; choose another name")
    return value


def _duration(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(
            f"{value!r} is not a Prometheus duration: use a whole number and a unit, such as 5m or 30d"
        )
    parse_duration(value)
    return value


# Rule judges run their regexes on user text with RE2, whose matching time is linear in the text
# (Python's backtracking `re` can take time quadratic or worse in it, and an attacker picks the text).
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the error comes back to the user with the key; no stderr noise


def _regex(value: str) -> str:
    try:
        re2.compile(value, _RE2_OPTIONS)
    except re2.error as exc:
        why = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(
            f"regular expression {value!r} does not compile as RE2 syntax ({why}): rule judges match in "
            "linear time, so lookarounds and backreferences are not available"
        ) from None
    return value


def _version(value: Any) -> Any:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _objective(value: Any) -> Any:
    if value == "auto":
        return value
    if isinstance(value, str) and value.strip().endswith("%"):
        value = value.strip()[:-1]
    try:
        number = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None or not 0 < number < 100:
        raise ValueError(
            f"objective {value!r} must be a percentage strictly between 0 and 100 (such as 99.5), or auto"
        )
    return number


_DURATION_SCHEMA = {"type": "string", "pattern": r"^([0-9]+(y|w|d|h|m|s|ms))+$", "examples": ["5m", "30d"]}
_SECONDS_SCHEMA = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)(ms|s|m|h)?$"},
    ],
    "examples": ["1.2s", "4500ms"],
}
_OBJECTIVE_SCHEMA = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 100},
        {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?%$"},
        {"const": "auto"},
    ],
    "description": "percent of good events, or `auto` (from the flow's risk tier; task and judge SLIs)",
}

Name = Annotated[str, AfterValidator(_name)]
LabelName = Annotated[str, AfterValidator(_label_name)]
Duration = Annotated[str, BeforeValidator(_duration), WithJsonSchema(_DURATION_SCHEMA)]
Seconds = Annotated[float, BeforeValidator(parse_threshold_seconds), WithJsonSchema(_SECONDS_SCHEMA)]
Regex = Annotated[str, AfterValidator(_regex)]
Version = Annotated[
    str,
    BeforeValidator(_version),
    Field(min_length=1, max_length=63),
    WithJsonSchema({"type": ["string", "number"]}),
]
Ratio = Annotated[float, Field(ge=0, le=1)]
Objective = Annotated[float | Literal["auto"], BeforeValidator(_objective), WithJsonSchema(_OBJECTIVE_SCHEMA)]


class Model(BaseModel):
    """Base of every spec object: immutable, and unknown keys are errors (with a suggestion)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_default(cls, data: Any) -> Any:
        return {} if data is None else data


class Flow(Model):
    risk: RiskTier | None = None
    description: str = ""


class LLMJudge(Model):
    type: Literal["llm"]
    model: str
    version: Version
    rubric: str = Field(min_length=1)
    pass_threshold: Ratio
    sample_rate: Ratio = 1.0
    flows: tuple[Name, ...] | None = None
    temperature: float = Field(0.0, ge=0, le=2)
    timeout: Seconds = 30.0
    max_retries: int = Field(3, ge=0, le=10)
    concurrency: int = Field(8, ge=1, le=256)
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    usd_per_1k_input_tokens: float = Field(0.0, ge=0)
    usd_per_1k_output_tokens: float = Field(0.0, ge=0)
    agreement_floor: Ratio = 0.85


class JsonCheck(Model):
    """A check on one field of the agent's JSON output; `path` is dotted (`refund.days`, `items.0.sku`)."""

    path: str = Field(min_length=1)
    equals: Any = None
    matches: Regex | None = None
    present: bool = True


class RuleJudge(Model):
    """Deterministic checks on the session's text; score 1 when every check passes, else 0."""

    type: Literal["rule"]
    version: Version
    flows: tuple[Name, ...] | None = None
    applies_to: Literal["assistant", "all", "tool_output"] = "assistant"
    fail_if_matches: tuple[Regex, ...] = ()
    pass_if_matches: tuple[Regex, ...] = ()
    fail_if_contains: tuple[str, ...] = ()
    require_contains: tuple[str, ...] = ()
    json_fields: tuple[JsonCheck, ...] = ()
    pass_threshold: Ratio = 1.0
    agreement_floor: Ratio = 0.85

    @model_validator(mode="after")
    def _has_a_check(self) -> RuleJudge:
        if not (
            self.fail_if_matches
            or self.pass_if_matches
            or self.fail_if_contains
            or self.require_contains
            or self.json_fields
        ):
            raise ValueError(
                "a rule judge needs at least one check: fail_if_matches, pass_if_matches, "
                "fail_if_contains, require_contains or json_fields"
            )
        return self


Judge = Annotated[LLMJudge | RuleJudge, Discriminator("type")]


class Empty(Model):
    pass


class ToolCallsSLI(Model):
    tools: tuple[str, ...] | None = None  # None: every declared tool


class LatencySLI(Model):
    of: Literal["task", "turn", "first_response", "tool_turn"]
    under: Seconds


class CostSLI(Model):
    under_usd: float = Field(gt=0)


class EscalationSLI(Model):
    """Which part of the hand-off decision is measured, each targetable on its own.

    `correct` (default): escalated exactly when required, with context preserved (every decision);
    `recall`: escalated when required (decisions that required one); `unnecessary`: the hand-off was
    required (escalations performed; bad = an unnecessary one); `context`: context preserved on
    hand-off (escalations performed)."""

    of: Literal["correct", "recall", "unnecessary", "context"] = "correct"

    def verdict(self, required: bool, performed: bool, context_preserved: bool) -> bool | None:
        """Good or bad for this measure, or None when the decision is not in its population."""
        if self.of == "correct":
            return performed == required and (not performed or context_preserved)
        if self.of == "recall":
            return performed if required else None
        if not performed:
            return None
        return required if self.of == "unnecessary" else context_preserved


class WorkflowSLI(Model):
    """A declared workflow's success: one `step`'s success, or end to end when no step is given
    (a run is good when its last step succeeds, bad when any step fails)."""

    name: Name
    step: Name | None = None


class SyntheticSLI(Model):
    scenarios: tuple[str, ...] | None = None  # None: every scenario of the SLO's flows


class PromqlSLI(Model):
    """Escape hatch: raw PromQL. Give `total` and exactly one of `good` or `bad`.

    Each expression holds a `[$window]` range selector, substituted per recorded window."""

    total: str = Field(min_length=1)
    good: str | None = None
    bad: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> PromqlSLI:
        if (self.good is None) == (self.bad is None):
            raise ValueError("a promql SLI needs `total` and exactly one of `good` or `bad`")
        for expr in (self.total, self.good or self.bad or ""):
            if "$window" not in expr:
                raise ValueError(f"promql expression {expr!r} must contain a [$window] range selector")
        return self


class SLI(Model):
    task: Empty | None = None
    tool_calls: ToolCallsSLI | None = None
    judge: Name | None = None
    latency: LatencySLI | None = None
    cost: CostSLI | None = None
    escalation: EscalationSLI | None = None
    connection: Empty | None = None
    synthetic: SyntheticSLI | None = None
    promql: PromqlSLI | None = None
    workflow: WorkflowSLI | None = None

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        if isinstance(data, str) and data in SLI_KINDS:
            data = {data: {}}
        if not isinstance(data, dict):
            raise ValueError(f"an SLI is a mapping with one key, one of: {', '.join(SLI_KINDS)}")
        known = [k for k in data if k in SLI_KINDS]
        if len(known) > 1:
            raise ValueError(f"an SLI has exactly one kind; got {', '.join(known)}")
        if not data:
            raise ValueError(f"an SLI needs a kind, one of: {', '.join(SLI_KINDS)}")
        return {k: ({} if v is None and k != "judge" else v) for k, v in data.items()}

    @property
    def kind(self) -> str:
        return next(k for k in SLI_KINDS if getattr(self, k) is not None)


class BurnTier(Model):
    long: Duration
    short: Duration
    factor: float = Field(gt=0)

    @model_validator(mode="after")
    def _short_below_long(self) -> BurnTier:
        if parse_duration(self.short) >= parse_duration(self.long):
            raise ValueError(
                f"the short window {self.short} must be shorter than the long window {self.long}"
            )
        return self


class Alerting(Model):
    page: bool = True
    ticket: bool = True
    for_: Duration | None = Field(None, alias="for")
    min_events: int = Field(1, ge=1)
    any_bad: Literal["page", "ticket"] | None = None
    runbook_url: str | None = None
    # Every generated alert without a runbook_url links `<base>/<agent>/<slo or alert>.md`, the pages
    # `agent-slo build` writes under runbooks/ (publish that folder at this URL).
    runbook_base_url: str | None = None
    dashboard_url: str | None = None
    max_error_ratio: float = Field(0.5, gt=0, le=1)


class SLO(Model):
    sli: SLI
    objective: Objective
    owner: Name
    flows: tuple[Name, ...] | None = None
    exclusions: tuple[Name, ...] | None = None  # which declared exclusions this SLO honours (default all)
    period: Duration | None = None
    description: str = ""
    alerting: Alerting | None = None


class Drift(Model):
    window: Duration = "1h"
    baseline: Duration = "7d"
    sigma: float = Field(3.0, gt=0)
    min_samples: int = Field(30, ge=1)
    judges: tuple[Name, ...] | None = None


class Autonomy(Model):
    governed_by: tuple[Name, ...] | None = None  # None: every SLO
    warning_burn: float = Field(1.0, gt=0)
    critical_burn: float = Field(5.0, gt=0)
    fail_safe: Literal["healthy", "warning", "critical", "exhausted"] = "critical"
    cache_seconds: float = Field(15.0, ge=0)


class ReleaseGate(Model):
    slos: tuple[Name, ...] | None = None
    watch_remaining: Ratio = 0.5
    freeze_remaining: Ratio = 0.2
    freeze_burn: float = Field(1.0, gt=0)
    watch_burn: float = Field(1.0, gt=0)
    block_at: Literal["watch", "freeze", "exhausted"] = "freeze"
    change_kinds: dict[Name, tuple[Name, ...]] = {}


class Target(Model):
    type: Literal["openai-chat", "http"]
    base_url: str | None = None
    url: str | None = None
    model: str | None = None
    headers: dict[str, str] = {}
    api_key_env: str | None = None
    request: dict[str, Any] | None = None  # http: JSON body template ($message, $history, $session_id)
    response_text: str = "text"  # http: dotted path to the reply text
    response_tool_calls: str | None = None  # http: dotted path to tool calls
    timeout: Seconds = 30.0

    @model_validator(mode="after")
    def _address(self) -> Target:
        if self.type == "openai-chat" and not self.base_url:
            raise ValueError("an openai-chat target needs base_url")
        if self.type == "http" and not self.url:
            raise ValueError("an http target needs url")
        return self


Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_HOURS_RE = re.compile(r"^((?:[01]\d|2[0-3]):[0-5]\d)-((?:[01]\d|2[0-3]):[0-5]\d|24:00)$")


def _hours(value: str) -> str:
    found = _HOURS_RE.match(value)
    if not found:
        raise ValueError(
            f"{value!r} is not HH:MM-HH:MM on a 24-hour clock (such as 09:00-17:00; end up to 24:00)"
        )
    if found[1] >= found[2]:
        raise ValueError(f"{value!r} ends before it starts; an overnight span is two days' hours")
    return value


def _time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin or UTC"
        ) from None
    return value


def _distinct_days(value: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(value)) != len(value):
        raise ValueError("each day may be listed once")
    return value


class BusinessHours(Model):
    """When synthetic failures page; outside these hours they open a ticket (Alertmanager time intervals)."""

    days: Annotated[tuple[Weekday, ...], Field(min_length=1), AfterValidator(_distinct_days)] = (
        "monday", "tuesday", "wednesday", "thursday", "friday",
    )  # fmt: skip
    hours: Annotated[str, AfterValidator(_hours)] = "09:00-17:00"
    time_zone: Annotated[str, AfterValidator(_time_zone)] = "UTC"


class Synthetic(Model):
    interval: Duration = "5m"
    target: Target | None = None
    scenarios: tuple[str, ...] = ()
    timeout: Seconds = 60.0
    concurrency: int = Field(10, ge=1, le=1000)
    jitter: Ratio = 0.1
    business_hours: BusinessHours | None = None  # None: synthetic failures page at any hour


class BudgetTier(Model):
    objective: Objective
    slos: tuple[Name, ...] = ()


class BudgetAllocation(Model):
    end_to_end: Objective
    tiers: dict[Literal["infrastructure", "provider", "execution", "quality"], BudgetTier]


class Pipeline(Model):
    """A voice pipeline's stages: `stage` events report each stage's latency, so dashboards show
    which stage owns the P95/P99 of a turn."""

    stages: tuple[Name, ...] = Field(DEFAULT_STAGES, min_length=1)


class Workflow(Model):
    """A multi-step workflow: its ordered steps (at least two), each reported by `workflow_step` events."""

    steps: tuple[Name, ...] = Field(min_length=2)
    flows: tuple[Name, ...] | None = None  # None: every flow
    description: str = ""


class Health(Model):
    """A triage score per flow, 0..1: the weighted mean of components, secondary to the SLOs (never
    alerted on). Each component is normalised to 0..1 over `window` (see README, "Health score")."""

    window: Duration = "1h"
    weights: dict[HealthComponent, float] = Field(default_factory=lambda: dict(DEFAULT_HEALTH_WEIGHTS))
    max_steps: int = Field(8, ge=1, le=1000)  # step_count: a task within this many steps is good
    llm_latency_under: Seconds = 2.0  # llm_latency: a turn at or under this is good

    @model_validator(mode="after")
    def _some_weight(self) -> Health:
        if any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            raise ValueError("health weights must be ≥ 0 and at least one above 0")
        return self


class Telemetry(Model):
    absent_for: Duration = "30m"
    scrape_job: str = "agent-slo"


class OtelFlowRule(Model):
    """Spans whose `attribute` equals (or fully matches, RE2) a value belong to `flow`."""

    attribute: str = Field(min_length=1)
    equals: str | None = None
    matches: Regex | None = None
    flow: Name

    @model_validator(mode="after")
    def _one_test(self) -> OtelFlowRule:
        if (self.equals is None) == (self.matches is None):
            raise ValueError("a flow rule needs exactly one of equals or matches")
        return self


class ModelPrice(Model):
    """What a model costs, in USD per million tokens (the cost of a task read from OTel spans)."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


class Otel(Model):
    """How OpenTelemetry GenAI spans are read (`POST /v1/traces`); the defaults follow the conventions."""

    # the first present on the span, its nearest ancestor that has one, or the resource names the flow
    flow_attributes: tuple[str, ...] = ("agent_slo.flow",)
    flow_rules: tuple[OtelFlowRule, ...] = ()  # tried in order when no flow attribute is present
    outcome_attribute: str = "agent_slo.outcome"
    version_attribute: str = "agent_slo.version"
    prompt_version_attribute: str = "agent_slo.prompt_version"
    exclude_attribute: str = "agent_slo.exclude"
    task_operations: tuple[str, ...] = ("invoke_agent",)  # operation names whose outermost span is a task
    prices: dict[str, ModelPrice] = {}  # model name -> price; a model without one adds no cost


class Spec(Model):
    version: Literal["agent-slo/v1"]
    agent: Name
    labels: dict[LabelName, str] = {}
    period: Duration = "30d"
    owners: dict[Name, dict[LabelName, str]]
    exclusions: tuple[Name, ...] = ()
    flows: dict[Name, Flow]
    tools: tuple[str, ...] = ()
    failure_modes: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    judges: dict[Name, Judge] = {}
    slos: dict[Name, SLO]
    alerting: Alerting = Alerting()
    burn_rates: dict[Literal["page_fast", "page_slow", "ticket_fast", "ticket_slow"], BurnTier] | None = None
    drift: Drift = Drift()
    autonomy: Autonomy = Autonomy()
    release_gate: ReleaseGate = ReleaseGate()
    synthetic: Synthetic | None = None
    budget_allocation: BudgetAllocation | None = None
    pipeline: Pipeline | None = None
    workflows: dict[Name, Workflow] = {}
    health: Health | None = None
    telemetry: Telemetry = Telemetry()
    otel: Otel = Otel()

    _source: str = PrivateAttr(default="<memory>")

    @property
    def source(self) -> str:
        """The file this spec was loaded from (for messages)."""
        return self._source

    # --- resolved views: what consumers use instead of re-deriving defaults ---

    def period_of(self, slo: str) -> str:
        return self.slos[slo].period or self.period

    def period_seconds(self, slo: str) -> int:
        return parse_duration(self.period_of(slo))

    def flows_of(self, slo: str) -> tuple[str, ...]:
        """The flows an SLO applies to: its own list, else its judge's flows, else every flow."""
        s = self.slos[slo]
        if s.flows is not None:
            return s.flows
        if s.sli.judge is not None and (judge := self.judges.get(s.sli.judge)) and judge.flows is not None:
            return judge.flows
        if s.sli.workflow is not None and s.sli.workflow.name in self.workflows:
            return self.workflow_flows(s.sli.workflow.name)
        return tuple(self.flows)

    def objective_for(self, slo: str, flow: str) -> float:
        """The objective in percent for one flow of an SLO (`auto` resolves through the flow's risk tier)."""
        s = self.slos[slo]
        if s.objective != "auto":
            return float(s.objective)
        risk = self.flows[flow].risk
        assert risk is not None, "validated: auto objectives only on flows with a risk tier"
        return TIER_OBJECTIVES[risk][s.sli.kind]

    def alerting_for(self, slo: str) -> Alerting:
        """The SLO's alerting options over the spec-wide defaults."""
        own = self.slos[slo].alerting
        if own is None:
            return self.alerting
        merged = self.alerting.model_dump(by_alias=False) | own.model_dump(include=own.model_fields_set)
        return Alerting.model_validate({("for" if k == "for_" else k): v for k, v in merged.items()})

    def exclusions_of(self, slo: str) -> tuple[str, ...]:
        """The exclusion reasons an SLO honours (the built-in `synthetic` always; a synthetic SLO
        also `prober_error`)."""
        own = self.slos[slo].exclusions
        declared = own if own is not None else self.exclusions
        builtin = (
            (*BUILTIN_EXCLUSIONS, PROBER_ERROR_EXCLUSION)
            if self.slos[slo].sli.kind == "synthetic"
            else BUILTIN_EXCLUSIONS
        )
        return (*builtin, *(e for e in declared if e not in builtin))

    def all_exclusions(self) -> tuple[str, ...]:
        builtin = (*BUILTIN_EXCLUSIONS, PROBER_ERROR_EXCLUSION)
        return (*builtin, *(e for e in self.exclusions if e not in builtin))

    def workflow_flows(self, workflow: str) -> tuple[str, ...]:
        """The flows a workflow runs in: its own list, else every flow."""
        own = self.workflows[workflow].flows
        return own if own is not None else tuple(self.flows)

    def governing_slos(self) -> tuple[str, ...]:
        return self.autonomy.governed_by if self.autonomy.governed_by is not None else tuple(self.slos)

    def owner_labels(self, slo: str) -> dict[str, str]:
        return dict(self.owners[self.slos[slo].owner])

    def dump(self) -> dict[str, Any]:
        """The spec as plain YAML-ready data that reloads to an equal model."""
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=True)

    def __eq__(self, other: object) -> bool:
        # Content equality: where a spec was loaded from is not part of what it says.
        return isinstance(other, Spec) and self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]

    @property
    def spec_hash(self) -> str:
        """A short, stable hash of the spec's content (not its formatting), for `agent_slo_spec_info`."""
        canonical = orjson.dumps(self.model_dump(mode="json", by_alias=True), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()[:12]


def period_label(seconds: int) -> str:
    """A period's name in rule names and labels: its shortest Prometheus spelling (`30d`, `4w`, `1w`)."""
    return format_duration(seconds)
