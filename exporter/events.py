"""The event format of `POST /v1/events`, declared once: one msgspec Struct per event type.

A field's annotation says all there is to know about it: its kind of value (the aliases below:
`Name`, `Flag`, `Id`, `Text`, `Time`, `Number` (`Seconds`, `Usd`), `Count`, `Score`, `Tokens`),
its bounds (msgspec `Meta`), its allowed values (`Literal`) and whether it is required (no default). A type's
`plan_key` names the fields whose values pick its series, in the order planning takes them. To add a
field or an event type, edit the classes here; everything else that knows the format is derived
from them in this module:

- `FIELDS`: per type, field → `Field(kind, required, values, hint)`: what the authoritative
  validator (`exporter.validate`) checks, how the C++ scanner is set up (`exporter.wire`) and what
  the OpenAPI document says (`exporter.openapi`);
- `PLAN_KEY`, `NUMBERS`, `UPPER`, `BOOLEAN`, `ALLOWED`, `NUMBER_KINDS`: what the classifier reads column-wise;
- `TASK_OUTCOMES`, `TOOL_OUTCOMES`, `TURN_KINDS`, `TOKEN_TYPES`: the enumerations planning checks
  and the catalog creates series for.

The Structs are also the msgspec fast front (`exporter.wire` decodes a batch into them). That front
is a filter, not the authority: categorical values (`Name`, `Flag`) are checked against the spec
when their plan is built, `null` reads as absent where a field is optional, and whatever the Structs
refuse goes to the validator, which names every problem.

    >>> FIELDS["turn"]["latency_s"].kind, FIELDS["turn"]["latency_s"].required
    ('number', True)
    >>> PLAN_KEY["tool_call"]
    ('agent', 'flow', 'exclude', 'tool', 'outcome')
"""

from __future__ import annotations

from datetime import datetime
from types import NoneType, UnionType
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, Union, get_args, get_origin, get_type_hints

import msgspec
from msgspec import Meta, Struct

MAX_ID_CHARS = 256  # session_id / trace_id; ids, not text
MAX_LABEL_CHARS = 128  # free-text label values (versions, model, scenario) longer than this are refused
# Counts above this lose precision as float64 counters; and 2^53 + 1 reads as 2^53 in a double, so
# the bound is the largest integer whose neighbours are exact too (every front then agrees).
MAX_COUNT = 2**53 - 1
MAX_SECONDS = 366 * 86_400.0  # a duration or latency: nothing an agent does takes a year
MAX_USD = 100_000.0  # the cost of one task: far above any agent's, far below an overflow
MAX_EXEMPLAR_ID = 100  # longer trace ids are not kept as exemplars (OpenMetrics: 128 characters of labels)

# The kinds of value, each named by the string in its annotation. Strings are measured in code
# points (as len()); printability and time offsets are checked by the validator and column-wise.
Name = Annotated[str, "name"]  # categorical: checked against the spec when the plan is built
Flag = Annotated[bool, "flag"]  # categorical true/false, also checked when the plan is built
Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID_CHARS), "id"]
Text = Annotated[str, Meta(min_length=1, max_length=MAX_LABEL_CHARS), "text"]  # printable
Time = Annotated[  # RFC 3339 with an offset, or epoch seconds
    Annotated[datetime, Meta(extra_json_schema={"format": "date-time"})] | Annotated[float, Meta(ge=0)],
    "time",
]
Number = Annotated[float, Meta(ge=0), "number"]  # finite: checked column-wise (msgspec refuses 1e999)
# Numbers have sane bounds per quantity, so no sum the exporter keeps can overflow to inf (1e308
# latencies did: an inf sum is NULL in SQLite). The largest sum is then 2^53 events at the bound.
Seconds = Annotated[float, Meta(ge=0, le=MAX_SECONDS), "number"]
Usd = Annotated[float, Meta(ge=0, le=MAX_USD), "number"]
Count = Annotated[int, Meta(ge=0, le=MAX_COUNT), "count"]
Score = Annotated[float, Meta(ge=0, le=1.0), "score"]
Label = Annotated[Name, Meta(min_length=1, max_length=MAX_LABEL_CHARS)]  # a free-text name (printable)

