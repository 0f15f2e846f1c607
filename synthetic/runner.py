"""Run scenarios against a target: one scenario (`run_scenario`) or a whole cycle (`run_cycle`).

`run_cycle` is the plain async API the CLI, the scheduler and the demo share:

    import asyncio
    from agentslo.spec import load_spec
    from agentslo.scenario import load_scenarios
    from agentslo.synthetic.runner import run_cycle
    from agentslo.synthetic.sinks import CallableSink

    spec = load_spec("examples/cx-support.slo.yaml")
    results = asyncio.run(run_cycle(spec, load_scenarios(spec), spec.synthetic.target,
                                    sink=CallableSink(print)))

Concurrency is bounded per cycle, every scenario has a timeout (its own, else the spec's
`synthetic.timeout`), and a scenario's result is sent to the sink as soon as it is known.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Sequence
from typing import Any

from agentslo.scenario import Assertion, Scenario
from agentslo.spec import Spec
from agentslo.spec import Target as TargetConfig
from agentslo.synthetic.assertions import RubricFn, View, evaluate, group_passes
from agentslo.synthetic.records import AssertionResult, ScenarioResult, TurnRecord
from agentslo.synthetic.rubric import make_rubric
from agentslo.synthetic.sinks import Sink
from agentslo.synthetic.targets import Conversation, Target, TargetError, make_target

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 60.0  # when neither the scenario nor the spec sets one
DEFAULT_CONCURRENCY = 10


def _scenario_view(
    sc: Scenario, turns: list[TurnRecord], messages: list[dict[str, Any]], session: str
) -> View:
    costs = [t.cost_usd for t in turns]
    return View(
        scope="scenario",
        output="\n\n".join(t.output for t in turns),
        final=turns[-1].output if turns else "",
        tool_calls=[c for t in turns for c in t.tool_calls],
        steps=sum(t.steps for t in turns),
        latency_s=sum(t.latency_s for t in turns),
        cost_usd=None if not turns or any(c is None for c in costs) else sum(c or 0.0 for c in costs),
        messages=list(messages),
        flow=sc.flow,
        session_id=session,
    )


def _skipped(sc: Scenario, from_turn: int, reason: str) -> list[AssertionResult]:
    """The assertions a target failure kept from running, each `skipped` (members of sets too)."""
    message = f"not run: {reason}"

    def skip(scope: str, assertions: Sequence[Assertion]) -> list[AssertionResult]:
        return [
            AssertionResult(
                scope, a.type, a.label(), False, 0.0, a.weight, message, True, skip(scope, a.assert_ or ())
            )
            for a in assertions
        ]

    out = [r for t in range(from_turn, len(sc.turns)) for r in skip(f"turn {t + 1}", sc.turns[t].assert_)]
    return out + skip("scenario", sc.assert_)


async def run_scenario(
    scenario: Scenario, target: Target, *, rubric: RubricFn | None = None, timeout: float = DEFAULT_TIMEOUT_S
) -> ScenarioResult:
    """Play one scenario: its turns in order, turn assertions after each, scenario assertions at the end."""
    session = f"probe-{scenario.name}-{uuid.uuid4().hex[:12]}"
    conversation = Conversation(scenario, session)
    turns: list[TurnRecord] = []
    results: list[AssertionResult] = []
    error: str | None = None
    started = time.perf_counter()
    limit = scenario.timeout or timeout
    try:
        async with asyncio.timeout(limit):
            for t, turn in enumerate(scenario.turns):
                try:
                    record = await target.turn(conversation, turn.user)
                except TargetError as exc:
                    error = f"turn {t + 1}: {exc}"
                    results += _skipped(scenario, t, error)
                    break
                turns.append(record)
                view = View(
                    f"turn {t + 1}",
                    record.output,
                    record.output,
                    record.tool_calls,
                    record.steps,
                    record.latency_s,
                    record.cost_usd,
                    list(conversation.messages),
                    scenario.flow,
                    session,
                )
                results += await evaluate(turn.assert_, view, rubric)
            else:
                view = _scenario_view(scenario, turns, conversation.messages, session)
                results += await evaluate(scenario.assert_, view, rubric)
    except TimeoutError:
        error = (
            f"expected the scenario to finish within {limit:g}s; it timed out during turn {len(turns) + 1}"
        )
        done = {(r.scope, r.label) for r in results}
        results += [r for r in _skipped(scenario, len(turns), error) if (r.scope, r.label) not in done]
    duration = time.perf_counter() - started
    passed, _ = group_passes([r for r in results if not r.skipped], scenario.threshold)
    return ScenarioResult(scenario, error is None and passed, duration, turns, results, error, session)


async def run_cycle(
    spec: Spec,
    scenarios: Sequence[Scenario],
    target: Target | TargetConfig | None = None,
    *,
    sink: Sink | None = None,
    concurrency: int | None = None,
    timeout: float | None = None,
    jitter_s: float = 0.0,
    target_url: str | None = None,
    judge_client: Any = None,
) -> list[ScenarioResult]:
    """Run every scenario once (bounded concurrency, per-scenario timeout), in the order given.

    `target` is a built target, or a target config (default: the spec's `synthetic.target`) built
    and closed here. Each scenario starts after a random delay in [0, jitter_s) so probes spread out.
    """
    synthetic = spec.synthetic
    own_target = target is None or isinstance(target, TargetConfig)
    if target is None or isinstance(target, TargetConfig):
        config = target or (synthetic.target if synthetic else None)
        if config is None:
            raise ValueError(f"spec {spec.source} has no synthetic.target to probe")
        built = make_target(config, target_url, spec.tools)
    else:
        built = target
    limit = asyncio.Semaphore(concurrency or (synthetic.concurrency if synthetic else DEFAULT_CONCURRENCY))
    per_scenario = timeout or (synthetic.timeout if synthetic else DEFAULT_TIMEOUT_S)
    rubric = make_rubric(spec, client=judge_client)

    async def one(sc: Scenario) -> ScenarioResult:
        if jitter_s > 0:
            await asyncio.sleep(random.uniform(0, jitter_s))
        async with limit:
            try:
                result = await run_scenario(sc, built, rubric=rubric, timeout=per_scenario)
            except Exception as exc:  # the prober's own fault: keep the other scenarios going
                log.exception("prober error in scenario %s", sc.name)
                error = f"prober error (not the agent's): {type(exc).__name__}: {exc}"
                result = ScenarioResult(sc, False, 0.0, [], [], error, internal=True)
        log.info("%s", result.summary())
        if sink is not None:  # a prober bug is sent excluded: counted, never burning the agent's budget
            try:
                await sink.send([result.event()])
            except Exception as exc:  # the exporter being away must not stop the probing
                log.warning("could not deliver the result of %s: %s", sc.name, exc)
        return result

    try:
        return list(await asyncio.gather(*(one(sc) for sc in scenarios)))
    finally:
        if own_target:
            await built.aclose()
