"""Traffic for the demo and the end-to-end tests: simulated conversations as exporter events.

Two ways to make load:

- `EventTraffic` simulates conversations with `demo.faults` and posts their events straight to the
  exporter's `POST /v1/events` in one batch per tick (high, exact volume for tests);
- `UserTraffic` plays customers talking to the demo agent over its chat API; the agent reports its
  own events, the way an instrumented runtime does (what `agent-slo demo` runs).

`history_openmetrics` writes weeks of counters in OpenMetrics for
`promtool tsdb create-blocks-from openmetrics`, so an incident that took three weeks (the gradual
drift) can be shown in minutes on backfilled, clearly dated history.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import aiohttp

from agentslo.demo.faults import Conversation, Faults, events_for, simulate
from agentslo.spec import Spec

log = logging.getLogger(__name__)


class StopFlag(Protocol):
    """`asyncio.Event` or `threading.Event`: traffic stops once it is set."""

    def is_set(self) -> bool: ...


POST_TIMEOUT_S: Final = 10.0
# How a simulated turn's latency splits over the pipeline stages the demo can tell apart (the rest of
# a stage set gets these shares too when the spec declares it): the model takes most of a chat turn.
STAGE_SHARES: Final = {"telephony": 0.05, "asr": 0.15, "llm": 0.55, "tts": 0.15, "tools": 0.1}
# The customers' opening lines by flow (they match the demo agent's policy and the example scenarios).
USER_SCRIPTS: Final = {
    "refund": (
        "Hi, I'd like a refund for order A-1001, the blender arrived broken.",
        "Yes please refund it.",
    ),
    "order-status": ("Where is my order C-3003?",),
    "password-reset": ("I forgot my password and can't log in.", "It's dana@example.com"),
}
ESCALATION_LINE: Final = "This is the third time. I want to talk to a human supervisor."


def flow_weights(spec: Spec, weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """Traffic share per flow: the given weights, else equal."""
    if weights:
        return {f: w for f, w in weights.items() if f in spec.flows and w > 0}
    return dict.fromkeys(spec.flows, 1.0)


def generate(
    spec: Spec,
    rng: random.Random,
    count: int,
    *,
    faults: Faults | None = None,
    elapsed_s: float = 0.0,
    version: str = "1.0.0",
    weights: Mapping[str, float] | None = None,
    first_index: int = 0,
    session_prefix: str = "sim",
) -> list[dict[str, Any]]:
    """Events of `count` simulated conversations (deterministic for a seeded `rng`)."""
    w = flow_weights(spec, weights)
    flows, shares = list(w), list(w.values())
    events: list[dict[str, Any]] = []
    for i in range(count):
        flow = rng.choices(flows, shares)[0]
        conv = simulate(spec, flow, rng, faults or Faults(), elapsed_s=elapsed_s, version=version)
        session_id = f"{session_prefix}-{first_index + i}"
        events += events_for(spec, conv, session_id=session_id)
        events += attribution_events(spec, conv, session_id=session_id)
    return events


def attribution_events(spec: Spec, conv: Conversation, *, session_id: str) -> list[dict[str, Any]]:
    """The `stage` and `workflow_step` events an instrumented runtime sends for one conversation,
    for the stages and workflows the spec declares.

    Stages: each turn's latency split by `STAGE_SHARES` over the declared stages, and each tool call's
    latency as the `tools` stage. Workflow steps run in order: a step named after a tool succeeds when
    every call of that tool did; any other step (such as `confirm`) when the task succeeded; the run
    stops at the first failed step, and an escalated or abandoned run stops before its last step."""
    common: dict[str, Any] = {"agent": spec.agent, "flow": conv.flow, "session_id": session_id}
    out: list[dict[str, Any]] = []
    if spec.pipeline is not None:
        stages = [st for st in spec.pipeline.stages if st != "tools"]
        weights = {st: STAGE_SHARES.get(st, 0.1) for st in stages}
        total = sum(weights.values()) or 1.0
        for latency in conv.turn_latencies_s:
            out += [
                common | {"type": "stage", "stage": st, "latency_s": round(latency * w / total, 4)}
                for st, w in weights.items()
            ]
        if "tools" in spec.pipeline.stages:
            out += [
                common | {"type": "stage", "stage": "tools", "latency_s": round(c.latency_s, 4)}
                for c in conv.tool_calls
            ]
    for name, workflow in spec.workflows.items():
        if conv.flow not in spec.workflow_flows(name):
            continue
        for i, step in enumerate(workflow.steps):
            calls = [c for c in conv.tool_calls if c.tool == step]
            if i == len(workflow.steps) - 1 and conv.outcome in ("escalated", "abandoned"):
                break  # handed off or dropped before the end: no verdict on the run
            ok = all(c.outcome == "ok" for c in calls) if calls else conv.outcome == "success"
            out.append(common | {"type": "workflow_step", "workflow": name, "step": step, "ok": ok})
            if not ok:
                break
    return out


@dataclass
class EventTraffic:
    """Posts `rate_per_s` simulated conversations a second to the exporter, one batch per tick."""

    spec: Spec
    exporter_url: str
    rate_per_s: float = 20.0
    seed: int = 0
    faults: Faults = field(default_factory=Faults)
    version: str = "1.0.0"
    weights: Mapping[str, float] | None = None
    tick_s: float = 1.0
    headers: Mapping[str, str] = field(default_factory=dict)
    conversations: int = 0
    events_posted: int = 0
    errors: list[str] = field(default_factory=list)
    faults_since: float = field(default_factory=time.time)
    _rng: random.Random = field(init=False)
    _carry: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def inject(self, faults: Faults, version: str | None = None) -> None:
        self.faults, self.faults_since = faults, time.time()
        if version is not None:
            self.version = version

    def next_batch(self) -> list[dict[str, Any]]:
        """The events of one tick (fractional rates carry over, so 0.5/s gives one every other tick)."""
        self._carry += self.rate_per_s * self.tick_s
        count, self._carry = int(self._carry), self._carry - int(self._carry)
        events = generate(
            self.spec,
            self._rng,
            count,
            faults=self.faults,
            elapsed_s=time.time() - self.faults_since,
            version=self.version,
            weights=self.weights,
            first_index=self.conversations,
            session_prefix=f"sim{self.seed}",
        )
        self.conversations += count
        return events

    async def post(self, session: aiohttp.ClientSession, events: list[dict[str, Any]]) -> bool:
        if not events:
            return True
        try:
            url = f"{self.exporter_url}/v1/events"
            async with session.post(url, json=events, headers=dict(self.headers)) as r:
                if r.status >= 300:
                    self.errors.append(f"HTTP {r.status}: {(await r.text())[:300]}")
                    return False
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return False
        self.events_posted += len(events)
        return True

    async def run(self, duration_s: float, stop: StopFlag | None = None) -> None:
        """Post a batch every tick for `duration_s` (or until `stop` is set)."""
        deadline = time.monotonic() + duration_s
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT_S)) as session:
            while time.monotonic() < deadline and not (stop and stop.is_set()):
                started = time.monotonic()
                await self.post(session, self.next_batch())
                await asyncio.sleep(max(0.0, self.tick_s - (time.monotonic() - started)))


class InBackground:
    """Run `EventTraffic` in a thread with its own event loop (for synchronous callers), stopped on exit:

    with InBackground(traffic):
        ...
    """

    def __init__(self, traffic: EventTraffic, duration_s: float = 3600.0) -> None:
        self.traffic, self.stop = traffic, threading.Event()
        self.thread = threading.Thread(
            target=asyncio.run, args=(traffic.run(duration_s, self.stop),), name="event-traffic", daemon=True
        )

    def __enter__(self) -> EventTraffic:
        self.thread.start()
        return self.traffic

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(POST_TIMEOUT_S + 5)


@dataclass
class UserTraffic:
    """Customers talking to the demo agent's chat API, `rate_per_s` conversations a second."""

    spec: Spec
    agent_url: str  # base URL ending in /v1
    rate_per_s: float = 2.0
    seed: int = 0
    escalation_share: float = 0.08
    concurrency: int = 16
    conversations: int = 0
    failures: int = 0
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def script(self) -> tuple[str, list[str]]:
        flows = [f for f in self.spec.flows if f in USER_SCRIPTS] or list(self.spec.flows)
        flow = self._rng.choice(flows)
        lines = list(USER_SCRIPTS.get(flow, ("Hello, I need help with my account.",)))
        if self._rng.random() < self.escalation_share:  # an upset customer asks for a human up front
            lines[0] = f"{ESCALATION_LINE} {lines[0]}"
        return flow, lines

    async def converse(self, session: aiohttp.ClientSession, lines: Sequence[str], n: int) -> None:
        messages: list[dict[str, Any]] = [{"role": "system", "content": "You are the CX support agent."}]
        headers = {"X-Agent-SLO-Session": f"user-{self.seed}-{n}"}
        for line in lines:
            messages.append({"role": "user", "content": line})
            body = {"model": self.spec.agent, "messages": messages}
            async with session.post(f"{self.agent_url}/chat/completions", json=body, headers=headers) as resp:
                if resp.status != 200:
                    self.failures += 1
                    return
                answer = await resp.json()
            messages.append(answer["choices"][0]["message"])

    async def run(self, duration_s: float, stop: StopFlag | None = None) -> None:
        deadline = time.monotonic() + duration_s
        limit = asyncio.Semaphore(self.concurrency)
        pending: set[asyncio.Task[None]] = set()

        async def one(session: aiohttp.ClientSession, lines: list[str], n: int) -> None:
            async with limit:
                try:
                    await self.converse(session, lines, n)
                except (TimeoutError, aiohttp.ClientError, KeyError, ValueError):
                    self.failures += 1

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT_S)) as session:
            while time.monotonic() < deadline and not (stop and stop.is_set()):
                _, lines = self.script()
                self.conversations += 1
                task = asyncio.create_task(one(session, lines, self.conversations))
                pending.add(task)
                task.add_done_callback(pending.discard)
                await asyncio.sleep(self._rng.expovariate(self.rate_per_s))
            if pending:
                await asyncio.wait(pending, timeout=POST_TIMEOUT_S)


