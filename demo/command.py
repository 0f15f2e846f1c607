"""`agent-slo demo`: the whole loop on this machine, no API key and no Docker.

    agent-slo demo                      # about 2-4 minutes, then a summary; everything is stopped
    agent-slo demo --incident outage    # another named incident (see demo.faults.INCIDENTS)
    agent-slo demo --no-servers         # without Prometheus/Alertmanager (only the exporter side)

It starts the exporter (`agent-slo serve`), the demo CX agent, simulated customers talking to it,
the synthetic prober, and, when their binaries are installed, a real Prometheus with the generated
rules and a real Alertmanager with the generated routing (its receivers post to a webhook inside
the demo, which prints each alert as it arrives). After a clean start it injects an incident into
the agent; the alert that pages is real, evaluated by Prometheus from the exporter's counters.

Demo time: the spec is the cx-support example with a 1h period and burn-rate windows 30x-150x
shorter (`demo.demotime`), so a page takes a minute instead of an hour. Nothing is faked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, TextIO

import openai

from agentslo import gate, names
from agentslo.demo import EXAMPLE_SPEC, demotime
from agentslo.demo.agent import AgentState, create_app, serve
from agentslo.demo.faults import INCIDENTS, Faults, Incident
from agentslo.demo.servers import WebhookSink, http_get
from agentslo.demo.stack import Stack
from agentslo.demo.traffic import UserTraffic
from agentslo.prometheus import PrometheusClient, PrometheusError
from agentslo.scenario import load_scenarios
from agentslo.synthetic.runner import run_cycle
from agentslo.synthetic.sinks import HttpSink

DEFAULT_DURATION_S: Final = 240.0
DEFAULT_INCIDENT_AT_S: Final = 40.0
DEFAULT_INCIDENT: Final = "post-deploy-regression"
STATUS_EVERY_S: Final = 10.0
GRACE_AFTER_DETECTION_S: Final = 10.0  # keep running a little after the page, so the state settles
PROBE_EVERY_S: Final = 30.0  # demo time for the 5m probe interval
AGENT_TIME_SCALE: Final = 0.05  # the demo agent sleeps 5% of its simulated latency
DEMO_DRIFT_S: Final = 90.0  # demo time: a three-week drift plays out in a minute and a half


@dataclass
class Timeline:
    """What the demo saw, for the summary."""

    started: float = field(default_factory=time.monotonic)
    injected: float | None = None
    paged: float | None = None
    page: tuple[str, dict[str, Any]] | None = None
    autonomy: list[tuple[float, str]] = field(default_factory=list)
    gate_before: gate.Decision | None = None
    gate_after: gate.Decision | None = None
    probes: list[tuple[float, int, int]] = field(default_factory=list)  # (t, passed, failed)

    def at(self) -> float:
        return time.monotonic() - self.started


def _say(out: TextIO, t: float, text: str) -> None:
    print(f"[{t:6.1f}s] {text}", file=out, flush=True)


def _autonomy(stack: Stack, agent: str, flow: str) -> dict[str, Any]:
    try:
        status, body = http_get(f"{stack.exporter_url}/v1/autonomy?agent={agent}&flow={flow}", timeout=3)
        return json.loads(body) if status == 200 else {"state": f"HTTP {status}"}
    except OSError as exc:
        return {"state": "unreachable", "reason": str(exc)}


async def _probe_loop(
    stack: Stack, agent_url: str, timeline: Timeline, stop: asyncio.Event, out: TextIO
) -> None:
    """Run the spec's scenarios every PROBE_EVERY_S through the real prober, results to the exporter."""
    spec = stack.specs[0]
    if spec.synthetic is None or spec.synthetic.target is None:
        return
    scenarios = load_scenarios(spec)
    target = spec.synthetic.target.model_copy(update={"base_url": agent_url})
    sink = HttpSink(stack.exporter_url, stack.exporter_token)
    # The prober's llm-rubric assertions are graded by the demo agent's stand-in judge (no API key).
    judge = openai.AsyncOpenAI(base_url=agent_url, api_key="demo-no-key", max_retries=0)
    try:
        while not stop.is_set():
            results = await run_cycle(spec, scenarios, target, sink=sink, judge_client=judge)
            passed = sum(r.passed for r in results)
            timeline.probes.append((timeline.at(), passed, len(results) - passed))
            failing = ", ".join(r.name for r in results if not r.passed)
            _say(
                out,
                timeline.at(),
                f"prober: {passed}/{len(results)} scenarios pass"
                + (f" (failing: {failing})" if failing else ""),
            )
            try:
                await asyncio.wait_for(stop.wait(), PROBE_EVERY_S)
            except TimeoutError:
                pass
    finally:
        await sink.aclose()
        await judge.close()


