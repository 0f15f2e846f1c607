"""The agent endpoints a probe talks to: OpenAI-compatible chat completions, or a generic HTTP JSON API.

`make_target(config)` builds one from the spec's `synthetic.target`. Secrets stay in the environment:
header values may say `${NAME}`, and `api_key_env` names the variable holding the API key.

- `openai-chat`: the prober keeps the conversation, declares the scenario's tools, and plays each
  tool call back with the scenario's scripted result, until the agent answers in text.
- `http`: the agent runs its own tools; each turn POSTs the `request` template with `$message`,
  `$history` and `$session_id` substituted, and reads the reply text, tool calls (`{name,
  arguments}` objects) and optional top-level `cost_usd`, `steps` and `usage` from the JSON answer.

Every request carries `X-Agent-SLO-Synthetic: <scenario>` so the agent can mark the events of probe
conversations with the built-in `synthetic` exclusion.

Both targets read replies through one bounded reader (`_post`): a reply larger than
`MAX_REPLY_BYTES`, one that takes longer than the target's `timeout` in total (connect, headers and
body), and anything that is not well-formed HTTP (a bad status line, a broken chunked body, an
oversized header) are the agent's failures (`TargetError`), so they count against the synthetic
SLI like any wrong answer, and the prober's memory stays bounded whatever the agent sends.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import aiohttp
import orjson

from agentslo.scenario import Scenario
from agentslo.spec import Target as TargetConfig
from agentslo.synthetic.records import ToolCall, TurnRecord

CHAT_COMPLETIONS_PATH: Final = "/chat/completions"
SYNTHETIC_HEADER: Final = "X-Agent-SLO-Synthetic"
SESSION_HEADER: Final = "X-Agent-SLO-Session"
_ENV_REF: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
DEFAULT_HTTP_REQUEST: Final = {"message": "$message", "history": "$history", "session_id": "$session_id"}
GENERIC_PARAMETERS: Final = {"type": "object", "properties": {}, "additionalProperties": True}
# A chat turn's reply is kilobytes; 4 MiB leaves room for long answers with tool calls and keeps an
# agent that streams an endless body from growing the prober (it used to reach 4 GB in 14 s).
MAX_REPLY_BYTES: Final = 4 * 1024 * 1024
_READ_CHUNK: Final = 64 * 1024


class TargetError(Exception):
    """The agent could not be talked to: unreachable, timed out, an error status, or a malformed reply."""


class TargetConfigError(ValueError):
    """The target is misconfigured (a missing environment variable): bad input, exit 2."""


@dataclass
class Conversation:
    """One scenario's state across turns: the transcript the agent sees."""

    scenario: Scenario
    session_id: str
    messages: list[dict[str, Any]] = field(default_factory=list)


class Target(Protocol):
    async def turn(self, conversation: Conversation, user: str) -> TurnRecord: ...

    async def aclose(self) -> None: ...


def expand_env(value: str, where: str) -> str:
    """Replace `${NAME}` with the environment variable's value; a missing variable is an error."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in os.environ:
            raise TargetConfigError(f"{where} uses ${{{m.group(1)}}} but the environment variable is not set")
        return os.environ[m.group(1)]

    return _ENV_REF.sub(sub, value)


def _headers(config: TargetConfig) -> dict[str, str]:
    return {k: expand_env(v, f"synthetic.target.headers.{k}") for k, v in config.headers.items()}


def _api_key(config: TargetConfig) -> str | None:
    if config.api_key_env is None:
        return None
    if config.api_key_env not in os.environ:
        raise TargetConfigError(
            f"synthetic.target.api_key_env names {config.api_key_env} but the environment variable is not set"
        )
    return os.environ[config.api_key_env]


def make_target(config: TargetConfig, url: str | None = None, declared_tools: tuple[str, ...] = ()) -> Target:
    """A target for the spec's `synthetic.target`, optionally at another address (`--target-url`).

    `declared_tools` (the spec's `tools`) are offered to openai-chat agents besides the scripted ones.
    """
    if config.type == "openai-chat":
        return OpenAIChatTarget(config, base_url=url, declared_tools=declared_tools)
    return HttpTarget(config, url=url)


def _cost(scenario: Scenario, reported: Any, input_tokens: int, output_tokens: int) -> float | None:
    if isinstance(reported, int | float) and not isinstance(reported, bool):
        return float(reported)
    if scenario.pricing is None:
        return None
    p = scenario.pricing
    return input_tokens / 1000 * p.usd_per_1k_input_tokens + output_tokens / 1000 * p.usd_per_1k_output_tokens


def tool_definitions(scenario: Scenario, declared: tuple[str, ...]) -> list[dict[str, Any]]:
    """OpenAI `tools` for a scenario: its scripted tools, then the spec's other tools (generic parameters)."""
    out = []
    for name in (*scenario.tools, *(t for t in declared if t not in scenario.tools)):
        script = scenario.tools.get(name)
        out.append(
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": script.description if script and script.description else name,
                    "parameters": (script.parameters if script and script.parameters else GENERIC_PARAMETERS),
                },
            }
        )
    return out


