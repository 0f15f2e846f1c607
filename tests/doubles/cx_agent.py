"""The one CX agent (`agentslo.demo.agent`) as the prober's tests drive it.

The agent itself is the demo's: same policy, same order table, same policy clock. This double only
adds what a test needs around it: a named `behaviour`, the requests it received, how many were in
flight at once, and the ways an agent breaks at the HTTP level, which no product code should carry.

| behaviour | what it does |
|---|---|
| `good` | the right tool, the right policy (an agent that never fails by itself) |
| `wrong_tool` | looks orders up with `get_account_balance` instead of `get_order` (the agent's fault) |
| `bad_policy` | quotes the retired "3-5 business days" refund window (the agent's fault) |
| `slow` | answers, `slow_s` seconds late |
| `hang` | never answers (until stopped) |
| `malformed_body` | HTTP 200 with a body that is not a chat completion |
| `malformed_output` | a reply that is truncated JSON |
| `loop` | calls `get_order` forever |
| `error` | HTTP 500 |

    async with running_fake_agent("bad_policy") as agent:
        ...  # agent.base_url is http://127.0.0.1:PORT/v1; agent.requests what it received

`behaviour` may change at any time; `per_scenario[name]` overrides it for one scenario's requests
(by the prober's `X-Agent-SLO-Synthetic` header) with an HTTP-level behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, Final

from aiohttp import web

from agentslo.demo import EXAMPLE_SPEC
from agentslo.demo.agent import AgentState, create_app, serve
from agentslo.demo.faults import Faults
from agentslo.spec import load_spec
from agentslo.synthetic.targets import SYNTHETIC_HEADER

# The agent's own faults, on an agent that never fails by itself (no base failure or tool error rate).
FLAWLESS: Final = Faults(base_failure_rate=0.0, base_tool_error_rate=0.0)
AGENT_FAULTS: Final = {
    "good": FLAWLESS,
    "wrong_tool": replace(FLAWLESS, mistaken_tool="get_account_balance", flows=("refund", "order-status")),
    "bad_policy": replace(FLAWLESS, refund_window_rate=1.0),
}
HTTP_BEHAVIOURS: Final = ("slow", "hang", "malformed_body", "malformed_output", "loop", "error")
BEHAVIOURS: Final = (*AGENT_FAULTS, *HTTP_BEHAVIOURS)
HANG_LIMIT_S: Final = 600.0  # a hanging request gives up after this long even if never released
LOOP_CALL: Final = {"name": "get_order", "arguments": json.dumps({"order_id": "A-1001"})}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeAgent:
    """The agent on a free port of this event loop, with a behaviour and the tests' instruments."""

    def __init__(self, behaviour: str = "good", *, delay_s: float = 0.0, slow_s: float = 2.0):
        self.state = AgentState(load_spec(EXAMPLE_SPEC), time_scale=0.0, delay_s=delay_s)
        self.behaviour = behaviour
        self.per_scenario: dict[str, str] = {}
        self.slow_s = slow_s
        self.requests: list[dict[str, Any]] = []  # {path, headers (lowercase names), body, at}
        self.record = True
        self.in_flight = 0
        self.max_in_flight = 0
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    @property
    def behaviour(self) -> str:
        return self._behaviour

    @behaviour.setter
    def behaviour(self, behaviour: str) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}; one of {', '.join(BEHAVIOURS)}")
        self._behaviour = behaviour
        self.state.faults = AGENT_FAULTS.get(behaviour, FLAWLESS)

    @web.middleware
    async def _instrument(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "POST" and self.record:
            self.requests.append(
                {
                    "path": request.path,
                    "headers": {k.lower(): v for k, v in request.headers.items()},
                    "body": await request.json() if request.can_read_body else None,
                    "at": time.monotonic(),
                }
            )
        behaviour = self.per_scenario.get(request.headers.get(SYNTHETIC_HEADER, ""), self.behaviour)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            early = await self._misbehave(behaviour)
            response = early if early is not None else await handler(request)
        finally:
            self.in_flight -= 1
        if behaviour in ("malformed_output", "loop") and isinstance(response, web.Response):
            return _rewrite(response, behaviour)
        return response

    async def _misbehave(self, behaviour: str) -> web.Response | None:
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

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner, self.base_url = await serve(create_app(self.state, [self._instrument]), host, port)
        return self.base_url

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _rewrite(response: web.Response, behaviour: str) -> web.Response:
    """A truncated-JSON reply (`malformed_output`) or a call to `get_order` again (`loop`)."""
    if response.status != 200 or response.text is None:
        return response
    body = json.loads(response.text)
    if "reply" in body:  # the generic HTTP agent (`/chat`)
        if behaviour == "loop":
            return web.json_response({"error": "too many steps"}, status=500)
        body["reply"]["text"] = json.dumps({"reply": body["reply"]["text"]})[:20]
        return web.json_response(body)
    choice = body["choices"][0]
    message = choice["message"]
    if behaviour == "loop":
        choice["message"] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": f"call_loop_{time.monotonic_ns()}", "type": "function", "function": LOOP_CALL}
            ],
        }
        choice["finish_reason"] = "tool_calls"
    elif message.get("content"):
        content = message["content"]
        try:
            text = json.loads(content)["reply"]
        except (ValueError, TypeError, KeyError):
            text = content
        message["content"] = json.dumps({"reply": text})[: max(10, len(content) // 2)]
    return web.json_response(body)


@contextlib.asynccontextmanager
async def running_fake_agent(behaviour: str = "good", **kwargs: Any) -> AsyncIterator[FakeAgent]:
    """Start the agent with `behaviour` on a free port; stop it on exit."""
    agent = FakeAgent(behaviour, **kwargs)
    await agent.start()
    try:
        yield agent
    finally:
        await agent.stop()