TaskOutcome = Annotated[Literal["success", "failure", "abandoned", "escalated"], "name"]
ToolOutcome = Annotated[  # "ok" (names.TOOL_OK) is the good one
    Literal["ok", "wrong_tool", "invalid_params", "empty_result", "error"], "name"
]
TurnKind = Annotated[Literal["turn", "first_response", "tool_turn"], "name"]


class Tokens(Struct, forbid_unknown_fields=True, gc=False):
    """Tokens a task or a turn used, by direction (at least one)."""

    input: Count | None = None
    output: Count | None = None


class Event(Struct, tag_field="type", forbid_unknown_fields=True, gc=False, kw_only=True):
    """Fields every event type takes. `agent`, `flow` and `exclude` start every plan key."""

    plan_key: ClassVar[tuple[str, ...]]  # the type's fields that pick its series, after SCOPE
    rank: ClassVar[int]  # position of the type's name in sorted order: groups are classified in it
    agent: Name
    flow: Name
    exclude: Name | None = None
    session_id: Id | None = None
    trace_id: Id | None = None
    version: Text | None = None
    prompt_version: Text | None = None
    model: Text | None = None
    time: Time | None = None


class Task(Event, tag="task", kw_only=True):
    """A task the agent worked on: the `task` SLIs, `latency of: task` and `cost`."""

    plan_key = ("outcome", "escalation_required", "failure_mode", "model")
    outcome: TaskOutcome
    escalation_required: Flag | None = None  # false when absent
    failure_mode: Name | None = None
    duration_s: Seconds | None = None
    cost_usd: Usd | None = None
    steps: Count | None = None
    tokens: Annotated[Tokens, Meta(extra_json_schema={"minProperties": 1}), "tokens"] | None = None


class Turn(Event, tag="turn", kw_only=True):
    """One turn's latency: the `latency` SLIs of its kind; and its tokens, by its model, when the turn
    carries them (an LLM call outside any task, e.g. from OTLP). Tokens go on the turn or on its
    task, never both: each is counted where it is sent."""

    plan_key = ("kind", "model")
    kind: TurnKind | None = None  # "turn" when absent
    latency_s: Seconds
    tokens: Annotated[Tokens, Meta(extra_json_schema={"minProperties": 1}), "tokens"] | None = None


class ToolCall(Event, tag="tool_call", kw_only=True):
    """One tool call: the `tool_calls` SLIs (`ok` is good)."""

    plan_key = ("tool", "outcome")
    tool: Name  # an undeclared one (even "") counts as `other`
    outcome: ToolOutcome
    latency_s: Seconds | None = None
    # Evidence that makes a call traceable (hashes of what went in and came out, the task it served):
    # ids, never labels; kept with the stored session, never on a series.
    input_hash: Id | None = None
    output_hash: Id | None = None
    parent_task_id: Id | None = None


class Judge(Event, tag="judge", kw_only=True):
    """A judge's verdict: the `judge` SLIs (good when the score reaches the pass threshold)."""

    plan_key = ("judge", "judge_version")
    judge: Name
    judge_version: Label | None = None  # the declared version when absent
    score: Score


class Escalation(Event, tag="escalation", kw_only=True):
    """A hand-off decision: the `escalation` SLIs."""

    plan_key = ("required", "performed", "context_preserved")
    required: Flag
    performed: Flag
    context_preserved: Flag | None = None  # required when performed is true


class Connection(Event, tag="connection", kw_only=True):
    """Whether the user reached the agent: the `connection` SLIs."""

    plan_key = ("ok",)
    ok: Flag


class Synthetic(Event, tag="synthetic", kw_only=True):
    """A prober run of a scenario: the `synthetic` SLIs."""

    plan_key = ("scenario", "passed")
    scenario: Label
    passed: Flag
    duration_s: Seconds | None = None


class Stage(Event, tag="stage", kw_only=True):
    """One voice-pipeline stage's latency in a turn (a stage the spec's `pipeline` declares)."""

    plan_key = ("stage",)
    stage: Name  # telephony, asr, llm, tts, tools unless the spec declares others
    latency_s: Seconds


class WorkflowStep(Event, tag="workflow_step", kw_only=True):
    """One step of a declared workflow run: per-step and end-to-end `workflow` SLIs."""

    plan_key = ("workflow", "step", "ok")
    workflow: Name
    step: Name
    ok: Flag


AnyEvent = Task | Turn | ToolCall | Judge | Escalation | Connection | Synthetic | Stage | WorkflowStep