class _Client:
    """One pooled HTTP client per target, opened on first use inside the event loop; timeouts are
    applied per turn by `_post`."""

    def __init__(self, headers: dict[str, str]):
        self.headers = headers
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self.headers, timeout=aiohttp.ClientTimeout(total=None)
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


async def _post(
    session: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str], timeout: float, where: str
) -> tuple[int, str]:
    """POST JSON and read the reply within `timeout` seconds and `MAX_REPLY_BYTES`: (status, text).

    Every way the agent's side can fail is a `TargetError` naming it; `where` is the address that
    messages show (the configured base URL or URL).
    """
    try:
        async with (
            asyncio.timeout(timeout),
            session.post(
                url, data=orjson.dumps(body), headers={"Content-Type": "application/json", **headers}
            ) as resp,
        ):
            declared = resp.content_length
            if declared is not None and declared > MAX_REPLY_BYTES:
                raise _too_large(where)
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_chunked(_READ_CHUNK):
                size += len(chunk)
                if size > MAX_REPLY_BYTES:
                    raise _too_large(where)
                chunks.append(chunk)
            return resp.status, b"".join(chunks).decode(resp.get_encoding() or "utf-8", errors="replace")
    except TimeoutError:
        raise TargetError(f"expected a reply from {where} within {timeout:g}s; it timed out") from None
    except aiohttp.ClientConnectorError as exc:
        raise TargetError(f"expected a reply from {where}; could not connect ({exc})") from None
    except aiohttp.ClientError as exc:
        # a bad status line, a broken chunked body, an oversized header, a dropped connection
        detail = str(exc) or type(exc).__name__
        raise TargetError(f"expected a well-formed HTTP reply from {where}; got {detail}") from None


def _too_large(where: str) -> TargetError:
    return TargetError(f"expected a reply of at most {MAX_REPLY_BYTES:,} bytes from {where}; it sent more")


def _arguments_text(raw: Any) -> str:
    """Tool-call arguments as the JSON text OpenAI sends (some servers send an object instead)."""
    if raw is None or raw == "":
        return "{}"
    return raw if isinstance(raw, str) else json.dumps(raw)


def _malformed(base_url: str, what: str, text: str) -> TargetError:
    return TargetError(f"expected a chat completion from {base_url}; {what}: {text[:200]!r}")


