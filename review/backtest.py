"""`agent-slo backtest`: which alerts a spec would have fired over the history Prometheus holds.

    agent-slo backtest examples/cx-support.slo.yaml --prometheus http://127.0.0.1:9090 --days 30
    agent-slo backtest new.slo.yaml --prometheus URL --against current.slo.yaml   # side by side
    agent-slo backtest spec.yaml --prometheus URL --json   # {"alerts": [{alertname, agent, slo, ...}]}

It reads the agent's raw `agent_slo_events_total` samples over the range (plus what the longest
window needs before it, where history has it) and replays the SLO alerts the spec generates at the
rules' evaluation interval (`review.replay`: Prometheus' `increase()`, the 5m buckets, the long
windows, `for:`), so a candidate spec is judged on the history, not on recordings it never had.
The result equals what Prometheus running the generated rules fires; `tests/test_review_backtest.py`
proves it against Prometheus' own rule engine (`promtool test rules`).

It prints each firing interval (start, end, duration), and pages (critical) and tickets (warning)
per week; `--against OTHER` replays a second spec of the same agent over the same samples and prints
both per SLO, flow and alert. Exit 2 when Prometheus cannot be reached or holds less history than
asked.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any, Final, TextIO

from agentslo import names
from agentslo.durations import parse_duration
from agentslo.review import replay
from agentslo.review.history import WEEK, AlertInterval, History, Span, iso
from agentslo.review.options import add_history_arguments, guarded, history_from
from agentslo.rules._plan import Plan
from agentslo.spec import Spec, load_spec, load_specs

PAGE_SEVERITY: Final = "critical"
TICKET_SEVERITY: Final = "warning"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_history_arguments(parser, days=30)
    parser.add_argument(
        "--against", metavar="SPEC", help="another spec of the same agent, replayed over the same history"
    )
    parser.add_argument("--json", action="store_true", help="print the alerts as JSON on stdout")


def backtest(history: History, span: Span, *specs: Spec) -> list[list[AlertInterval]]:
    """The SLO alerts each spec (all of one agent) fires over `span`, replayed from one read of the
    raw counters (see review.replay); the read reaches back as far as the longest window needs."""
    lookback = max(parse_duration(w) for s in specs for w in (*Plan(s).windows, *Plan(s).period_only))
    first = span.first_sample if span.first_sample is not None else span.start
    raw = history.raw_counters(specs[0].agent, max(span.start - lookback, first), span.end)
    return [replay.alerts_of(replay.replay(spec, raw, span.start, span.end)) for spec in specs]


def as_json(alert: AlertInterval) -> dict[str, Any]:
    """The contract's keys of one backtested alert (times RFC 3339; `end` null while still firing)."""
    return {
        "alertname": alert.alertname,
        names.L_AGENT: alert.labels.get(names.L_AGENT),
        names.L_SLO: alert.labels.get(names.L_SLO),
        names.L_FLOW: alert.labels.get(names.L_FLOW),
        names.L_SEVERITY: alert.severity,
        names.L_BURN_TIER: alert.burn_tier,
        "start": iso(alert.start),
        "end": iso(alert.end),
        "labels": dict(alert.labels),
    }


def per_week(alerts: Sequence[AlertInterval], span: Span, severity: str) -> float:
    """Firing intervals of a severity that began in the span, per week of the span."""
    n = sum(1 for a in alerts if a.severity == severity and a.start >= span.start)
    return n * WEEK / span.seconds if span.seconds > 0 else 0.0


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    return (f"{days}d" if days else "") + (f"{hours}h" if hours or days else "") + f"{minutes:02d}m"


def _what(alert: AlertInterval) -> str:
    return alert.burn_tier or alert.alertname.removeprefix("AgentSLO")


def print_alerts(spec: Spec, span: Span, alerts: Sequence[AlertInterval], out: TextIO) -> None:
    pages, tickets = per_week(alerts, span, PAGE_SEVERITY), per_week(alerts, span, TICKET_SEVERITY)
    print(
        f"{spec.agent}: {len(alerts)} alert(s) from {iso(span.start)} to {iso(span.end)}"
        f" ({span.seconds / 86400:.0f} days): {pages:.1f} pages and {tickets:.1f} tickets per week",
        file=out,
    )
    for a in alerts:
        end = iso(a.end) or "still firing"
        print(
            f"  {iso(a.start)}  {end:<20}  {_duration(a.duration(span.end)):>9}  {a.severity or '':<8}"
            f"  {a.key.slo} / {a.key.flow}: {_what(a)}",
            file=out,
        )


def print_side_by_side(
    span: Span,
    left: tuple[str, Sequence[AlertInterval]],
    right: tuple[str, Sequence[AlertInterval]],
    out: TextIO,
) -> None:
    """Per SLO, flow and alert: how often and how long each spec fired."""
    rows: dict[tuple[str, str, str], list[tuple[int, float]]] = {}
    for side, (_, alerts) in enumerate((left, right)):
        counts: Counter[tuple[str, str, str]] = Counter()
        seconds: dict[tuple[str, str, str], float] = {}
        for a in alerts:
            key = (a.key.slo, a.key.flow, _what(a))
            counts[key] += 1
            seconds[key] = seconds.get(key, 0.0) + a.duration(span.end)
        for key in counts:
            rows.setdefault(key, [(0, 0.0), (0, 0.0)])[side] = (counts[key], seconds[key])
    width = max([len(left[0]), len(right[0]), 20])
    print(f"  {'slo / flow: alert':<48}  {left[0]:>{width}}  {right[0]:>{width}}", file=out)
    for (slo, flow, what), cells in sorted(rows.items()):
        text = [f"{n}x {_duration(s)}" if n else "-" for n, s in cells]
        print(f"  {f'{slo} / {flow}: {what}':<48}  {text[0]:>{width}}  {text[1]:>{width}}", file=out)
    for label, severity in (("pages/week", PAGE_SEVERITY), ("tickets/week", TICKET_SEVERITY)):
        mine, theirs = per_week(left[1], span, severity), per_week(right[1], span, severity)
        print(f"  {label:<48}  {mine:>{width}.1f}  {theirs:>{width}.1f}", file=out)


def run(args: argparse.Namespace) -> int:
    specs = load_specs(args.specs)
    other = load_spec(args.against) if args.against else None
    if other is not None and (len(specs) != 1 or specs[0].agent != other.agent):
        print(
            f"agent-slo backtest: --against compares two specs of one agent: give one SPEC of agent "
            f"{other.agent!r} (got {', '.join(repr(s.agent) for s in specs)})",
            file=sys.stderr,
        )
        return 2

    def body() -> int:
        history = history_from(args)
        results = []
        for spec in specs:
            span = history.span(spec.agent, args.days, end=args.end)
            found = backtest(history, span, spec, *([other] if other else []))
            results.append((spec, span, found[0], found[1] if other else None))
        if args.json:
            alerts = [as_json(a) for _, _, mine, _ in results for a in mine]
            body: dict[str, Any] = {"alerts": alerts}
            if other is not None:
                body["against"] = {"spec": args.against, "alerts": [as_json(a) for a in results[0][3] or []]}
            print(json.dumps(body, indent=2))
            return 0
        for spec, span, mine, theirs in results:
            print_alerts(spec, span, mine, sys.stdout)
            if other is not None and theirs is not None:
                print(f"\n{args.against}:", file=sys.stdout)
                print_alerts(other, span, theirs, sys.stdout)
                print("\nside by side:", file=sys.stdout)
                print_side_by_side(span, (args.specs[0], mine), (args.against, theirs), sys.stdout)
        return 0

    return guarded("agent-slo backtest", body)
