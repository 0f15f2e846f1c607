"""`agent-slo suggest`: objectives per SLO and flow from the history Prometheus holds.

    agent-slo suggest examples/cx-support.slo.yaml --prometheus http://127.0.0.1:9090 --days 30
    agent-slo suggest spec.yaml --prometheus URL --json          # [{agent, slo, flow, ...}]
    agent-slo suggest spec.yaml --prometheus URL --write new.slo.yaml   # comments kept

The method, per SLO and flow, from the raw event counters (`review.history`):

1. the good ratio of every whole week of the range (of every day when the range is under two weeks);
2. the bound the data supports: the lowest of (a) the one-sided 95% lower confidence bound of the
   mean weekly ratio (Student's t, so four weeks are not trusted like forty), (b) the worst week, and
   (c) the 95% Wilson lower bound of the pooled ratio (so a flow with few events and no failures is not
   promised 100%);
3. the suggested objective: the highest of the sensible values (`SENSIBLE_OBJECTIVES`: 90, 95, 97.5,
   99, 99.5, 99.9 ...) at or under that bound: never above what the history supports.

Low traffic: at the suggested objective, the SLO's fastest page tier (`agentslo.burn`) needs its
long window to hold at least 1 / threshold events, or a single failure is alone over the threshold
and pages. A flow under that is flagged `low_traffic`, with what to do: a `min_events` guard, longer
windows, or synthetic traffic.

`--write FILE` writes the spec with each SLO's objective set to the lowest suggestion over its flows
(an objective holds for every flow it covers) and the per-flow suggestions in a comment beside it,
through ruamel.yaml's round trip, so the file's comments and layout stay as they were.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from ruamel.yaml import YAML

from agentslo import burn
from agentslo.durations import parse_duration
from agentslo.review.history import DAY, WEEK, EventCounts, History, SLOKey, Span
from agentslo.review.options import add_history_arguments, guarded, history_from
from agentslo.spec import Spec, load_specs, parse_spec

# Objectives people use; a suggestion is always one of these (the highest the data supports).
SENSIBLE_OBJECTIVES: Final = (50.0, 75.0, 80.0, 85.0, 90.0, 95.0, 97.5, 99.0, 99.5, 99.9, 99.95, 99.99)
CONFIDENCE_Z: Final = 1.645  # one-sided 95%
# One-sided 95% Student t quantiles by degrees of freedom (1-10); 1.645 beyond.
STUDENT_T_95: Final = (6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812)
MIN_WEEKS: Final = 2  # below two whole weeks, days are the samples
METHOD: Final = (
    "highest sensible objective at or under min(95% lower confidence bound of the mean {unit} good ratio, "
    "worst {unit}, 95% Wilson lower bound of the pooled ratio)"
)


@dataclass(frozen=True)
class Suggestion:
    """What the history says about one SLO on one flow (percentages as numbers, 99.2 for 99.2%)."""

    agent: str
    slo: str
    flow: str
    events_per_day: float
    observed: float | None  # the pooled good ratio over the range
    suggested_objective: float | None  # None: no events, or under every sensible value
    low_traffic: bool
    current_objective: float
    bound: float | None  # what the data supports, before snapping
    samples: list[float]  # the weekly (or daily) good ratios used
    unit: str  # "week" or "day"
    advice: str  # what to do about low traffic, or why there is no suggestion ("" when none needed)


def t_quantile(df: int) -> float:
    return STUDENT_T_95[df - 1] if 1 <= df <= len(STUDENT_T_95) else CONFIDENCE_Z


def wilson_lower(good: float, total: float, z: float = CONFIDENCE_Z) -> float:
    """The Wilson score interval's lower bound of a ratio, in percent."""
    if total <= 0:
        return 0.0
    p = good / total
    centre = p + z * z / (2 * total)
    spread = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    return 100.0 * (centre - spread) / (1 + z * z / total)


def supported_bound(samples: Sequence[float], good: float, total: float) -> float | None:
    """The highest objective (percent) the history supports (see the module docstring), or None."""
    if total <= 0 or not samples:
        return None
    bounds = [min(samples), wilson_lower(good, total)]
    if len(samples) >= 2:
        mean, sd = statistics.fmean(samples), statistics.stdev(samples)
        bounds.append(mean - t_quantile(len(samples) - 1) * sd / math.sqrt(len(samples)))
    return min(bounds)


def snap(bound: float | None) -> float | None:
    """The highest sensible objective at or under `bound`."""
    if bound is None:
        return None
    fitting = [o for o in SENSIBLE_OBJECTIVES if o <= bound + 1e-9]
    return fitting[-1] if fitting else None


def low_traffic_advice(spec: Spec, slo: str, objective: float, events_per_day: float) -> str:
    """Why a flow's traffic is too thin for burn-rate alerting at `objective`, and what to do ("" if
    it is not)."""
    tiers = burn.tiers(spec, slo, objective)
    pages = [t for t in tiers if t.name in burn.PAGE_TIERS] or tiers
    if not pages:
        return ""
    fastest = min(pages, key=lambda t: parse_duration(t.long))
    in_window = events_per_day * parse_duration(fastest.long) / DAY
    needed = math.ceil(1 / fastest.error_ratio)
    if in_window >= needed:
        return ""
    return (
        f"about {in_window:.1f} events per {fastest.long}: one failure alone is over the "
        f"{fastest.error_ratio:.1%} threshold of {fastest.name} at {objective:g}%, so it pages on noise. "
        f"Set alerting.min_events: {needed} on {slo} (no page until the {fastest.long} window holds that "
        f"many events), use longer windows (burn_rates), or send synthetic traffic to this flow (synthetic:)"
    )


