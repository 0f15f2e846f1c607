"""Prober cycle time, memory and per-turn overhead: `python benchmarks/prober.py`.

200 scenarios × 3 turns against the demo's CX agent (OpenAI-compatible, its own process) answering
every completion in 300 ms, at concurrency 20. The theoretical cycle is 200 × 3 × 0.3 s / 20 = 9 s; the
target is one cycle within 1.5× of it (≤ 13.5 s, the issue rounds to 14 s) with prober RSS ≤ 150 MB.

Baseline, in the same run: a bare aiohttp client sending the same 600 chat-completion requests
(same growing conversations, same declared tools, same concurrency) with no scenario, assertion or
OpenAI-client work; the difference is the prober's own cost.
Reported: cycle time and its ratio to the theoretical cycle and to the baseline, peak RSS of the
prober process, and the prober's own overhead per turn (wall time over the agent's 300 ms, and CPU).

Options: --scenarios N --turns N --latency S --concurrency N (defaults as above).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agentslo.demo.servers import free_port, http_get  # noqa: E402
from agentslo.scenario import parse_scenarios  # noqa: E402
from agentslo.spec import load_spec  # noqa: E402
from agentslo.synthetic.runner import run_cycle  # noqa: E402
from agentslo.synthetic.targets import tool_definitions  # noqa: E402

TARGET_RATIO = 1.5  # the issue: one cycle within 1.5× of the theoretical cycle
RSS_LIMIT_MB = 150.0
AGENT_READY_TIMEOUT_S = 30.0
USER_TURNS = ("Hi, what can you help me with?", "Can you tell me more about that?", "Thanks, that is all.")


def scenario_file(count: int, turns: int) -> str:
    """`count` generic multi-turn scenarios with the assertions a real probe carries on every turn."""
    lines = ["version: agent-slo/scenarios/v1", "agent: cx-support", "scenarios:"]
    for i in range(count):
        lines += [f"  bench-{i:04d}:", "    flow: order-status", "    turns:"]
        for t in range(turns):
            lines += [
                f'      - user: "{USER_TURNS[t % len(USER_TURNS)]}"',
                "        assert:",
                "          - {type: icontains-any, value: [refunds, order status]}",
                "          - {type: not-regex, value: '\\b3\\s*-\\s*5 business days\\b'}",
                "          - {type: latency-under, value: 2s}",
            ]
        lines += [
            "    assert:",
            "      - {type: step-count, value: {max: 10}}",
            "      - {type: not-tool-called, value: issue_refund}",
        ]
    return "\n".join(lines) + "\n"


def start_agent(latency: float) -> tuple[subprocess.Popen[bytes], str]:
    """The demo's CX agent in its own process, answering every completion in `latency` seconds."""
    port = free_port()
    argv = ["--port", str(port), "--time-scale", "0", "--delay", str(latency)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentslo.demo.agent", *argv],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + AGENT_READY_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if http_get(base_url + "/healthz", timeout=1.0)[0] == 200:
                return proc, base_url + "/v1"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the demo agent did not start on port {port} (exit code {proc.poll()})")


async def baseline(base_url: str, scenarios: int, turns: int, concurrency: int, tools: list[Any]) -> float:
    """The same requests (same bodies, tools declared) with a bare aiohttp client: the transport alone."""
    limit = asyncio.Semaphore(concurrency)
    url = base_url + "/chat/completions"

    async def conversation(session: aiohttp.ClientSession) -> None:
        messages: list[dict[str, str]] = []
        async with limit:
            for t in range(turns):
                messages.append({"role": "user", "content": USER_TURNS[t % len(USER_TURNS)]})
                async with session.post(
                    url, json={"model": "cx-support", "messages": messages, "tools": tools}
                ) as resp:
                    body = await resp.json()
                messages.append(body["choices"][0]["message"])

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(conversation(session) for _ in range(scenarios)))
        return time.perf_counter() - started


async def main(args: argparse.Namespace) -> int:
    spec = load_spec(ROOT / "examples" / "cx-support.slo.yaml")
    scenarios = parse_scenarios(scenario_file(args.scenarios, args.turns), "bench.yaml", spec)
    theoretical = args.scenarios * args.turns * args.latency / args.concurrency
    proc, base_url = start_agent(args.latency)
    try:
        cpu0 = time.process_time()
        started = time.perf_counter()
        results = await run_cycle(
            spec, scenarios, target_url=base_url, concurrency=args.concurrency, timeout=120
        )
        cycle = time.perf_counter() - started
        cpu = time.process_time() - cpu0
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
        tools = tool_definitions(scenarios[0], spec.tools)
        base = await baseline(base_url, args.scenarios, args.turns, args.concurrency, tools)
    finally:
        proc.terminate()
        proc.wait(10)
    turns = [t for r in results for t in r.turns]
    failed = [r.summary() for r in results if not r.passed]
    per_turn_wall = statistics.mean(t.latency_s for t in turns) - args.latency
    n_turns = args.scenarios * args.turns
    rows = [
        (
            "scenarios × turns",
            f"{args.scenarios} × {args.turns} = {n_turns} turns, concurrency {args.concurrency}",
        ),
        ("agent latency per turn", f"{args.latency * 1000:.0f} ms"),
        ("theoretical cycle", f"{theoretical:.2f} s"),
        (
            "prober cycle",
            f"{cycle:.2f} s  ({cycle / theoretical:.3f}× theoretical; target ≤ {TARGET_RATIO}×)",
        ),
        ("baseline (bare aiohttp)", f"{base:.2f} s  (prober / baseline = {cycle / base:.3f}×)"),
        ("prober peak RSS", f"{rss_mb:.1f} MB  (limit {RSS_LIMIT_MB:.0f} MB)"),
        (
            "overhead per turn, wall",
            f"{per_turn_wall * 1000:.1f} ms over the agent's {args.latency * 1000:.0f} ms",
        ),
        ("overhead per turn, CPU", f"{cpu / n_turns * 1000:.2f} ms (prober CPU {cpu:.2f} s for the cycle)"),
    ]
    for label, value in rows:
        print(f"{label + ':':<26}{value}")
    print(f"scenarios passed:         {len(results) - len(failed)}/{len(results)}")
    for line in failed[:5]:
        print("  ", line)
    ok = cycle <= TARGET_RATIO * theoretical and rss_mb <= RSS_LIMIT_MB and not failed
    print("RESULT:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=200)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--concurrency", type=int, default=20)
    raise SystemExit(asyncio.run(main(parser.parse_args())))
