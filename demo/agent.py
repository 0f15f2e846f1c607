"""The one fake CX support agent: tool-using, with injectable faults, reporting its own events. No API key.

`agent-slo demo` and docker-compose run it against simulated customers and the prober; the prober's
tests run it as their target (tests/doubles/cx_agent.py). From a shell, with the packaged cx-support
example as its spec unless one is given:

    python -m agentslo.demo.agent [SPEC] --port 8090 --exporter http://127.0.0.1:9120

It speaks both protocols the prober's targets speak:

- `POST /v1/chat/completions` answers like a model running the CX policy (`demo.policy`): when the
  request declares `tools` it asks for them (`tool_calls`) and composes its answer from the results
  played back; tools it was not given it runs against its own backend. A system prompt that asks
  for JSON gets `{"reply": text}`; a request for a JSON object (`response_format`) is graded by
  its stand-in judge. `GET /v1/models` lists it.
- `POST /chat` is a generic HTTP JSON agent: `{message, history, session_id}` in,
  `{reply: {text}, tool_calls: [{name, arguments, result}], usage}` out; it runs every tool itself
  and keeps each session's transcript, tool results included, by `session_id`.

Each answer that finishes a task is reported to the exporter through the client SDK
(`agentslo_client`: a bounded queue, a background sender, batches with an Idempotency-Key) the way
an instrumented agent would, marked `exclude: synthetic` when the prober's `X-Agent-SLO-Synthetic`
header is present. Faults are injected with `POST /admin/faults` (`{"incident": "wrong-tool-8pct"}`
or `Faults` fields) and a deploy with `POST /admin/deploy` (`{"version": "2.0.0"}`); see
`demo.faults.INCIDENTS`. Every random choice comes from a generator seeded by `--seed` and the
conversation, so a run replays.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Final

from agentslo_client import Client as Reporter
from aiohttp import web
from aiohttp.typedefs import Middleware

from agentslo import logs
from agentslo.demo import EXAMPLE_SPEC
from agentslo.demo.faults import (
    HALLUCINATED_REFUND_WINDOW,
    INCIDENTS,
    Conversation,
    Drift,
    Faults,
    events_for,
    simulate,
)
from agentslo.demo.policy import ESCALATE_RE, Action, backend, classify_flow, plan
from agentslo.demo.traffic import attribution_events
from agentslo.spec import Spec, load_spec
from agentslo.synthetic.targets import SESSION_HEADER, SYNTHETIC_HEADER

log = logging.getLogger(__name__)
TOKEN_ENV: Final = "AGENT_SLO_TOKEN"  # the exporter's bearer token, as for `agent-slo probe`
POST_TIMEOUT_S: Final = 5.0
REPORT_INTERVAL_S: Final = (
    0.25  # a partial batch waits this long: demo time is compressed, events are wanted soon
)
REPORTED_MEMORY: Final = 100_000  # conversations remembered as reported (bounded, oldest forgotten)
SESSION_MEMORY: Final = 10_000  # `/chat` transcripts kept (bounded, oldest forgotten)
OWN_TOOL_STEPS: Final = 8  # tool calls the agent makes on its own backend before it gives up


@dataclass
class AgentState:
    spec: Spec
    seed: int = 0
    version: str = "1.0.0"
    faults: Faults = field(default_factory=Faults)
    faults_since: float = field(default_factory=time.time)
    time_scale: float = 1.0  # share of simulated latency actually slept
    delay_s: float = 0.0  # slept on top, by every answer: a model's own latency
    exporter_url: str | None = None
    exporter_token: str | None = None
    conversations: int = 0
    reporter: Reporter | None = None  # the client SDK, while the app runs with an exporter
    _starts: dict[str, int] = field(default_factory=dict)
    # conversation keys already reported, oldest first
    reported: dict[str, None] = field(default_factory=dict)
    sessions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # `/chat` transcripts

    @property
    def events_posted(self) -> int:
        """Events the exporter acknowledged (the client SDK's count)."""
        return self.reporter.stats().delivered if self.reporter is not None else 0

    @property
    def post_errors(self) -> int:
        """Events the exporter refused, or the client had to drop (its queue full while it was away)."""
        stats = self.reporter.stats() if self.reporter is not None else None
        return stats.rejected + stats.dropped if stats is not None else 0


STATE: Final = web.AppKey("state", AgentState)


@dataclass
class Step:
    """The agent's answer to one request: what it does next, the simulated conversation behind it,
    and the tools it ran on its own backend on the way as (name, arguments, result)."""

    action: Action
    conv: Conversation
    key: str
    own_calls: list[tuple[str, dict[str, Any], Any]]


def _conversation(state: AgentState, flow: str, key: str, escalation_required: bool) -> Conversation:
    rng = random.Random(f"{state.seed}:{key}")
    elapsed = time.time() - state.faults_since
    return simulate(
        state.spec,
        flow,
        rng,
        state.faults,
        elapsed_s=elapsed,
        version=state.version,
        escalation_required=escalation_required,
    )


def _key(state: AgentState, messages: list[dict[str, Any]], session: str | None) -> str:
    first = next((str(m.get("content")) for m in messages if m.get("role") == "user"), "")
    base = session or hashlib.sha256(first.encode()).hexdigest()[:16]
    users = sum(1 for m in messages if m.get("role") == "user")
    fresh = users == 1 and not any(m.get("role") in ("assistant", "tool") for m in messages)
    if fresh:  # a new conversation with this opening: next draw of the seeded sequence
        state._starts[base] = state._starts.get(base, 0) + 1
        state.conversations += 1
    return f"{base}:{state._starts.get(base, 1)}"


def _tool_results(
    messages: list[dict[str, Any]], last_user: int
) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """(tool name, result) since the last user message, and before it, from the transcript."""
    names_by_id = {
        c.get("id"): c.get("function", {}).get("name") for m in messages for c in (m.get("tool_calls") or [])
    }
    earlier: list[tuple[str, Any]] = []
    recent: list[tuple[str, Any]] = []
    for i, m in enumerate(messages):
        if m.get("role") == "tool":
            try:
                content = json.loads(m.get("content") or "null")
            except ValueError:
                content = m.get("content")
            (recent if i > last_user else earlier).append(
                (names_by_id.get(m.get("tool_call_id"), "?"), content)
            )
    return recent, earlier


def step(state: AgentState, messages: list[dict[str, Any]], declared: set[str], session: str | None) -> Step:
    """Plan the next step from the transcript, running the tools the caller did not declare itself."""
    users = [str(m.get("content") or "") for m in messages if m.get("role") == "user"]
    if not users:
        raise web.HTTPBadRequest(text=json.dumps({"error": "no user message"}))
    last_user = max(i for i, m in enumerate(messages) if m.get("role") == "user")
    recent, earlier = _tool_results(messages, last_user)
    flow = classify_flow(state.spec, users)
    key = _key(state, messages, session)
    # A customer who asks for a human needs one: that is what the escalation SLI judges.
    conv = _conversation(
        state, flow or next(iter(state.spec.flows)), key, any(ESCALATE_RE.search(u) for u in users)
    )
    action = plan(flow, users, recent, earlier, conv)
    own: list[tuple[str, dict[str, Any], Any]] = []
    while (tool := action.tool) is not None and tool not in declared:
        if len(own) == OWN_TOOL_STEPS:
            action = Action(text="Sorry, I couldn't finish that; let me pass you to a colleague.", done=True)
            break
        result = backend(tool, action.arguments)
        own.append((tool, action.arguments, result))
        recent.append((tool, result))
        action = plan(flow, users, recent, earlier, conv)
    return Step(action, conv, key, own)


def _wants_json(messages: list[dict[str, Any]]) -> bool:
    return any("json" in str(m.get("content") or "").lower() for m in messages if m.get("role") == "system")


def _tool_call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def respond(
    state: AgentState, body: dict[str, Any], headers: Mapping[str, str]
) -> tuple[dict[str, Any], Step]:
    """One chat completion: the next step as an OpenAI `chat.completion` object."""
    messages = body.get("messages")
    if not messages or not isinstance(messages, list):
        raise web.HTTPBadRequest(text=json.dumps({"error": "messages must be a non-empty list"}))
    declared = {t.get("function", {}).get("name") for t in body.get("tools") or []}
    taken = step(state, messages, declared, headers.get(SESSION_HEADER))
    action, conv = taken.action, taken.conv
    text = json.dumps({"reply": action.text}) if _wants_json(messages) else action.text
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    finish = "stop"
    if action.tool is not None:
        call_id = f"call_{hashlib.sha256(f'{len(messages)}:{action.tool}'.encode()).hexdigest()[:12]}"
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [_tool_call(call_id, action.tool, action.arguments)],
        }
        finish = "tool_calls"
    answer = {
        "id": f"chatcmpl-{state.conversations}-{len(messages)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or state.spec.agent,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        # The conversation's cost and tokens, spread over its typical four completions.
        "usage": {
            "prompt_tokens": conv.tokens_in // 4,
            "completion_tokens": conv.tokens_out // 4,
            "total_tokens": (conv.tokens_in + conv.tokens_out) // 4,
        },
        "cost_usd": round(conv.cost_usd / 4, 5),
        "system_fingerprint": f"{state.spec.agent}-{state.version}",
    }
    return answer, taken


