"""Framework hooks: each module imports its framework when it is imported, never before.

- `agentslo_client.integrations.openai_agents`: a tracing processor for the OpenAI Agents SDK.
- `agentslo_client.integrations.langchain`: a callback handler for LangChain and LangGraph.

Both record through a `Client` (the process-wide one unless given), take the flow from the run's
metadata (`flow`) or an argument, and fold into an application's own `task()` scope when the run
happens inside one, so a task is never counted twice.
"""