# --- derived from the classes above ---

TOKEN_TYPES: tuple[str, ...] = Tokens.__struct_fields__


class Field(NamedTuple):
    """What one field of one event type takes."""

    kind: str  # type, name, flag, id, text, time, number, count, score or tokens
    required: bool  # must be present and not null
    values: tuple[str, ...]  # the allowed values of an enumerated name, else ()
    hint: Any  # the annotation without `None`: what msgspec decodes and describes
    upper: float | None = None  # the largest value of a number, count or score


SCOPE = ("agent", "flow", "exclude")  # the fields every plan key starts with
PLANNED = frozenset({"type", "name", "flag"})  # kinds whose values the plan checks, not the validator
NUMBER_KIND = ("number", "count", "score")


def _field(hint: Any, required: bool) -> Field:
    if get_origin(hint) in (Union, UnionType):
        (hint,) = (option for option in get_args(hint) if option is not NoneType)
    kind = next((m for m in getattr(hint, "__metadata__", ()) if type(m) is str), None)
    if kind is None:
        raise TypeError(f"{hint} is not one of the value kinds of exporter.events")
    literal = get_args(hint)[0]
    values = get_args(literal) if get_origin(literal) is Literal else ()
    upper = _number_kind(hint)[1] if kind in NUMBER_KIND else None
    return Field(kind, required, values, hint, upper)


def _fields(cls: type[Event]) -> dict[str, Field]:
    """The type's fields, `type` and the common ones first; raises if a categorical field has no plan."""
    tag: str = cls.__struct_config__.tag  # type: ignore[assignment]
    hints = get_type_hints(cls, include_extras=True)  # base classes first
    info = {f.name: f for f in msgspec.structs.fields(cls)}
    fields = {"type": Field("type", True, (tag,), str)}
    fields |= {name: _field(hint, info[name].required) for name, hint in hints.items() if name in info}
    unplanned = {f for f, spec in fields.items() if spec.kind in PLANNED} - {"type", *SCOPE, *cls.plan_key}
    if unplanned:
        raise TypeError(f"{cls.__name__}: {sorted(unplanned)} would never be checked; add to plan_key")
    return fields


def _number_kind(alias: Any) -> tuple[bool, float | None]:
    """(whole numbers only, the largest allowed) of a number kind, from its Meta."""
    info = msgspec.inspect.type_info(alias)
    assert isinstance(info, msgspec.inspect.IntType | msgspec.inspect.FloatType)
    return isinstance(info, msgspec.inspect.IntType), info.le


TYPES: dict[str, type[Event]] = {cls.__struct_config__.tag: cls for cls in get_args(AnyEvent)}
for _rank, _name in enumerate(sorted(TYPES)):
    TYPES[_name].rank = _rank
FIELDS: dict[str, dict[str, Field]] = {kind: _fields(cls) for kind, cls in TYPES.items()}
ALLOWED: dict[str, frozenset[str]] = {kind: frozenset(fields) for kind, fields in FIELDS.items()}
PLAN_KEY: dict[str, tuple[str, ...]] = {kind: (*SCOPE, *cls.plan_key) for kind, cls in TYPES.items()}
# Per type: the number fields and their kinds, in the order the fast fronts report them.
NUMBERS: dict[str, tuple[tuple[str, str], ...]] = {
    kind: tuple((f, spec.kind) for f, spec in fields.items() if spec.kind in NUMBER_KIND)
    for kind, fields in FIELDS.items()
}
# Per type: the largest value of each number column the fast fronts report (tokens last, as counts).
UPPER: dict[str, tuple[float | None, ...]] = {
    kind: (
        *(fields[f].upper for f, _ in NUMBERS[kind]),
        *((float(MAX_COUNT),) * len(TOKEN_TYPES) if "tokens" in fields else ()),
    )
    for kind, fields in FIELDS.items()
}
BOOLEAN = frozenset(f for fields in FIELDS.values() for f, spec in fields.items() if spec.kind == "flag")
NUMBER_KINDS = {"number": _number_kind(Number), "count": _number_kind(Count), "score": _number_kind(Score)}
TASK_OUTCOMES = FIELDS["task"]["outcome"].values
TOOL_OUTCOMES = FIELDS["tool_call"]["outcome"].values
TURN_KINDS = FIELDS["turn"]["kind"].values
