"""A scripted OpenAI-compatible chat-completions server: the judge provider of tests and benchmarks.

It answers `POST /v1/chat/completions` like a provider would. Without a script it plays a simple
grounding judge (the share of the final answer's words found in the retrieved context and tool
outputs); with one, each request takes the next step: a verdict, an HTTP error, a delay, raw text
(to produce malformed answers) or a refusal.

    async with FakeProvider(delay_s=0.2) as provider:
        provider.script.extend([Step(status=429), Step(verdict={"score": 0.9, "label": "pass"})])
        ...  # point a judge's base_url at provider.base_url
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# Words shorter than this carry no grounding signal ("the", "and", "is").
_MIN_WORD = 4
_WORD = re.compile(r"[a-z0-9][a-z0-9'-]+")


@dataclass
class Step:
    """One scripted answer. Exactly what is set happens: delay first, then status/refusal/content/verdict."""

    verdict: dict[str, Any] | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content: str | None = None
    refusal: str | None = None
    delay_s: float = 0.0
    usage: tuple[int, int] = (120, 30)
    raw_body: str | None = None  # answered as-is with HTTP 200 (a provider answering garbage)


def grounding_verdict(user_text: str) -> dict[str, Any]:
    """The default judge: how much of the final answer is supported by context and tool output."""
    sections = re.split(r"^## ", user_text, flags=re.MULTILINE)
    by_name = {s.split("\n", 1)[0].strip(): s.split("\n", 1)[1] if "\n" in s else "" for s in sections}
    answer = {w for w in _WORD.findall(by_name.get("Final answer", "").lower()) if len(w) >= _MIN_WORD}
    evidence = (by_name.get("Retrieved context", "") + by_name.get("Tool calls", "")).lower()
    if not answer:
        return {"score": 1.0, "label": "pass", "explanation": "no factual claims"}
    score = round(sum(w in evidence for w in answer) / len(answer), 3)
    label = "pass" if score >= 0.5 else "fail"
    return {"score": score, "label": label, "explanation": f"{score:.0%} of the answer's terms are grounded"}


class FakeProvider:
    """An in-process provider on 127.0.0.1 with a free port; `requests` records every request body."""

    def __init__(
        self, *, delay_s: float = 0.0, judge: Callable[[str], dict[str, Any]] = grounding_verdict
    ) -> None:
        self.delay_s = delay_s
        self.judge = judge
        self.script: deque[Step] = deque()
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._runner: web.AppRunner | None = None
        self._stopping = False
        self._sleeping: set[asyncio.Task[Any]] = set()
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> FakeProvider:
        return await self._start_on(0)

    async def _start_on(self, port: int) -> FakeProvider:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._complete)
        # Short grace on stop: a scripted slow answer must not hold a test open.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        # Clients with keep-alive connections would otherwise keep a stopping server busy: answer
        # them 503 and close, and cut scripted delays short.
        self._stopping = True
        for task in list(self._sleeping):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeProvider:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        if self._stopping:
            return web.json_response(
                {"error": {"message": "shutting down"}}, status=503, headers={"Connection": "close"}
            )
        body = await request.json()
        self.requests.append(body)
        step = self.script.popleft() if self.script else Step()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        sleep = asyncio.ensure_future(asyncio.sleep(step.delay_s or self.delay_s))
        self._sleeping.add(sleep)
        try:
            await sleep
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            return web.json_response(
                {"error": {"message": "shutting down"}}, status=503, headers={"Connection": "close"}
            )
        finally:
            self._sleeping.discard(sleep)
            self.in_flight -= 1
        if step.raw_body is not None:
            return web.Response(text=step.raw_body, content_type="text/html")
        if step.status is not None:
            error = {"error": {"message": f"scripted HTTP {step.status}", "type": "scripted", "code": None}}
            return web.json_response(error, status=step.status, headers=step.headers)
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        finish = "stop"
        if step.refusal is not None:
            message["refusal"] = step.refusal
        elif step.content is not None:
            message["content"] = step.content
        else:
            user = next(
                (m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"), ""
            )
            message["content"] = json.dumps(step.verdict if step.verdict is not None else self.judge(user))
        prompt, completion = step.usage
        return web.json_response(
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }
        )


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.doubles.fake_provider [--port N] [--delay S]` (from the repository's root): serve
    until interrupted.

    Prints `listening on <base_url>` once ready (the benchmarks read it)."""
    parser = argparse.ArgumentParser(description="a scripted OpenAI-compatible judge provider (no API key)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--score", type=float, help="always answer this score (default: the grounding judge)")
    args = parser.parse_args(argv)
    judge: Callable[[str], dict[str, Any]] = grounding_verdict
    if args.score is not None:
        label = "pass" if args.score >= 0.5 else "fail"
        fixed = {"score": args.score, "label": label, "explanation": "fixed"}

        def judge(user_text: str) -> dict[str, Any]:
            return fixed

    async def serve() -> None:
        provider = await FakeProvider(delay_s=args.delay, judge=judge)._start_on(args.port)
        print(f"listening on {provider.base_url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await provider.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
