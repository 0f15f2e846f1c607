"""Exporter attack harness: what hostile `POST /v1/events` requests do to a running exporter (issue 17).

    python benchmarks/exporter_attacks.py [--attack amplify|slow|overflow|all] [--checkout DIR]
                                          [--amplify-mib 1] [--slow-seconds 40] [--slow-connections 64]

Starts a real exporter (`agent-slo serve examples/cx-support.slo.yaml`) and, while it is attacked,
asks `GET /healthz` and `POST /v1/events` (one valid event) every 50 ms from another client,
reporting the worst and median latency of each, the statuses of those legitimate batches, and the
exporter's peak RSS (VmHWM):

- `amplify` (issue 17: 4): three clients at once, three times each, send a `--amplify-mib` batch
  (1 MiB; the issue's figure is for 8) whose events carry thousands of unknown keys; reported: the
  size of each error answer.
- `slow` (issue 17: 7): `--slow-connections` connections announce an 8 MB body and send one byte
  every 5 s (reconnecting when the exporter hangs up), plus as many that send their headers one
  byte every 5 s, for `--slow-seconds`.
- `overflow` (issue 17: 1), with the counters on disk: two turns with `latency_s: 1e308`, then 300
  one-event batches (enough commits for a journal fold); reported: the answers, whether any answer
  said "nothing was counted" while the count went up, and whether the exporter restarts on its file.

`--checkout DIR` runs the exporter from another checkout (say `git worktree add` of an older
commit), for before/after figures on one machine. The suite's pass/fail versions of these attacks
are in tests/test_exporter_hardening.py.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.attack_common import JSON, TURN, Prober, free_port, peak_rss_mib

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "cx-support.slo.yaml"
READY_TIMEOUT_S = 60.0
AMPLIFY_CLIENTS, AMPLIFY_ROUNDS = 3, 3
SLOW_BODY_BYTES = 8 * 1024 * 1024
SLOW_BYTE_EVERY_S = 5.0


async def attack_amplify(http: aiohttp.ClientSession, base: str, pid: int, mib: float) -> None:
    prober = Prober(http, base)
    probing = asyncio.create_task(prober.run())
    event = {**TURN, **{f"unknown_field_{i}": i for i in range(4000)}}
    body = orjson.dumps([event] * max(1, round(mib * 10.5)))  # ~100 KB per event
    sizes: list[int] = []
    statuses: collections.Counter[int] = collections.Counter()

    async def client() -> None:
        for _ in range(AMPLIFY_ROUNDS):
            async with http.post(f"{base}/v1/events", data=body, headers=JSON) as r:
                sizes.append(len(await r.read()))
                statuses[r.status] += 1

    started = time.perf_counter()
    await asyncio.gather(*[client() for _ in range(AMPLIFY_CLIENTS)])
    took = time.perf_counter() - started
    await asyncio.sleep(0.5)
    prober.stop()
    await probing
    print(
        f"amplify ({len(body) / 2**20:.2f} MiB batches, {AMPLIFY_CLIENTS}x{AMPLIFY_ROUNDS}): answers "
        f"{dict(statuses)} of {max(sizes) / 2**20:.2f} MiB at most ({sum(sizes) / 2**20:.1f} MiB in all) "
        f"in {took:.1f} s; {prober.report()}; peak RSS {peak_rss_mib(pid):.0f} MiB"
    )


async def _trickle(port: int, deadline: float, headers_too: bool, ended: collections.Counter[str]) -> None:
    """One slow client: a body (or its headers) a byte every SLOW_BYTE_EVERY_S; reconnects when cut off."""
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {SLOW_BODY_BYTES}\r\n\r\n"
    ).encode()
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            ended["refused_connection"] += 1
            await asyncio.sleep(1)
            continue
        try:
            if headers_too:
                chunks: Iterable[bytes] = (head[i : i + 1] for i in range(len(head)))
            else:
                writer.write(head)
                chunks = itertools.chain([b"["], itertools.repeat(b" ", SLOW_BODY_BYTES - 1))
            for chunk in chunks:
                if time.monotonic() > deadline:
                    break
                writer.write(chunk)
                await writer.drain()
                try:  # wait for the next byte's turn, or for the exporter to answer or hang up
                    answer = await asyncio.wait_for(reader.read(200), SLOW_BYTE_EVERY_S)
                except TimeoutError:
                    continue
                ended[answer.split(b" ", 2)[1].decode() if answer else "closed"] += 1
                break
        except (OSError, IndexError):
            ended["reset"] += 1
        finally:
            writer.close()


async def attack_slow(
    http: aiohttp.ClientSession, base: str, port: int, pid: int, seconds: float, connections: int
) -> None:
    prober = Prober(http, base)
    probing = asyncio.create_task(prober.run())
    deadline = time.monotonic() + seconds
    ended: collections.Counter[str] = collections.Counter()
    await asyncio.gather(
        *[
            _trickle(port, deadline, headers_too, ended)
            for headers_too in (False, True)
            for _ in range(connections)
        ]
    )
    prober.stop()
    await probing
    print(
        f"slow ({connections} trickling bodies + {connections} trickling headers, {seconds:g} s): "
        f"the slow clients ended {dict(ended)}; {prober.report()}; peak RSS {peak_rss_mib(pid):.0f} MiB"
    )


async def attack_overflow(http: aiohttp.ClientSession, base: str, pid: int, restart: Any) -> None:
    prober = Prober(http, base)
    probing = asyncio.create_task(prober.run())
    huge = orjson.dumps([{**TURN, "latency_s": 1e308}, {**TURN, "latency_s": 1e308}])
    async with http.post(f"{base}/v1/events", data=huge, headers=JSON) as r:
        first = f"{r.status} {(await r.text())[:160]}"
    answers: collections.Counter[int] = collections.Counter()
    contradicted = 0
    for _ in range(300):
        async with http.post(f"{base}/v1/events", data=orjson.dumps([TURN]), headers=JSON) as r:
            text = await r.text()
            answers[r.status] += 1
            contradicted += r.status == 503 and "nothing was counted" in text
    prober.stop()
    await probing
    async with http.get(f"{base}/metrics") as r:
        text = await r.text()
    line = next(
        (
            x
            for x in text.splitlines()
            if x.startswith(
                'agent_slo_turn_latency_seconds_count{agent="cx-support",flow="refund",kind="turn"}'
            )
        ),
        "",
    )
    rss = peak_rss_mib(pid)
    restarted = await restart(http)
    print(
        f"overflow (two latency_s 1e308, then 300 one-event batches, --db): first answer {first!r}; "
        f"later answers {dict(answers)} ({contradicted} said 'nothing was counted'); turns acknowledged "
        f"{answers[200] + prober.statuses[200]}, exposed {line.rpartition(' ')[2] or '?'}; restart on the "
        f"file: {restarted}; {prober.report()}; peak RSS {rss:.0f} MiB"
    )


class Exporter:
    """One `agent-slo serve` process run from a checkout."""

    def __init__(self, checkout: Path, port: int, db: str | None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        env["PYTHONPATH"] = str(checkout)
        env["AGENT_SLO_JUDGE_PROCESS"] = "0"  # these attacks send no sessions
        command = [sys.executable, "-m", "agentslo.cli", "serve", str(SPEC), "--port", str(port)]
        if db:
            command += ["--db", db]
        self.command, self.env, self.checkout = command, env, checkout
        self.base = f"http://127.0.0.1:{port}"
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.command, cwd=self.checkout, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    async def ready(self, http: aiohttp.ClientSession) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                async with http.get(f"{self.base}/readyz") as r:
                    if r.status == 200:
                        return True
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    async def restart(self, http: aiohttp.ClientSession) -> str:
        self.stop()
        self.proc = self._start()
        if await self.ready(http):
            return "it starts"
        self.stop()
        err = (self.proc.stderr.read() if self.proc.stderr else b"").decode(errors="replace").strip()
        return f"it does NOT start ({err.splitlines()[-1][:120] if err else 'no message'})"


async def main(args: argparse.Namespace) -> None:
    checkout = Path(args.checkout).resolve() if args.checkout else ROOT
    attacks = ("amplify", "slow", "overflow") if args.attack == "all" else (args.attack,)
    for attack in attacks:
        folder = tempfile.TemporaryDirectory(prefix="agent-slo-attack-")
        port = free_port()
        db = str(Path(folder.name) / "counters.db") if attack == "overflow" else None
        exporter = Exporter(checkout, port, db)
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
                if not await exporter.ready(http):
                    raise RuntimeError("the exporter did not start")
                pid = exporter.proc.pid
                if attack == "amplify":
                    await attack_amplify(http, exporter.base, pid, args.amplify_mib)
                elif attack == "slow":
                    await attack_slow(
                        http, exporter.base, port, pid, args.slow_seconds, args.slow_connections
                    )
                else:
                    await attack_overflow(http, exporter.base, pid, exporter.restart)
        finally:
            exporter.stop()
            folder.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attack", choices=("amplify", "slow", "overflow", "all"), default="all")
    parser.add_argument("--amplify-mib", type=float, default=1.0, help="size of each amplify batch")
    parser.add_argument("--slow-seconds", type=float, default=40.0)
    parser.add_argument("--slow-connections", type=int, default=64)
    parser.add_argument("--checkout", help="run the exporter from this checkout (default: this one)")
    asyncio.run(main(parser.parse_args()))
