"""The OpenAI Agents SDK hook: a tracing processor that turns agent runs into agent-slo events.

    from agents import Runner, RunConfig
    from agentslo_client.integrations.openai_agents import instrument

    instrument(flow="refund")   # adds the processor (OpenAI's own trace export stays as it was)
    await Runner.run(agent, question, run_config=RunConfig(trace_metadata={"flow": "refund"}))

What becomes what:

- a run (the SDK's `task` span, else the whole trace) → `task`: `success`; `failure` when an agent,
  turn or model span failed (the run raised); `escalated` after a hand-off to a person; duration,
  steps, and tokens and model summed over its LLM calls;
- a function tool span → `tool_call`: `error` when the span has an error (the SDK tells the model
  the tool failed and goes on), else `ok`; its latency;
- a generation or response span (one LLM call) → `turn` (kind `turn`): its latency; its tokens go
  to the task;
- a hand-off to an agent, or a call of a tool, named like a person (`human`, `escalat...`,
  `operator`, or the names given) → an `escalation` event, performed, and the task `escalated`.

The flow is the run's `trace_metadata["flow"]` (or `agent_slo.flow`), else the `flow` argument;
`session_id` is the metadata's, else the run's `group_id`; the trace id is kept as `trace_id`.
A run inside the application's own `agentslo_client.task()` adds its steps, tokens and escalation
to that task instead of recording one of its own. Runs resumed from a saved state are not re-announced
by the SDK, so they record their turns and tool calls but no task.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from agents import add_trace_processor
from agents.tracing import Span, Trace, TracingProcessor
from agents.tracing.span_data import (
    FunctionSpanData,
    GenerationSpanData,
    HandoffSpanData,
    ResponseSpanData,
    TaskSpanData,
)

from agentslo_client import Client
from agentslo_client.integrations._common import Run, Runs, client_of, escalation_matcher

_NOT_FATAL = (FunctionSpanData, HandoffSpanData)  # the SDK reports these errors to the model and goes on
FLUSH_TIMEOUT_S = 5.0


def _latency(span: Span[Any]) -> float | None:
    try:
        started, ended = span.started_at, span.ended_at
        if started is None or ended is None:
            return None
        return max(0.0, (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds())
    except ValueError:
        return None


class AgentSLOProcessor(TracingProcessor):
    """Records tasks, turns, tool calls and escalations of Agents SDK runs (see the module docstring)."""

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
        self._runs = Runs()  # by trace id, and by task span id for the SDK's task spans
        self._parents: dict[str, str | None] = {}  # span id → parent span id, while the span is open
        self._traces_with_tasks: set[str] = set()

    # --- the processor interface (synchronous, must not raise) ---

    def on_trace_start(self, trace: Trace) -> None:
        try:
            metadata = getattr(trace, "metadata", None)
            group = getattr(trace, "group_id", None)
            self._runs.start(
                trace.trace_id, Run(metadata, flow=self._flow, session_id=group, trace_id=trace.trace_id)
            )
        except Exception:  # a hook must never break the agent
            pass

    def on_trace_end(self, trace: Trace) -> None:
        try:
            run = self._runs.pop(trace.trace_id)
            had_tasks = trace.trace_id in self._traces_with_tasks
            self._traces_with_tasks.discard(trace.trace_id)
            if run is not None and not had_tasks:
                run.finish(client_of(self._client))
        except Exception:
            pass

    def on_span_start(self, span: Span[Any]) -> None:
        try:
            self._parents[span.span_id] = span.parent_id
            if isinstance(span.span_data, TaskSpanData):
                self._traces_with_tasks.add(span.trace_id)
                trace_run = self._runs.get(span.trace_id)
                run = Run(
                    span.trace_metadata,
                    flow=self._flow,
                    session_id=trace_run.session_id if trace_run else None,
                    trace_id=span.trace_id,
                )
                self._runs.start(span.span_id, run)
        except Exception:
            pass

    def on_span_end(self, span: Span[Any]) -> None:
        try:
            self._record(span)
        except Exception:
            pass
        finally:
            self._parents.pop(span.span_id, None)

    def shutdown(self) -> None:
        client_of(self._client).flush(FLUSH_TIMEOUT_S)

    def force_flush(self) -> None:
        client_of(self._client).flush(FLUSH_TIMEOUT_S)

    # --- mapping ---

    def _run_of(self, span: Span[Any]) -> Run | None:
        """The run a span belongs to: its nearest task span, else its trace."""
        parent = span.parent_id
        for _ in range(64):  # spans nest a few levels; a cycle would be a bug, not a reason to hang
            if parent is None:
                break
            run = self._runs.get(parent)
            if run is not None:
                return run
            parent = self._parents.get(parent)
        return self._runs.get(span.trace_id)

    def _record(self, span: Span[Any]) -> None:
        data = span.span_data
        client = client_of(self._client)
        if isinstance(data, TaskSpanData):
            run = self._runs.pop(span.span_id)
            if run is not None:
                if span.error is not None:
                    run.failed = str(span.error.get("message") or "the run failed")
                run.finish(client)
            return
        run = self._run_of(span)
        if run is None:  # a span outside any trace we saw start (a resumed run): its flow still counts
            run = Run(span.trace_metadata, flow=self._flow, trace_id=span.trace_id)
        if span.error is not None and not isinstance(data, _NOT_FATAL):
            run.failed = str(span.error.get("message") or "the run failed")
        if isinstance(data, GenerationSpanData):
            run.tokens(data.usage, data.model)
            run.turn(client, _latency(span) or 0.0, data.model)
        elif isinstance(data, ResponseSpanData):
            response = data.response
            usage = data.usage
            if usage is None and response is not None and response.usage is not None:
                usage = {
                    "input_tokens": response.usage.input_tokens,
                    "output_tokens": response.usage.output_tokens,
                }
            model = str(response.model) if response is not None else None
            run.tokens(usage, model)
            run.turn(client, _latency(span) or 0.0, model)
        elif isinstance(data, FunctionSpanData):
            if self._escalates(data.name):
                run.escalated = True
            run.tool_call(client, data.name, "error" if span.error is not None else "ok", _latency(span))
        elif isinstance(data, HandoffSpanData) and self._escalates(data.to_agent):
            run.escalated = True


def instrument(
    client: Client | None = None, *, flow: str | None = None, escalation: Iterable[str] | None = None
) -> AgentSLOProcessor:
    """Add an `AgentSLOProcessor` to the SDK's trace processors and return it. To send traces only
    to agent-slo (not to OpenAI's trace viewer), use `agents.set_trace_processors([processor])`."""
    processor = AgentSLOProcessor(client, flow=flow, escalation=escalation)
    add_trace_processor(processor)
    return processor


__all__ = ["AgentSLOProcessor", "instrument"]