def judge_answer(body: dict[str, Any]) -> dict[str, Any]:
    """The demo's stand-in LLM judge (a request asking for a JSON object): it passes a session unless
    the transcript quotes the hallucinated refund window. A keyword check, clearly not a model; it
    lets the demo's `llm-rubric` probes and LLM judges run without an API key."""
    text = json.dumps(body.get("messages") or [])
    bad = HALLUCINATED_REFUND_WINDOW in text
    verdict = {
        "score": 0.2 if bad else 0.9,
        "label": "fail" if bad else "pass",
        "explanation": "demo judge: quotes the retired refund window"
        if bad
        else "demo judge: no policy breach",
    }
    return {
        "id": "chatcmpl-judge",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or "demo-judge",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": json.dumps(verdict)},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": len(text) // 4,
            "completion_tokens": 30,
            "total_tokens": len(text) // 4 + 30,
        },
    }


async def _finish(request: web.Request, taken: Step, session_id: str) -> None:
    """Take the step's simulated time, then report the conversation once, at its first finished task."""
    state = request.app[STATE]
    conv, action = taken.conv, taken.action
    simulated = conv.first_response_s if action.tool else conv.turn_latencies_s[-1]
    delay = state.delay_s + simulated * state.time_scale
    if delay > 0:
        await asyncio.sleep(delay)
    if not action.done or taken.key in state.reported:
        return
    state.reported[taken.key] = None
    while len(state.reported) > REPORTED_MEMORY:
        state.reported.pop(next(iter(state.reported)))
    if state.reporter is not None:
        synthetic = bool(request.headers.get(SYNTHETIC_HEADER))
        events = events_for(state.spec, conv, session_id=session_id)
        # the pipeline's stages and the workflow's steps, as a voice or workflow runtime reports them
        events += attribution_events(state.spec, conv, session_id=session_id)
        for event in events:
            # never blocks: a bounded queue and a background sender (batches, retries, idempotency)
            state.reporter.record(event | {"exclude": "synthetic"} if synthetic else event)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text=json.dumps({"error": "the body must be JSON"})) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text=json.dumps({"error": "the body must be a JSON object"}))
    return body


