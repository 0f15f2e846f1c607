"""Tasks, tool calls and turns as scopes: context managers (sync and async) and decorators.

A scope times its block and hands what it saw to its owner (the `Client`) when the block ends; the
owner turns that into events. Scopes never swallow an exception and never raise one of their own:

    with client.task("refund") as task:      # an exception here: outcome failure, re-raised unchanged
        with client.turn() as turn:          # a turn's latency; its tokens go to the task
            turn.add_tokens(input=812, output=95, model="gpt-4o")
        lookup(order)                        # a function decorated with @client.tool(): a tool_call
        task.fail("quoted the wrong window", failure_mode="wrong_refund_window")

The task in scope is kept in a context variable (`current_task()`), so turns and tool calls inside
it, in the same thread or asyncio task, inherit its flow, session id and synthetic marking and add
to its steps. Outside any task `current_task()` gives a detached task whose changes go nowhere, so
instrumented code runs the same with or without one.
"""

from __future__ import annotations

import functools
import inspect
import time
import uuid
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, Callable, Generic, Protocol, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])
_V = TypeVar("_V")  # what a scope gives its `with` block

MAX_TOOL_CALLS_KEPT = 1_000  # per task, for the session document (the exporter's own limit)
ESCALATE_OUTCOME = "escalated"
SYNTHETIC_EXCLUSION = "synthetic"  # the spec's built-in exclusion for probe traffic


class Owner(Protocol):
    """What a scope reports to (the client)."""

    def _task_done(self, task: Task, error: BaseException | None) -> None: ...

    def _tool_done(self, call: ToolCall, task: Task | None) -> None: ...

    def _turn_done(self, turn: Turn, task: Task | None) -> None: ...


