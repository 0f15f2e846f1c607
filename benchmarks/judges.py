"""Judges benchmark: judged sessions/s against the concurrency bound, and what judging costs ingest.

    python benchmarks/judges.py [--sessions 800] [--seconds 10] [--rounds 2]

Runs a scripted judge provider answering in 200 ms (`agentslo.judges.fake_provider`) and a real
exporter (`agent-slo serve`, with the judges and a SQLite session store) as separate processes, then:

1. judged sessions/s: posts `--sessions` sessions, all in the LLM judge's sample (concurrency 16),
   and times until every verdict is counted. The bound is concurrency / latency = 16 / 0.2 s = 80/s;
   the target is ≥ 90% of it.
2. ingest: `POST /v1/events` throughput (1,000-event batches, 4 clients) for `--seconds`, with no
   sessions (judging off) and while sessions arrive at 100/s (judging on: rule judges on all, the LLM
   judge saturated); rounds alternate off/on and the median is reported. Target: on ≥ 80% of off.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

PROVIDER_LATENCY_S = 0.2
JUDGE_CONCURRENCY = 16
BOUND = JUDGE_CONCURRENCY / PROVIDER_LATENCY_S  # judged sessions/s the provider latency allows
EVENT_BATCH = 1_000
EVENT_CLIENTS = 4
JSON = {"Content-Type": "application/json"}
READY_TIMEOUT_S = 60.0  # a loaded machine can take a while to import everything
SESSION_RATE = 100.0  # sessions/s offered while measuring ingest with judging on (> the 80/s bound)

SPEC = """
version: agent-slo/v1
agent: cx-support
owners: {{product: {{team: cx}}}}
flows: {{refund: {{risk: billing}}, order-status: {{risk: faq}}}}
judges:
  faithfulness: {{type: llm, model: judge-1, version: "1", rubric: "grounded?", pass_threshold: 0.5,
                 sample_rate: 1.0, concurrency: {concurrency}, base_url: "{url}", timeout: 10,
                 usd_per_1k_input_tokens: 0.15, usd_per_1k_output_tokens: 0.6}}
  refund-policy: {{type: rule, version: "1", flows: [refund],
                  fail_if_matches: ['\\b3\\s*-\\s*5 business days\\b']}}
slos:
  task-success: {{sli: {{task: {{}}}}, objective: auto, owner: product}}
  hallucination: {{sli: {{judge: faithfulness}}, objective: auto, owner: product}}
  refund-policy: {{sli: {{judge: refund-policy}}, objective: 99.5, flows: [refund], owner: product}}
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def session(i: int, tag: str) -> dict[str, Any]:
    flow = "refund" if i % 2 else "order-status"
    answer = (
        "Refunds take 3-5 business days." if i % 10 == 0 else "Refunds are issued within ten business days."
    )
    return {
        "session_id": f"{tag}-{i}",
        "agent": "cx-support",
        "flow": flow,
        "outcome": "success",
        "messages": [
            {"role": "user", "content": f"When is my refund for order {i}?"},
            {"role": "assistant", "content": answer},
        ],
        "context": ["Refunds are issued within ten business days after approval."],
        "tool_calls": [{"tool": "issue_refund", "input": {"order_id": f"A-{i}"}, "output": {"ok": True}}],
    }


async def judged_calls(http: aiohttp.ClientSession, base: str) -> int:
    async with http.get(f"{base}/v1/judging") as resp:
        status = await resp.json()
    return sum(status["judge_calls"].get("faithfulness", {}).values())


async def measure_judged(http: aiohttp.ClientSession, base: str, n: int) -> float:
    before = await judged_calls(http, base)
    started = time.perf_counter()
    for i in range(0, n, 50):
        async with http.post(
            f"{base}/v1/sessions", json=[session(j, "judged") for j in range(i, min(n, i + 50))]
        ) as r:
            assert r.status == 202, await r.text()
    while await judged_calls(http, base) < before + n:
        await asyncio.sleep(0.05)
    return n / (time.perf_counter() - started)


