"""`agent-slo gate`: may this change ship, given the error budgets of the flows it touches?

    agent-slo gate examples/cx-support.slo.yaml --prometheus http://prometheus:9090 \\
        --flow refund --change-kind prompt

It reads `agent_slo:release_state:code` (with the budget remaining and the 1h/6h burn rates behind
it) for every SLO the change kind maps to (`release_gate.change_kinds`; default `release_gate.slos`,
else every SLO) on every flow the change touches (default: all the SLO's flows), and exits 0 to
ship or 1 to hold when any of them is at or past `release_gate.block_at`, saying which SLO, how
much budget is left and how fast it burns. It fails closed: when Prometheus cannot be reached, or
the state was never recorded, the answer is hold. `--override REASON` ships anyway (an incident fix
through an exhausted budget) and records who and why as one JSON log line on stderr; with
`--exporter URL` it is also counted there (`POST /v1/gate/overrides`, one per flow the change
touches, feeding `agent_slo_release_overrides_total`), so dashboards and the weekly review see it:

    agent-slo gate cx.slo.yaml --prometheus http://prometheus:9090 --flow refund \\
        --override "INC-42 hotfix" --exporter http://exporter:9120 --exporter-token-env AGENT_SLO_TOKEN

An exporter that cannot take the count does not stop the fix: the override still ships, and stderr
says the counter missed it (the JSON line and `--audit-log` still hold it).
"""

from __future__ import annotations

import argparse
import getpass
import json
import math
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, TextIO

from agentslo import names
from agentslo.prometheus import DEFAULT_TIMEOUT_S, PrometheusClient, PrometheusError
from agentslo.spec import Spec, load_spec

EXIT_SHIP, EXIT_HOLD, EXIT_BAD_INPUT = 0, 1, 2
STATE_CODES: Final = {name: code for code, name in enumerate(names.RELEASE_STATES)}
LABELS: Final = (names.L_AGENT, names.L_FLOW, names.L_SLO)


@dataclass(frozen=True)
class Reading:
    """What Prometheus says about one SLO on one flow (None: no series)."""

    state: int | None = None
    remaining: float | None = None
    burn_1h: float | None = None
    burn_6h: float | None = None


@dataclass(frozen=True)
class Verdict:
    slo: str
    flow: str
    state: str  # one of names.RELEASE_STATES, or "unknown"
    blocks: bool
    reason: str


@dataclass
class Decision:
    agent: str
    ship: bool
    verdicts: list[Verdict] = field(default_factory=list)
    problem: str | None = None  # set when the gate failed closed without readings
    override: dict[str, Any] | None = None

    @property
    def blocking(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.blocks]


def scope(spec: Spec, flows: Sequence[str] = (), change_kind: str | None = None) -> list[tuple[str, str]]:
    """The (slo, flow) pairs a change touches: the change kind's SLOs (else the gate's, else all),
    restricted to `flows` when given. Raises ValueError for an unknown flow or change kind."""
    gate = spec.release_gate
    unknown = [f for f in flows if f not in spec.flows]
    if unknown:
        raise ValueError(f"unknown flow(s) {', '.join(unknown)}; the spec declares: {', '.join(spec.flows)}")
    if change_kind is not None and gate.change_kinds:
        if change_kind not in gate.change_kinds:
            known = ", ".join(gate.change_kinds)
            raise ValueError(
                f"unknown change kind {change_kind!r}; release_gate.change_kinds declares: {known}"
            )
        slos: Iterable[str] = gate.change_kinds[change_kind]
    else:
        slos = gate.slos if gate.slos is not None else spec.slos
    return [(slo, flow) for slo in slos for flow in spec.flows_of(slo) if not flows or flow in flows]


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.1f}%"


def _explain(spec: Spec, slo: str, r: Reading) -> str:
    parts = []
    if r.remaining is not None:
        left = "none" if r.remaining <= 0 else _pct(r.remaining)
        over = f" (overspent by {_pct(-r.remaining)})" if r.remaining < 0 else ""
        parts.append(f"{left} of the {spec.period_of(slo)} error budget left{over}")
    else:
        parts.append("budget remaining not recorded")
    burns = [f"{b:.2g}x over {w}" for w, b in (("1h", r.burn_1h), ("6h", r.burn_6h)) if b is not None]
    if burns:
        parts.append("burning " + ", ".join(burns))
    return "; ".join(parts)


