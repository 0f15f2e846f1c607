"""GenAI traces from the real OpenTelemetry SDK, and the `/v1/events` batch they should count as.

`Trace` describes one agent run (its task span, chat and tool spans, evaluations) with fixed times;
`emit()` plays it through a real `TracerProvider` whose OTLP/HTTP protobuf exporter posts to an
exporter, one export per ended span (children before their parents, as a real agent sends them), and
`events()` is the hand-written `/v1/events` batch of the same run, for golden comparisons.

    spans = [Trace(flow="refund", turns=[Turn(100, 20)], tools=[Tool("get_order")])]
    emit(spans, f"{exporter.url}/v1/traces", convention="latest")
    assert otlp.samples() == events_exporter.samples()   # after posting events(spans) there
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

S = 10**9  # nanoseconds per second; callers pick `base_ns` (a minute ago: no span ends in the future)


@dataclass
class Turn:
    input_tokens: int
    output_tokens: int
    seconds: float = 0.5
    model: str = "gpt-4o"


@dataclass
class Tool:
    name: str
    fails: bool = False
    seconds: float = 0.2


@dataclass
class Trace:
    flow: str
    turns: list[Turn] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    evaluations: list[tuple[str, float]] = field(default_factory=list)  # (judge, score) on the last turn
    failed: bool = False
    synthetic: bool = False
    conversation: str | None = None
    agent: str = "bot"


def _attrs(convention: str, op: str, **more: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {"gen_ai.operation.name": op}
    if convention == "v1.36":
        attrs["gen_ai.system"] = "openai"
    else:
        attrs["gen_ai.provider.name"] = "openai"
    attrs.update({k: v for k, v in more.items() if v is not None})
    return attrs


def record(traces: Iterable[Trace], convention: str, base_ns: int, exporter: Any) -> list[ReadableSpan]:
    """Play the traces through a real TracerProvider into `exporter` (one export per ended span)."""
    provider = TracerProvider(resource=Resource({"service.name": "bot-service"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.genai")
    at = base_ns
    for t in traces:
        agent_attrs = _attrs(
            convention,
            "invoke_agent",
            **{
                "gen_ai.agent.name": t.agent,
                "agent_slo.flow": t.flow,
                "gen_ai.conversation.id": t.conversation,
            },
        )
        if t.synthetic:
            agent_attrs["agent_slo.synthetic"] = True
        start = at
        root = tracer.start_span(f"invoke_agent {t.agent}", attributes=agent_attrs, start_time=start)
        ctx = trace.set_span_in_context(root)
        at += S // 10
        steps: list[Turn | Tool] = []
        for i in range(max(len(t.turns), len(t.tools))):
            steps += [t.turns[i]] if i < len(t.turns) else []
            steps += [t.tools[i]] if i < len(t.tools) else []
        last_turn = max((i for i, s in enumerate(steps) if isinstance(s, Turn)), default=-1)
        for i, step in enumerate(steps):
            if isinstance(step, Turn):
                tokens = (
                    {
                        "gen_ai.usage.prompt_tokens": step.input_tokens,
                        "gen_ai.usage.completion_tokens": step.output_tokens,
                    }
                    if convention == "v1.26"
                    else {
                        "gen_ai.usage.input_tokens": step.input_tokens,
                        "gen_ai.usage.output_tokens": step.output_tokens,
                    }
                )
                span = tracer.start_span(
                    f"chat {step.model}",
                    context=ctx,
                    start_time=at,
                    attributes=_attrs(convention, "chat", **{"gen_ai.request.model": step.model}, **tokens),
                )
                if convention == "latest":
                    span.set_attribute("gen_ai.input.messages", json.dumps([{"role": "user", "parts": []}]))
                else:
                    span.add_event("gen_ai.user.message", {"content": "hello"}, timestamp=at)
                if i == last_turn:
                    for judge, score in t.evaluations:
                        span.add_event(
                            "gen_ai.evaluation.result",
                            {"gen_ai.evaluation.name": judge, "gen_ai.evaluation.score.value": score},
                            timestamp=at + 1,
                        )
            else:
                span = tracer.start_span(
                    f"execute_tool {step.name}",
                    context=ctx,
                    start_time=at,
                    attributes=_attrs(convention, "execute_tool", **{"gen_ai.tool.name": step.name}),
                )
                if step.fails:
                    span.set_status(Status(StatusCode.ERROR, "boom"))
                    span.set_attribute("error.type", "RuntimeError")
            at += round(step.seconds * S)
            span.end(end_time=at)
        if t.failed:
            root.set_status(Status(StatusCode.ERROR, "agent failed"))
        at += S // 10
        root.end(end_time=at)
        at += S
    provider.shutdown()
    return exporter.get_finished_spans() if isinstance(exporter, InMemorySpanExporter) else []


def emit(traces: Iterable[Trace], endpoint: str, convention: str, base_ns: int) -> None:
    """The real OTLP/HTTP protobuf exporter of the SDK, posting every span as it ends."""
    record(traces, convention, base_ns, OTLPSpanExporter(endpoint=endpoint, timeout=10))


def otlp_json(traces: Iterable[Trace], convention: str, base_ns: int, gzipped: bool = False) -> bytes:
    """The same spans as one OTLP/JSON request (ids in hex, as the JSON mapping says)."""
    memory = InMemorySpanExporter()
    spans = record(traces, convention, base_ns, memory)
    data = json_format.MessageToDict(encode_spans(spans))
    for rs in data["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    body = json.dumps(data).encode()
    return gzip.compress(body) if gzipped else body


def protobuf(traces: Iterable[Trace], convention: str, base_ns: int) -> bytes:
    memory = InMemorySpanExporter()
    return encode_spans(record(traces, convention, base_ns, memory)).SerializeToString()


def events(
    traces: Iterable[Trace], base_ns: int, prices: dict[str, tuple[float, float]]
) -> list[dict[str, Any]]:
    """The `/v1/events` batch that the traces' spans should count as, in the order the spans end."""
    out: list[dict[str, Any]] = []
    at = base_ns
    for t in traces:
        common: dict[str, Any] = {"agent": t.agent, "flow": t.flow}
        if t.synthetic:
            common["exclude"] = "synthetic"
        start = at
        at += S // 10
        steps: list[Turn | Tool] = []
        for i in range(max(len(t.turns), len(t.tools))):
            steps += [t.turns[i]] if i < len(t.turns) else []
            steps += [t.tools[i]] if i < len(t.tools) else []
        judged = []
        for step in steps:
            end = at + round(step.seconds * S)
            if isinstance(step, Turn):
                out.append(
                    {
                        "type": "turn",
                        **common,
                        "model": step.model,
                        "kind": "turn",
                        "latency_s": (end - at) / S,
                        "tokens": {"input": step.input_tokens, "output": step.output_tokens},
                    }
                )
                judged = [
                    {"type": "judge", **common, "judge": judge, "score": score}
                    for judge, score in t.evaluations
                ]
            else:
                outcome = "error" if step.fails else "ok"
                out.append(
                    {
                        "type": "tool_call",
                        **common,
                        "tool": step.name,
                        "outcome": outcome,
                        "latency_s": (end - at) / S,
                    }
                )
            at = end
            if judged and isinstance(step, Turn) and step is [s for s in steps if isinstance(s, Turn)][-1]:
                out.extend(judged)
                judged = []
        at += S // 10
        turns = t.turns
        task: dict[str, Any] = {
            "type": "task",
            **common,
            "outcome": "failure" if t.failed else "success",
            "duration_s": (at - start) / S,
            "steps": len(turns) + len(t.tools),
        }
        if turns:  # the turns count the tokens; the task prices them
            task["model"] = turns[0].model
            priced = [x for x in turns if x.model in prices]
            if priced:
                task["cost_usd"] = sum(
                    (x.input_tokens * prices[x.model][0] + x.output_tokens * prices[x.model][1]) / 1e6
                    for x in priced
                )
        out.append(task)
        at += S
    return out
