"""The `agent-slo` command line: the only module that imports every feature package.

Each feature package owns its subcommand in `<package>/command.py` with two functions,
`add_arguments(parser)` and `run(args) -> int`; this module wires them up, loads the specs once
and maps errors to exit codes: 0 ok, 1 a check failed (gate closed, generated files drifted),
2 bad input. Options common to every command come before it, and logging is set up here, once:

    agent-slo --version
    agent-slo --log-level debug --log-format json serve examples/cx-support.slo.yaml
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from agentslo import __version__, logs
from agentslo.spec import SpecError

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT = 0, 1, 2

# subcommand → (module owning it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": (
        "agentslo.explain",
        "check specs and scenarios; explain objectives, budgets and alert tiers",
    ),
    "rules": ("agentslo.rules.command", "generate Prometheus recording and alerting rules"),
    "dashboards": ("agentslo.dashboards.command", "generate Grafana dashboards (grafanalib)"),
    "build": (
        "agentslo.bundle.build",
        "rules + promtool tests + dashboards + Prometheus/Alertmanager/Grafana config",
    ),
    "serve": ("agentslo.exporter.command", "run the exporter (ingest API, /metrics, autonomy API)"),
    "probe": ("agentslo.synthetic.command", "run the synthetic prober"),
    "calibrate": ("agentslo.feedback.calibrate", "measure a judge against human-labelled sessions"),
    "gate": ("agentslo.gate", "release gate: may a change ship, given the error budgets?"),
    "schema": ("agentslo.schema", "print the JSON Schema of the SLO YAML"),
    "demo": ("agentslo.demo.command", "the whole loop on this machine, no API key or Docker needed"),
    "report": ("agentslo.review.report", "the weekly SLO review (HTML or Markdown) from Prometheus history"),
    "suggest": ("agentslo.review.suggest", "objectives per SLO and flow suggested from Prometheus history"),
    "backtest": ("agentslo.review.backtest", "which alerts a spec would have fired over Prometheus history"),
}


def _parser(modules: dict[str, Any]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agent-slo", description="SLOs, error budgets and burn-rate alerts for AI agents."
    )
    parser.add_argument("--version", action="version", version=f"agent-slo {__version__}")
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=logs.LEVELS,
        help="least severe log records shown (default: info for `serve` and the prober's loop, "
        "warning for the one-shot commands)",
    )
    parser.add_argument(
        "--log-format", choices=logs.FORMATS, default="text", help="log lines as text or JSON objects"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        module = modules.get(name)
        if module is not None:
            module.add_arguments(p)
    return parser


def _load(name: str) -> Any:
    module = COMMANDS[name][0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # Only a missing feature package means "not installed"; a missing dependency is a real error.
        if exc.name is not None and module.startswith(exc.name):
            return None
        raise


def _log_level(args: argparse.Namespace) -> str:
    """--log-level, else what the command printed before the flag existed: the long-running services
    (the exporter, the prober's loop) log their progress; one-shot commands only warnings."""
    if args.log_level:
        return str(args.log_level)
    looping_probe = args.command == "probe" and not (args.once or args.quiet)
    return "info" if args.command == "serve" or looping_probe else "warning"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    wanted = next((a for a in argv if a in COMMANDS), None)
    # Import only the package behind the requested subcommand (keeps `validate` fast), all of them
    # for --help, none for --version.
    lazy = wanted is None and "--version" in argv
    modules = {} if lazy else {n: _load(n) for n in COMMANDS if wanted is None or n == wanted}
    parser = _parser(modules)
    args = parser.parse_args(argv)
    logs.configure(_log_level(args), args.log_format)
    module = modules.get(args.command)
    if module is None:
        print(f"agent-slo {args.command}: not available in this installation", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return int(module.run(args))
    except SpecError as exc:
        print(exc, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