def decide(
    spec: Spec, readings: Mapping[tuple[str, str], Reading], pairs: Sequence[tuple[str, str]]
) -> Decision:
    """Ship unless some (slo, flow) is at or past `release_gate.block_at`, or its state is unknown."""
    block_at = STATE_CODES[spec.release_gate.block_at]
    verdicts = []
    for slo, flow in pairs:
        r = readings.get((slo, flow), Reading())
        code = r.state
        if code is None:
            verdicts.append(
                Verdict(
                    slo, flow, "unknown", True, "no release state recorded (are the agent-slo rules loaded?)"
                )
            )
            continue
        state = names.RELEASE_STATES[min(max(code, 0), len(names.RELEASE_STATES) - 1)]
        verdicts.append(Verdict(slo, flow, state, code >= block_at, _explain(spec, slo, r)))
    return Decision(spec.agent, ship=not any(v.blocks for v in verdicts), verdicts=verdicts)


def read_state(
    base_url: str, agent: str, *, timeout: float = DEFAULT_TIMEOUT_S, token: str | None = None
) -> dict[tuple[str, str], Reading]:
    """The release state, budget remaining and burn rates of every SLO and flow of `agent`.

    Prometheus replicas in HA pairs record the same series twice with different external labels;
    the gate takes the worst of them (max state and burn, min budget left). Raises PrometheusError
    when any query cannot be answered."""
    client = PrometheusClient(base_url, timeout=timeout, token=token)
    sel = f'{{{names.L_AGENT}="{agent}"}}'
    by = f"by ({', '.join(LABELS)})"
    queries = {
        "state": f"max {by} ({names.RELEASE_STATE}{sel})",
        "remaining": f"min {by} ({names.ERROR_BUDGET_REMAINING}{sel})",
        "burn_1h": f"max {by} ({names.burn_rate('1h')}{sel})",
        "burn_6h": f"max {by} ({names.burn_rate('6h')}{sel})",
    }
    values: dict[tuple[str, str], dict[str, Any]] = {}
    for field_name, promql in queries.items():
        for labels, value, _ in client.query(promql):
            if math.isnan(value):  # not recorded in any meaningful sense
                continue
            key = (labels.get(names.L_SLO, ""), labels.get(names.L_FLOW, ""))
            values.setdefault(key, {})[field_name] = int(value) if field_name == "state" else value
    return {key: Reading(**v) for key, v in values.items()}


def gate(
    spec: Spec,
    prometheus: str,
    *,
    flows: Sequence[str] = (),
    change_kind: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    token: str | None = None,
) -> Decision:
    """Read Prometheus and decide; an unreachable Prometheus is a hold (fail closed)."""
    pairs = scope(spec, flows, change_kind)
    try:
        readings = read_state(prometheus, spec.agent, timeout=timeout, token=token)
    except PrometheusError as exc:
        return Decision(spec.agent, ship=False, problem=f"{exc}; failing closed (hold)")
    return decide(spec, readings, pairs)


def apply_override(
    decision: Decision, reason: str, who: str, change_kind: str | None, flows: Sequence[str]
) -> None:
    """Let a held change ship, recording who and why on the decision."""
    decision.override = {
        "event": "release_gate_override",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "agent": decision.agent,
        "who": who,
        "reason": reason,
        "change_kind": change_kind,
        "flows": list(flows),
        "blocked_by": [f"{v.flow}/{v.slo}:{v.state}" for v in decision.blocking],
        "problem": decision.problem,
    }
    decision.ship = True


