"""What the framework hooks share: reading a run's metadata, spotting an escalation, and one run's
tally that becomes a `task` (and an `escalation`) event when the run ends.

Metadata keys (plain, or prefixed `agent_slo.` / `agent_slo_` when the plain name is taken):
`flow`, `session_id`, `escalation_required` (true when the run needed a human), `synthetic` (the
prober's `X-Agent-SLO-Synthetic` header value: anything truthy marks the run `exclude: synthetic`)
and `exclude` (one of the spec's exclusions).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Callable

import agentslo_client
from agentslo_client import SYNTHETIC_EXCLUSION, Client, Task
from agentslo_client._scopes import active_task

# Names of agents (handoff targets) or tools that hand a conversation to a person.
DEFAULT_ESCALATION = re.compile(r"human|escalat|operator|live[ _-]?agent", re.IGNORECASE)


def meta(metadata: Mapping[str, Any] | None, name: str) -> Any:
    """`name` from a run's metadata, plain or with the `agent_slo.` / `agent_slo_` prefix."""
    if not metadata:
        return None
    for key in (f"agent_slo.{name}", f"agent_slo_{name}", name):
        value = metadata.get(key)
        if value is not None:
            return value
    return None


def escalation_matcher(names: Iterable[str] | None) -> Callable[[str | None], bool]:
    """Exact names (case-insensitive) when given, else anything that reads like a human hand-off."""
    if names is None:
        return lambda name: bool(name) and DEFAULT_ESCALATION.search(name or "") is not None
    wanted = {n.lower() for n in names}
    return lambda name: bool(name) and (name or "").lower() in wanted


class Run:
    """One framework run being tallied: its flow and ids, tokens, steps, failure and escalation."""

    def __init__(
        self,
        metadata: Mapping[str, Any] | None,
        *,
        flow: str | None,
        session_id: str | None = None,
        trace_id: str | None = None,
    ) -> None:
        self.outer: Task | None = active_task()  # the application's own task scope, if any
        self.flow: str | None = meta(metadata, "flow") or (self.outer.flow if self.outer else None) or flow
        self.session_id: str | None = meta(metadata, "session_id") or session_id
        self.trace_id = trace_id
        synthetic = meta(metadata, "synthetic")
        self.exclude: str | None = SYNTHETIC_EXCLUSION if synthetic else meta(metadata, "exclude")
        required = meta(metadata, "escalation_required")
        self.escalation_required: bool | None = None if required is None else bool(required)
        self.started = time.perf_counter()
        self.input_tokens = 0
        self.output_tokens = 0
        self.model: str | None = None
        self.steps = 0
        self.failed: str | None = None  # why, when the run failed
        self.escalated = False
        self._noted = 0  # steps the client already counted into `outer` (recorded in its scope)

    def ids(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "trace_id": self.trace_id, "exclude": self.exclude}

    def turn(self, client: Client, latency_s: float, model: str | None) -> None:
        """One LLM call: a `turn` event, a step of the task."""
        self._step()
        client.record_turn(latency_s, flow=self.flow, model=model, **self.ids())

    def tool_call(self, client: Client, tool: str, outcome: str, latency_s: float | None) -> None:
        """One tool call: a `tool_call` event, a step of the task."""
        self._step()
        client.record_tool_call(tool, outcome, latency_s=latency_s, flow=self.flow, **self.ids())

    def _step(self) -> None:
        self.steps += 1
        if self.outer is not None and active_task() is self.outer:
            self._noted += 1

    def tokens(self, usage: Mapping[str, Any] | None, model: str | None) -> None:
        if usage:
            self.input_tokens += int(usage.get("input_tokens") or usage.get("prompt_tokens") or 0)
            self.output_tokens += int(usage.get("output_tokens") or usage.get("completion_tokens") or 0)
        if model and self.model is None:
            self.model = model

    def finish(self, client: Client, error: BaseException | None = None) -> None:
        """Record the run as a task, or fold it into the application's task scope around it."""
        outer = self.outer
        if outer is not None:
            outer.add_tokens(self.input_tokens, self.output_tokens, self.model)
            outer.add_steps(self.steps - self._noted)
            if outer.flow is None:
                outer.flow = self.flow
            if self.escalated:
                outer.escalate(
                    required=True if self.escalation_required is None else self.escalation_required
                )
            elif self.failed and outer.outcome is None:
                outer.fail(self.failed)
            return
        if error is not None:
            outcome = "failure" if isinstance(error, Exception) else "abandoned"
        elif self.escalated:
            outcome = "escalated"
        else:
            outcome = "failure" if self.failed else "success"
        required = self.escalation_required
        if self.escalated and required is None:
            required = True  # the agent judged a person necessary; the application may say otherwise
        ids = self.ids()
        client.record_task(
            outcome,
            flow=self.flow,
            duration_s=time.perf_counter() - self.started,
            escalation_required=required,
            steps=self.steps or None,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            model=self.model,
            **ids,
        )
        if self.escalated or required is not None:
            client.record_escalation(
                required=bool(required),
                performed=self.escalated,
                context_preserved=True,
                flow=self.flow,
                **ids,
            )


class Runs:
    """Runs in flight by key, for callbacks arriving from several threads or asyncio tasks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[Any, Run] = {}

    def start(self, key: Any, run: Run) -> None:
        with self._lock:
            self._runs[key] = run

    def get(self, key: Any) -> Run | None:
        return self._runs.get(key)

    def pop(self, key: Any) -> Run | None:
        with self._lock:
            return self._runs.pop(key, None)

    def __len__(self) -> int:
        return len(self._runs)


def client_of(client: Client | None) -> Client:
    """The hook's client, else the process-wide one at the moment of recording."""
    return client if client is not None else agentslo_client.get_client()