class Task:
    """A task in flight. Set its outcome and what it cost; the client records it when the scope ends.

    With no outcome set, a task that ends normally is a `success` and one left by an exception is a
    `failure` (`abandoned` for a cancellation, KeyboardInterrupt or SystemExit).
    """

    __slots__ = (
        "_session",
        "_started",
        "_steps",
        "context_preserved",
        "cost_usd",
        "escalated",
        "escalation_required",
        "exclude",
        "failure_mode",
        "flow",
        "input_tokens",
        "model",
        "outcome",
        "output_tokens",
        "prompt_version",
        "reason",
        "session_id",
        "steps",
        "tool_calls",
        "trace_id",
        "version",
    )

    def __init__(
        self,
        flow: str | None = None,
        *,
        session_id: str | None = None,
        trace_id: str | None = None,
        exclude: str | None = None,
        escalation_required: bool | None = None,
        model: str | None = None,
        version: str | None = None,
        prompt_version: str | None = None,
    ) -> None:
        self.flow = flow
        self.session_id = session_id
        self.trace_id = trace_id
        self.exclude = exclude
        self.escalation_required = escalation_required  # None: unknown (no escalation event)
        self.model = model
        self.version = version
        self.prompt_version = prompt_version
        self.outcome: str | None = None
        self.failure_mode: str | None = None
        self.reason: str | None = None  # why it failed, for people (the session's metadata), not a label
        self.escalated = False
        self.context_preserved: bool | None = None
        self.cost_usd: float | None = None
        self.input_tokens = 0
        self.output_tokens = 0
        self.steps: int | None = None  # set explicitly, or counted from turns and tool calls
        self._steps = 0
        self.tool_calls: list[dict[str, Any]] = []
        self._session: dict[str, Any] | None = None
        self._started = time.perf_counter()

    def success(self) -> None:
        """The task was completed (the default when the block ends without an exception)."""
        self.outcome = "success"

    def fail(self, reason: str | None = None, failure_mode: str | None = None) -> None:
        """The task was not completed. `failure_mode` is one of the spec's `failure_modes` (a label);
        `reason` is free text for people, kept with the session, never a label."""
        self.outcome = "failure"
        self.reason = reason
        if failure_mode is not None:
            self.failure_mode = failure_mode

    def abandon(self) -> None:
        """The user left before the task was done."""
        self.outcome = "abandoned"

    def escalate(self, *, required: bool = True, context_preserved: bool = True) -> None:
        """Handed to a human. Also records an `escalation` event: performed, `required` (the agent's
        judgement unless you know better) and whether the hand-off kept the conversation's context."""
        self.outcome = ESCALATE_OUTCOME
        self.escalated = True
        self.escalation_required = required
        self.context_preserved = context_preserved

    def add_tokens(self, input: int = 0, output: int = 0, model: str | None = None) -> None:
        """Tokens an LLM call used; the task reports the sum (`agent_slo_tokens_total` by model)."""
        self.input_tokens += input
        self.output_tokens += output
        if model is not None and self.model is None:
            self.model = model

    def add_cost(self, usd: float) -> None:
        """Money spent on the task (summed; the `cost` SLIs read the task's total)."""
        self.cost_usd = (self.cost_usd or 0.0) + usd

    def add_steps(self, n: int = 1) -> None:
        """Steps beyond the turns and tool calls recorded inside the task (those count themselves)."""
        self._steps += n

    def attach_session(
        self,
        messages: list[dict[str, Any]],
        *,
        context: list[str] | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        output: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Submit the conversation for the judges (`POST /v1/sessions`) when the task ends, with the
        task's outcome, duration, cost, versions and session id. Tool calls recorded inside the task
        are included when `tool_calls` is not given."""
        if self.session_id is None:  # the task's events from now on carry the session's id
            self.session_id = uuid.uuid4().hex
        self._session = {
            "messages": messages,
            "context": context,
            "tool_calls": tool_calls,
            "output": output,
            "metadata": metadata,
        }

    @property
    def duration_s(self) -> float:
        return time.perf_counter() - self._started

    def _note_step(self) -> None:
        self._steps += 1


_CURRENT: ContextVar[Task | None] = ContextVar("agentslo_client_task", default=None)


def current_task() -> Task:
    """The task in scope, or a detached one (changes to it are recorded nowhere)."""
    task = _CURRENT.get()
    return task if task is not None else Task()


def active_task() -> Task | None:
    return _CURRENT.get()


def outcome_of(error: BaseException | None) -> str | None:
    """The outcome an exception leaving a task gives it: failure, or abandoned for a cancellation,
    KeyboardInterrupt or SystemExit (BaseExceptions that are not errors of the agent)."""
    if error is None:
        return None
    return "failure" if isinstance(error, Exception) else "abandoned"


def task_fields(
    session_id: str | None,
    trace_id: str | None,
    exclude: str | None,
    synthetic: bool | str | None,
    escalation_required: bool | None,
    model: str | None,
) -> dict[str, Any]:
    """The keyword arguments of `Task` from those of `Client.task`."""
    return {
        "session_id": session_id,
        "trace_id": trace_id,
        "exclude": SYNTHETIC_EXCLUSION if synthetic else exclude,
        "escalation_required": escalation_required,
        "model": model,
    }


class _Scope(Generic[_V]):
    """What every scope shares: `async with` is `with` (nothing in a scope awaits)."""

    def __enter__(self) -> _V:
        raise NotImplementedError

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> _V:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def _decorated(fn: F, scope: Callable[[], Any]) -> F:
    """`fn` (a sync or async function) run inside a fresh `scope()` on every call."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            async with scope():
                return await fn(*args, **kwargs)

        return cast(F, run_async)

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        with scope():
            return fn(*args, **kwargs)

    return cast(F, run)


class TaskScope(_Scope[Task]):
    """`with client.task(...) as task`, `async with ...`, or `@client.task(...)` on a function."""

    def __init__(self, owner: Owner, flow: str | None, fields: dict[str, Any]) -> None:
        self._owner = owner
        self._flow = flow
        self._fields = fields
        self._stack: list[tuple[Task, Token[Task | None]]] = []

    def __enter__(self) -> Task:
        task = Task(self._flow, **self._fields)
        self._stack.append((task, _CURRENT.set(task)))
        return task

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        task, token = self._stack.pop()
        try:
            _CURRENT.reset(token)
        except ValueError:  # left in another context (an async generator): nothing to restore
            pass
        self._owner._task_done(task, exc)

    def __call__(self, fn: F) -> F:
        """Each call of `fn` is a task of its own (sync or async functions)."""
        owner, flow, fields = self._owner, self._flow, self._fields
        return _decorated(fn, lambda: TaskScope(owner, flow, fields))


class ToolCall:
    """A tool call in flight: an exception makes it `error`; set `outcome` for the other verdicts
    (`wrong_tool`, `invalid_params`, `empty_result`) or leave it for `ok`."""

    __slots__ = ("_started", "flow", "latency_s", "outcome", "tool")

    def __init__(self, tool: str, flow: str | None) -> None:
        self.tool = tool
        self.flow = flow
        self.outcome: str | None = None
        self.latency_s = 0.0
        self._started = time.perf_counter()


class ToolScope(_Scope[ToolCall]):
    """`with client.tool("get_order") as call`, or `@client.tool()` on a tool function."""

    def __init__(self, owner: Owner, name: str | None, flow: str | None) -> None:
        self._owner = owner
        self._name = name
        self._flow = flow
        self._stack: list[ToolCall] = []

    def __enter__(self) -> ToolCall:
        call = ToolCall(self._name or "tool", self._flow)
        self._stack.append(call)
        return call

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        call = self._stack.pop()
        call.latency_s = time.perf_counter() - call._started
        if exc is not None and call.outcome is None:
            call.outcome = "error"
        self._owner._tool_done(call, _CURRENT.get())

    def __call__(self, fn: F) -> F:
        """Each call of `fn` is a tool call of its own, named for `fn` unless a name was given."""
        owner, name, flow = self._owner, self._name or fn.__name__, self._flow
        return _decorated(fn, lambda: ToolScope(owner, name, flow))


class Turn:
    """A turn in flight; its tokens are added to the task in scope (turn events carry no tokens)."""

    __slots__ = ("_started", "flow", "input_tokens", "kind", "latency_s", "model", "output_tokens")

    def __init__(self, kind: str, flow: str | None) -> None:
        self.kind = kind
        self.flow = flow
        self.latency_s = 0.0
        self.input_tokens = 0
        self.output_tokens = 0
        self.model: str | None = None
        self._started = time.perf_counter()

    def add_tokens(self, input: int = 0, output: int = 0, model: str | None = None) -> None:
        self.input_tokens += input
        self.output_tokens += output
        if model is not None:
            self.model = model


class TurnScope(_Scope[Turn]):
    """`with client.turn() as turn`, or `@client.turn()` on the function that produces a reply."""

    def __init__(self, owner: Owner, kind: str, flow: str | None) -> None:
        self._owner = owner
        self._kind = kind
        self._flow = flow
        self._stack: list[Turn] = []

    def __enter__(self) -> Turn:
        turn = Turn(self._kind, self._flow)
        self._stack.append(turn)
        return turn

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        turn = self._stack.pop()
        turn.latency_s = time.perf_counter() - turn._started
        self._owner._turn_done(turn, _CURRENT.get())

    def __call__(self, fn: F) -> F:
        """Each call of `fn` is a turn of its own."""
        owner, kind, flow = self._owner, self._kind, self._flow
        return _decorated(fn, lambda: TurnScope(owner, kind, flow))
