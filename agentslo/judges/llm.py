"""LLM judges: a pinned model scores a session against a versioned rubric through any
OpenAI-compatible API.

Each call asks for a JSON object (`response_format=json_object`, temperature from the spec, 0 by
default) with `score` (0-1), `label` and `explanation`, and parses the answer leniently (fenced
blocks, prose around the object, numeric strings). Failures are outcomes, not exceptions:
`rate_limited` (429 after retries), `error` (other 4xx/5xx after retries, connection errors, missing
key), `timeout`, `malformed`, `refused`. 429 and 5xx are retried with exponential backoff and jitter,
honouring `retry-after-ms`/`retry-after`. Each judge has its own concurrency limit per event loop;
tokens are counted from the provider's `usage` and priced with the spec's per-1k-token prices, also
for answers that turn out malformed (they were paid for).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import random
import weakref
from typing import Any

import openai
import orjson
import re2

from agentslo.judges import model as m
from agentslo.judges.model import JudgeInput, Verdict
from agentslo.spec import LLMJudge

log = logging.getLogger(__name__)

# First retry waits about this long; each further retry doubles it (plus up to 50% jitter).
BACKOFF_BASE_S = 0.25
# No single wait exceeds this, whatever the provider's Retry-After says: a judge is not worth more.
BACKOFF_MAX_S = 8.0
# Bounds on what a judge is sent, so one huge transcript cannot cost a fortune or exceed a context.
MAX_PART_CHARS = 4_000
MAX_PROMPT_CHARS = 24_000
MAX_EXPLANATION_CHARS = 2_000
CLOSE_TIMEOUT_S = 1.0
# Providers that need no key (a local vLLM, Ollama, a test double) still need a non-empty string.
_KEYLESS_PLACEHOLDER = "not-needed"

SYSTEM_TEMPLATE = """You are an impartial evaluator of an AI agent's conversation.
Rubric (version {version}):
{rubric}

Judge only what the rubric asks. Answer with a single JSON object and nothing else:
{{"score": <number from 0 to 1, 1 = fully meets the rubric>, "label": "pass" or "fail", \
"explanation": "<one or two sentences>"}}"""

# RE2 (linear time) like every regex that reads text a user or a model could have written.
_FENCED = re2.compile(r"(?s)```(?:json)?\s*(.*?)```")

# Per event loop: one HTTP client per (base_url, key) and one semaphore per judge.
_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str | None, str], openai.AsyncOpenAI]
]
_clients = weakref.WeakKeyDictionary()
_semaphores: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str, int], asyncio.Semaphore]
]
_semaphores = weakref.WeakKeyDictionary()
_unpriced_warned: set[str] = set()
_JSON_HEADERS = {"Content-Type": "application/json"}


class MalformedVerdict(ValueError):
    """The model answered, but not with a readable verdict."""


def _clip(text: str, limit: int = MAX_PART_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 15] + " …[truncated]"


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def render_case(case: JudgeInput) -> str:
    """The session as the judge reads it: conversation, retrieved context, tool calls, final answer."""
    parts = [f"Agent: {case.agent}; flow: {case.flow}", "## Conversation"]
    parts += [f"{msg.get('role', '?')}: {_clip(_text(msg.get('content')))}" for msg in case.messages]
    if case.context:
        parts.append("## Retrieved context")
        parts += [f"[{i}] {_clip(c)}" for i, c in enumerate(case.context, 1)]
    if case.tool_calls:
        parts.append("## Tool calls")
        for call in case.tool_calls:
            name = call.get("tool") or call.get("name") or "?"
            args = _clip(_text(call.get("input", call.get("arguments"))), 1_000)
            result = _clip(_text(call.get("output", call.get("result"))))
            parts.append(f"- {name}({args}) -> {result}")
    parts += ["## Final answer", _clip(case.output)]
    return _clip("\n".join(parts), MAX_PROMPT_CHARS)


def build_messages(judge: LLMJudge, case: JudgeInput) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_TEMPLATE.format(version=judge.version, rubric=judge.rubric)},
        {"role": "user", "content": render_case(case)},
    ]


def _json_object(content: str) -> dict[str, Any]:
    candidates = [content.strip()]
    if fenced := _FENCED.search(content):
        candidates.insert(0, fenced.group(1).strip())
    start, end = content.find("{"), content.rfind("}")
    if 0 <= start < end:
        candidates.append(content[start : end + 1])
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(data, dict):
            return data
    raise MalformedVerdict(f"the answer is not a JSON object: {_clip(content, 200)!r}")


def parse_verdict(content: str, pass_threshold: float) -> tuple[float, str, str]:
    """(score, label, explanation) from a model's answer; MalformedVerdict when it has no valid score."""
    data = _json_object(content)
    raw = data.get("score")
    if isinstance(raw, bool) or raw is None:
        raise MalformedVerdict(f"the verdict has no numeric `score`: {_clip(content, 200)!r}")
    try:
        score = float(raw)
    except (TypeError, ValueError):
        raise MalformedVerdict(f"`score` {raw!r} is not a number") from None
    if not math.isfinite(score) or not 0.0 <= score <= 1.0:
        raise MalformedVerdict(f"`score` {raw!r} is outside 0-1")
    label = data.get("label")
    if not isinstance(label, str) or not label.strip():
        label = m.PASS_LABEL if score >= pass_threshold else m.FAIL_LABEL
    explanation = data.get("explanation", data.get("reason", data.get("rationale", "")))
    return score, label.strip()[:64], _clip(_text(explanation), MAX_EXPLANATION_CHARS)


