"""Feedback attack harness: what one hostile `POST /v1/sessions` does to a running exporter.

    python benchmarks/feedback_attack.py [--attack word|flood|both] [--word-chars 250000]
                                         [--flood-seconds 20] [--flood-kb 80] [--db]
                                         [--checkout DIR]

Starts a real exporter (`agent-slo serve examples/cx-support.slo.yaml`, LLM judges in their child
process, no API key so their calls fail fast) and, while it is attacked, asks `GET /healthz` and
`POST /v1/events` (one event) every 50 ms from another client, reporting the worst and median
latency of each and the exporter's peak RSS (VmHWM):

- `word`: one session whose assistant message is a single `--word-chars` letter word, marked
  failed so that it is stored (and so redacted) and judged by the rule judge. Also reported: how
  long until the session was judged and stored (from `GET /v1/judging`).
- `flood`: `--flood-kb` KiB sessions (ordinary prose, failed so that each is stored), ten per
  request from four clients for `--flood-seconds`; reports how many were accepted, how many were
  answered 429/503 (and whether each such answer carried `Retry-After`).

`--db` keeps the counters and the session store on disk (in a temporary folder; without it the store
is in memory and its 256 MiB size limit counts in the RSS). `--checkout DIR` runs the exporter from
another checkout (say `git archive` of an older commit), for before/after figures on one machine.

The figures go to the issue's closing note (peak RSS and /healthz latency before and after); the
suite's pass/fail versions of these attacks are in tests/test_feedback_hardening.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.attack_common import JSON, PROBE_TIMEOUT_S, Prober, free_port, peak_rss_mib

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "cx-support.slo.yaml"
READY_TIMEOUT_S = 60.0
FLOOD_CLIENTS = 4
FLOOD_BATCH = 10


def session(sid: str, text: str) -> dict[str, Any]:
    return {
        "session_id": sid,
        "agent": "cx-support",
        "flow": "refund",
        "outcome": "failure",
        "messages": [
            {"role": "user", "content": "Where is my refund?"},
            {"role": "assistant", "content": text},
        ],
    }


def prose(kib: int) -> str:
    sentence = "Your refund for order A-1001 was approved on 2026-11-20 and will arrive soon. "
    return (sentence * (kib * 1024 // len(sentence) + 1))[: kib * 1024]


async def judging(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with http.get(f"{base}/v1/judging") as r:
        result: dict[str, Any] = await r.json()
    return result


async def attack_word(http: aiohttp.ClientSession, base: str, pid: int, chars: int) -> None:
    prober = Prober(http, base)
    probing = asyncio.create_task(prober.run())
    await asyncio.sleep(0.5)
    stored_before = (await judging(http, base))["stored"]
    started = time.perf_counter()
    body = orjson.dumps(session("word-1", "a" * chars))
    async with http.post(f"{base}/v1/sessions", data=body, headers=JSON) as r:
        answered = time.perf_counter() - started
        status = r.status
    while (await judging(http, base))["stored"] == stored_before:
        if time.perf_counter() - started > PROBE_TIMEOUT_S:
            break
        await asyncio.sleep(0.05)
    processed = time.perf_counter() - started
    await asyncio.sleep(0.5)
    prober.stop()
    await probing
    print(
        f"word ({chars:,} chars): answered {status} in {answered * 1000:.0f} ms, judged and stored after "
        f"{processed:.2f} s; {prober.report()}; peak RSS {peak_rss_mib(pid):.0f} MiB"
    )


async def attack_flood(http: aiohttp.ClientSession, base: str, pid: int, seconds: float, kib: int) -> None:
    prober = Prober(http, base)
    probing = asyncio.create_task(prober.run())
    text = prose(kib)
    deadline = time.perf_counter() + seconds
    counts = {"accepted": 0, "refused": 0, "refused_without_retry_after": 0, "other": 0}

    async def client(c: int) -> None:
        n = 0
        while time.perf_counter() < deadline:
            batch = [session(f"flood-{c}-{n + i}", text) for i in range(FLOOD_BATCH)]
            n += FLOOD_BATCH
            async with http.post(f"{base}/v1/sessions", data=orjson.dumps(batch), headers=JSON) as r:
                await r.read()
                if r.status == 202:
                    counts["accepted"] += FLOOD_BATCH
                elif r.status in (429, 503):
                    counts["refused"] += FLOOD_BATCH
                    counts["refused_without_retry_after"] += "Retry-After" not in r.headers
                    await asyncio.sleep(0.05)
                else:
                    counts["other"] += FLOOD_BATCH

    await asyncio.gather(*[client(c) for c in range(FLOOD_CLIENTS)])
    prober.stop()
    await probing
    print(
        f"flood ({kib} KiB sessions, {seconds:g} s): {counts}; {prober.report()}; "
        f"peak RSS {peak_rss_mib(pid):.0f} MiB"
    )


async def main(args: argparse.Namespace) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    checkout = Path(args.checkout).resolve() if args.checkout else ROOT
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = str(checkout)
    folder = tempfile.TemporaryDirectory(prefix="agent-slo-attack-")
    command = [sys.executable, "-m", "agentslo.cli", "serve", str(SPEC), "--port", str(port)]
    if args.db:
        command += ["--db", str(Path(folder.name) / "counters.db")]
    proc = subprocess.Popen(command, cwd=checkout, env=env, stdout=subprocess.DEVNULL)
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                try:
                    async with http.get(f"{base}/readyz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the exporter did not start")
                await asyncio.sleep(0.2)
            print(f"exporter ready, pid {proc.pid}, RSS {peak_rss_mib(proc.pid):.0f} MiB")
            if args.attack in ("word", "both"):
                await attack_word(http, base, proc.pid, args.word_chars)
            if args.attack in ("flood", "both"):
                await attack_flood(http, base, proc.pid, args.flood_seconds, args.flood_kb)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        folder.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attack", choices=("word", "flood", "both"), default="both")
    parser.add_argument("--word-chars", type=int, default=250_000)
    parser.add_argument("--flood-seconds", type=float, default=20.0)
    parser.add_argument("--flood-kb", type=int, default=80)
    parser.add_argument("--db", action="store_true", help="counters and session store on disk")
    parser.add_argument("--checkout", help="run the exporter from this checkout (default: this one)")
    asyncio.run(main(parser.parse_args()))
