"""Judges benchmark: judged sessions/s against the concurrency bound, and what judging costs ingest.

    python benchmarks/judges.py [--sessions 800] [--seconds 3] [--rounds 7]

Runs a scripted judge provider answering in 200 ms (`python -m tests.doubles.fake_provider`) and a
real exporter (`agent-slo serve`: judges in their child process, SQLite session store) as separate
processes, then measures:

1. judged sessions/s: `--sessions` sessions, all in the LLM judge's sample (concurrency 16), timed
   until every verdict is counted, overall and in the steady state (10% to 90% done). The bound
   is concurrency / latency = 16 / 0.2 s = 80/s; target ≥ 90% of it.
2. ingest: `POST /v1/events` throughput (1,000-event batches, 4 clients) for `--seconds`, in rounds
   that alternate three modes (each 'on' round compared with the 'off' round before it; medians):
   - `off`: no sessions;
   - `sampled`: 100 sessions/s, rule judge on every one, LLM judge on a 5% head sample;
   - `saturated`: 100 sessions/s, every one sampled by the LLM judge (judging at its 80/s bound).
   Target: on ≥ 80% of off. CPU of the exporter and of its judge process is reported alongside, as
   the machine's other load moves throughput figures a lot on a small shared box.
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

ROOT = Path(__file__).resolve().parent.parent
PROVIDER_LATENCY_S = 0.2
JUDGE_CONCURRENCY = 16
BOUND = JUDGE_CONCURRENCY / PROVIDER_LATENCY_S  # judged sessions/s the provider latency allows
EVENT_BATCH = 1_000
EVENT_CLIENTS = 4
SESSION_RATE = 100.0  # sessions/s offered while measuring ingest with judging on (> the 80/s bound)
SESSION_BATCH = 10
JSON = {"Content-Type": "application/json"}
READY_TIMEOUT_S = 60.0  # a loaded machine can take a while to import everything
MODES = ("off", "sampled", "saturated")
FLOW_OF = {"sampled": "refund", "saturated": "order-status"}

SPEC = """
version: agent-slo/v1
agent: cx-support
owners: {{product: {{team: cx}}}}
flows: {{refund: {{risk: billing}}, order-status: {{risk: faq}}}}
judges:
  faithfulness: {{type: llm, model: judge-1, version: "1", rubric: "grounded?", pass_threshold: 0.5,
                 flows: [order-status], sample_rate: 1.0, concurrency: {concurrency}, base_url: "{url}",
                 timeout: 10, usd_per_1k_input_tokens: 0.15, usd_per_1k_output_tokens: 0.6}}
  tone: {{type: llm, model: judge-1, version: "1", rubric: "polite?", pass_threshold: 0.5, flows: [refund],
         sample_rate: 0.05, concurrency: {concurrency}, base_url: "{url}", timeout: 10}}
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


def children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return [int(c) for t in tasks for c in (t / "children").read_text().split()]
    except OSError:
        return []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def session(i: int, tag: str, flow: str) -> dict[str, Any]:
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