def _parse_completion(text: str, base_url: str) -> tuple[dict[str, Any], int, int, float | None]:
    """(assistant message, input tokens, output tokens, reported cost) of a chat completion body."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _malformed(base_url, f"the reply is not JSON ({exc})", text) from None
    choices = data.get("choices") if isinstance(data, dict) else None
    msg = (
        choices[0].get("message")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict)
        else None
    )
    if not isinstance(msg, dict):
        raise _malformed(base_url, "the reply has no choices[0].message", text)
    content = msg.get("content")
    message: dict[str, Any] = {"role": "assistant", "content": content if isinstance(content, str) else None}
    calls = msg.get("tool_calls") or []
    if calls:
        try:
            message["tool_calls"] = [
                {
                    "id": c.get("id"),
                    "type": "function",
                    "function": {
                        "name": c["function"]["name"],
                        "arguments": _arguments_text(c["function"].get("arguments")),
                    },
                }
                for c in calls
            ]
        except (TypeError, KeyError, AttributeError):
            raise _malformed(base_url, "a tool call lacks function.name", text) from None
    tokens_in, tokens_out = _usage(data.get("usage"))
    cost = data.get("cost_usd")
    return message, tokens_in, tokens_out, float(cost) if isinstance(cost, int | float) else None


class OpenAIChatTarget:
    """An OpenAI-compatible chat completions endpoint; tool calls are answered from the scenario's script."""

    def __init__(
        self, config: TargetConfig, base_url: str | None = None, declared_tools: tuple[str, ...] = ()
    ):
        self.config = config
        self.base_url = (base_url or config.base_url or "").rstrip("/")
        self.declared_tools = declared_tools
        headers = _headers(config)
        if (key := _api_key(config)) is not None:
            headers["Authorization"] = f"Bearer {key}"
        self._client = _Client(headers)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def turn(self, conversation: Conversation, user: str) -> TurnRecord:
        sc = conversation.scenario
        if not conversation.messages and sc.system:
            conversation.messages.append({"role": "system", "content": sc.system})
        conversation.messages.append({"role": "user", "content": user})
        record = TurnRecord(user=user)
        tools = tool_definitions(sc, self.declared_tools)
        headers = {SYNTHETIC_HEADER: sc.name, SESSION_HEADER: conversation.session_id}
        started = time.perf_counter()
        reported_cost: float | None = None
        while True:
            if record.steps >= sc.max_steps:
                raise TargetError(
                    f"expected an answer within max_steps={sc.max_steps} (LLM calls + tool calls); the agent "
                    f"was still calling tools: {[c.name for c in record.tool_calls]}"
                )
            message, usage_in, usage_out, cost = await self._complete(conversation, tools, headers)
            record.steps += 1
            record.input_tokens += usage_in
            record.output_tokens += usage_out
            if cost is not None:
                reported_cost = (reported_cost or 0.0) + cost
            calls = message.get("tool_calls") or []
            conversation.messages.append(message)
            if not calls:
                record.output = message.get("content") or ""
                break
            for call in calls:
                record.tool_calls.append(self._play(conversation, call))
                record.steps += 1
        record.latency_s = time.perf_counter() - started
        record.cost_usd = _cost(sc, reported_cost, record.input_tokens, record.output_tokens)
        return record

    async def _complete(
        self, conversation: Conversation, tools: list[dict[str, Any]], headers: dict[str, str]
    ) -> tuple[dict[str, Any], int, int, float | None]:
        body: dict[str, Any] = {
            "model": self.config.model or conversation.scenario.agent,
            "messages": conversation.messages,
        }
        if tools:
            body["tools"] = tools
        status, text = await _post(
            self._client.session(),
            self.base_url + CHAT_COMPLETIONS_PATH,
            body,
            headers,
            self.config.timeout,
            self.base_url,
        )
        if status >= 400:
            raise TargetError(
                f"expected a chat completion from {self.base_url}; got HTTP {status}: {text[:200]}"
            )
        return _parse_completion(text, self.base_url)

    def _play(self, conversation: Conversation, call: dict[str, Any]) -> ToolCall:
        """Answer one tool call from the scenario's script and append the tool message."""
        name, raw = call["function"]["name"], call["function"]["arguments"] or "{}"
        try:
            arguments = json.loads(raw)
            if not isinstance(arguments, dict):
                raise ValueError("arguments must be a JSON object")
        except ValueError as exc:
            arguments, result = {"_raw": raw}, {"error": f"invalid JSON arguments: {exc}"}
        else:
            script = conversation.scenario.tools.get(name)
            result = (
                script.answer(arguments)
                if script is not None
                else {"error": f"tool {name} has no scripted result in scenario {conversation.scenario.name}"}
            )
        content = result if isinstance(result, str) else json.dumps(result)
        conversation.messages.append({"role": "tool", "tool_call_id": call["id"], "content": content})
        return ToolCall(name, arguments, result)


