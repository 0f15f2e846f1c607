"""A small, deterministic support agent behind an OpenAI-compatible API, for tests, demo and benchmark.

It serves `POST /v1/chat/completions` (asks for tools by name, reads their results from the
conversation, like a real tool-using model) and `POST /chat` (a generic HTTP JSON agent that runs
its tools itself against built-in demo data). It answers the cx-support example scenarios
correctly, and can be told to misbehave the ways real agents do:

| behaviour | what it does |
|---|---|
| `good` | the right tool, the right policy |
| `wrong_tool` | looks orders up with `get_account_balance` instead of `get_order` |
| `bad_policy` | quotes the retired "3-5 business days" refund window |
| `slow` | answers, `slow_s` seconds late |
| `hang` | never answers (until stopped) |
| `malformed_body` | HTTP 200 with a body that is not a chat completion |
| `malformed_output` | a reply that is truncated JSON |
| `loop` | calls `get_order` forever |
| `error` | HTTP 500 |

    async with running_fake_agent(behaviour="bad_policy") as agent:
        ...  # agent.base_url is http://127.0.0.1:PORT/v1
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any, Final

from aiohttp import web

from agentslo.synthetic.fakebrain import DEMO_DATA, decide, text_of

BEHAVIOURS: Final = (
    "good",
    "wrong_tool",
    "bad_policy",
    "slow",
    "hang",
    "malformed_body",
    "malformed_output",
    "loop",
    "error",
)


HANG_LIMIT_S: Final = 600.0  # a hanging request gives up after this long even if never released


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _completion(message: dict[str, Any], messages: list[dict[str, Any]], model: str) -> dict[str, Any]:
    prompt = sum(len(text_of(m)) for m in messages) // 4 + 1
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": len(text_of(message)) // 4 + 1,
            "total_tokens": prompt + len(text_of(message)) // 4 + 1,
        },
    }


async def _healthz(_: web.Request) -> web.Response:
    return web.json_response({"ok": True})


class FakeAgent:
    """The server; change `behaviour` (or `per_scenario[name]`) at any time to make it misbehave."""

    def __init__(self, behaviour: str = "good", *, delay_s: float = 0.0, slow_s: float = 2.0):
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}; one of {', '.join(BEHAVIOURS)}")
        self.behaviour = behaviour
        self.per_scenario: dict[str, str] = {}
        self.delay_s = delay_s  # every completion takes at least this long (an LLM's latency)
        self.slow_s = slow_s
        self.requests: list[dict[str, Any]] = []  # {path, headers (lowercase names), body, at}, for tests
        self.sessions: dict[str, list[dict[str, Any]]] = {}  # /chat conversations by session_id
        self.in_flight = 0
        self.max_in_flight = 0
        self.record = True
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.port = 0

    def _behaviour(self, request: web.Request) -> str:
        return self.per_scenario.get(request.headers.get("X-Agent-SLO-Synthetic", ""), self.behaviour)

    async def _misbehave(self, behaviour: str) -> web.Response | None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._misbehave_inner(behaviour)
        finally:
            self.in_flight -= 1

    async def _misbehave_inner(self, behaviour: str) -> web.Response | None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if behaviour == "slow":
            await asyncio.sleep(self.slow_s)
        if behaviour == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), HANG_LIMIT_S)
            return web.json_response({"error": "released"}, status=503)
        if behaviour == "error":
            return web.json_response({"error": {"message": "internal error"}}, status=500)
        if behaviour == "malformed_body":
            return web.Response(
                text='{"id": "x", "object": "chat.completion", "choices": [', content_type="application/json"
            )
        return None

    async def _receive(self, request: web.Request) -> tuple[dict[str, Any], str, web.Response | None]:
        """Read and record the request; return its body, the behaviour asked for, and any early answer."""
        body = await request.json()
        if self.record:
            self.requests.append(
                {
                    "path": request.path,
                    "headers": _lower(request.headers),
                    "body": body,
                    "at": time.monotonic(),
                }
            )
        behaviour = self._behaviour(request)
        return body, behaviour, await self._misbehave(behaviour)

    async def chat_completions(self, request: web.Request) -> web.Response:
        body, behaviour, early = await self._receive(request)
        if early is not None:
            return early
        messages = body.get("messages") or []
        kind, what = decide(messages, behaviour)
        if kind == "tool":
            name, args = what
            call_id = f"call_{len(messages)}_{name}"
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": json.dumps(args)},
                    }
                ],
            }
        else:
            wants_json = any("json" in text_of(m).lower() for m in messages if m.get("role") == "system")
            content = json.dumps({"reply": what}) if wants_json else what
            if behaviour == "malformed_output":
                content = json.dumps({"reply": what})[: max(10, len(content) // 2)]
            message = {"role": "assistant", "content": content}
        return web.json_response(_completion(message, messages, body.get("model", "fake")))

    async def chat(self, request: web.Request) -> web.Response:
        """Generic HTTP agent: {message, history, session_id} → {reply: {text}, tool_calls, usage}."""
        body, behaviour, early = await self._receive(request)
        if early is not None:
            return early
        # Like a real agent service it keeps the session (with its tool results) server-side by session_id.
        session = str(body.get("session_id") or "")
        past = self.sessions.get(session) if session else None
        messages = [*(past if past is not None else body.get("history") or [])]
        messages.append({"role": "user", "content": body.get("message", "")})
        if session:
            self.sessions[session] = messages
        calls: list[dict[str, Any]] = []
        for step in range(8):
            kind, what = decide(messages, behaviour)
            if kind == "text":
                text = what if behaviour != "malformed_output" else json.dumps({"reply": what})[:20]
                messages.append({"role": "assistant", "content": text})
                return web.json_response(
                    {
                        "reply": {"text": text},
                        "tool_calls": calls,
                        "usage": {"input_tokens": 100, "output_tokens": len(text) // 4},
                    }
                )
            name, args = what
            result = DEMO_DATA.get(name, {}).get(args.get("order_id", ""), {"error": "not found"})
            if name == "issue_refund":
                result = {"refund_id": "R-778", "status": "accepted"}
            calls.append({"name": name, "arguments": args, "result": result})
            call_id = f"call_{step}"
            messages += [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {"name": name, "arguments": json.dumps(args)},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": call_id, "content": json.dumps(result)},
            ]
        return web.json_response({"error": "too many steps"}, status=500)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_post("/chat", self.chat)
        app.router.add_get("/healthz", _healthz)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app(), shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.base_url = f"http://{host}:{self.port}/v1"
        return self.base_url

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@contextlib.asynccontextmanager
async def running_fake_agent(behaviour: str = "good", **kwargs: Any) -> AsyncIterator[FakeAgent]:
    """Start a fake agent on a free port; stop it on exit."""
    agent = FakeAgent(behaviour, **kwargs)
    await agent.start()
    try:
        yield agent
    finally:
        await agent.stop()


def main(argv: list[str] | None = None) -> None:
    """`python -m agentslo.synthetic.fakeagent [--port 8090] [--behaviour good] [--delay 0.3]`: serve until killed."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090, help="0 picks a free port")
    parser.add_argument("--behaviour", default="good", choices=BEHAVIOURS)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds every completion takes")
    args = parser.parse_args(argv)

    async def serve() -> None:
        agent = FakeAgent(args.behaviour, delay_s=args.delay)
        agent.record = False  # a long-running server must not keep every request
        print(f"fake agent listening on {await agent.start(args.host, args.port)}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await agent.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
