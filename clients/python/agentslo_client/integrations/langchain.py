"""The LangChain / LangGraph hook: a callback handler that turns runs into agent-slo events.

    from agentslo_client.integrations.langchain import AgentSLOCallbackHandler

    handler = AgentSLOCallbackHandler(flow="refund")
    graph.invoke({"messages": [...]}, config={"callbacks": [handler], "metadata": {"flow": "refund"}})

What becomes what:

- the outermost chain or graph run (the one without a parent) → `task` when it ends: `success`;
  `failure` (`abandoned` for a cancellation) when it raised; `escalated` after an escalation tool;
  duration, steps, and tokens and model over the run;
- a tool's start and end → `tool_call`: `ok`, or `error` when the tool raised or returned an error
  `ToolMessage` (what LangGraph's `ToolNode` makes of an exception); its latency;
- a chat model's (or LLM's) start and end → `turn` (kind `turn`): its latency; its tokens
  (`usage_metadata`, else `llm_output["token_usage"]`) go to the task;
- a tool named like a person (`human`, `escalat...`, `operator`, or the names given) → an
  `escalation` event, performed, and the task `escalated`.

The flow comes from the run's metadata (`flow` or `agent_slo_flow`, inherited by every child run),
else the `flow` argument. `session_id` is the metadata's, else LangGraph's `thread_id`. A LangGraph
interrupt (human in the loop) pauses the run without ending it: no task is recorded for the pause.
Runs inside the application's own `agentslo_client.task()` add to that task instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import LLMResult

from agentslo_client import Client
from agentslo_client.integrations._common import Run, Runs, client_of, escalation_matcher, meta

# LangGraph's control-flow exceptions (interrupts, commands to a parent graph): a pause, not a failure.
_PAUSES = frozenset({"GraphBubbleUp", "GraphInterrupt", "NodeInterrupt", "ParentCommand"})


def _is_pause(error: BaseException) -> bool:
    return any(cls.__name__ in _PAUSES for cls in type(error).__mro__)


def _usage(response: LLMResult) -> tuple[dict[str, Any] | None, str | None]:
    """Token usage and model of one LLM call, from the message metadata or the provider's output."""
    usage: dict[str, Any] = {}
    model: str | None = None
    for candidates in response.generations:
        for generation in candidates:
            message = getattr(generation, "message", None)
            found = getattr(message, "usage_metadata", None)
            if found:
                usage["input_tokens"] = usage.get("input_tokens", 0) + int(found.get("input_tokens") or 0)
                usage["output_tokens"] = usage.get("output_tokens", 0) + int(found.get("output_tokens") or 0)
            model = model or (getattr(message, "response_metadata", None) or {}).get("model_name")
    output = response.llm_output or {}
    if not usage and isinstance(output.get("token_usage"), Mapping):
        usage = dict(output["token_usage"])
    return usage or None, model or output.get("model_name")


class AgentSLOCallbackHandler(BaseCallbackHandler):
    """Records tasks, turns, tool calls and escalations of LangChain runs (see the module docstring)."""

    raise_error = False  # LangChain logs a handler's error instead of raising it into the run
    run_inline = True  # cheap and thread-safe: run in the caller's context, in order

    def __init__(
        self,
        client: Client | None = None,
        *,
        flow: str | None = None,
        escalation: Iterable[str] | None = None,
    ) -> None:
        self._client = client
        self._flow = flow
        self._escalates = escalation_matcher(escalation)
        self._runs = Runs()  # by the outermost run's id
        self._root: dict[UUID, UUID] = {}  # open child run → its outermost run
        self._started: dict[UUID, tuple[float, str, Run]] = {}  # open tool / LLM run → (start, name, run)

    def _run(self, run_id: UUID, metadata: Mapping[str, Any] | None) -> Run:
        run = self._runs.get(self._root.get(run_id, run_id))
        return run if run is not None else Run(metadata, flow=self._flow)  # a lone tool or model call

    def _child(self, run_id: UUID, parent_run_id: UUID | None) -> None:
        if parent_run_id is not None:
            self._root[run_id] = self._root.get(parent_run_id, parent_run_id)

    # --- chains and graphs: the task ---

    def on_chain_start(
        self,
        serialized: dict[str, Any],
        inputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            if parent_run_id is None:
                session = meta(metadata, "session_id") or (metadata or {}).get("thread_id")
                run = Run(metadata, flow=self._flow, session_id=session, trace_id=str(run_id))
                self._runs.start(run_id, run)
            else:
                self._child(run_id, parent_run_id)
        except Exception:  # a hook must never break the agent
            pass

    def on_chain_end(
        self, outputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._end(run_id, None)

    def on_chain_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._end(run_id, error)

    def _end(self, run_id: UUID, error: BaseException | None) -> None:
        try:
            self._root.pop(run_id, None)
            run = self._runs.pop(run_id)
            if run is not None and not (error is not None and _is_pause(error)):
                run.finish(client_of(self._client), error)
        except Exception:
            pass

    # --- tools ---

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            name = (serialized or {}).get("name") or kwargs.get("name") or "tool"
            self._child(run_id, parent_run_id)
            run = self._run(run_id, metadata)
            self._started[run_id] = (time.perf_counter(), str(name), run)
            if self._escalates(str(name)):
                run.escalated = True
        except Exception:
            pass

    def on_tool_end(
        self, output: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._tool_done(run_id, "error" if getattr(output, "status", None) == "error" else "ok")

    def on_tool_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._tool_done(run_id, "error")

    def _tool_done(self, run_id: UUID, outcome: str) -> None:
        try:
            self._root.pop(run_id, None)
            started = self._started.pop(run_id, None)
            if started is not None:
                begun, name, run = started
                run.tool_call(client_of(self._client), name, outcome, time.perf_counter() - begun)
        except Exception:
            pass

    # --- models: turns and tokens ---

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._model_start(run_id, parent_run_id, metadata)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._model_start(run_id, parent_run_id, metadata)

    def _model_start(self, run_id: UUID, parent_run_id: UUID | None, metadata: dict[str, Any] | None) -> None:
        try:
            self._child(run_id, parent_run_id)
            model = str((metadata or {}).get("ls_model_name") or "")
            self._started[run_id] = (time.perf_counter(), model, self._run(run_id, metadata))
        except Exception:
            pass

    def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            self._root.pop(run_id, None)
            started = self._started.pop(run_id, None)
            if started is None:
                return
            begun, requested, run = started
            usage, model = _usage(response)
            model = model or requested or None
            run.tokens(usage, model)
            run.turn(client_of(self._client), time.perf_counter() - begun, model)
        except Exception:
            pass

    def on_llm_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._started.pop(run_id, None)  # no reply, no turn: the run's own outcome says what it cost
        self._root.pop(run_id, None)


__all__ = ["AgentSLOCallbackHandler"]
