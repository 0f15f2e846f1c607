"""`agent-slo probe SPEC... [--once] [--junit FILE]`: the synthetic prober.

Without `--once` it probes every spec's scenarios each `synthetic.interval` and sends each result
to the exporter as a `synthetic` event until stopped (SIGINT/SIGTERM). With `--once` it runs one
pass for a deploy pipeline: exit 0 when every scenario passed, 1 when any failed, 2 on bad input;
`--junit FILE` writes each assertion's result as JUnit XML.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from typing import Any, Final

from agentslo.judges.llm import close_clients
from agentslo.scenario import Problem, Scenario, load_scenarios, scenario_schema
from agentslo.spec import Spec, SpecError, load_specs
from agentslo.synthetic.junit import write_junit
from agentslo.synthetic.records import ScenarioResult
from agentslo.synthetic.runner import run_cycle
from agentslo.synthetic.scheduler import Job, run_forever
from agentslo.synthetic.sinks import HttpSink, Sink
from agentslo.synthetic.targets import Target, TargetConfigError, make_target

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
DEFAULT_EXPORTER: Final = "http://127.0.0.1:9120"
TOKEN_ENV: Final = "AGENT_SLO_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("specs", nargs="*", metavar="SPEC", help="SLO spec files (their synthetic: sections)")
    parser.add_argument("--once", action="store_true", help="one pass; exit 1 if any scenario fails")
    parser.add_argument(
        "--junit", metavar="FILE", help="with --once: write JUnit XML with each assertion's result"
    )
    parser.add_argument(
        "--exporter",
        default=DEFAULT_EXPORTER,
        metavar="URL",
        help=f"exporter receiving results as synthetic events (default {DEFAULT_EXPORTER})",
    )
    parser.add_argument(
        "--no-exporter", action="store_true", help="do not send results anywhere (with --once)"
    )
    parser.add_argument(
        "--token", default=None, help=f"exporter bearer token (default: the {TOKEN_ENV} environment variable)"
    )
    parser.add_argument(
        "--target-url",
        default=None,
        metavar="URL",
        help="probe this address instead of the spec's target base_url/url",
    )
    parser.add_argument("--concurrency", type=int, default=None, help="override synthetic.concurrency")
    parser.add_argument(
        "--scenario", action="append", default=None, metavar="NAME", help="only these scenarios (repeatable)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print failures only")
    parser.add_argument(
        "--schema", action="store_true", help="print the JSON Schema of scenario files and exit"
    )


def _plan(args: argparse.Namespace) -> list[tuple[Spec, list[Scenario]]]:
    specs = load_specs(args.specs)
    problems: list[Problem] = []
    plan: list[tuple[Spec, list[Scenario]]] = []
    for spec in specs:
        if spec.synthetic is None or spec.synthetic.target is None:
            problems.append(
                Problem(
                    spec.source,
                    1,
                    "synthetic.target",
                    "nothing to probe: add `synthetic: {target: ..., scenarios: [...]}`",
                )
            )
            continue
        try:
            scenarios = load_scenarios(spec)
        except SpecError as exc:
            problems += exc.problems
            continue
        if args.scenario:
            scenarios = [s for s in scenarios if s.name in args.scenario]
        plan.append((spec, scenarios))
    if problems:
        raise SpecError(problems)
    if args.scenario and not any(s for _, s in plan):
        raise SpecError([Problem(args.specs[0], 1, "", f"no scenario named {', '.join(args.scenario)}")])
    return plan


def _targets(plan: list[tuple[Spec, list[Scenario]]], url: str | None) -> list[Target]:
    targets: list[Target] = []
    for spec, _ in plan:
        assert spec.synthetic is not None and spec.synthetic.target is not None  # checked by _plan
        targets.append(make_target(spec.synthetic.target, url, spec.tools))
    return targets


class _CountingSink:
    """Wraps a sink for --once: delivery problems are collected and reported once, on stderr."""

    def __init__(self, sink: Sink):
        self.sink = sink
        self.errors: list[str] = []

    async def send(self, events: list[dict[str, Any]]) -> None:
        try:
            await self.sink.send(events)
        except Exception as exc:
            self.errors.append(str(exc))

    async def aclose(self) -> None:
        await self.sink.aclose()


def _report(results: list[ScenarioResult], quiet: bool) -> None:
    for r in results:
        if not (quiet and r.passed):
            print(r.summary())
            for f in r.failures() if not r.passed else ():
                print(f"    {f.scope}: {f.label}: {f.message}")
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed}/{len(results)} scenario(s) passed")


async def _once(args: argparse.Namespace, plan: list[tuple[Spec, list[Scenario]]], sink: Sink | None) -> int:
    targets = _targets(plan, args.target_url)
    sink = _CountingSink(sink) if sink is not None else None
    try:
        batches = await asyncio.gather(
            *(
                run_cycle(spec, scenarios, target, sink=sink, concurrency=args.concurrency)
                for (spec, scenarios), target in zip(plan, targets, strict=True)
            )
        )
    finally:
        for target in targets:
            await target.aclose()
        await close_clients()  # the llm-rubric judges' HTTP clients
        if sink is not None:
            await sink.aclose()
    results = [r for batch in batches for r in batch]
    _report(results, args.quiet)
    if sink is not None and sink.errors:
        print(
            f"agent-slo probe: {len(sink.errors)} result(s) not delivered; {sink.errors[-1]}", file=sys.stderr
        )
    if args.junit:
        write_junit(results, args.junit)
    return EXIT_OK if all(r.passed for r in results) else EXIT_FAILED


async def _forever(
    args: argparse.Namespace, plan: list[tuple[Spec, list[Scenario]]], sink: Sink | None
) -> int:
    targets = _targets(plan, args.target_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    jobs = [Job(spec, scenarios, target) for (spec, scenarios), target in zip(plan, targets, strict=True)]
    try:
        await run_forever(jobs, sink, stop, on_cycle=lambda rs: _report(rs, quiet=True))
    finally:
        for target in targets:
            await target.aclose()
        await close_clients()  # the llm-rubric judges' HTTP clients
        if sink is not None:
            await sink.aclose()
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    if args.schema:
        print(json.dumps(scenario_schema(), indent=2))
        return EXIT_OK
    if not args.specs:
        print("agent-slo probe: give at least one SPEC file", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.junit and not args.once:
        print("agent-slo probe: --junit needs --once", file=sys.stderr)
        return EXIT_BAD_INPUT
    plan = _plan(args)
    token = args.token or os.environ.get(TOKEN_ENV)
    sink = None if args.no_exporter else HttpSink(args.exporter, token)
    try:
        return asyncio.run((_once if args.once else _forever)(args, plan, sink))
    except TargetConfigError as exc:
        print(f"agent-slo probe: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
