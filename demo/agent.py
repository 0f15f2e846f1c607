"""The demo CX support agent: OpenAI-compatible, tool-using, with injectable faults. No API key needed.

    python -m agentslo.demo.agent examples/cx-support.slo.yaml --port 8090 --exporter http://127.0.0.1:9120

`POST /v1/chat/completions` answers like a model that runs the CX policy: when the request declares
`tools` it asks for them (`tool_calls`) and composes its answer from the results played back;
without `tools` it runs its own fake backend. `GET /v1/models` lists it. Each answer that finishes
a task is reported to the exporter (`POST /v1/events`) the way an instrumented runtime would,
marked `exclude: synthetic` when the prober's `X-Agent-SLO-Synthetic` header is present.

Faults are injected with `POST /admin/faults` (`{"incident": "wrong-tool-8pct"}` or `Faults` fields)
and a deploy with `POST /admin/deploy` (`{"version": "2.0.0"}`); see `demo.faults.INCIDENTS`.
Every random choice comes from a generator seeded by `--seed` and the conversation, so a run replays.
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
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Final

from aiohttp import ClientSession, ClientTimeout, web

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
from agentslo.spec import Spec, load_spec

log = logging.getLogger("agent-slo.demo-agent")
SYNTHETIC_HEADER: Final = "X-Agent-SLO-Synthetic"  # set by the prober (synthetic.targets)
SESSION_HEADER: Final = "X-Agent-SLO-Session"
TOKEN_ENV: Final = "AGENT_SLO_TOKEN"  # the exporter's bearer token, as for `agent-slo probe`
POST_TIMEOUT_S: Final = 5.0
REPORTED_MEMORY: Final = 100_000  # conversations remembered as reported (bounded, oldest forgotten)


@dataclass
class AgentState:
    spec: Spec
    seed: int = 0
    version: str = "1.0.0"
    faults: Faults = field(default_factory=Faults)
    faults_since: float = field(default_factory=time.time)
    time_scale: float = 1.0  # share of simulated latency actually slept
    exporter_url: str | None = None
    exporter_token: str | None = None
    conversations: int = 0
    events_posted: int = 0
    post_errors: int = 0
    _starts: dict[str, int] = field(default_factory=dict)
    reported: dict[str, None] = field(
        default_factory=dict
    )  # conversation keys already reported, oldest first


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


def respond(
    state: AgentState, body: dict[str, Any], headers: Any
) -> tuple[dict[str, Any], Conversation, Action, str]:
    """One chat completion: plan the next step from the messages, playing tools itself when the
    caller declared none."""
    messages = list(body.get("messages") or [])
    if not messages or not isinstance(messages, list):
        raise web.HTTPBadRequest(text=json.dumps({"error": "messages must be a non-empty list"}))
    users = [str(m.get("content") or "") for m in messages if m.get("role") == "user"]
    if not users:
        raise web.HTTPBadRequest(text=json.dumps({"error": "no user message"}))
    last_user = max(i for i, m in enumerate(messages) if m.get("role") == "user")
    names_by_id = {
        c.get("id"): c.get("function", {}).get("name")
        for m in messages[last_user:]
        for c in (m.get("tool_calls") or [])
    }
    names_by_id |= {
        c.get("id"): c.get("function", {}).get("name")
        for m in messages[:last_user]
        for c in (m.get("tool_calls") or [])
    }
    earlier: list[tuple[str, Any]] = []
    results: list[tuple[str, Any]] = []
    for i, m in enumerate(messages):
        if m.get("role") == "tool":
            try:
                content = json.loads(m.get("content") or "null")
            except ValueError:
                content = m.get("content")
            (results if i > last_user else earlier).append(
                (names_by_id.get(m.get("tool_call_id"), "?"), content)
            )
    flow = classify_flow(state.spec, users)
    key = _key(state, messages, headers.get(SESSION_HEADER))
    # A customer who asks for a human needs one: that is what the escalation SLI judges.
    conv = _conversation(state, flow, key, any(ESCALATE_RE.search(u) for u in users))
    declared = {t.get("function", {}).get("name") for t in body.get("tools") or []}
    action = plan(flow, users, results, earlier, conv)
    while action.tool is not None and action.tool not in declared:  # run our own backend
        results.append((action.tool, backend(action.tool, action.arguments)))
        action = plan(flow, users, results, earlier, conv)
    message: dict[str, Any] = {"role": "assistant", "content": action.text or None}
    finish = "stop"
    if action.tool is not None:
        call_id = f"call_{hashlib.sha256(f'{len(messages)}:{action.tool}'.encode()).hexdigest()[:12]}"
        message["tool_calls"] = [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": action.tool, "arguments": json.dumps(action.arguments)},
            }
        ]
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
    return answer, conv, action, key


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


async def _report(app: web.Application, events: list[dict[str, Any]]) -> None:
    state: AgentState = app["state"]
    try:
        headers = {"Authorization": f"Bearer {state.exporter_token}"} if state.exporter_token else {}
        url = f"{state.exporter_url}/v1/events"
        async with app["client"].post(url, json=events, headers=headers) as resp:
            if resp.status >= 300:
                state.post_errors += 1
                log.warning("exporter refused events: %s %s", resp.status, (await resp.text())[:300])
            else:
                state.events_posted += len(events)
    except Exception as exc:  # the agent keeps serving when its telemetry sink is down
        state.post_errors += 1
        log.warning("could not post events to %s: %s", state.exporter_url, exc)


async def chat(request: web.Request) -> web.Response:
    state: AgentState = request.app["state"]
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": "the body must be JSON"}, status=400)
    if (body.get("response_format") or {}).get("type") == "json_object":
        return web.json_response(judge_answer(body))
    answer, conv, action, key = respond(state, body, request.headers)
    delay = (conv.first_response_s if action.tool else conv.turn_latencies_s[-1]) * state.time_scale
    if delay > 0:
        await asyncio.sleep(delay)
    if action.done and key not in state.reported:
        state.reported[key] = None  # a conversation is reported once, at its first finished task
        while len(state.reported) > REPORTED_MEMORY:
            state.reported.pop(next(iter(state.reported)))
    else:
        return web.json_response(answer)
    if state.exporter_url:
        events = events_for(state.spec, conv, session_id=request.headers.get(SESSION_HEADER) or answer["id"])
        if request.headers.get(SYNTHETIC_HEADER):
            events = [e | {"exclude": "synthetic"} for e in events]
        task = asyncio.create_task(_report(request.app, events))
        request.app["tasks"].add(task)
        task.add_done_callback(request.app["tasks"].discard)
    return web.json_response(answer)


async def models(request: web.Request) -> web.Response:
    state: AgentState = request.app["state"]
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
    state: AgentState = request.app["state"]
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
    state: AgentState = request.app["state"]
    body = await request.json()
    state.version = str(body.get("version") or state.version)
    return web.json_response({"version": state.version})


async def health(request: web.Request) -> web.Response:
    state: AgentState = request.app["state"]
    return web.json_response(
        {
            "ok": True,
            "conversations": state.conversations,
            "events_posted": state.events_posted,
            "post_errors": state.post_errors,
        }
    )


def create_app(state: AgentState) -> web.Application:
    app = web.Application()
    app["state"] = state
    app["tasks"] = set()

    async def client_ctx(app: web.Application):  # type: ignore[no-untyped-def]
        app["client"] = ClientSession(timeout=ClientTimeout(total=POST_TIMEOUT_S))
        yield
        if app["tasks"]:
            await asyncio.gather(*app["tasks"], return_exceptions=True)
        await app["client"].close()

    app.cleanup_ctx.append(client_ctx)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    app.router.add_route("*", "/admin/faults", admin_faults)
    app.router.add_post("/admin/deploy", admin_deploy)
    app.router.add_get("/healthz", health)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the agent-slo demo CX agent (OpenAI-compatible)")
    parser.add_argument("spec")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument(
        "--exporter", default=None, help=f"exporter base URL to report events to (token: ${TOKEN_ENV})"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--version", default="1.0.0", help="the agent version it reports")
    parser.add_argument("--incident", choices=sorted(INCIDENTS), help="start with this incident injected")
    parser.add_argument("--time-scale", type=float, default=1.0, help="share of simulated latency slept")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    state = AgentState(
        load_spec(args.spec),
        seed=args.seed,
        version=args.version,
        exporter_url=args.exporter,
        exporter_token=os.environ.get(TOKEN_ENV) or None,
        time_scale=args.time_scale,
        faults=INCIDENTS[args.incident].faults if args.incident else Faults(),
    )
    web.run_app(create_app(state), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
