"""Run the prober inside another aiohttp service (such as `agent-slo serve`), results to a callable.

    app.cleanup_ctx.append(prober_context(specs, apply=ingestor_apply))

`apply(events)` receives each scenario's `synthetic` event (a list of one), like a `POST /v1/events`
body; it may be sync or async. Specs without `synthetic.target` are skipped; scenario files are
loaded (and checked) when the app starts, so a bad scenario stops startup with the usual SpecError.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence

from aiohttp import web

from agentslo.judges.llm import close_clients
from agentslo.scenario import load_scenarios
from agentslo.spec import Spec
from agentslo.synthetic.scheduler import Job, run_forever
from agentslo.synthetic.sinks import Apply, CallableSink
from agentslo.synthetic.targets import make_target


def prober_context(
    specs: Sequence[Spec], apply: Apply, *, target_url: str | None = None
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    """An aiohttp cleanup context that probes every spec's scenarios while the app runs."""

    @contextlib.asynccontextmanager
    async def context(app: web.Application) -> AsyncIterator[None]:
        jobs = [
            Job(spec, load_scenarios(spec), make_target(spec.synthetic.target, target_url, spec.tools))
            for spec in specs
            if spec.synthetic is not None and spec.synthetic.target is not None
        ]
        task = asyncio.create_task(run_forever(jobs, CallableSink(apply)))
        try:
            yield
        finally:
            task.cancel()  # a cycle in flight is abandoned: its scenarios were not finished, so not reported
            with contextlib.suppress(asyncio.CancelledError):
                await task
            for job in jobs:
                await job.target.aclose()
            await close_clients()  # the llm-rubric judges' HTTP clients

    return context