def _client(judge: LLMJudge) -> openai.AsyncOpenAI:
    base_url = judge.base_url or os.environ.get("OPENAI_BASE_URL") or None
    key = os.environ.get(judge.api_key_env) or ""
    if not key:
        if base_url is None:
            raise RuntimeError(f"environment variable {judge.api_key_env} is not set (the judge's API key)")
        key = _KEYLESS_PLACEHOLDER
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    client = per_loop.get((base_url, key))
    if client is None:
        client = openai.AsyncOpenAI(
            base_url=base_url, api_key=key, max_retries=0, timeout=judge.timeout, http_client=_http_client()
        )
        per_loop[(base_url, key)] = client
    return client


async def close_clients() -> None:
    """Close the HTTP clients this event loop's judges opened (call before the loop ends)."""
    for client in _clients.pop(asyncio.get_running_loop(), {}).values():
        # Bounded: a connection stuck on a provider that never answers must not hold up a shutdown.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(client.close(), CLOSE_TIMEOUT_S)


def _http_client() -> Any:
    """The openai client's aiohttp transport when installed (`openai[aiohttp]`): about 40% less CPU per
    call than its default httpx transport, which matters at a judge's full concurrency. None: default."""
    try:
        return openai.DefaultAioHttpClient()
    except (AttributeError, ImportError, RuntimeError):
        return None


