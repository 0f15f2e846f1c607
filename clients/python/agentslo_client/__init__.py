"""Report an AI agent's tasks, turns and tool calls to an agent-slo exporter, safely.

Five lines put an agent under SLOs (`pip install agent-slo-client`; standard library only):

    import agentslo_client as slo
    slo.init(agent="cx-support")      # AGENT_SLO_URL, AGENT_SLO_TOKEN from the environment

    with slo.task("refund") as task:  # duration and outcome; an exception is a failure, re-raised
        reply = run_my_agent(question)

Inside a task, decorated tools and timed turns report themselves and add to the task's steps:

    @slo.tool()                       # a tool_call: latency, `ok`, or `error` when it raises
    def get_order(order_id: str) -> dict: ...

    with slo.turn() as turn:          # a turn's latency; its tokens go to the task
        answer = llm(messages)
        turn.add_tokens(input=answer.usage.prompt_tokens, output=answer.usage.completion_tokens,
                        model="gpt-4o")

    task = slo.current_task()         # the task in scope, from anywhere below it
    task.fail("quoted a retired refund window", failure_mode="wrong_refund_window")
    task.escalate()                   # or abandon(), success(), add_cost(0.012)

`@slo.task("refund")` decorates a function (sync or async) instead; `async with slo.task(...)`
works too. Judge verdicts, escalations, connections and single events go through the client:
`slo.get_client().record_judge("faithfulness", 0.93)`. A whole conversation goes to the judges
with `task.attach_session(messages, context=[...])`. Probe traffic is marked with the prober's
header: `slo.task("refund", synthetic=request.headers.get(slo.SYNTHETIC_HEADER))`.

What it guarantees inside the agent's process: no helper raises or waits on the network (a bounded
queue and one background sender, batches by size and time); retries with backoff keep each
batch's `Idempotency-Key` and honour `Retry-After`, so a batch counts exactly once; a refused batch
is logged once and not retried; while the exporter is down at most `max_queue` events are held and
the rest are dropped and counted (`stats()`); `flush()`, `close()` and an exit hook with a timeout;
fork-safe; a no-op client when unconfigured or with AGENT_SLO_DISABLED=1. Framework hooks:
`agentslo_client.integrations.openai_agents` and `agentslo_client.integrations.langchain`.
"""

from __future__ import annotations

from typing import Any

from agentslo_client._client import (
    ENV_AGENT,
    ENV_DISABLED,
    ENV_FLOW,
    ENV_TOKEN,
    ENV_URL,
    ENV_VERSION,
    SYNTHETIC_HEADER,
    Client,
)
from agentslo_client._scopes import (
    SYNTHETIC_EXCLUSION,
    Task,
    TaskScope,
    ToolCall,
    ToolScope,
    Turn,
    TurnScope,
    current_task,
    task_fields,
)
from agentslo_client._sender import Stats
from agentslo_client._transport import Response, Transport

__version__ = "0.1.0"
__all__ = [
    "ENV_AGENT",
    "ENV_DISABLED",
    "ENV_FLOW",
    "ENV_TOKEN",
    "ENV_URL",
    "ENV_VERSION",
    "SYNTHETIC_EXCLUSION",
    "SYNTHETIC_HEADER",
    "Client",
    "Response",
    "Stats",
    "Task",
    "TaskScope",
    "ToolCall",
    "ToolScope",
    "Transport",
    "Turn",
    "TurnScope",
    "close",
    "current_task",
    "flush",
    "get_client",
    "init",
    "task",
    "tool",
    "turn",
]

_default: Client | None = None


def init(
    url: str | None = None, agent: str | None = None, token: str | None = None, **options: Any
) -> Client:
    """Configure the process-wide client that `task()`, `tool()`, `turn()` and `flush()` use (the
    arguments of `Client`). A client configured earlier is closed first."""
    global _default
    if _default is not None:
        _default.close()
    _default = Client(url, agent, token, **options)
    return _default


def get_client() -> Client:
    """The process-wide client: the one `init()` made, else one configured from the environment
    alone (a no-op when AGENT_SLO_URL or AGENT_SLO_AGENT is not set)."""
    global _default
    if _default is None:
        _default = Client()
    return _default


class _Default:
    """The owner of scopes made by the module's functions: the process-wide client *when the scope
    ends*, so a tool decorated at import time reports to the client `init()` makes later."""

    def _task_done(self, task: Task, error: BaseException | None) -> None:
        get_client()._task_done(task, error)

    def _tool_done(self, call: ToolCall, task: Task | None) -> None:
        get_client()._tool_done(call, task)

    def _turn_done(self, turn: Turn, task: Task | None) -> None:
        get_client()._turn_done(turn, task)


_DEFAULT = _Default()


def task(
    flow: str | None = None,
    *,
    session_id: str | None = None,
    trace_id: str | None = None,
    exclude: str | None = None,
    synthetic: bool | str | None = None,
    escalation_required: bool | None = None,
    model: str | None = None,
) -> TaskScope:
    """`Client.task` of the process-wide client."""
    fields = task_fields(session_id, trace_id, exclude, synthetic, escalation_required, model)
    return TaskScope(_DEFAULT, flow, fields)


def tool(name: str | None = None, *, flow: str | None = None) -> ToolScope:
    """`Client.tool` of the process-wide client."""
    return ToolScope(_DEFAULT, name, flow)


def turn(*, kind: str = "turn", flow: str | None = None) -> TurnScope:
    """`Client.turn` of the process-wide client."""
    return TurnScope(_DEFAULT, kind, flow)


def flush(timeout_s: float = 5.0) -> bool:
    """`Client.flush` of the process-wide client."""
    return get_client().flush(timeout_s)


def close(timeout_s: float | None = None) -> bool:
    """`Client.close` of the process-wide client."""
    return get_client().close(timeout_s)
