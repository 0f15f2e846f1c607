"""What an agent using the client SDK talks to, for the `test_client_*` tests and the client benchmark:
a real exporter (`agent-slo serve` as a subprocess on a free loopback port, killable and restartable
on the same port and database) and a scripted OpenAI-compatible model that asks for tools.

    with Exporter(tmp_path) as exporter:                  # SPEC below, counters in tmp_path/counters.db
        client = Client(exporter.url, agent="bot", flow="refund")
        ...
        assert exporter.value("agent_slo_tool_calls_total", tool="get_order", outcome="ok") == 1

    with FakeChat([Reply(tools=[("get_order", {"order_id": "A-1"})]), Reply(text="Refunded.")]) as chat:
        ...                                               # point an OpenAI client at chat.base_url

Both are synchronous to their caller: the exporter is a process, the model runs its own event loop in
a thread, so sync tests, `asyncio.run` and the frameworks' runners can all use them.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

# Every SLI kind the client can feed, on two flows, with the tools and failure modes the tests use.
SPEC = """
version: agent-slo/v1
agent: bot
owners: {team: {team: t}}
flows: {refund: {risk: billing}, order-status: {risk: faq}}
tools: [get_order, issue_refund, escalate_to_human]
failure_modes: [wrong_refund_window, tool_error]
models: [gpt-4o, gpt-4o-mini]
judges:
  faith: {type: llm, model: gpt-4o-mini, version: "3", rubric: "grounded?", pass_threshold: 0.8,
          sample_rate: 0}
slos:
  task-success: {sli: {task: {}}, objective: auto, owner: team}
  tool-calls: {sli: {tool_calls: {}}, objective: 95, owner: team}
  faith: {sli: {judge: faith}, objective: auto, owner: team}
  e2e-latency: {sli: {latency: {of: task, under: 5s}}, objective: 99, owner: team}
  turn-latency: {sli: {latency: {of: turn, under: 2s}}, objective: 95, owner: team}
  first-response: {sli: {latency: {of: first_response, under: 1s}}, objective: 95, owner: team}
  cost: {sli: {cost: {under_usd: 0.10}}, objective: 90, owner: team}
  escalation: {sli: {escalation: {}}, objective: 97, owner: team}
  connection: {sli: {connection: {}}, objective: 99, owner: team}
"""
READY_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Exporter:
    """`agent-slo serve SPEC --db tmp/counters.db` on a free port; `kill()` and `start()` again. The
    process's stderr goes to `tmp/exporter.log`."""

    def __init__(self, tmp: Path, *specs: str, token: str | None = None, persist: bool = True) -> None:
        self.spec_paths = []
        for i, spec in enumerate(specs or (SPEC,)):
            path = tmp / f"agent{i}.slo.yaml"
            path.write_text(spec)
            self.spec_paths.append(path)
        self.db = tmp / "counters.db"
        self.log = tmp / "exporter.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = token
        self.persist = persist  # False: counters in memory only, as `agent-slo serve` without --db
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, wait: bool = True) -> Exporter:
        cmd = [sys.executable, "-m", "agentslo.cli", "serve", *map(str, self.spec_paths)]
        cmd += ["--port", str(self.port)]
        if self.persist:
            cmd += ["--db", str(self.db), "--sync", "normal"]
        if self.token:
            cmd += ["--token", self.token]
        env = {**os.environ, "AGENT_SLO_JUDGE_PROCESS": "0"}  # judging in-process: no child to reap
        with self.log.open(
            "ab"
        ) as log:  # a file, not a pipe: nobody has to read it for the exporter to go on
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(self.log.read_text(errors="replace"))
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("the exporter did not become ready")

    def kill(self) -> None:
        """SIGKILL: no goodbye, batches in flight stay unanswered."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def __enter__(self) -> Exporter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def get(self, path: str) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        req = urllib.request.Request(self.url + path, headers=headers)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json", **(headers or {})}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every `agent_slo_*` sample on /metrics but the exporter's own ingest health."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name.startswith("agent_slo_") and not s.name.startswith("agent_slo_ingest_")
        }

    def value(self, name: str, **labels: str) -> float:
        """The sum of `name`'s samples whose labels include `labels`."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples().items() if n == name and wanted <= ls)