def suggest(
    spec: Spec, span: Span, counts: Sequence[EventCounts], totals: dict[SLOKey, EventCounts]
) -> list[Suggestion]:
    """Suggestions for every event SLO and flow of the spec, from per-interval and whole-span counts."""
    unit = "week" if counts and counts[0].end - counts[0].start >= WEEK else "day"
    days = span.seconds / DAY
    out = []
    for slo, definition in spec.slos.items():
        if definition.sli.kind == "promql":
            continue  # not in agent_slo_events_total
        for flow in spec.flows_of(slo):
            key = SLOKey(spec.agent, slo, flow)
            total = totals.get(key)
            samples = [c.sli for c in counts if c.key == key and c.sli is not None]
            good, n = (total.good, total.total) if total else (0.0, 0.0)
            bound = supported_bound(samples, good, n)
            suggested = snap(bound)
            current = spec.objective_for(slo, flow)
            per_day = n / days if days > 0 else 0.0
            advice = low_traffic_advice(spec, slo, suggested or current, per_day) if n > 0 else ""
            if n <= 0:
                advice = "no events in the range: nothing to suggest from (is the flow live, and counted?)"
            elif suggested is None:
                floor = SENSIBLE_OBJECTIVES[0]
                advice = f"the history supports under {floor:g}%: fix the flow before setting a target"
            out.append(
                Suggestion(
                    spec.agent,
                    slo,
                    flow,
                    round(per_day, 3),
                    None if n <= 0 else round(100.0 * good / n, 4),
                    suggested,
                    n > 0 and bool(advice) and suggested is not None,
                    current,
                    None if bound is None else round(bound, 4),
                    [round(s, 4) for s in samples],
                    unit,
                    advice,
                )
            )
    return out


def for_spec(history: History, spec: Spec, days: float, end: float | None) -> list[Suggestion]:
    span = history.span(spec.agent, days, end=end)
    every = WEEK if span.seconds >= MIN_WEEKS * WEEK else DAY
    return suggest(spec, span, history.counts(span, spec.agent, every), history.totals(span, spec.agent))


def write_spec(source: Path, target: Path, suggestions: Sequence[Suggestion]) -> None:
    """`source` with each SLO's objective set to its lowest flow suggestion, comments kept; the result
    is validated before it is written."""
    yaml = YAML()  # round trip: comments, order and flow style survive
    yaml.preserve_quotes = True
    yaml.width = 4096
    data = yaml.load(source.read_text(encoding="utf-8"))
    for slo, definition in data.get("slos", {}).items():
        mine = [s for s in suggestions if s.slo == slo and s.suggested_objective is not None]
        if not mine:
            continue
        lowest = min(s.suggested_objective for s in mine if s.suggested_objective is not None)
        definition["objective"] = int(lowest) if lowest == int(lowest) else lowest
        note = ", ".join(f"{s.flow} {s.suggested_objective:g}" for s in mine)
        comment = f"suggested from history: {note}"
        if definition.fa.flow_style():  # `{sli: ..., objective: 99}`: the comment goes above the SLO
            column = data["slos"].lc.data[slo][1]
            data["slos"].yaml_set_comment_before_after_key(slo, before=comment, indent=column)
        else:
            definition.yaml_add_eol_comment(comment, "objective")
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    text = buffer.getvalue()
    parse_spec(text, str(target))  # a SpecError (exit 2) rather than a spec that does not load
    target.write_text(text, encoding="utf-8")


def print_table(suggestions: Sequence[Suggestion], span_days: float, out: Any) -> None:
    if not suggestions:
        return
    unit = suggestions[0].unit
    print(f"{suggestions[0].agent}: {span_days:.0f} days; method: {METHOD.format(unit=unit)}", file=out)
    print(f"  {'slo / flow':<40} {'events/day':>11} {'observed':>9} {'now':>6} {'suggested':>10}", file=out)
    for s in suggestions:
        observed = f"{s.observed:.2f}%" if s.observed is not None else "-"
        suggested = f"{s.suggested_objective:g}%" if s.suggested_objective is not None else "-"
        flag = "  LOW TRAFFIC" if s.low_traffic else ""
        print(
            f"  {f'{s.slo} / {s.flow}':<40} {s.events_per_day:>11.1f} {observed:>9}"
            f" {s.current_objective:>5g}% {suggested:>10}{flag}",
            file=out,
        )
        if s.advice:
            print(f"      {s.advice}", file=out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_history_arguments(parser, days=30)
    parser.add_argument("--json", action="store_true", help="print the suggestions as a JSON array")
    parser.add_argument(
        "--write",
        metavar="FILE",
        help="write the spec (one SPEC) with the suggested objectives, comments kept",
    )


def run(args: argparse.Namespace) -> int:
    specs = load_specs(args.specs)
    if args.write and len(specs) != 1:
        print("agent-slo suggest: --write takes exactly one SPEC", file=sys.stderr)
        return 2

    def body() -> int:
        history = history_from(args)
        results = [(spec, for_spec(history, spec, args.days, args.end)) for spec in specs]
        if args.json:
            print(json.dumps([asdict(s) for _, found in results for s in found], indent=2))
        else:
            for _, found in results:
                print_table(found, args.days, sys.stdout)
        if args.write:
            write_spec(Path(args.specs[0]), Path(args.write), results[0][1])
            print(f"wrote {args.write}", file=sys.stderr)
        return 0

    return guarded("agent-slo suggest", body)
