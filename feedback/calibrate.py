"""`agent-slo calibrate SPEC --judge NAME --dataset FILE`: how far to trust a judge.

Runs the judge over human-labelled sessions (the calibration JSONL the exporter exports at
`/v1/datasets/calibration.jsonl`) and reports agreement with the humans, Cohen's kappa, the true
positive rate (real failures the judge fails) and true negative rate (good sessions it passes) at
the spec's pass threshold, and the threshold that best separates the two (Youden's J). With
`--exporter URL` the agreement is published as `agent_slo_judge_agreement_ratio` for the judge's
current version.

Exit status: 0 when agreement reaches the judge's `agreement_floor`, 1 when it does not, 2 for bad
input (unknown judge, unreadable dataset, nothing judged).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp

from agentslo.feedback.datasets import DatasetError, LabelledCase, read_dataset
from agentslo.judges import run_judge
from agentslo.judges.llm import close_clients
from agentslo.judges.model import Verdict
from agentslo.spec import LLMJudge, RuleJudge, load_spec

EXIT_OK, EXIT_BELOW_FLOOR, EXIT_BAD_INPUT = 0, 1, 2
DEFAULT_TOKEN_ENV = "AGENT_SLO_TOKEN"
PUSH_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Agreement:
    """Judge-vs-human figures at one threshold; the positive class is *failure* (what judges catch)."""

    threshold: float
    n: int
    agreement: float
    kappa: float | None  # undefined when both raters say the same thing every time
    tpr: float | None  # failures the judge caught / human-labelled failures
    tnr: float | None  # passes the judge passed / human-labelled passes


def agreement_at(pairs: Sequence[tuple[float, bool]], threshold: float) -> Agreement:
    """Agreement of `score >= threshold` (judge pass) with the human pass/fail of each pair."""
    n = len(pairs)
    tp = sum(1 for s, h in pairs if s < threshold and not h)
    tn = sum(1 for s, h in pairs if s >= threshold and h)
    fails = sum(1 for _, h in pairs if not h)
    passes = n - fails
    judged_fail = sum(1 for s, _ in pairs if s < threshold)
    po = (tp + tn) / n if n else 0.0
    pe = ((judged_fail * fails) + ((n - judged_fail) * passes)) / (n * n) if n else 0.0
    kappa = None if pe >= 1.0 else (po - pe) / (1.0 - pe)
    return Agreement(
        threshold=threshold,
        n=n,
        agreement=po,
        kappa=kappa,
        tpr=tp / fails if fails else None,
        tnr=tn / passes if passes else None,
    )


def best_threshold(pairs: Sequence[tuple[float, bool]], current: float) -> Agreement | None:
    """The threshold with the highest Youden's J (TPR + TNR - 1); ties go to the one nearest `current`.
    None unless both humans' classes are present."""
    if not any(h for _, h in pairs) or all(h for _, h in pairs):
        return None
    scores = sorted({s for s, _ in pairs})
    # Candidates: every observed score, and just above the highest (fail everything).
    candidates = [*scores, min(1.0, scores[-1] + 1e-9) if scores[-1] < 1.0 else 1.0 + 1e-9]

    def key(a: Agreement) -> tuple[float, float]:
        return ((a.tpr or 0.0) + (a.tnr or 0.0) - 1.0, -abs(a.threshold - current))

    return max((agreement_at(pairs, t) for t in candidates), key=key)


async def _judge_all(name: str, judge: LLMJudge | RuleJudge, cases: list[LabelledCase]) -> list[Verdict]:
    try:
        return list(await asyncio.gather(*(run_judge(name, judge, c.case) for c in cases)))
    finally:
        await close_clients()


