"""The prober's loop: every spec's scenarios each `synthetic.interval`, with jitter, until stopped.

Each spec (agent) runs on its own clock. A cycle starts every interval whatever the last one took
(a cycle longer than the interval starts the next one at once and logs it), and scenario starts are
spread over `jitter × interval` so probes do not arrive at the agent as one burst.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agentslo.durations import parse_duration
from agentslo.scenario import Scenario
from agentslo.spec import Spec
from agentslo.synthetic.records import ScenarioResult
from agentslo.synthetic.runner import run_cycle
from agentslo.synthetic.sinks import Sink
from agentslo.synthetic.targets import Target

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One agent to probe: its spec, its scenarios and the target they run against."""

    spec: Spec
    scenarios: Sequence[Scenario]
    target: Target

    @property
    def interval_s(self) -> float:
        return float(parse_duration(self.spec.synthetic.interval if self.spec.synthetic else "5m"))

    @property
    def jitter_s(self) -> float:
        return self.interval_s * (self.spec.synthetic.jitter if self.spec.synthetic else 0.0)


async def run_job(
    job: Job,
    sink: Sink | None,
    stop: asyncio.Event,
    *,
    on_cycle: Callable[[list[ScenarioResult]], None] | None = None,
) -> None:
    """Cycle one job until `stop` is set."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            results = await run_cycle(job.spec, job.scenarios, job.target, sink=sink, jitter_s=job.jitter_s)
        except Exception:  # a broken cycle is logged; the next one still comes
            log.exception("%s: the probe cycle failed", job.spec.agent)
            results = []
        failed = sum(not r.passed for r in results)
        took = time.monotonic() - started
        log.info("%s: cycle of %d scenario(s), %d failed, %.1fs", job.spec.agent, len(results), failed, took)
        if on_cycle is not None:
            on_cycle(results)
        wait = job.interval_s - took
        if wait <= 0:
            log.warning(
                "%s: the cycle took %.1fs, longer than the interval %gs", job.spec.agent, took, job.interval_s
            )
            continue
        try:
            await asyncio.wait_for(stop.wait(), timeout=wait)
        except TimeoutError:
            pass


async def run_forever(
    jobs: Sequence[Job],
    sink: Sink | None,
    stop: asyncio.Event | None = None,
    *,
    on_cycle: Callable[[list[ScenarioResult]], None] | None = None,
) -> None:
    """Probe every job on its own interval until `stop` is set (or forever)."""
    stop = stop or asyncio.Event()
    await asyncio.gather(*(run_job(job, sink, stop, on_cycle=on_cycle) for job in jobs))