async def _run(args: argparse.Namespace, stack: Stack, sink: WebhookSink | None, out: TextIO) -> Timeline:
    spec = stack.specs[0]
    incident: Incident = INCIDENTS[args.incident]
    timeline = Timeline()
    agent_state = AgentState(
        spec, seed=args.seed, time_scale=AGENT_TIME_SCALE, exporter_url=stack.exporter_url
    )
    runner, agent_url = await serve(create_app(agent_state))
    _say(out, timeline.at(), f"demo agent (OpenAI-compatible): {agent_url}  (try: curl {agent_url}/models)")
    stop = asyncio.Event()
    users = UserTraffic(spec, agent_url, rate_per_s=args.rate, seed=args.seed)
    tasks = [
        asyncio.create_task(users.run(args.duration, stop)),
        asyncio.create_task(_probe_loop(stack, agent_url, timeline, stop, out)),
    ]
    flow = incident.flow
    last_status, last_state = -STATUS_EVERY_S, None  # the first status at once
    try:
        while timeline.at() < args.duration:
            now = timeline.at()
            if timeline.injected is None and now >= args.incident_at:
                if stack.prometheus is not None:
                    timeline.gate_before = await asyncio.to_thread(
                        gate.gate, spec, stack.prometheus_url, flows=[flow]
                    )
                    _say(
                        out,
                        now,
                        "release gate before the incident: " + _verdict(timeline.gate_before, incident.slo),
                    )
                agent_state.faults = _in_demo_time(incident)
                agent_state.faults_since = time.time()
                if incident.version:
                    agent_state.version = incident.version
                timeline.injected = now
                if incident.faults.drift is not None:
                    _say(
                        out,
                        now,
                        f"demo time: the drift's three weeks play out in {DEMO_DRIFT_S:.0f}s "
                        "(tests/test_e2e_drift.py runs it on three weeks of backfilled history)",
                    )
                _say(
                    out,
                    now,
                    f"INCIDENT injected: {incident.name}: {incident.description}"
                    + (f" (agent now reports version {incident.version})" if incident.version else ""),
                )
                _say(out, now, f"expecting {incident.alert} for SLO {incident.slo} on flow {flow}")
            if sink is not None and timeline.page is None:
                page = _find_page(sink, spec.agent, incident)
                if page is not None:
                    timeline.page, timeline.paged = page, now
                    labels = page[1]["labels"]
                    since = f"{now - timeline.injected:.0f}s after the incident" if timeline.injected else ""
                    _say(
                        out,
                        now,
                        f"ALERT reached Alertmanager receiver {page[0]} {since}: {labels.get('alertname')} "
                        + " ".join(f"{k}={labels.get(k)}" for k in ("severity", "slo", "flow", "burn_tier")),
                    )
                    _say(out, now, f"  {page[1]['annotations'].get('description', '')}")
            if now - last_status >= STATUS_EVERY_S or (
                timeline.page is not None and timeline.gate_after is None
            ):
                last_status = now
                answer = await asyncio.to_thread(_autonomy, stack, spec.agent, flow)
                state = str(answer.get("state")) + (" [fail-safe]" if answer.get("stale") else "")
                if state != last_state:
                    timeline.autonomy.append((now, state))
                    stale = f" (stale: {answer.get('reason')})" if answer.get("stale") else ""
                    _say(
                        out,
                        now,
                        f"autonomy of {flow}: {state}, allowed {answer.get('allowed_actions')}{stale}",
                    )
                    last_state = state
                _say(
                    out,
                    now,
                    f"conversations {users.conversations}, events reported {agent_state.events_posted}"
                    + _firing(stack),
                )
            if timeline.page is not None and timeline.gate_after is None and stack.prometheus is not None:
                timeline.gate_after = await asyncio.to_thread(
                    gate.gate, spec, stack.prometheus_url, flows=[flow]
                )
                _say(out, now, "release gate now: " + _verdict(timeline.gate_after, incident.slo))
            if timeline.paged is not None and now - timeline.paged > GRACE_AFTER_DETECTION_S:
                break
            await asyncio.sleep(1.0)
    finally:
        stop.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for name, result in zip(("customers", "prober"), results, strict=True):
            if isinstance(result, Exception):  # said, not swallowed: a silent prober hides a broken loop
                _say(out, timeline.at(), f"{name} stopped early: {type(result).__name__}: {result}")
        await runner.cleanup()
    return timeline


def _in_demo_time(incident: Incident) -> Faults:
    """The incident's faults; a drift's three weeks compressed into DEMO_DRIFT_S (said when injected)."""
    faults = incident.faults
    if faults.drift is not None:
        faults = replace(faults, drift=replace(faults.drift, over_s=DEMO_DRIFT_S))
    return faults


def _find_page(sink: WebhookSink, agent: str, incident: Incident) -> tuple[str, dict[str, Any]] | None:
    """The first alert delivered for the incident's SLO and flow (a critical burn, or whatever the
    incident is expected to raise: a drift raises a ticket, a policy breach a rare event)."""
    for path, alert in sink.alerts():
        labels = alert.get("labels", {})
        if labels.get("agent") != agent or labels.get("slo") != incident.slo:
            continue
        if labels.get("alertname") == names.ALERT_BURN_RATE and labels.get("severity") == "critical":
            return path, alert
        if (
            labels.get("alertname") == incident.alert
            and labels.get("flow") == incident.flow
            and incident.severity in (None, labels.get("severity"))
        ):
            return path, alert
    return None


