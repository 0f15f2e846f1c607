"""Command-line options shared by `agent-slo report`, `suggest` and `backtest`, and their error exit.

    parser = argparse.ArgumentParser()
    add_history_arguments(parser, days=30)
    args = parser.parse_args(["spec.yaml", "--prometheus", "http://127.0.0.1:9090"])
    history = history_from(args)                       # a History over the core's PrometheusClient
    code = guarded("agent-slo suggest", lambda: 0)     # HistoryError / PrometheusError → message, 2

Prometheus access is the gate's and the autonomy API's: `--bearer-token-env` (a variable holding a
token, never the token on the command line), `--basic-auth-env` (`user:password`), `--ca-file`,
`--insecure`, and `--timeout` per query. `--end` pins the end of the range (RFC 3339 or unix
seconds; default now), so a review can be re-run over the same history.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from collections.abc import Callable
from typing import Final

from agentslo.prometheus import DEFAULT_TIMEOUT_S, PrometheusClient, PrometheusError
from agentslo.review.history import DEFAULT_MAX_SERIES, History, HistoryError

EXIT_BAD_INPUT: Final = 2
# A review reads weeks of data: each query gets longer than the gate's instant reads.
HISTORY_TIMEOUT_S: Final = max(DEFAULT_TIMEOUT_S, 60.0)


def add_history_arguments(parser: argparse.ArgumentParser, *, days: float) -> None:
    """SPEC..., --prometheus, --days (default `days`), --end and the access and bound options."""
    parser.add_argument("specs", nargs="+", metavar="SPEC", help="SLO spec files (agent-slo/v1 YAML)")
    parser.add_argument("--prometheus", required=True, metavar="URL", help="Prometheus base URL")
    parser.add_argument(
        "--days", type=float, default=days, help=f"how many days of history to read (default {days:g})"
    )
    parser.add_argument(
        "--end",
        metavar="TIME",
        type=parse_time,
        help="end of the range: RFC 3339 or unix seconds (default now)",
    )
    parser.add_argument(
        "--timeout", type=float, default=HISTORY_TIMEOUT_S, help="seconds per Prometheus query"
    )
    parser.add_argument(
        "--bearer-token-env", metavar="NAME", help="environment variable holding a token for Prometheus"
    )
    parser.add_argument(
        "--basic-auth-env", metavar="NAME", help="environment variable holding user:password for Prometheus"
    )
    parser.add_argument("--ca-file", metavar="FILE", help="CA bundle to verify Prometheus' TLS certificate")
    parser.add_argument("--insecure", action="store_true", help="do not verify Prometheus' TLS certificate")
    parser.add_argument(
        "--max-series",
        type=int,
        default=DEFAULT_MAX_SERIES,
        help=f"refuse a read of more series than this (default {DEFAULT_MAX_SERIES})",
    )


def parse_time(text: str) -> float:
    """RFC 3339 (`2026-12-01T00:00:00Z`) or unix seconds, as unix seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither RFC 3339 nor unix seconds") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset (Z or +hh:mm)")
    return moment.timestamp()


def history_from(args: argparse.Namespace) -> History:
    """A bounded History over a PrometheusClient built from the parsed options."""
    token = os.environ.get(args.bearer_token_env) if args.bearer_token_env else None
    basic: tuple[str, str] | None = None
    if args.basic_auth_env:
        user, sep, password = os.environ.get(args.basic_auth_env, "").partition(":")
        if not sep:
            raise HistoryError(
                f"--basic-auth-env {args.basic_auth_env}: the variable must hold user:password"
            )
        basic = (user, password)
    client = PrometheusClient(
        args.prometheus,
        timeout=args.timeout,
        token=token,
        basic_auth=basic,
        ca_file=args.ca_file,
        insecure=args.insecure,
    )
    return History(client, max_series=args.max_series)


def guarded(command: str, body: Callable[[], int]) -> int:
    """Run a command's body; history that cannot answer, or a Prometheus that cannot, is a message
    on stderr and exit 2 (bad input), never a traceback."""
    try:
        return body()
    except (HistoryError, PrometheusError) as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
