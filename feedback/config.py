"""Settings of the feedback wing: where sessions are kept, for how long, what is redacted, and how much
judging work may wait.

`SessionsConfig.from_env()` reads them from `AGENT_SLO_SESSIONS_*`, `AGENT_SLO_REDACT` and
`AGENT_SLO_JUDGE_*` (the `ENV` table below says what each means); a bad value fails at start with the
variable's name, not on first use.

    >>> SessionsConfig.from_env({"AGENT_SLO_SESSIONS_RETENTION": "2d"}).retention_s
    172800
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentslo.durations import parse_duration
from agentslo.feedback import store as st
from agentslo.feedback.pipeline import PipelineConfig
from agentslo.feedback.redact import Redactor

MIB = 1024 * 1024


@dataclass(frozen=True)
class SessionsConfig:
    """Where and how sessions are kept, and how much judging work may wait."""

    db_path: str | None = None  # None: `sessions.db` next to the exporter's database, else in memory
    retention_s: float = st.DEFAULT_RETENTION_S
    labelled_retention_s: float = st.DEFAULT_LABELLED_RETENTION_S
    max_bytes: int = st.DEFAULT_MAX_BYTES
    redact: str = "all"  # or a list of kinds (secret,email,iban,card,phone), or "none"
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> SessionsConfig:
        """From `AGENT_SLO_SESSIONS_*`, `AGENT_SLO_REDACT` and `AGENT_SLO_JUDGE_*` (see ENV); a bad value
        is a ValueError naming the variable."""
        p = PipelineConfig()

        def get(name: str, default: str, parse: Callable[[str], Any], ok: Callable[[Any], bool]) -> Any:
            raw = env.get(name, default)
            try:
                value = parse(raw)
            except ValueError as exc:
                raise ValueError(f"{name}={raw!r}: {exc}") from None
            if not ok(value):
                raise ValueError(f"{name}={raw!r} is out of range ({ENV[name]})")
            return value

        def positive(x: float) -> bool:
            return x > 0

        def mib(name: str, default: int) -> int:
            return int(get(name, f"{default / MIB:g}", float, positive) * MIB)

        get("AGENT_SLO_REDACT", "all", Redactor.parse, bool)  # fail at start, not on first use
        return cls(
            db_path=env.get("AGENT_SLO_SESSIONS_DB") or None,
            retention_s=get("AGENT_SLO_SESSIONS_RETENTION", "7d", parse_duration, positive),
            labelled_retention_s=get(
                "AGENT_SLO_SESSIONS_LABELLED_RETENTION", "90d", parse_duration, positive
            ),
            max_bytes=mib("AGENT_SLO_SESSIONS_MAX_MB", st.DEFAULT_MAX_BYTES),
            redact=env.get("AGENT_SLO_REDACT", "all"),
            pipeline=PipelineConfig(
                intake_size=get("AGENT_SLO_JUDGE_INTAKE", str(p.intake_size), int, positive),
                llm_queue_size=get("AGENT_SLO_JUDGE_QUEUE", str(p.llm_queue_size), int, positive),
                intake_bytes=mib("AGENT_SLO_JUDGE_INTAKE_MB", p.intake_bytes),
                llm_queue_bytes=mib("AGENT_SLO_JUDGE_QUEUE_MB", p.llm_queue_bytes),
                reading_bytes=mib("AGENT_SLO_SESSIONS_READING_MB", p.reading_bytes),
                store_sample_rate=get(
                    "AGENT_SLO_SESSIONS_SAMPLE_RATE", str(p.store_sample_rate), float, lambda x: 0 <= x <= 1
                ),
                judge_process=env.get("AGENT_SLO_JUDGE_PROCESS", "1").lower() not in ("0", "false", "no"),
            ),
        )


# The environment variables `SessionsConfig.from_env` reads, and what they mean.
ENV: dict[str, str] = {
    "AGENT_SLO_SESSIONS_DB": "session store SQLite file (default: sessions.db next to --db, else in memory)",
    "AGENT_SLO_SESSIONS_RETENTION": "how long unlabelled sessions are kept (Prometheus duration, default 7d)",
    "AGENT_SLO_SESSIONS_LABELLED_RETENTION": "how long labelled sessions are kept (default 90d)",
    "AGENT_SLO_SESSIONS_MAX_MB": "size limit of stored session bodies in MiB (default 256)",
    "AGENT_SLO_SESSIONS_SAMPLE_RATE": "head sample kept although nothing marked it bad, 0-1 (default 0.01)",
    "AGENT_SLO_REDACT": "what to redact before storing: all (default), none, or some of "
    "secret,email,iban,card,phone (agentslo.feedback.redact says what each covers)",
    "AGENT_SLO_JUDGE_INTAKE": "sessions waiting for the rule stage before 503 (default 10000)",
    "AGENT_SLO_JUDGE_QUEUE": "sessions waiting per LLM judge before its verdicts are shed (default 1000)",
    "AGENT_SLO_JUDGE_INTAKE_MB": "MiB of session JSON waiting for the rule stage before 503 (default 64)",
    "AGENT_SLO_JUDGE_QUEUE_MB": "MiB of session JSON held for LLM judges before they shed (default 64)",
    "AGENT_SLO_SESSIONS_READING_MB": "MiB of POST /v1/sessions bodies read at once before 503 (default 32)",
    "AGENT_SLO_JUDGE_PROCESS": "1 (default): LLM judge calls in a child process; 0: in the exporter process",
}
