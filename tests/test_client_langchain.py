"""The LangChain / LangGraph hook: a real LangGraph ReAct agent (`langchain-openai` against a local
fake model) counted exactly: a failing tool, an escalation tool, a run that raises, runs in parallel.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from agentslo_client import Client
from agentslo_client.integrations.langchain import AgentSLOCallbackHandler
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from agentslo import names
from tests.doubles.sdk_backends import Exporter, FakeChat, Reply

pytestmark = pytest.mark.timeout(120)


@tool
def get_order(order_id: str) -> str:
    """Look an order up."""
    return f"order {order_id}: delivered"


@tool
def issue_refund(order_id: str) -> str:
    """Refund an order."""
    raise RuntimeError("the refund backend is down")


@tool
def escalate_to_human(reason: str) -> str:
    """Hand the conversation to a person."""
    return "a person will take over"


def react_agent(model: ChatOpenAI) -> Any:
    """The ReAct loop as LangGraph builds it: the model, then its tools (errors told to the model),
    until the model answers without a tool call."""
    tools = [get_order, issue_refund, escalate_to_human]
    bound = model.bind_tools(tools)

    def agent(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"], config)]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode(tools, handle_tool_errors=True))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile()


def test_langgraph_runs_count_tasks_tool_calls_turns_tokens_and_the_escalation(tmp_path: Path) -> None:
    script = [
        # 1 (refund): a tool that works, a tool that raises (ToolNode tells the model), an answer
        Reply(tools=[("get_order", {"order_id": "A-1"})]),
        Reply(tools=[("issue_refund", {"order_id": "A-1"})]),
        Reply(text="I could not refund it."),
        # 2 (order-status): the escalation tool, then an answer
        Reply(tools=[("escalate_to_human", {"reason": "asked for a person"})], usage=(50, 10)),
        Reply(text="A person will take over.", usage=(50, 10)),
        # 3 (refund): the model provider fails: the run raises
        Reply(status=500),
    ]
    with Exporter(tmp_path) as exporter, FakeChat(script) as chat:
        client = Client(exporter.url, agent="bot", flush_interval_s=0.05)
        handler = AgentSLOCallbackHandler(client, flow="refund")
        graph = react_agent(ChatOpenAI(model="gpt-4o", base_url=chat.base_url, api_key="none", max_retries=0))

        def ask(text: str, flow: str | None = None) -> Any:
            metadata = {"flow": flow} if flow else {}
            config: Any = {"callbacks": [handler], "metadata": metadata}
            return graph.invoke({"messages": [("user", text)]}, config=config)

        ask("Refund order A-1")  # the handler's flow: refund
        ask("I want a person", flow="order-status")
        with pytest.raises(Exception, match="500"):
            ask("Anything")

        async def parallel() -> None:  # four runs at once on one handler: each its own task
            chat.script.extend(Reply(text="Fine.", usage=(1, 1)) for _ in range(4))
            config: Any = {"callbacks": [handler], "metadata": {"flow": "order-status"}}
            await asyncio.gather(
                *(graph.ainvoke({"messages": [("user", f"q{i}")]}, config=config) for i in range(4))
            )

        asyncio.run(parallel())
        assert client.flush(10)
        stats = client.stats()
        assert (stats.rejected, stats.dropped) == (0, 0)

        def value(name: str, **labels: str) -> float:
            return exporter.value(name, agent="bot", **labels)

        def task(flow: str, outcome: str) -> float:
            return value(names.EVENTS_TOTAL, slo="task-success", flow=flow, outcome=outcome)

        assert (task("refund", "good"), task("refund", "bad")) == (1, 1)
        assert (task("order-status", "good"), task("order-status", "bad")) == (4, 0)  # run 2 escalated
        assert value(names.TASK_DURATION_SECONDS + "_count") == 7
        assert value(names.EVENTS_TOTAL, slo="escalation", flow="order-status", outcome="good") == 1
        assert value(names.EVENTS_TOTAL, slo="escalation", outcome="bad") == 0
        assert value(names.TOOL_CALLS_TOTAL, flow="refund", tool="get_order", outcome="ok") == 1
        assert value(names.TOOL_CALLS_TOTAL, flow="refund", tool="issue_refund", outcome="error") == 1
        assert value(names.TOOL_CALLS_TOTAL, flow="order-status", tool="escalate_to_human", outcome="ok") == 1
        assert value(names.TOOL_CALLS_TOTAL) == 3
        assert value(names.TURN_LATENCY_SECONDS + "_count", flow="refund", kind="turn") == 3  # not the 500
        assert value(names.TURN_LATENCY_SECONDS + "_count", flow="order-status", kind="turn") == 2 + 4
        tokens = {
            (flow, kind): value(names.TOKENS_TOTAL, flow=flow, type=kind, model="gpt-4o")
            for flow in ("refund", "order-status")
            for kind in ("input", "output")
        }
        assert tokens == {
            ("refund", "input"): 300,
            ("refund", "output"): 60,
            ("order-status", "input"): 104,
            ("order-status", "output"): 24,
        }
        client.close(1)