def _substitute(template: Any, values: dict[str, Any]) -> Any:
    """Fill `$message`, `$history`, `$session_id`: a whole-string placeholder keeps the value's type."""
    if isinstance(template, str):
        if template in values:
            return copy.deepcopy(values[template])
        for key, value in values.items():
            if isinstance(value, str):
                template = template.replace(key, value)
        return template
    if isinstance(template, dict):
        return {k: _substitute(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [_substitute(v, values) for v in template]
    return template


def _dig(data: Any, path: str) -> tuple[bool, Any]:
    node = data
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _tool_call(raw: Any) -> ToolCall:
    if isinstance(raw, dict) and "function" in raw:  # OpenAI shape
        raw = raw["function"]
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise TargetError(f"expected tool calls as {{name, arguments}} objects; got {str(raw)[:200]!r}")
    args = raw.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args or "{}")
        except ValueError:
            args = {"_raw": args}
    return ToolCall(raw["name"], args if isinstance(args, dict) else {"_raw": args}, raw.get("result"))


def _usage(usage: Any) -> tuple[int, int]:
    """(input, output) tokens from `usage` in OpenAI (`prompt_tokens`) or plain (`input_tokens`) naming."""
    if not isinstance(usage, dict):
        return 0, 0
    tokens_in = usage.get("input_tokens", usage.get("prompt_tokens", 0))
    tokens_out = usage.get("output_tokens", usage.get("completion_tokens", 0))
    return (
        int(tokens_in) if isinstance(tokens_in, int | float) else 0,
        int(tokens_out) if isinstance(tokens_out, int | float) else 0,
    )


class HttpTarget:
    """A generic HTTP JSON endpoint with a request template and dotted response paths."""

    def __init__(self, config: TargetConfig, url: str | None = None):
        self.config = config
        self.url = url or config.url or ""
        self.headers = _headers(config)
        if (key := _api_key(config)) is not None:
            self.headers.setdefault("Authorization", f"Bearer {key}")
        self._client = _Client(self.headers)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def turn(self, conversation: Conversation, user: str) -> TurnRecord:
        sc = conversation.scenario
        history = list(conversation.messages)
        body = _substitute(
            self.config.request or DEFAULT_HTTP_REQUEST,
            {"$message": user, "$history": history, "$session_id": conversation.session_id},
        )
        headers = {SYNTHETIC_HEADER: sc.name, SESSION_HEADER: conversation.session_id}
        started = time.perf_counter()
        status, text = await _post(
            self._client.session(), self.url, body, headers, self.config.timeout, self.url
        )
        if status >= 400:
            raise TargetError(f"expected a reply from {self.url}; got HTTP {status}: {text[:200]!r}")
        latency = time.perf_counter() - started
        try:
            data = json.loads(text)
        except ValueError:
            raise TargetError(f"expected a JSON reply from {self.url}; got {text[:200]!r}") from None
        found, reply = _dig(data, self.config.response_text)
        if not found or not isinstance(reply, str):
            raise TargetError(
                f"expected reply text at `{self.config.response_text}` in the JSON from {self.url}; "
                f"got {text[:200]!r}"
            )
        calls: list[ToolCall] = []
        if self.config.response_tool_calls:
            ok, raw_calls = _dig(data, self.config.response_tool_calls)
            if ok and raw_calls is not None:
                if not isinstance(raw_calls, list):
                    raise TargetError(
                        f"expected a list at `{self.config.response_tool_calls}`; got {raw_calls!r}"
                    )
                calls = [_tool_call(c) for c in raw_calls]
        conversation.messages += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
        usage = data.get("usage") if isinstance(data, dict) else None
        tokens_in, tokens_out = _usage(usage)
        return TurnRecord(
            user=user,
            output=reply,
            tool_calls=calls,
            steps=steps if isinstance(steps := data.get("steps"), int) else 1 + len(calls),
            latency_s=latency,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost_usd=_cost(
                sc, data.get("cost_usd") if isinstance(data, dict) else None, tokens_in, tokens_out
            ),
        )