async def _push(url: str, judge: str, body: dict[str, Any], token: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = aiohttp.ClientTimeout(total=PUSH_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async with http.post(
            f"{url.rstrip('/')}/v1/judges/{judge}/agreement", json=body, headers=headers
        ) as resp:
            if resp.status >= 300:
                raise RuntimeError(f"the exporter answered HTTP {resp.status}: {(await resp.text())[:300]}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="the SLO spec declaring the judge")
    parser.add_argument("--judge", required=True, help="the judge to calibrate (a key of the spec's judges)")
    parser.add_argument(
        "--dataset", required=True, metavar="FILE", help="labelled sessions (calibration JSONL)"
    )
    parser.add_argument("--base-url", help="OpenAI-compatible API for an llm judge (overrides the spec)")
    parser.add_argument("--exporter", metavar="URL", help="publish the agreement to this exporter")
    parser.add_argument(
        "--token-env",
        default=DEFAULT_TOKEN_ENV,
        help=f"environment variable holding the exporter's token (default {DEFAULT_TOKEN_ENV})",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    judge = spec.judges.get(args.judge)
    if judge is None:
        print(
            f"calibrate: the spec of {spec.agent} has no judge {args.judge!r}; declared: "
            f"{', '.join(sorted(spec.judges)) or 'none'}",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if args.base_url and isinstance(judge, LLMJudge):
        judge = judge.model_copy(update={"base_url": args.base_url})
    try:
        cases = [c for c in read_dataset(args.dataset) if c.judge in (None, args.judge)]
    except DatasetError as exc:
        print(f"calibrate: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not cases:
        print(f"calibrate: {args.dataset} has no labelled sessions for judge {args.judge}", file=sys.stderr)
        return EXIT_BAD_INPUT
    verdicts = asyncio.run(_judge_all(args.judge, judge, cases))
    outcomes = Counter(v.outcome for v in verdicts)
    pairs = [
        (float(v.score), c.human_pass)
        for c, v in zip(cases, verdicts, strict=True)
        if v.ok and v.score is not None
    ]
    if not pairs:
        print(
            f"calibrate: the judge produced no verdict on any of {len(cases)} sessions: {dict(outcomes)}",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    at = agreement_at(pairs, judge.pass_threshold)
    best = best_threshold(pairs, judge.pass_threshold)
    report = {
        "agent": spec.agent,
        "judge": args.judge,
        "judge_version": judge.version,
        "dataset": args.dataset,
        "sessions": len(cases),
        "judged": len(pairs),
        "outcomes": dict(outcomes),
        "at_pass_threshold": asdict(at),
        "best": asdict(best) if best else None,
        "agreement_floor": judge.agreement_floor,
        "below_floor": at.agreement < judge.agreement_floor,
        "cost_usd": round(sum(v.cost_usd for v in verdicts), 6),
        "tokens": {
            "input": sum(v.input_tokens for v in verdicts),
            "output": sum(v.output_tokens for v in verdicts),
        },
    }
    if args.exporter:
        body = {"agent": spec.agent, "judge_version": judge.version, "ratio": at.agreement, "n": at.n}
        try:
            asyncio.run(_push(args.exporter, args.judge, body, os.environ.get(args.token_env)))
            report["published_to"] = args.exporter
        except (aiohttp.ClientError, RuntimeError, TimeoutError) as exc:
            print(f"calibrate: could not publish to {args.exporter}: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report, at, best, judge)
    return EXIT_BELOW_FLOOR if report["below_floor"] else EXIT_OK


def _print_report(
    report: dict[str, Any], at: Agreement, best: Agreement | None, judge: LLMJudge | RuleJudge
) -> None:
    what = f"model {judge.model}" if isinstance(judge, LLMJudge) else "rule"
    failed = {k: v for k, v in report["outcomes"].items() if k != "ok"}
    print(
        f"judge {report['judge']} v{report['judge_version']} ({what}) on {report['sessions']} labelled "
        f"session(s) from {report['dataset']}"
    )
    print(f"  judged {report['judged']}" + (f"; no verdict: {failed}" if failed else ""))
    print(
        f"  at pass_threshold {at.threshold:g}: agreement {_fmt(at.agreement)}, "
        f"Cohen's kappa {_fmt(at.kappa)}, TPR (failures caught) {_fmt(at.tpr)}, "
        f"TNR (passes kept) {_fmt(at.tnr)}"
    )
    if best is not None:
        print(
            f"  best-separating threshold {best.threshold:.3g}: agreement {_fmt(best.agreement)}, "
            f"kappa {_fmt(best.kappa)}, TPR {_fmt(best.tpr)}, TNR {_fmt(best.tnr)}"
        )
    else:
        print("  best-separating threshold: n/a (the dataset needs both human passes and failures)")
    verdict = "BELOW" if report["below_floor"] else "meets"
    print(f"  agreement {verdict} the floor {judge.agreement_floor:g}")
    if isinstance(judge, LLMJudge):
        t = report["tokens"]
        print(f"  judge cost ${report['cost_usd']:.4f} ({t['input']} input + {t['output']} output tokens)")
    if "published_to" in report:
        print(f"  published agent_slo_judge_agreement_ratio to {report['published_to']}")
