"""`agent-slo rules`: write the rule files of every spec (`--check`: compare them).

agent-slo rules SPEC... -o DIR [--format prometheus|prometheus-operator] [--metadata-label k=v] [--check]
"""

from __future__ import annotations

import argparse
import sys

from agentslo.output import write_or_check
from agentslo.rules.generate import FORMATS, generate_files
from agentslo.spec import load_specs

EXIT_BAD_INPUT = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("specs", nargs="+", metavar="SPEC", help="SLO spec files (agent-slo/v1 YAML)")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for the rule files")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="prometheus",
        help="a Prometheus rule file, or a PrometheusRule object for the Prometheus Operator",
    )
    parser.add_argument(
        "--metadata-label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="label on the PrometheusRule objects (repeatable), so the operator's ruleSelector selects them",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when the files on disk differ"
    )


def _labels(pairs: list[str]) -> dict[str, str] | None:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--metadata-label {pair!r} must look like key=value")
        out[key] = value
    return out


def run(args: argparse.Namespace) -> int:
    try:
        labels = _labels(args.metadata_label)
    except ValueError as exc:
        print(f"agent-slo rules: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    specs = load_specs(args.specs)
    try:
        files = generate_files(list(specs), args.format, labels)
    except ValueError as exc:
        print(f"agent-slo rules: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return write_or_check(files, args.output, args.check)