def _firing(stack: Stack) -> str:
    if stack.prometheus is None:
        return ""
    try:
        alerts = PrometheusClient(stack.prometheus_url, timeout=3).query('ALERTS{alertstate="firing"}')
    except PrometheusError:
        return ", Prometheus unreachable"
    names_ = sorted({f"{a.labels.get('alertname')}/{a.labels.get('slo', '-')}" for a in alerts})
    return f", firing: {', '.join(names_) or 'none'}"


def _verdict(decision: gate.Decision, slo: str) -> str:
    verb = "SHIP" if decision.ship else "HOLD"
    mine = [v for v in decision.verdicts if v.slo == slo] or decision.blocking
    detail = "; ".join(f"{v.flow}/{v.slo} {v.state}: {v.reason}" for v in mine[:2])
    return f"{verb} ({decision.problem or detail})"


def summary(timeline: Timeline, stack: Stack, incident: Incident, out: TextIO) -> None:
    print("\n=== agent-slo demo summary ===", file=out)
    print(demotime.LABEL, file=out)
    for skipped in stack.skipped:
        print(f"skipped: {skipped}", file=out)
    print(f"incident: {incident.name}: {incident.description}", file=out)
    if timeline.injected is None:
        print("the demo ended before the incident was injected (raise --duration)", file=out)
    if timeline.page is not None and timeline.injected is not None and timeline.paged is not None:
        labels = timeline.page[1]["labels"]
        print(
            f"detected by {labels.get('alertname')} ({labels.get('severity')}, {labels.get('burn_tier')}) on "
            f"{labels.get('slo')}/{labels.get('flow')} "
            f"{timeline.paged - timeline.injected:.0f}s after injection, "
            f"delivered to receiver {timeline.page[0]}",
            file=out,
        )
    elif stack.prometheus is not None:
        print("no page reached Alertmanager within the demo's duration", file=out)
    if timeline.autonomy:
        print(
            "autonomy of "
            + incident.flow
            + ": "
            + " -> ".join(f"{s} ({t:.0f}s)" for t, s in timeline.autonomy),
            file=out,
        )
    for label, decision in (("before", timeline.gate_before), ("after", timeline.gate_after)):
        if decision is not None:
            print(f"release gate {label}: {_verdict(decision, incident.slo)}", file=out)
    if timeline.probes:
        _, passed, failed = timeline.probes[-1]
        print(f"prober: last cycle {passed} passed, {failed} failed", file=out)
    print(f"work directory (rules, configs, logs): {stack.workdir}", file=out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=DEFAULT_DURATION_S, help="longest run, seconds")
    parser.add_argument("--incident", choices=sorted(INCIDENTS), default=DEFAULT_INCIDENT)
    parser.add_argument(
        "--incident-at", type=float, default=DEFAULT_INCIDENT_AT_S, help="seconds of clean traffic first"
    )
    parser.add_argument("--no-servers", action="store_true", help="do not start Prometheus and Alertmanager")
    parser.add_argument("--rate", type=float, default=6.0, help="customer conversations per second")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--spec", type=Path, default=EXAMPLE_SPEC, help="spec to run in demo time (default: cx-support)"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep configs, data and logs here")


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if not args.spec.exists():
        print(f"agent-slo demo: {args.spec} not found; give a spec with --spec", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="agent-slo-demo-") as tmp:
        work = args.workdir or Path(tmp)
        spec_path = demotime.write_compressed(args.spec, work / "demo.slo.yaml")
        print(demotime.LABEL, file=out)
        with WebhookSink() as sink, Stack([spec_path], work / "stack", webhook_url=sink.url) as stack:
            stack.start(prometheus=not args.no_servers, alertmanager=not args.no_servers)
            if args.no_servers:
                stack.skipped.append(
                    "Prometheus and Alertmanager (--no-servers): no alerts, autonomy fails safe"
                )
            for skipped in stack.skipped:
                print(f"skipped: {skipped}", file=out)
            print(
                f"exporter:     {stack.exporter_url}/metrics  (autonomy: {stack.exporter_url}/v1/autonomy"
                f"?agent={stack.specs[0].agent}&flow=refund)",
                file=out,
            )
            if stack.prometheus is not None:
                print(f"Prometheus:   {stack.prometheus_url}/alerts", file=out)
            if stack.alertmanager is not None:
                print(
                    f"Alertmanager: {stack.alertmanager_url}/#/alerts  (receivers post to {sink.url})",
                    file=out,
                )
            timeline = asyncio.run(_run(args, stack, sink if stack.alertmanager else None, out))
            summary(timeline, stack, INCIDENTS[args.incident], out)
    return 0
