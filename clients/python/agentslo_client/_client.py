"""`Client`: configuration, the event helpers, and the hand-off to the background sender.

Every helper builds one event of the exporter's format (`POST /v1/events`: `task`, `turn`,
`tool_call`, `judge`, `escalation`, `connection`) and puts it on the sender's bounded queue. No
helper blocks on the network or raises into the agent: a problem is logged once and counted.

    client = Client("http://127.0.0.1:9120", agent="cx-support", flow="refund")
    client.record_tool_call("get_order", "ok", latency_s=0.12)
    client.record_judge("faithfulness", 0.93, judge_version="3")
    client.flush()      # optional: wait (bounded) until the exporter has what was recorded
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import time
import uuid
import weakref
from collections.abc import Mapping
from typing import Any, Callable, Union

from agentslo_client._aiohttp import AiohttpTransport
from agentslo_client._events import escalation_event, task_event, task_session
from agentslo_client._scopes import (
    MAX_TOOL_CALLS_KEPT,
    SYNTHETIC_EXCLUSION,
    Task,
    TaskScope,
    ToolCall,
    ToolScope,
    Turn,
    TurnScope,
    active_task,
    task_fields,
)
from agentslo_client._sender import Sender, Stats
from agentslo_client._transport import HTTPTransport, Transport

log = logging.getLogger("agentslo_client")

ENV_URL = "AGENT_SLO_URL"  # the exporter's base URL, e.g. http://127.0.0.1:9120
ENV_TOKEN = "AGENT_SLO_TOKEN"  # its bearer token (the same variable `agent-slo serve` reads)
ENV_AGENT = "AGENT_SLO_AGENT"  # the agent's name in the SLO spec
ENV_FLOW = "AGENT_SLO_FLOW"  # the flow of events that name none (optional)
ENV_VERSION = "AGENT_SLO_VERSION"  # the agent's version, on every event (the release overlay)
ENV_DISABLED = "AGENT_SLO_DISABLED"  # 1: record nothing (tests, local runs)
SYNTHETIC_HEADER = "X-Agent-SLO-Synthetic"  # set by the prober on every request it sends
USER_AGENT = "agent-slo-client/0.1.0"

DEFAULT_MAX_QUEUE = 10_000  # events held while the exporter is slow or down (~5 MiB)
DEFAULT_MAX_BATCH = 1_000  # events per POST (the exporter's benchmarks use this size)
DEFAULT_FLUSH_INTERVAL_S = 1.0  # a partial batch waits at most this long
DEFAULT_MAX_SESSION_BYTES = 8 * 1024 * 1024  # sessions (transcripts) held, encoded
DEFAULT_TIMEOUT_S = 10.0  # one POST
DEFAULT_RETRY_MAX_S = 5.0  # longest backoff between retries (Retry-After may ask for more)
DEFAULT_EXIT_TIMEOUT_S = 2.0  # what the exit hook gives the queue before the process ends

TransportChoice = Union[str, Callable[[], Transport]]


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """A misuse is logged once per process (a hot loop must not flood the log)."""
    if message not in _warned and len(_warned) < 64:
        _warned.add(message)
        log.warning(message)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


class Client:
    """Records an agent's events and sends them to an agent-slo exporter in the background.

    Arguments left out come from the environment: `url` from AGENT_SLO_URL, `agent` from
    AGENT_SLO_AGENT, `token` from AGENT_SLO_TOKEN, `flow` from AGENT_SLO_FLOW and `version` from
    AGENT_SLO_VERSION. Without a URL and an agent name (or with `enabled=False` or
    AGENT_SLO_DISABLED=1) the client is a no-op: scopes still time and re-raise, nothing is sent.
    `synthetic=True` marks every event `exclude: synthetic` (a staging agent that only probes reach).
    """

    def __init__(
        self,
        url: str | None = None,
        agent: str | None = None,
        token: str | None = None,
        *,
        flow: str | None = None,
        version: str | None = None,
        prompt_version: str | None = None,
        model: str | None = None,
        synthetic: bool = False,
        enabled: bool | None = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
        max_batch: int = DEFAULT_MAX_BATCH,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        max_session_bytes: int = DEFAULT_MAX_SESSION_BYTES,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry_max_s: float = DEFAULT_RETRY_MAX_S,
        exit_timeout_s: float = DEFAULT_EXIT_TIMEOUT_S,
        transport: TransportChoice = "http",
    ) -> None:
        env = os.environ
        self.url = (url or env.get(ENV_URL) or "").rstrip("/") or None
        self.agent = agent or env.get(ENV_AGENT) or None
        self.flow = flow or env.get(ENV_FLOW) or None
        self.exit_timeout_s = exit_timeout_s
        token = token or env.get(ENV_TOKEN) or None
        stamp = {"version": version or env.get(ENV_VERSION), "prompt_version": prompt_version, "model": model}
        self._stamp = {k: v for k, v in stamp.items() if v}  # on every event that sets none of its own
        self._exclude = SYNTHETIC_EXCLUSION if synthetic else None
        self._sender: Sender | None = None
        if enabled is None:
            enabled = not _env_flag(ENV_DISABLED)
        if not enabled:
            return
        if self.url is None or self.agent is None:
            missing = " and ".join(n for n, v in ((ENV_URL, self.url), (ENV_AGENT, self.agent)) if v is None)
            log.warning("agent-slo client: %s not set; events are not sent (no-op client)", missing)
            return
        headers = {"User-Agent": USER_AGENT}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            factory = self._transport_factory(transport, self.url, timeout_s)
        except (ValueError, RuntimeError) as exc:
            log.error("agent-slo client: %s; events are not sent (no-op client)", exc)
            return
        self._sender = Sender(
            factory,
            headers,
            max_queue=max_queue,
            max_batch=max_batch,
            flush_interval_s=flush_interval_s,
            max_session_bytes=max_session_bytes,
            retry_max_s=retry_max_s,
        )
        _CLIENTS.add(self)

    @staticmethod
    def _transport_factory(choice: TransportChoice, url: str, timeout_s: float) -> Callable[[], Transport]:
        if callable(choice):
            return choice
        if choice == "http":
            HTTPTransport(url, timeout_s)  # check the URL now, not in the sender thread
            return lambda: HTTPTransport(url, timeout_s)
        if choice == "aiohttp":
            AiohttpTransport(url, timeout_s).close()  # check aiohttp is there
            return lambda: AiohttpTransport(url, timeout_s)
        raise ValueError(f"transport must be 'http', 'aiohttp' or a factory, got {choice!r}")

    @property
    def enabled(self) -> bool:
        """False for a no-op client (not configured, disabled, or closed)."""
        return self._sender is not None and not self._sender.closed

    # --- scopes ---

    def task(
        self,
        flow: str | None = None,
        *,
        session_id: str | None = None,
        trace_id: str | None = None,
        exclude: str | None = None,
        synthetic: bool | str | None = None,
        escalation_required: bool | None = None,
        model: str | None = None,
    ) -> TaskScope:
        """A task: `with client.task("refund") as task:` or `@client.task("refund")`.

        Records its duration and outcome when it ends (see `Task`). `synthetic` takes the prober's
        header value as it comes (`request.headers.get(SYNTHETIC_HEADER)`): anything truthy marks the
        task and everything recorded inside it `exclude: synthetic`. `escalation_required=True` says
        a human was needed: a `success` then counts as a missed escalation.
        """
        fields = task_fields(session_id, trace_id, exclude, synthetic, escalation_required, model)
        return TaskScope(self, flow, fields)

    def tool(self, name: str | None = None, *, flow: str | None = None) -> ToolScope:
        """A tool call: `@client.tool()` on the tool function (named after it), or
        `with client.tool("get_order") as call:`. An exception is outcome `error`, re-raised."""
        return ToolScope(self, name, flow)

    def turn(self, *, kind: str = "turn", flow: str | None = None) -> TurnScope:
        """A turn's latency (`kind`: `turn`, `first_response` or `tool_turn`)."""
        return TurnScope(self, kind, flow)

    # --- single events ---

    def record_task(
        self,
        outcome: str = "success",
        *,
        flow: str | None = None,
        duration_s: float | None = None,
        escalation_required: bool | None = None,
        failure_mode: str | None = None,
        cost_usd: float | None = None,
        steps: int | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        model: str | None = None,
        session_id: str | None = None,
        trace_id: str | None = None,
        exclude: str | None = None,
    ) -> None:
        """One finished task (when the task was not run inside `task()`)."""
        event: dict[str, Any] = {"type": "task", "outcome": outcome}
        if duration_s is not None:
            event["duration_s"] = duration_s
        if escalation_required is not None:
            event["escalation_required"] = escalation_required
        if failure_mode is not None:
            event["failure_mode"] = failure_mode
        if cost_usd is not None:
            event["cost_usd"] = cost_usd
        if steps is not None:
            event["steps"] = steps
        if input_tokens or output_tokens:
            event["tokens"] = {"input": input_tokens or 0, "output": output_tokens or 0}
        if model is not None:
            event["model"] = model
        self._emit(event, flow, session_id, trace_id, exclude, active_task())

    def record_turn(
        self,
        latency_s: float,
        *,
        kind: str = "turn",
        flow: str | None = None,
        model: str | None = None,
        session_id: str | None = None,
        trace_id: str | None = None,
        exclude: str | None = None,
    ) -> None:
        """One turn's latency; counted as a step of the task in scope."""
        event: dict[str, Any] = {"type": "turn", "kind": kind, "latency_s": latency_s}
        if model is not None:
            event["model"] = model
        task = active_task()
        if task is not None:
            task._note_step()
        self._emit(event, flow, session_id, trace_id, exclude, task)

    def record_tool_call(
        self,
        tool: str,
        outcome: str = "ok",
        *,
        latency_s: float | None = None,
        flow: str | None = None,
        session_id: str | None = None,
        trace_id: str | None = None,
        exclude: str | None = None,
        input_hash: str | None = None,
        output_hash: str | None = None,
        parent_task_id: str | None = None,
    ) -> None:
        """One tool call: `ok`, `wrong_tool`, `invalid_params`, `empty_result` or `error`.

        `input_hash`, `output_hash` and `parent_task_id` make the call traceable (digests of what
        went in and came out, the task it served); the server keeps them with the session, never
        as labels."""
        event: dict[str, Any] = {"type": "tool_call", "tool": tool, "outcome": outcome}
        if latency_s is not None:
            event["latency_s"] = latency_s
        evidence = {"input_hash": input_hash, "output_hash": output_hash, "parent_task_id": parent_task_id}
        event |= {k: v for k, v in evidence.items() if v is not None}
        task = active_task()
        if task is not None:
            task._note_step()
        self._emit(event, flow, session_id, trace_id, exclude, task)

    def record_judge(
        self,
        judge: str,
        score: float,
        *,
        judge_version: str | None = None,
        flow: str | None = None,
        session_id: str | None = None,
        trace_id: str | None = None,
        exclude: str | None = None,
    ) -> None:
        """A verdict (score 0–1) of a judge declared in the spec; its version defaults to the declared one."""
        event: dict[str, Any] = {"type": "judge", "judge": judge, "score": score}
        if judge_version is not None:
            event["judge_version"] = judge_version
        self._emit(event, flow, session_id, trace_id, exclude, active_task())

    def record_escalation(
        self,
        *,
        required: bool,
        performed: bool,
        context_preserved: bool | None = None,
        flow: str | None = None,
        session_id: str | None = None,
        trace_id: str | None = None,
        exclude: str | None = None,
    ) -> None:
        """A hand-off decision: good when performed == required and a performed one kept the context."""
        event: dict[str, Any] = {"type": "escalation", "required": required, "performed": performed}
        if performed:
            event["context_preserved"] = True if context_preserved is None else context_preserved
        self._emit(event, flow, session_id, trace_id, exclude, active_task())

    def record_connection(
        self,
        ok: bool,
        *,
        flow: str | None = None,
        session_id: str | None = None,
        trace_id: str | None = None,
        exclude: str | None = None,
    ) -> None:
        """Whether the user reached the agent and got its greeting (voice and chat channels)."""
        self._emit({"type": "connection", "ok": ok}, flow, session_id, trace_id, exclude, active_task())

    def record_stage(
        self,
        stage: str,
        latency_s: float,
        *,
        flow: str | None = None,
        session_id: str | None = None,
        trace_id: str | None = None,
        exclude: str | None = None,
    ) -> None:
        """One pipeline stage's latency in a turn (a stage the spec's `pipeline` declares: by default
        telephony, asr, llm, tts, tools), so dashboards show which stage owns a slow turn."""
        event = {"type": "stage", "stage": stage, "latency_s": latency_s}
        self._emit(event, flow, session_id, trace_id, exclude, active_task())

    def record_workflow_step(
        self,
        workflow: str,
        step: str,
        ok: bool,
        *,
        flow: str | None = None,
        session_id: str | None = None,
        trace_id: str | None = None,
        exclude: str | None = None,
    ) -> None:
        """One step of a workflow the spec declares: per-step success, and end to end (a run is good
        when its last step succeeds, bad when any step fails)."""
        event = {"type": "workflow_step", "workflow": workflow, "step": step, "ok": ok}
        self._emit(event, flow, session_id, trace_id, exclude, active_task())

    def record(self, event: Mapping[str, Any]) -> None:
        """Any event of the exporter's format as a mapping; `agent`, `flow` (when absent), the task's
        ids, the client's version and `time` are filled in."""
        try:
            fields = dict(event)
            flow = fields.pop("flow", None)
            session_id = fields.pop("session_id", None)
            trace_id = fields.pop("trace_id", None)
            exclude = fields.pop("exclude", None)
        except Exception as exc:
            log.warning("agent-slo client: record() needs a mapping of event fields: %s", exc)
            return
        self._emit(fields, flow, session_id, trace_id, exclude, active_task())

    def submit_session(
        self,
        messages: list[dict[str, Any]],
        *,
        session_id: str | None = None,
        flow: str | None = None,
        **fields: Any,
    ) -> str | None:
        """A whole conversation for the judges (`POST /v1/sessions`): messages plus any of the
        session's fields (`context`, `tool_calls`, `output`, `outcome`, `failure_mode`, `model`,
        `version`, `metadata`, ...). Returns the session id (generated when not given), or None
        when the client is a no-op. Inside a task, prefer `task.attach_session(...)`."""
        task = active_task()
        session_id = session_id or (task.session_id if task is not None else None) or uuid.uuid4().hex
        document: dict[str, Any] = {"session_id": session_id, "messages": messages, **fields}
        return session_id if self._submit(document, flow, task) else None

    # --- delivery ---

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait up to `timeout_s` until everything recorded so far has been answered by the exporter.
        True when it has; False when the time ran out (nothing is lost: sending goes on)."""
        sender = self._sender
        return True if sender is None else sender.flush(timeout_s)

    def close(self, timeout_s: float | None = None) -> bool:
        """Deliver what is queued (for up to `timeout_s`, default `exit_timeout_s`) and stop; later
        events are dropped and counted. Runs at interpreter exit for every open client."""
        sender = self._sender
        _CLIENTS.discard(self)
        if sender is None:
            return True
        return sender.close(self.exit_timeout_s if timeout_s is None else timeout_s)

    async def aflush(self, timeout_s: float = 5.0) -> bool:
        """`flush()` for asyncio code: waits in a worker thread, not on the event loop."""
        return await asyncio.get_running_loop().run_in_executor(None, self.flush, timeout_s)

    async def aclose(self, timeout_s: float | None = None) -> bool:
        """`close()` for asyncio code."""
        return await asyncio.get_running_loop().run_in_executor(None, self.close, timeout_s)

    def stats(self) -> Stats:
        """Delivered, rejected, dropped and queued counts (every event lands in exactly one)."""
        if self._sender is None:
            return Stats(0, 0, 0, 0, 0, 0, 0, 0, 0, None)
        return self._sender.stats()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what scopes report (see agentslo_client._scopes.Owner) ---

    def _task_done(self, task: Task, error: BaseException | None) -> None:
        try:
            ids = (task.flow, task.session_id, task.trace_id, task.exclude)
            event = task_event(task, error)
            self._emit(event, *ids, None)
            escalation = escalation_event(task)
            if escalation is not None:
                self._emit(escalation, *ids, None)
            session = task_session(task, event)
            if session is not None:
                self._submit(session, task.flow, None)
        except Exception as exc:  # never into the agent
            log.warning("agent-slo client: could not record a task: %r", exc)

    def _tool_done(self, call: ToolCall, task: Task | None) -> None:
        try:
            outcome = call.outcome or "ok"
            if task is not None and len(task.tool_calls) < MAX_TOOL_CALLS_KEPT:
                task.tool_calls.append({"tool": call.tool, "outcome": outcome, "latency_s": call.latency_s})
            self.record_tool_call(call.tool, outcome, latency_s=call.latency_s, flow=call.flow)
        except Exception as exc:
            log.warning("agent-slo client: could not record a tool call: %r", exc)

    def _turn_done(self, turn: Turn, task: Task | None) -> None:
        try:
            if task is not None:
                task.add_tokens(turn.input_tokens, turn.output_tokens, turn.model)
            self.record_turn(turn.latency_s, kind=turn.kind, flow=turn.flow, model=turn.model)
        except Exception as exc:
            log.warning("agent-slo client: could not record a turn: %r", exc)

    # --- the one way out ---

    def _emit(
        self,
        event: dict[str, Any],
        flow: str | None,
        session_id: str | None,
        trace_id: str | None,
        exclude: str | None,
        task: Task | None,
    ) -> None:
        """Complete an event (agent, flow, ids, exclusion, version, time) and queue it; fields left
        out come from `task` (the task in scope, None for a task's own events)."""
        sender = self._sender
        if sender is None:
            return
        try:
            if task is not None:
                flow = flow or task.flow
                session_id = session_id or task.session_id
                trace_id = trace_id or task.trace_id
                exclude = exclude or task.exclude
            flow = flow or self.flow
            if flow is None:
                _warn_once(f"agent-slo client: a {event.get('type')} event names no flow; pass flow=")
                return
            event["agent"] = self.agent
            event["flow"] = flow
            if session_id is not None:
                event["session_id"] = session_id
            if trace_id is not None:
                event["trace_id"] = trace_id
            exclude = exclude or self._exclude
            if exclude is not None:
                event["exclude"] = exclude
            for name, value in self._stamp.items():
                event.setdefault(name, value)
            event["time"] = time.time()
            sender.put(event)
        except Exception as exc:
            log.warning("agent-slo client: could not record an event: %r", exc)

    def _submit(self, document: dict[str, Any], flow: str | None, task: Task | None) -> bool:
        sender = self._sender
        if sender is None:
            return False
        try:
            document["agent"] = self.agent
            document["flow"] = flow or document.get("flow") or (task.flow if task else None) or self.flow
            if document["flow"] is None:
                _warn_once("agent-slo client: a session names no flow; pass flow=")
                return False
            defaults = {"exclude": self._exclude, **self._stamp, "time": time.time()}
            for name, value in defaults.items():
                if document.get(name) is None:
                    document[name] = value
            document = {k: v for k, v in document.items() if v is not None}
            body = json.dumps(document, separators=(",", ":"), default=str, allow_nan=False).encode()
        except Exception as exc:
            log.warning("agent-slo client: could not encode a session: %r", exc)
            return False
        sender.put_session(body)
        return True


# Open clients, closed (with their exit timeout) when the interpreter exits.
_CLIENTS: weakref.WeakSet[Client] = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    for client in list(_CLIENTS):
        try:
            client.close()
        except Exception:  # the process is ending: nothing may stop that
            pass
