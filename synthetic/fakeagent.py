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
import datetime as dt
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any, Final

from aiohttp import web

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
POLICY_TODAY: Final = dt.date(2026, 11, 22)  # the agent's policy clock, fixed so the examples stay true
REFUND_WINDOW_DAYS: Final = 30
HANG_LIMIT_S: Final = 600.0
_ORDER_ID: Final = re.compile(r"\b([A-Z]-\d{4})\b")
_EMAIL: Final = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")

# Data the `/chat` (HTTP) agent's own tools read; matches examples/scenarios.
DEMO_DATA: Final[dict[str, Any]] = {
    "get_order": {
        "A-1001": {
            "order_id": "A-1001",
            "status": "delivered",
            "delivered_on": "2026-11-12",
            "total_usd": 49.90,
        },
        "B-2002": {
            "order_id": "B-2002",
            "status": "delivered",
            "delivered_on": "2026-08-20",
            "total_usd": 120.0,
        },
        "C-3003": {
            "order_id": "C-3003",
            "status": "shipped",
            "carrier": "UPS",
            "tracking": "1Z999AA10123456784",
            "eta": "2026-11-25",
        },
    },
}


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""


def _last_user(messages: list[dict[str, Any]]) -> str:
    return next((_text(m) for m in reversed(messages) if m.get("role") == "user"), "")


def _tool_results(messages: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], Any]]:
    """(tool, arguments, result) of every tool call in the conversation, oldest first."""
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    out = []
    for m in messages:
        for c in m.get("tool_calls") or []:
            calls[c["id"]] = (c["function"]["name"], json.loads(c["function"]["arguments"] or "{}"))
        if m.get("role") == "tool" and m.get("tool_call_id") in calls:
            name, args = calls[m["tool_call_id"]]
            try:
                result = json.loads(_text(m))
            except ValueError:
                result = _text(m)
            out.append((name, args, result))
    return out


def decide(messages: list[dict[str, Any]], behaviour: str = "good") -> tuple[str, Any]:
    """The agent's next move: ("tool", (name, arguments)) or ("text", reply)."""
    user = _last_user(messages)
    low = user.lower()
    history = " ".join(_text(m) for m in messages if m.get("role") == "user")
    answered_since_user = messages and messages[-1].get("role") == "tool"
    if behaviour == "loop":
        return "tool", ("get_order", {"order_id": "A-1001"})
    if answered_since_user:
        return "text", _after_tool(messages, behaviour)
    order = _ORDER_ID.search(user) or _ORDER_ID.search(history)
    email = _EMAIL.search(user)
    if "password" in history.lower() and ("password" in low or email):
        if email:
            return "tool", ("reset_password", {"email": email.group(0)})
        return "text", "I can help you reset your password. What's the email address on your account?"
    lookup = ("get_account_balance", {"account": "me"}) if behaviour == "wrong_tool" else None
    if "refund" in low or "return" in low:
        seen = {name: res for name, _, res in _tool_results(messages)}
        if ("yes" in low or "refund it" in low) and "get_order" in seen:
            res = seen["get_order"]
            if isinstance(res, dict) and _refundable(res):
                return "tool", ("issue_refund", {"order_id": res["order_id"], "amount_usd": res["total_usd"]})
        if order:
            return "tool", lookup or ("get_order", {"order_id": order.group(1)})
        return "text", "I can help with a refund. Which order is it (for example A-1001)?"
    if order and any(w in low for w in ("where", "status", "order")):
        return "tool", lookup or ("get_order", {"order_id": order.group(1)})
    return "text", "I can help with refunds, order status and password resets. What do you need?"


def _refundable(order: dict[str, Any]) -> bool:
    try:
        delivered = dt.date.fromisoformat(str(order.get("delivered_on")))
    except ValueError:
        return False
    return order.get("status") == "delivered" and (POLICY_TODAY - delivered).days <= REFUND_WINDOW_DAYS


def _after_tool(messages: list[dict[str, Any]], behaviour: str) -> str:
    name, args, res = _tool_results(messages)[-1]
    res = res if isinstance(res, dict) else {"error": str(res)}
    refund_intent = any(w in _last_user(messages).lower() for w in ("refund", "return"))
    if name == "get_order":
        oid = res.get("order_id") or args.get("order_id", "")
        if "error" in res:
            return f"I couldn't find order {oid}; could you check the order number?"
        if res.get("status") == "shipped":
            return (
                f"Your order {oid} has shipped with {res.get('carrier')} (tracking {res.get('tracking')}), "
                f"expected on {res.get('eta')}."
            )
        if refund_intent and _refundable(res):
            return (
                f"I found order {oid}, delivered on {res.get('delivered_on')}. It's within our 30-day "
                f"refund window, so I can refund ${res.get('total_usd', 0):.2f}. Shall I go ahead?"
            )
        if refund_intent:
            return (
                f"I'm sorry, order {oid} was delivered on {res.get('delivered_on')}, more than 30 days ago, "
                "so it's outside our 30-day refund policy. I can offer store credit or connect you with a "
                "human agent."
            )
        return f"Your order {oid} is {res.get('status')}."
    if name == "issue_refund":
        if "error" in res:
            return f"I couldn't issue the refund: {res['error']}. Let me connect you with a human agent."
        window = "3-5 business days" if behaviour == "bad_policy" else "5-10 business days"
        return (
            f"Done: refund {res.get('refund_id')} for order {args.get('order_id')} is accepted. "
            f"You'll see the money in {window}."
        )
    if name == "reset_password":
        if res.get("sent"):
            return (
                f"I've sent a reset link to {args.get('email')}. It expires in "
                f"{res.get('expires_in_minutes', 30)} minutes; check your spam folder if you don't see it."
            )
        return "I couldn't find an account with that email. Could you check the address?"
    return "Sorry, I couldn't look that up right now."


def _completion(message: dict[str, Any], messages: list[dict[str, Any]], model: str) -> dict[str, Any]:
    prompt = sum(len(_text(m)) for m in messages) // 4 + 1
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
            "completion_tokens": len(_text(message)) // 4 + 1,
            "total_tokens": prompt + len(_text(message)) // 4 + 1,
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

    async def chat_completions(self, request: web.Request) -> web.Response:
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
        if (early := await self._misbehave(behaviour)) is not None:
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
            wants_json = any("json" in _text(m).lower() for m in messages if m.get("role") == "system")
            content = json.dumps({"reply": what}) if wants_json else what
            if behaviour == "malformed_output":
                content = json.dumps({"reply": what})[: max(10, len(content) // 2)]
            message = {"role": "assistant", "content": content}
        return web.json_response(_completion(message, messages, body.get("model", "fake")))

    async def chat(self, request: web.Request) -> web.Response:
        """Generic HTTP agent: {message, history, session_id} → {reply: {text}, tool_calls, usage}."""
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
        if (early := await self._misbehave(behaviour)) is not None:
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
    """`python -m synthetic.fakeagent [--port 8090] [--behaviour good] [--delay 0.3]`: serve until killed."""
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
