"""Run-time settings of the exporter (everything that is not in the SLO spec).

`ExporterConfig()` gives safe defaults for tests and in-process use: no persistence file (counters
live in memory), no token, loopback only. `agent-slo serve` fills it from its flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DEFAULT_PORT = 9120
DEFAULT_HOST = "127.0.0.1"
# 8 MiB holds a 1,000-event batch with room for long ids; larger bodies are answered 413.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
# Events per batch; a bigger batch is refused (413) rather than holding the writer for long.
DEFAULT_MAX_BATCH_EVENTS = 50_000
# Batches waiting for the single writer before new ones get 429 + Retry-After.
DEFAULT_MAX_PENDING_BATCHES = 64
# Seconds a client may take to send its body, and a batch may wait for the writer.
DEFAULT_READ_TIMEOUT_S = 30.0
DEFAULT_QUEUE_TIMEOUT_S = 10.0
# Seconds a connection may take to send a request's headers (and may sit idle between requests).
DEFAULT_HEADER_TIMEOUT_S = 10.0
# Once a body has had BODY_GRACE_S (exporter.intake) to start, it must keep coming at this average
# rate (8 MiB in about four minutes; the read timeout ends it sooner), or it is cut off with 408.
DEFAULT_MIN_BODY_BYTES_PER_S = 32 * 1024
# Bytes of request bodies being read at once (all connections together) before new ones get 429.
DEFAULT_MAX_READING_BYTES = 256 * 1024 * 1024
# Idempotency keys are remembered this long (a day covers any sane retry policy).
DEFAULT_IDEMPOTENCY_HORIZON_S = 24 * 3600.0
# Idempotency-Keys remembered at most (the oldest are forgotten first): ~780 bytes each on disk.
DEFAULT_MAX_IDEMPOTENCY_KEYS = 200_000
# OTLP span keys remembered for exactly-once (`exporter.otlp.seen`): up to ~100 bytes each in memory.
DEFAULT_MAX_SPAN_KEYS = 500_000
# Without --db, the remembered answers are bounded in bytes too (they live in the process's memory).
DEFAULT_MAX_IDEMPOTENCY_BYTES = 64 * 1024 * 1024
# Distinct synthetic scenario names per agent and flow before new ones fold into `other`.
DEFAULT_MAX_SCENARIOS = 200
# Distinct judge versions per judge before new ones fold into `other` (rollouts overlap a few versions).
DEFAULT_MAX_JUDGE_VERSIONS = 16
# Seconds an event's `time` may lie in the future (clock skew allowance, per the design).
MAX_FUTURE_SKEW_S = 300.0


@dataclass(frozen=True)
class ExporterConfig:
    """How one exporter process runs; the SLO specs say what it measures."""

    db_path: str | None = None  # SQLite file; None keeps counters in memory only (tests, benchmarks)
    token: str | None = None  # bearer token; required by `serve` when listening beyond loopback
    synchronous: Literal["normal", "full"] = "full"  # SQLite fsync policy (full: survive power loss)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_batch_events: int = DEFAULT_MAX_BATCH_EVENTS
    max_pending_batches: int = DEFAULT_MAX_PENDING_BATCHES
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    queue_timeout_s: float = DEFAULT_QUEUE_TIMEOUT_S
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    max_reading_bytes: int = DEFAULT_MAX_READING_BYTES
    min_body_bytes_per_s: float = DEFAULT_MIN_BODY_BYTES_PER_S
    # Web origins (scheme://host:port) allowed to write; others are refused (a page must not post events).
    allowed_origins: tuple[str, ...] = ()
    idempotency_horizon_s: float = DEFAULT_IDEMPOTENCY_HORIZON_S
    max_idempotency_keys: int = DEFAULT_MAX_IDEMPOTENCY_KEYS
    max_span_keys: int = DEFAULT_MAX_SPAN_KEYS
    max_idempotency_bytes: int = DEFAULT_MAX_IDEMPOTENCY_BYTES
    max_scenarios: int = DEFAULT_MAX_SCENARIOS
    max_judge_versions: int = DEFAULT_MAX_JUDGE_VERSIONS
    # Prometheus, for GET /v1/autonomy.
    prometheus_url: str | None = None
    prometheus_token: str | None = None
    prometheus_basic_auth: tuple[str, str] | None = None
    prometheus_ca_file: str | None = None
    prometheus_insecure: bool = False
    prometheus_timeout_s: float = 2.0