async def chat_completions(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await _json_body(request)
    if (body.get("response_format") or {}).get("type") == "json_object":
        return web.json_response(judge_answer(body))
    answer, taken = respond(state, body, request.headers)
    await _finish(request, taken, request.headers.get(SESSION_HEADER) or answer["id"])
    return web.json_response(answer)


async def chat(request: web.Request) -> web.Response:
    """The generic HTTP JSON agent: one user message in, the reply and the tools it ran out."""
    state = request.app[STATE]
    body = await _json_body(request)
    session = str(body.get("session_id") or "")
    past = state.sessions.get(session) if session else None
    messages = [*(past if past is not None else body.get("history") or [])]
    messages.append({"role": "user", "content": str(body.get("message") or "")})
    taken = step(state, messages, set(), request.headers.get(SESSION_HEADER) or session or None)
    for n, (name, arguments, result) in enumerate(taken.own_calls):
        call_id = f"call_{len(messages)}_{n}"
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [_tool_call(call_id, name, arguments)]},
            {"role": "tool", "tool_call_id": call_id, "content": json.dumps(result)},
        ]
    text = taken.action.text
    messages.append({"role": "assistant", "content": text})
    if session:  # like a real agent service, it keeps the transcript server-side
        state.sessions.pop(session, None)
        state.sessions[session] = messages
        while len(state.sessions) > SESSION_MEMORY:
            state.sessions.pop(next(iter(state.sessions)))
    await _finish(request, taken, request.headers.get(SESSION_HEADER) or session or taken.key)
    return web.json_response(
        {
            "reply": {"text": text},
            "tool_calls": [{"name": n, "arguments": a, "result": r} for n, a, r in taken.own_calls],
            "usage": {"input_tokens": taken.conv.tokens_in // 4, "output_tokens": taken.conv.tokens_out // 4},
        }
    )


async def models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(
        {
            "object": "list",
            "data": [{"id": state.spec.agent, "object": "model", "owned_by": "agent-slo-demo"}],
        }
    )


def faults_from(body: dict[str, Any]) -> Faults:
    """`{"incident": name}` or the fields of `Faults` (`drift` as a mapping); `{}` heals."""
    if "incident" in body:
        if body["incident"] not in INCIDENTS:
            raise ValueError(f"unknown incident {body['incident']!r}; known: {', '.join(INCIDENTS)}")
        return INCIDENTS[body["incident"]].faults
    known = {f.name for f in fields(Faults)}
    unknown = set(body) - known
    if unknown:
        raise ValueError(
            f"unknown fault field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
        )
    values = dict(body)
    if isinstance(values.get("drift"), dict):
        values["drift"] = Drift(**values["drift"])
    if isinstance(values.get("flows"), list):
        values["flows"] = tuple(values["flows"])
    return Faults(**values)


async def admin_faults(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if request.method == "POST":
        try:
            state.faults = faults_from(await request.json())
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        state.faults_since = time.time()
        log.info("faults now %s", state.faults)
    return web.json_response(
        {"faults": asdict(state.faults), "since": state.faults_since, "version": state.version}
    )


async def admin_deploy(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await request.json()
    state.version = str(body.get("version") or state.version)
    return web.json_response({"version": state.version})


async def health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(
        {
            "ok": True,
            "conversations": state.conversations,
            "events_posted": state.events_posted,
            "post_errors": state.post_errors,
        }
    )


async def _reporter_ctx(app: web.Application) -> AsyncIterator[None]:
    """Report through the client SDK while the app runs (as any agent would), then deliver what is
    still queued."""
    state = app[STATE]
    if state.exporter_url:
        state.reporter = Reporter(
            url=state.exporter_url,
            token=state.exporter_token,
            agent=state.spec.agent,
            flush_interval_s=REPORT_INTERVAL_S,
            timeout_s=POST_TIMEOUT_S,
        )
    yield
    if state.reporter is not None:
        await state.reporter.aclose(POST_TIMEOUT_S)


def create_app(state: AgentState, middlewares: Iterable[Middleware] = ()) -> web.Application:
    """The agent's aiohttp app; `middlewares` wrap every route (the tests' instruments use them)."""
    app = web.Application(middlewares=list(middlewares))
    app[STATE] = state
    app.cleanup_ctx.append(_reporter_ctx)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/chat", chat)
    app.router.add_route("*", "/admin/faults", admin_faults)
    app.router.add_post("/admin/deploy", admin_deploy)
    app.router.add_get("/healthz", health)
    return app


async def serve(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Serve the app in this event loop (port 0: a free one); (its runner, its base URL ending in /v1).
    `await runner.cleanup()` stops it."""
    runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, f"http://{host}:{runner.addresses[0][1]}/v1"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the agent-slo demo CX agent (OpenAI-compatible)")
    parser.add_argument(
        "spec", nargs="?", type=Path, default=EXAMPLE_SPEC, help="SLO spec (default: the cx-support example)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument(
        "--exporter", default=None, help=f"exporter base URL to report events to (token: ${TOKEN_ENV})"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--version", default="1.0.0", help="the agent version it reports")
    parser.add_argument("--incident", choices=sorted(INCIDENTS), help="start with this incident injected")
    parser.add_argument("--time-scale", type=float, default=1.0, help="share of simulated latency slept")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds every answer takes on top")
    args = parser.parse_args(argv)
    logs.configure("info")
    state = AgentState(
        load_spec(args.spec),
        seed=args.seed,
        version=args.version,
        exporter_url=args.exporter,
        exporter_token=os.environ.get(TOKEN_ENV) or None,
        time_scale=args.time_scale,
        delay_s=args.delay,
        faults=INCIDENTS[args.incident].faults if args.incident else Faults(),
    )
    web.run_app(create_app(state), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
