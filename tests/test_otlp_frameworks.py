"""Real producers of GenAI spans into POST /v1/traces: the OpenAI instrumentation on the real `openai`
client, pydantic-ai and the OpenAI Agents SDK (with its OpenTelemetry instrumentation), each running a
tool-using agent against a scripted OpenAI-compatible model, exported by the SDK's OTLP/HTTP exporter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from agents import Agent as OpenAIAgent
from agents import OpenAIChatCompletionsModel, Runner, function_tool, set_trace_processors
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_agents import OpenAIAgentsInstrumentor
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from pydantic_ai import Agent
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from tests.doubles.sdk_backends import SPEC, Exporter, FakeChat, Reply

pytestmark = pytest.mark.timeout(120)

OTEL_SPEC = SPEC + "\notel:\n  prices:\n    gpt-4o: {input_per_mtok: 2.5, output_per_mtok: 10.0}\n"


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[Exporter]:
    with Exporter(tmp_path, OTEL_SPEC) as running:
        yield running


def provider(exporter: Exporter, **resource: Any) -> TracerProvider:
    tracer_provider = TracerProvider(resource=Resource({"service.name": "bot-service", **resource}))
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{exporter.url}/v1/traces"))
    )
    return tracer_provider


def task(exporter: Exporter, flow: str, outcome: str) -> float:
    return exporter.value(
        "agent_slo_events_total", flow=flow, slo="task-success", outcome=outcome, exclusion=""
    )


def tools(exporter: Exporter, tool: str, outcome: str) -> float:
    return exporter.value("agent_slo_tool_calls_total", tool=tool, outcome=outcome)


def turns(exporter: Exporter) -> float:
    return exporter.value("agent_slo_turn_latency_seconds_count")


def test_openai_instrumentation_counts_turns_tokens_and_cost(exporter: Exporter) -> None:
    tracer_provider = provider(exporter)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        with FakeChat([Reply(text="Refunded.", usage=(1000, 200))]) as chat:
            client = openai.OpenAI(base_url=chat.base_url, api_key="test")
            # the application's own agent span; the instrumentation adds the chat span inside it
            agent_span = {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "bot",
                "agent_slo.flow": "refund",
            }
            with tracer_provider.get_tracer("app").start_as_current_span(
                "invoke_agent bot", attributes=agent_span
            ):
                client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "refund A-1"}]
                )
    finally:
        instrumentor.uninstrument()
        tracer_provider.shutdown()
    assert turns(exporter) == 1
    assert task(exporter, "refund", "good") == 1
    assert exporter.value("agent_slo_tokens_total", model="gpt-4o", type="input") == 1000
    assert exporter.value("agent_slo_tokens_total", model="gpt-4o", type="output") == 200
    assert exporter.value("agent_slo_task_cost_usd_sum") == pytest.approx((1000 * 2.5 + 200 * 10.0) / 1e6)


def test_a_chat_call_outside_any_agent_span_counts_its_turn_and_tokens(exporter: Exporter) -> None:
    """A plain instrumented LLM call (no agent, no task): the agent and flow come from the resource,
    and the turn carries the chat span's tokens by its model."""
    tracer_provider = provider(exporter, **{"service.name": "bot", "agent_slo.flow": "order-status"})
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        with FakeChat([Reply(text="Shipped.", usage=(300, 40)), Reply(text="Yes.", usage=(20, 5))]) as chat:
            client = openai.OpenAI(base_url=chat.base_url, api_key="test")
            for model in ("gpt-4o", "gpt-4o-mini"):
                client.chat.completions.create(model=model, messages=[{"role": "user", "content": "A-1?"}])
    finally:
        instrumentor.uninstrument()
        tracer_provider.shutdown()
    assert turns(exporter) == 2
    assert exporter.value("agent_slo_task_duration_seconds_count") == 0  # no task: nothing to sum into
    tokens = {
        (model, kind): exporter.value("agent_slo_tokens_total", flow="order-status", model=model, type=kind)
        for model in ("gpt-4o", "gpt-4o-mini")
        for kind in ("input", "output")
    }
    assert tokens == {
        ("gpt-4o", "input"): 300,
        ("gpt-4o", "output"): 40,
        ("gpt-4o-mini", "input"): 20,
        ("gpt-4o-mini", "output"): 5,
    }
    assert exporter.value("agent_slo_tokens_total") == 365  # counted once, nowhere else


