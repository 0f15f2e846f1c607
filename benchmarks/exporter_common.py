"""Shared parts of the exporter benchmarks: a spec of a chosen size, realistic event batches, and the
closed-loop HTTP load with the server's CPU time that the ingest harnesses measure with."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from agentslo.spec import Spec, load_spec, parse_spec

EXAMPLE = "examples/cx-support.slo.yaml"


def example_spec() -> Spec:
    return load_spec(EXAMPLE)


def wide_spec(flows: int) -> Spec:
    """The example's SLOs over `flows` flows and ten tools (about 370 exposed series per flow)."""
    flow_lines = "\n".join(f"  f{i}: {{risk: {('faq', 'account', 'billing')[i % 3]}}}" for i in range(flows))
    text = f"""
version: agent-slo/v1
agent: wide
owners: {{product: {{team: p}}, platform: {{team: q}}}}
exclusions: [test_call, abuse]
flows:
{flow_lines}
tools: [{", ".join(f"t{i}" for i in range(10))}]
failure_modes: [loop, wrong_tool, missed_escalation]
models: [m1, m2]
judges:
  faithfulness: {{type: llm, model: m1, version: "3", rubric: "grounded?", pass_threshold: 0.85}}
slos:
  task-success: {{sli: {{task: {{}}}}, objective: auto, owner: product}}
  tool-call-accuracy: {{sli: {{tool_calls: {{}}}}, objective: 92, owner: platform}}
  hallucination: {{sli: {{judge: faithfulness}}, objective: auto, owner: product}}
  e2e-latency: {{sli: {{latency: {{of: task, under: 4.5s}}}}, objective: 99, owner: platform}}
  turn-latency: {{sli: {{latency: {{of: turn, under: 1.2s}}}}, objective: 95, owner: platform}}
  cost-per-task: {{sli: {{cost: {{under_usd: 0.18}}}}, objective: 90, owner: platform}}
"""
    return parse_spec(text)


def events(spec: Spec, n: int, seed: int = 1) -> list[dict[str, Any]]:
    """A realistic mix: 40% tool calls, 30% turns, 25% tasks, 5% judge verdicts, each with ids and a time."""
    rng = random.Random(seed)
    flows, tools = list(spec.flows), list(spec.tools)
    models = list(spec.models) or ["m1"]
    start = datetime.now(UTC) - timedelta(seconds=n / 1000)  # one event a millisecond, each its own time
    out: list[dict[str, Any]] = []
    for i in range(n):
        base = {
            "agent": spec.agent,
            "flow": rng.choice(flows),
            "session_id": f"sess-{rng.getrandbits(48):x}",
            "trace_id": f"{rng.getrandbits(128):032x}",
            "time": (start + timedelta(milliseconds=i)).isoformat(),
        }
        r = rng.random()
        if r < 0.40:
            out.append(
                {
                    "type": "tool_call",
                    **base,
                    "tool": rng.choice(tools),
                    "outcome": rng.choice(["ok", "ok", "ok", "ok", "wrong_tool", "empty_result"]),
                    "latency_s": round(rng.expovariate(3), 4),
                }
            )
        elif r < 0.70:
            out.append(
                {
                    "type": "turn",
                    **base,
                    "kind": rng.choice(["turn", "turn", "first_response"]),
                    "latency_s": round(rng.expovariate(1.5), 4),
                }
            )
        elif r < 0.95:
            out.append(
                {
                    "type": "task",
                    **base,
                    "outcome": rng.choice(["success"] * 8 + ["failure", "abandoned"]),
                    "duration_s": round(rng.expovariate(0.4), 3),
                    "cost_usd": round(rng.random() * 0.3, 4),
                    "steps": rng.randint(1, 12),
                    "tokens": {"input": rng.randint(200, 4000), "output": rng.randint(20, 800)},
                    "model": rng.choice(models),
                }
            )
        else:
            judges = list(spec.judges) or ["faithfulness"]
            out.append({"type": "judge", **base, "judge": judges[0], "score": round(rng.random(), 3)})
        del i
    return out


WARMUP_S = 2.0  # load before measuring: connections open, caches warm


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to report server CPU per event."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def closed_loop(
    url: str, bodies: Iterator[bytes], headers: dict[str, str], clients: int, seconds: float, pid: int
) -> tuple[list[float], float, float]:
    """`clients` closed-loop senders POST `bodies` to `url` (each the next as soon as the last is
    answered 200) once the server is ready; after `WARMUP_S`, for `seconds`: the sorted request
    latencies, the elapsed time and the server process's CPU seconds."""
    latencies: list[float] = []
    counting = stop = False

    async def client(session: aiohttp.ClientSession) -> None:
        while not stop:
            body = next(bodies)
            t0 = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as r:
                await r.read()
                assert r.status == 200, await r.text()
            if counting:
                latencies.append(time.perf_counter() - t0)

    ready = url.split("/v1/", 1)[0] + "/readyz"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        deadline = time.monotonic() + 30
        while True:
            try:
                async with session.get(ready) as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.1)
        tasks = [asyncio.create_task(client(session)) for _ in range(clients)]
        await asyncio.sleep(WARMUP_S)
        counting = True
        t0, cpu0 = time.perf_counter(), cpu_seconds(pid)
        await asyncio.sleep(seconds)
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
        counting = False
        stop = True
        await asyncio.gather(*tasks)
    latencies.sort()
    return latencies, elapsed, cpu