def _connect_failure(exc: BaseException) -> OSError | None:
    """The refused/unreachable connection behind a 'timeout' (the aiohttp transport reports a refused
    connection as a connect timeout): that is an unreachable provider, not a slow one."""
    seen: BaseException | None = exc
    for _ in range(6):  # the transport wraps the socket error two or three levels down
        if seen is None:
            return None
        if isinstance(seen, OSError) and not isinstance(seen, TimeoutError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _semaphore(name: str, judge: LLMJudge) -> asyncio.Semaphore:
    per_loop = _semaphores.setdefault(asyncio.get_running_loop(), {})
    key = (name, judge.version, judge.concurrency)
    if key not in per_loop:
        per_loop[key] = asyncio.Semaphore(judge.concurrency)
    return per_loop[key]


def _retry_after(exc: openai.APIStatusError) -> float | None:
    headers = exc.response.headers
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(header)
        if value is not None:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


def _backoff(attempt: int, hinted: float | None) -> float:
    if hinted is not None:
        return min(hinted, BACKOFF_MAX_S)
    base = BACKOFF_BASE_S * (2**attempt)
    return float(min(base * (1 + random.random() / 2), BACKOFF_MAX_S))


def _cost(judge: LLMJudge, input_tokens: int, output_tokens: int) -> float:
    return (
        input_tokens / 1000 * judge.usd_per_1k_input_tokens
        + output_tokens / 1000 * judge.usd_per_1k_output_tokens
    )


def _count(value: Any) -> int:
    """A token count from `usage`, 0 when absent or not a count (some providers omit usage)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _refusal(choice: dict[str, Any], message: dict[str, Any]) -> str | None:
    refusal = message.get("refusal")
    if refusal:
        return str(refusal)
    if choice.get("finish_reason") == "content_filter":
        return "the provider's content filter stopped the answer"
    return None


async def judge_llm(
    name: str, judge: LLMJudge, case: JudgeInput, *, client: openai.AsyncOpenAI | None = None
) -> Verdict:
    """Score one session with an LLM judge; never raises for provider or answer problems."""
    if not (judge.usd_per_1k_input_tokens or judge.usd_per_1k_output_tokens) and name not in _unpriced_warned:
        _unpriced_warned.add(name)
        log.warning("judge %s has no usd_per_1k_*_tokens prices: its calls are reported at $0", name)
    try:
        client = client or _client(judge)
    except RuntimeError as exc:
        return m.failed(m.ERROR, str(exc))
    # Encoded once: retries resend the same bytes, and the client does not copy the transcript around.
    body = orjson.dumps(
        {
            "model": judge.model,
            "messages": build_messages(judge, case),
            "temperature": judge.temperature,
            "response_format": {"type": "json_object"},
        }
    )
    attempt = 0
    while True:
        try:
            async with _semaphore(name, judge):
                # The client's generic `post` sends the body as is: `chat.completions.create` would
                # re-validate and transform the transcript, and parse the answer into models, at
                # several times the CPU per call (the exporter's ingest shares that CPU).
                response = await asyncio.wait_for(
                    client.post(
                        "/chat/completions",
                        cast_to=object,
                        content=body,
                        options={"timeout": judge.timeout, "headers": _JSON_HEADERS},
                    ),
                    # The client enforces the timeout per read; this bounds the whole exchange too.
                    timeout=judge.timeout + 1.0,
                )
            break
        except (TimeoutError, openai.APITimeoutError) as exc:
            if not (refused := _connect_failure(exc)):
                return m.failed(m.TIMEOUT, f"no answer within {judge.timeout:g}s")
            if attempt >= judge.max_retries:
                return m.failed(m.ERROR, f"cannot reach the provider: {refused}")
            await asyncio.sleep(_backoff(attempt, None))
        except openai.APIStatusError as exc:
            retryable = exc.status_code == 429 or exc.status_code >= 500
            if not retryable or attempt >= judge.max_retries:
                outcome = m.RATE_LIMITED if exc.status_code == 429 else m.ERROR
                return m.failed(
                    outcome, f"provider answered HTTP {exc.status_code} after {attempt + 1} attempt(s)"
                )
            await asyncio.sleep(_backoff(attempt, _retry_after(exc)))
        except openai.APIConnectionError as exc:
            if attempt >= judge.max_retries:
                return m.failed(m.ERROR, f"cannot reach the provider: {exc}")
            await asyncio.sleep(_backoff(attempt, None))
        except openai.OpenAIError as exc:  # e.g. an answer the client cannot decode
            return m.failed(m.MALFORMED, f"unreadable provider answer: {exc}")
        attempt += 1

    data: dict[str, Any] = response if isinstance(response, dict) else {}
    usage = _mapping(data.get("usage"))
    tokens_in, tokens_out = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    cost = _cost(judge, tokens_in, tokens_out)

    def failed(outcome: str, why: str) -> Verdict:  # an answer that was paid for, whatever it says
        return m.failed(outcome, why, input_tokens=tokens_in, output_tokens=tokens_out, cost_usd=cost)

    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return failed(m.MALFORMED, "the answer has no choices")
    choice: dict[str, Any] = choices[0]
    message = _mapping(choice.get("message"))
    if refusal := _refusal(choice, message):
        return failed(m.REFUSED, _clip(refusal, MAX_EXPLANATION_CHARS))
    try:
        score, label, explanation = parse_verdict(_text(message.get("content")), judge.pass_threshold)
    except MalformedVerdict as exc:
        return failed(m.MALFORMED, str(exc))
    return Verdict(score, label, explanation, m.OK, tokens_in, tokens_out, cost)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
