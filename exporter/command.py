"""`agent-slo serve SPEC...`: run the exporter.

    agent-slo serve examples/cx-support.slo.yaml --db /var/lib/agent-slo/counters.db \\
        --prometheus-url http://prometheus:9090

Listening beyond loopback needs a bearer token (`--token` or `AGENT_SLO_TOKEN`), because the API
accepts writes and (with the judges installed) serves transcripts.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

from aiohttp import web

from agentslo.exporter import config as defaults
from agentslo.exporter.app import create_app
from agentslo.exporter.config import ExporterConfig
from agentslo.exporter.intake import server_options
from agentslo.spec import load_specs

TOKEN_ENV = "AGENT_SLO_TOKEN"
PROMETHEUS_TOKEN_ENV = "AGENT_SLO_PROMETHEUS_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("specs", nargs="+", metavar="SPEC", help="SLO spec files (one per agent)")
    parser.add_argument(
        "--host", default=defaults.DEFAULT_HOST, help="address to listen on (default: %(default)s)"
    )
    parser.add_argument("--port", type=int, default=defaults.DEFAULT_PORT, help="port (default: %(default)s)")
    parser.add_argument("--db", help="SQLite file for durable counters (default: in memory, lost on restart)")
    parser.add_argument(
        "--sync",
        choices=("full", "normal"),
        default="full",
        help="SQLite fsync policy: full survives power loss, normal only a crash (default: full)",
    )
    parser.add_argument("--token", default=None, help=f"bearer token for the API (or env {TOKEN_ENV})")
    parser.add_argument("--prometheus-url", help="Prometheus base URL for GET /v1/autonomy")
    parser.add_argument(
        "--prometheus-token",
        default=None,
        help=f"bearer token for Prometheus (or env {PROMETHEUS_TOKEN_ENV})",
    )
    parser.add_argument(
        "--prometheus-user",
        help="basic-auth user for Prometheus (password in env AGENT_SLO_PROMETHEUS_PASSWORD)",
    )
    parser.add_argument("--prometheus-ca", help="CA bundle to verify Prometheus' TLS certificate")
    parser.add_argument(
        "--prometheus-insecure", action="store_true", help="do not verify Prometheus' TLS certificate"
    )
    parser.add_argument("--max-body-bytes", type=int, default=defaults.DEFAULT_MAX_BODY_BYTES)
    parser.add_argument(
        "--max-pending",
        type=int,
        default=defaults.DEFAULT_MAX_PENDING_BATCHES,
        help="batches queued for the writer before answering 429",
    )
    parser.add_argument(
        "--idempotency-horizon",
        type=float,
        default=defaults.DEFAULT_IDEMPOTENCY_HORIZON_S,
        help="seconds an Idempotency-Key is remembered (default: a day)",
    )
    parser.add_argument(
        "--max-idempotency-keys",
        type=int,
        default=defaults.DEFAULT_MAX_IDEMPOTENCY_KEYS,
        help="Idempotency-Keys remembered at most, the oldest forgotten first (default: %(default)s)",
    )
    parser.add_argument(
        "--max-span-keys",
        type=int,
        default=defaults.DEFAULT_MAX_SPAN_KEYS,
        help="OTLP span keys remembered at most for exactly-once within the horizon, the oldest "
        "forgotten first (default: %(default)s, up to ~100 bytes each in memory)",
    )
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a web origin (https://host:port) allowed to write; others are refused (repeatable)",
    )
    parser.add_argument(
        "--max-scenarios",
        type=int,
        default=defaults.DEFAULT_MAX_SCENARIOS,
        help="distinct synthetic scenarios per agent and flow before folding into `other`",
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def config_from(args: argparse.Namespace) -> ExporterConfig:
    password = os.environ.get("AGENT_SLO_PROMETHEUS_PASSWORD", "")
    return ExporterConfig(
        db_path=args.db,
        token=args.token or os.environ.get(TOKEN_ENV) or None,
        synchronous=args.sync,
        max_body_bytes=args.max_body_bytes,
        max_pending_batches=args.max_pending,
        idempotency_horizon_s=args.idempotency_horizon,
        max_idempotency_keys=args.max_idempotency_keys,
        max_span_keys=args.max_span_keys,
        allowed_origins=tuple(args.allow_origin),
        max_scenarios=args.max_scenarios,
        prometheus_url=args.prometheus_url,
        prometheus_token=args.prometheus_token or os.environ.get(PROMETHEUS_TOKEN_ENV) or None,
        prometheus_basic_auth=(args.prometheus_user, password) if args.prometheus_user else None,
        prometheus_ca_file=args.prometheus_ca,
        prometheus_insecure=args.prometheus_insecure,
    )


def run(args: argparse.Namespace) -> int:
    specs = load_specs(args.specs)
    config = config_from(args)
    if not _is_loopback(args.host) and not config.token:
        print(
            f"agent-slo serve: refusing to listen on {args.host} without a token; set --token or {TOKEN_ENV} "
            "(or listen on 127.0.0.1)",
            file=sys.stderr,
        )
        return 2
    app = create_app(list(specs), config)
    agents = ", ".join(s.agent for s in specs)
    print(
        f"agent-slo exporter for {agents} on http://{args.host}:{args.port} "
        f"(counters: {config.db_path or 'in memory'})",
        file=sys.stderr,
        flush=True,
    )
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None, **server_options(config))
    return 0
