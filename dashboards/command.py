"""`agent-slo dashboards SPEC... -o DIR [--check]`: write the Grafana dashboards, or check them (CI)."""

from __future__ import annotations

import argparse

from agentslo.dashboards import generate_files
from agentslo.output import write_or_check
from agentslo.spec import load_specs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("specs", nargs="+", metavar="SPEC", help="SLO spec files (agent-slo/v1 YAML)")
    parser.add_argument(
        "-o", "--output", required=True, metavar="DIR", help="directory for the dashboard JSON"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when the files in DIR differ from the specs",
    )


def run(args: argparse.Namespace) -> int:
    """Generate the four dashboards for all specs together (one `agent` variable spans them)."""
    return write_or_check(generate_files(load_specs(args.specs)), args.output, args.check)