async def measure_ingest(
    http: aiohttp.ClientSession, base: str, seconds: float, sessions_on: bool, tag: str, pid: int
) -> tuple[float, float]:
    """Events/s counted, and the exporter's CPU use (cores) meanwhile."""
    body = orjson.dumps(
        [
            {
                "type": "task",
                "agent": "cx-support",
                "flow": "refund" if i % 2 else "order-status",
                "outcome": "success" if i % 7 else "failure",
                "duration_s": 1.5,
            }
            for i in range(EVENT_BATCH)
        ]
    )
    deadline = time.perf_counter() + seconds
    counted = 0

    async def events_client() -> None:
        nonlocal counted
        while time.perf_counter() < deadline:
            async with http.post(f"{base}/v1/events", data=body, headers=JSON) as resp:
                if resp.status == 200:
                    counted += EVENT_BATCH

    async def sessions_client() -> None:
        i, started = 0, time.perf_counter()
        while time.perf_counter() < deadline:
            due = int((time.perf_counter() - started) * SESSION_RATE)
            if due > i:
                async with http.post(
                    f"{base}/v1/sessions", json=[session(j, tag) for j in range(i, due)]
                ) as r:
                    assert r.status == 202, await r.text()
                i = due
            await asyncio.sleep(0.05)

    started, cpu = time.perf_counter(), cpu_seconds(pid)
    tasks = [events_client() for _ in range(EVENT_CLIENTS)] + ([sessions_client()] if sessions_on else [])
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    return counted / elapsed, (cpu_seconds(pid) - cpu) / elapsed


async def wait_ready(http: aiohttp.ClientSession, base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the exporter exited with {proc.returncode}")
        try:
            async with http.get(f"{base}/readyz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError("the exporter did not become ready")


async def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="agent-slo-judges-bench-"))
    provider = subprocess.Popen(
        [sys.executable, "-m", "agentslo.judges.fake_provider", "--delay", str(PROVIDER_LATENCY_S)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    exporter = None
    try:
        assert provider.stdout is not None
        url = provider.stdout.readline().decode().split("listening on ")[1].strip()
        spec = tmp / "bench.slo.yaml"
        spec.write_text(SPEC.format(url=url, concurrency=JUDGE_CONCURRENCY))
        port = free_port()
        env = os.environ | {
            "AGENT_SLO_SESSIONS_DB": str(tmp / "sessions.db"),
            "AGENT_SLO_JUDGE_QUEUE": "100000",
        }
        exporter = subprocess.Popen(
            [sys.executable, "-m", "agentslo.cli", "serve", str(spec), "--port", str(port)],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            await wait_ready(http, base, exporter)
            judged = await measure_judged(http, base, args.sessions)
            off: list[float] = []
            on: list[float] = []
            cpu_off: list[float] = []
            cpu_on: list[float] = []
            for r in range(args.rounds):
                rate, cpu = await measure_ingest(http, base, args.seconds, False, f"off{r}", exporter.pid)
                off.append(rate)
                cpu_off.append(cpu)
                rate, cpu = await measure_ingest(http, base, args.seconds, True, f"on{r}", exporter.pid)
                on.append(rate)
                cpu_on.append(cpu)
                # let the judge backlog from the 'on' round drain before the next 'off' round
                async with http.get(f"{base}/v1/judging") as resp:
                    backlog = sum((await resp.json())["queues"].values())
                await asyncio.sleep(min(30.0, backlog / BOUND))
        print(
            f"provider latency {PROVIDER_LATENCY_S * 1000:.0f} ms, judge concurrency {JUDGE_CONCURRENCY}: "
            f"bound {BOUND:.0f} judged sessions/s"
        )
        print(
            f"judged sessions/s: {judged:.1f} over {args.sessions} sessions = "
            f"{judged / BOUND:.1%} of the bound (target >= 90%)"
        )
        m_off, m_on = statistics.median(off), statistics.median(on)
        print(f"ingest events/s, judging off: {m_off:,.0f} (rounds: {', '.join(f'{x:,.0f}' for x in off)})")
        print(
            f"ingest events/s, judging on ({SESSION_RATE:.0f} sessions/s offered): {m_on:,.0f} "
            f"(rounds: {', '.join(f'{x:,.0f}' for x in on)})"
        )
        print(f"ratio on/off: {m_on / m_off:.1%} (target >= 80%)")
        print(
            f"exporter CPU (cores): off {statistics.median(cpu_off):.2f}, "
            f"on {statistics.median(cpu_on):.2f}; "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
    finally:
        for proc in (exporter, provider):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=800, help="sessions judged for the throughput figure")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each ingest measurement")
    parser.add_argument("--rounds", type=int, default=2, help="off/on ingest rounds (median reported)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