async def status(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with http.get(f"{base}/v1/judging") as resp:
        result: dict[str, Any] = await resp.json()
    return result


async def measure_judged(http: aiohttp.ClientSession, base: str, n: int) -> tuple[float, float]:
    """Judged sessions/s from first post to last verdict, and in the steady state (10% to 90% done)."""

    def judged(s: dict[str, Any]) -> int:
        return sum(s["judge_calls"].get("faithfulness", {}).values())

    before = judged(await status(http, base))
    started = time.perf_counter()
    for i in range(0, n, 50):
        batch = [session(j, "judged", "order-status") for j in range(i, min(n, i + 50))]
        async with http.post(f"{base}/v1/sessions", json=batch) as r:
            assert r.status == 202, await r.text()
    marks: dict[float, float] = {}
    while (done := judged(await status(http, base)) - before) < n:
        for share in (0.1, 0.9):
            if done >= share * n and share not in marks:
                marks[share] = time.perf_counter()
        await asyncio.sleep(0.02)
    overall = n / (time.perf_counter() - started)
    steady = 0.8 * n / (marks[0.9] - marks[0.1]) if len(marks) == 2 and marks[0.9] > marks[0.1] else overall
    return overall, steady


async def measure_ingest(
    http: aiohttp.ClientSession, base: str, seconds: float, mode: str, tag: str, pids: list[int]
) -> tuple[float, list[float]]:
    """Events/s counted, and the CPU (cores) each of `pids` used meanwhile."""
    flows = ("refund", "order-status")
    body = orjson.dumps(
        [
            {
                "type": "task",
                "agent": "cx-support",
                "flow": flows[i % 2],
                "outcome": "success" if i % 7 else "failure",
                "duration_s": 1.5,
            }
            for i in range(EVENT_BATCH)
        ]
    )
    batches = (
        [
            orjson.dumps([session(j, tag, FLOW_OF[mode]) for j in range(i, i + SESSION_BATCH)])
            for i in range(0, int(seconds * SESSION_RATE) + SESSION_BATCH, SESSION_BATCH)
        ]
        if mode != "off"
        else []
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
        started = time.perf_counter()
        for n, batch in enumerate(batches):
            if time.perf_counter() >= deadline:
                break
            await asyncio.sleep(max(0.0, started + n * SESSION_BATCH / SESSION_RATE - time.perf_counter()))
            async with http.post(f"{base}/v1/sessions", data=batch, headers=JSON) as r:
                assert r.status == 202, await r.text()

    started, cpu = time.perf_counter(), [cpu_seconds(p) for p in pids]
    await asyncio.gather(*[events_client() for _ in range(EVENT_CLIENTS)], sessions_client())
    elapsed = time.perf_counter() - started
    return counted / elapsed, [(cpu_seconds(p) - c) / elapsed for p, c in zip(pids, cpu, strict=True)]


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


async def drain(http: aiohttp.ClientSession, base: str) -> None:
    """Let the judges' backlog from an 'on' round clear before the next round."""
    deadline = time.monotonic() + 60
    while sum((await status(http, base))["queues"].values()) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)


async def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="agent-slo-judges-bench-"))
    provider = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.doubles.fake_provider",
            "--delay",
            str(PROVIDER_LATENCY_S),
            "--score",
            "0.9",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,  # the test doubles are imported from the repository, not installed
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
            # exporter, provider, then the exporter's judge process(es)
            pids = [exporter.pid, provider.pid, *children(exporter.pid)]
            judged, steady = await measure_judged(http, base, args.sessions)
            rates: dict[str, list[float]] = {mode: [] for mode in MODES}
            cpus: dict[str, list[list[float]]] = {mode: [] for mode in MODES}
            for r in range(args.rounds):
                for mode in MODES:
                    rate, cpu = await measure_ingest(http, base, args.seconds, mode, f"{mode}{r}", pids)
                    rates[mode].append(rate)
                    cpus[mode].append(cpu)
                    await drain(http, base)
        print(
            f"provider latency {PROVIDER_LATENCY_S * 1000:.0f} ms, judge concurrency {JUDGE_CONCURRENCY}: "
            f"bound {BOUND:.0f} judged sessions/s"
        )
        print(
            f"judged sessions/s: {judged:.1f} over {args.sessions} sessions = "
            f"{judged / BOUND:.1%} of the bound; steady state (10%-90% done) {steady:.1f} = "
            f"{steady / BOUND:.1%} (target >= 90%)"
        )
        per_cpu_off = statistics.median(
            r / c[0] for r, c in zip(rates["off"], cpus["off"], strict=True) if c[0]
        )
        for mode in MODES:
            median = statistics.median(rates[mode])
            cpu = [statistics.median(c[i] for c in cpus[mode]) for i in range(len(pids))]
            # Each 'on' round is compared with the 'off' round just before it: the machine's other load
            # drifts over minutes, so adjacent rounds are the fair pairs.
            paired = statistics.median(on / off for on, off in zip(rates[mode], rates["off"], strict=True))
            # Events per CPU-second of the exporter: what judging costs the ingest itself, apart from the
            # CPU the judge process, the provider and the rest of the machine take from it.
            per_cpu = statistics.median(
                r / c[0] for r, c in zip(rates[mode], cpus[mode], strict=True) if c[0]
            )
            ratio = (
                ""
                if mode == "off"
                else (
                    f" ({paired:.1%} of the adjacent off round, target >= 80%; per exporter CPU-second "
                    f"{per_cpu / per_cpu_off:.1%} of off)"
                )
            )
            print(f"ingest events/s, judging {mode}: {median:,.0f}{ratio}")
            print(
                f"    rounds {', '.join(f'{x:,.0f}' for x in rates[mode])}; "
                f"CPU cores: exporter {cpu[0]:.2f}, judge process {sum(cpu[2:]):.2f}, provider {cpu[1]:.2f}"
            )
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
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
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each ingest measurement")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of the three ingest modes (medians)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
