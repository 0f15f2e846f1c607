"""The OpenAI Agents SDK hook: real tool-using agents against a local fake model, counted exactly.

The agents run the SDK's own loop (`Runner.run`, chat-completions model, function tools, a hand-off)
against `FakeChat`, a scripted OpenAI-compatible model; the tracing processor reports to a real
exporter, whose /metrics must then show exactly the tasks, tool calls, turns, tokens and escalation
the runs made: a failing tool, a hand-off to a person, a run that raises, and a run inside the
application's own task scope.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from agents import Agent, OpenAIChatCompletionsModel, RunConfig, Runner, function_tool, set_trace_processors
from agents.exceptions import ModelBehaviorError
from agentslo_client import Client
from agentslo_client.integrations.openai_agents import AgentSLOProcessor
from openai import AsyncOpenAI

from agentslo import names
from tests.doubles.sdk_backends import Exporter, FakeChat, Reply

pytestmark = pytest.mark.timeout(120)


@function_tool
def get_order(order_id: str) -> str:
    """Look an order up."""
    return f"order {order_id}: delivered"


@function_tool
def issue_refund(order_id: str) -> str:
    """Refund an order."""
    raise RuntimeError("the refund backend is down")


@pytest.fixture
def processor_only() -> Iterator[None]:
    """No trace export to OpenAI during the test (and none left behind)."""
    yield
    set_trace_processors([])


def test_agent_runs_count_tasks_tool_calls_turns_tokens_and_the_escalation(
    tmp_path: Path, processor_only: None
) -> None:
    script = [
        # 1 (refund): a tool that works, a tool that fails (the SDK tells the model), an answer
        Reply(tools=[("get_order", {"order_id": "A-1"})]),
        Reply(tools=[("issue_refund", {"order_id": "A-1"})]),
        Reply(text="I could not refund it."),
        # 2 (order-status): a hand-off to the human agent, who answers
        Reply(tools=[("transfer_to_human_agent", {})], usage=(50, 10)),
        Reply(text="A person here.", usage=(50, 10)),
        # 3 (refund): the model calls a tool that does not exist: the run raises
        Reply(tools=[("no_such_tool", {})]),
        # 4 (order-status, inside the application's task): one answer
        Reply(text="It ships tomorrow.", usage=(10, 5)),
    ]
    with Exporter(tmp_path) as exporter, FakeChat(script) as chat:
        client = Client(exporter.url, agent="bot", flush_interval_s=0.05)
        set_trace_processors([AgentSLOProcessor(client, flow="refund")])

        async def main() -> None:
            openai = AsyncOpenAI(base_url=chat.base_url, api_key="not-needed", max_retries=0)
            model = OpenAIChatCompletionsModel(model="gpt-4o", openai_client=openai)
            human = Agent(name="Human agent", instructions="You are a person.", model=model)
            cx = Agent(
                name="cx",
                instructions="Help.",
                tools=[get_order, issue_refund],
                handoffs=[human],
                model=model,
            )
            await Runner.run(cx, "Refund order A-1")  # the processor's flow: refund
            status = RunConfig(trace_metadata={"flow": "order-status"}, group_id="conversation-7")
            result = await Runner.run(cx, "I want a person", run_config=status)
            assert result.last_agent.name == "Human agent"
            with pytest.raises(ModelBehaviorError):
                await Runner.run(cx, "Do something odd")
            async with client.task("order-status") as task:  # the application's own task scope
                await Runner.run(cx, "Where is A-2?")
                assert task.input_tokens == 10
            await openai.close()

        asyncio.run(main())
        assert client.flush(10)
        stats = client.stats()
        assert (stats.rejected, stats.dropped) == (0, 0)

        def value(name: str, **labels: str) -> float:
            return exporter.value(name, agent="bot", **labels)

        def task(flow: str, outcome: str) -> float:
            return value(names.EVENTS_TOTAL, slo="task-success", flow=flow, outcome=outcome)

        assert (task("refund", "good"), task("refund", "bad")) == (1, 1)  # run 1 worked, run 3 raised
        # run 2 escalated when a person was needed: not a task outcome; run 4 is the application's task
        assert (task("order-status", "good"), task("order-status", "bad")) == (1, 0)
        assert value(names.TASK_DURATION_SECONDS + "_count") == 4
        assert value(names.EVENTS_TOTAL, slo="escalation", flow="order-status", outcome="good") == 1
        assert value(names.EVENTS_TOTAL, slo="escalation", outcome="bad") == 0
        assert value(names.TOOL_CALLS_TOTAL, flow="refund", tool="get_order", outcome="ok") == 1
        assert value(names.TOOL_CALLS_TOTAL, flow="refund", tool="issue_refund", outcome="error") == 1
        assert value(names.TOOL_CALLS_TOTAL) == 2  # the hand-off is not a tool call
        assert value(names.TURN_LATENCY_SECONDS + "_count", flow="refund", kind="turn") == 3 + 1
        assert value(names.TURN_LATENCY_SECONDS + "_count", flow="order-status", kind="turn") == 2 + 1
        tokens = {
            (flow, kind): value(names.TOKENS_TOTAL, flow=flow, type=kind, model="gpt-4o")
            for flow in ("refund", "order-status")
            for kind in ("input", "output")
        }
        assert tokens == {
            ("refund", "input"): 400,
            ("refund", "output"): 80,
            ("order-status", "input"): 110,
            ("order-status", "output"): 25,
        }
        assert value(names.TASK_STEPS + "_sum") == 5 + 2 + 1 + 1  # turns and tool calls per task
        client.close(1)