def _pydantic_agent(chat: FakeChat, tracer_provider: TracerProvider) -> Agent[None, str]:
    model = OpenAIChatModel("gpt-4o", provider=OpenAIProvider(base_url=chat.base_url, api_key="test"))
    agent: Agent[None, str] = Agent(model, name="bot")
    agent.instrument = InstrumentationSettings(tracer_provider=tracer_provider)

    @agent.tool_plain
    def get_order(order_id: str) -> str:
        return f"order {order_id}: delivered"

    @agent.tool_plain
    def issue_refund(order_id: str) -> str:
        raise RuntimeError("the refund backend is down")

    return agent


def test_pydantic_ai_agent_counts_its_task_tools_and_turns_and_a_failure_as_bad(exporter: Exporter) -> None:
    tracer_provider = provider(exporter)
    tracer = tracer_provider.get_tracer("app")
    script = [
        Reply(tools=[("get_order", {"order_id": "A-1"})]),
        Reply(text="It was delivered."),
        Reply(tools=[("issue_refund", {"order_id": "A-1"})]),
    ]
    with FakeChat(script) as chat:
        agent = _pydantic_agent(chat, tracer_provider)
        # the flow comes from the application's request span around the agent (an ancestor)
        with tracer.start_as_current_span("POST /chat", attributes={"agent_slo.flow": "order-status"}):
            assert agent.run_sync("Where is A-1?").output == "It was delivered."
        with tracer.start_as_current_span("POST /chat", attributes={"agent_slo.flow": "refund"}):
            with pytest.raises(RuntimeError):
                agent.run_sync("Refund A-1")
    tracer_provider.shutdown()
    assert task(exporter, "order-status", "good") == 1
    assert task(exporter, "refund", "bad") == 1
    assert tools(exporter, "get_order", "ok") == 1
    assert tools(exporter, "issue_refund", "error") == 1
    assert turns(exporter) == 3
    assert exporter.value("agent_slo_otlp_items_total", result="rejected") == 0


@function_tool
def get_order(order_id: str) -> str:
    """Look an order up."""
    return f"order {order_id}: delivered"


@function_tool
def issue_refund(order_id: str) -> str:
    """Refund an order."""
    raise RuntimeError("the refund backend is down")


def test_openai_agents_sdk_with_its_instrumentation_counts_task_tools_and_turns(exporter: Exporter) -> None:
    # the flow and the agent from the resource: one service, one agent, one flow per deployment
    tracer_provider = provider(exporter, **{"service.name": "bot", "agent_slo.flow": "refund"})
    set_trace_processors([])
    instrumentor = OpenAIAgentsInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    script = [
        Reply(tools=[("get_order", {"order_id": "A-1"})]),
        Reply(tools=[("issue_refund", {"order_id": "A-1"})]),
        Reply(text="I could not refund it."),
    ]
    try:
        with FakeChat(script) as chat:

            async def main() -> None:
                client = openai.AsyncOpenAI(base_url=chat.base_url, api_key="test")
                model = OpenAIChatCompletionsModel(model="gpt-4o", openai_client=client)
                cx = OpenAIAgent(
                    name="bot", instructions="help", model=model, tools=[get_order, issue_refund]
                )
                await Runner.run(cx, "Refund A-1")

            asyncio.run(main())
    finally:
        instrumentor.uninstrument()
        tracer_provider.shutdown()
        trace.get_tracer_provider()
    assert exporter.value("agent_slo_events_total", slo="task-success", exclusion="") == 1
    assert tools(exporter, "get_order", "ok") == 1
    assert tools(exporter, "issue_refund", "ok") + tools(exporter, "issue_refund", "error") == 1
    assert turns(exporter) == 3
    assert exporter.value("agent_slo_tokens_total", type="input") == 300