def record_override(
    exporter: str,
    decision: Decision,
    flows: Sequence[str],
    *,
    token: str | None = None,
    timeout: float = 10.0,
) -> list[str]:
    """POST the decision's override to the exporter, once per flow (once for the whole agent when no
    flow is given); returns the problems, empty when every one was counted."""
    assert decision.override is not None, "apply_override first"
    url = exporter.rstrip("/") + names.OVERRIDES_PATH
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    problems = []
    for flow in flows or (None,):
        body = {
            "agent": decision.agent,
            "reason": decision.override["reason"],
            "who": decision.override["who"],
        }
        body |= {"flow": flow} if flow is not None else {}
        request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            problems.append(f"{url} answered {exc.code}: {exc.read()[:300].decode(errors='replace')}")
        except (urllib.error.URLError, OSError) as exc:
            problems.append(f"{url} could not be reached: {exc}")
    return problems


def report(decision: Decision, out: TextIO) -> None:
    """The plain explanation: the answer first, then the SLOs that decide it, then the rest."""
    held = bool(decision.blocking or decision.problem)
    verb = "SHIP" if not held else ("SHIP (override)" if decision.override else "HOLD")
    if decision.problem:
        print(f"{verb}: {decision.agent}: {decision.problem}", file=out)
    else:
        n = len(decision.blocking)
        summary = (
            f"{n} of {len(decision.verdicts)} SLO/flow budgets block this change"
            if n
            else (f"all {len(decision.verdicts)} SLO/flow budgets this change touches allow it")
        )
        print(f"{verb}: {decision.agent}: {summary}", file=out)
    for v in sorted(decision.verdicts, key=lambda v: (not v.blocks, v.flow, v.slo)):
        mark = "x" if v.blocks else " "
        print(f"  [{mark}] {v.flow} / {v.slo}: {v.state}: {v.reason}", file=out)
    if decision.override:
        print(f"  override by {decision.override['who']}: {decision.override['reason']}", file=out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="the agent's SLO spec")
    parser.add_argument("--prometheus", required=True, metavar="URL", help="Prometheus base URL")
    parser.add_argument("--flow", action="append", default=[], metavar="F", help="a flow the change touches")
    parser.add_argument("--change-kind", metavar="K", help="kind of change (release_gate.change_kinds)")
    parser.add_argument("--override", metavar="REASON", help="ship even if held; recorded with who and why")
    parser.add_argument("--who", default=None, help="who overrides (default: $USER)")
    parser.add_argument(
        "--exporter", metavar="URL", help="also count an override at this exporter (POST /v1/gate/overrides)"
    )
    parser.add_argument(
        "--exporter-token-env", metavar="NAME", help="environment variable holding the exporter's token"
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per Prometheus query"
    )
    parser.add_argument(
        "--bearer-token-env", metavar="NAME", help="environment variable holding a token for Prometheus"
    )
    parser.add_argument("--json", action="store_true", help="print the decision as JSON on stdout")
    parser.add_argument(
        "--audit-log", metavar="FILE", help="also append each override's JSON line to FILE (an audit trail)"
    )


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    token = os.environ.get(args.bearer_token_env) if args.bearer_token_env else None
    try:
        decision = gate(
            spec,
            args.prometheus,
            flows=args.flow,
            change_kind=args.change_kind,
            timeout=args.timeout,
            token=token,
        )
    except ValueError as exc:
        print(f"agent-slo gate: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not decision.ship and args.override:
        who = args.who or os.environ.get("USER") or getpass.getuser()
        apply_override(decision, args.override, who, args.change_kind, args.flow)
        line = json.dumps(decision.override, sort_keys=True)
        print(line, file=sys.stderr)
        if args.audit_log:
            with open(args.audit_log, "a", encoding="utf-8") as audit:
                audit.write(line + "\n")
        if args.exporter:
            exporter_token = os.environ.get(args.exporter_token_env) if args.exporter_token_env else None
            for problem in record_override(args.exporter, decision, args.flow, token=exporter_token):
                print(f"agent-slo gate: the override ships but was not counted: {problem}", file=sys.stderr)
    if args.json:
        body = asdict(decision) | {"blocking": [asdict(v) for v in decision.blocking]}
        print(json.dumps(body, indent=2))
    else:
        report(decision, sys.stdout)
    return EXIT_SHIP if decision.ship else EXIT_HOLD