def history_openmetrics(
    samples: Iterable[tuple[float, str, Mapping[str, str], float]],
    types: Mapping[str, str],
) -> str:
    """OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`.

    `samples` are (unix time, metric family, labels, value), grouped by family in any order; `types`
    maps each family to `counter`/`gauge`. Counter samples are written as `<family>_total`, the way
    OpenMetrics names them. The text ends with `# EOF`, as the format requires."""
    by_family: dict[str, list[str]] = {}
    for ts, family, labels, value in samples:
        base = family.removesuffix("_total") if types.get(family) == "counter" else family
        name = f"{base}_total" if types.get(family) == "counter" else base
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
        by_family.setdefault(base, []).append(f"{name}{{{label_text}}} {value:g} {ts:.3f}")
    lines: list[str] = []
    for base, rows in by_family.items():
        family_type = next((t for f, t in types.items() if f.removesuffix("_total") == base), "gauge")
        lines.append(f"# TYPE {base} {family_type}")
        lines += rows
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def cumulative(
    steps: Iterable[float], increments: Callable[[float], Mapping[tuple[tuple[str, str], ...], float]]
) -> Iterable[tuple[float, Mapping[str, str], float]]:
    """Running totals: for each time step, `increments(t)` gives label-set → increase; yields
    (t, labels, counter value) for every label set seen so far (counters never go down)."""
    totals: dict[tuple[tuple[str, str], ...], float] = {}
    for t in steps:
        for key, inc in increments(t).items():
            totals[key] = totals.get(key, 0.0) + inc
        for key, value in totals.items():
            yield t, dict(key), value