@dataclass
class Reply:
    """One scripted model answer: tool calls (name, arguments), or text; with its token usage. With
    `status`, an OpenAI-style error of that HTTP status instead."""

    text: str | None = None
    tools: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    usage: tuple[int, int] = (100, 20)
    status: int | None = None


class FakeChat:
    """`POST /v1/chat/completions` answering the next `Reply` of its script (text "done." when the
    script runs out); every request body is kept in `requests`."""

    def __init__(self, script: Iterable[Reply] = ()) -> None:
        self.script: deque[Reply] = deque(script)
        self.requests: list[dict[str, Any]] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-chat", daemon=True)
        self._runner: web.AppRunner | None = None
        self._calls = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeChat:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._complete)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _complete(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        reply = self.script.popleft() if self.script else Reply(text="done.")
        self._calls += 1
        if reply.status is not None:
            error = {"message": f"scripted HTTP {reply.status}", "type": "server_error", "code": None}
            return web.json_response({"error": error}, status=reply.status)
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reply.tools:
            message["tool_calls"] = [
                {
                    "id": f"call_{self._calls}_{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
                for i, (name, args) in enumerate(reply.tools)
            ]
        prompt, completion = reply.usage
        return web.json_response(
            {
                "id": f"chatcmpl-{self._calls}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "gpt-4o"),
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if reply.tools else "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }
        )


@dataclass
class Answer:
    """One scripted answer of `ScriptedExporter`; `lose=True` closes the connection without one
    (after forwarding the request upstream, when there is an upstream: the answer is lost)."""

    status: int = 200
    body: Any = None  # JSON; None: {"accepted": <events in the request>}
    headers: dict[str, str] = field(default_factory=dict)
    lose: bool = False


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()


class ScriptedExporter:
    """An HTTP/1.1 server on a free loopback port that answers each POST with the next `Answer` of
    its script; with `upstream` (a real exporter's URL) it forwards every POST there first and, once
    the script runs out, relays the real answers. Every request is kept in `seen`."""

    def __init__(self, script: Iterable[Answer] = (), upstream: str | None = None) -> None:
        self.script: deque[Answer] = deque(script)
        self.upstream = upstream
        self.seen: list[Seen] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                owner.seen.append(Seen(self.path, dict(self.headers.items()), body, time.monotonic()))
                answer = owner.script.popleft() if owner.script else None
                status, data, headers = owner._answer(self.path, dict(self.headers.items()), body, answer)
                if answer is not None and answer.lose:
                    self.close_connection = True
                    return
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="scripted", daemon=True)

    def _answer(
        self, path: str, headers: dict[str, str], body: bytes, answer: Answer | None
    ) -> tuple[int, bytes, dict[str, str]]:
        relayed: tuple[int, bytes, dict[str, str]] | None = None
        if self.upstream is not None:
            keep = {k: v for k, v in headers.items() if k.lower() in ("content-type", "idempotency-key")}
            req = urllib.request.Request(self.upstream + path, data=body, headers=keep)
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    relayed = (resp.status, resp.read(), {})
            except urllib.error.HTTPError as exc:
                relayed = (exc.code, exc.read(), {})
        if answer is None or answer.lose:
            if relayed is not None:
                return relayed
            return 200, json.dumps({"accepted": len(json.loads(body))}).encode(), {}
        data = answer.body if answer.body is not None else {"accepted": len(json.loads(body))}
        return answer.status, json.dumps(data).encode(), answer.headers

    def __enter__(self) -> ScriptedExporter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)
