"""The event format of `POST /v1/events`: which fields each event type takes, and of what kind.

`FIELDS` is the one description of which fields each event type takes; the fast batch classifier
(`exporter.classify`) checks the same rules column-wise and falls back to the event-by-event
validator (`exporter.validate`), which is authoritative and names every problem of every event.
"""

from __future__ import annotations

MAX_ID_CHARS = 256  # session_id / trace_id; ids, not text
MAX_COUNT = 2**53  # integer counts above this lose precision as float64 counters
MAX_EXEMPLAR_ID = 100  # longer trace ids are not kept as exemplars (OpenMetrics: 128 characters of labels)

COMMON: dict[str, str] = {
    "type": "type",
    "agent": "cat",
    "flow": "cat",
    "exclude": "cat",
    "session_id": "id",
    "trace_id": "id",
    "version": "text",
    "prompt_version": "text",
    "model": "text",
    "time": "time",
}
# Per type: field → kind. "cat" fields are categorical (checked when the plan is built), the
# order of CATEGORICAL is the order of the plan key after (agent, flow, exclude).
FIELDS: dict[str, dict[str, str]] = {
    "task": {
        "outcome": "cat",
        "escalation_required": "cat",
        "failure_mode": "cat",
        "duration_s": "seconds",
        "cost_usd": "usd",
        "steps": "count",
        "tokens": "tokens",
    },
    "turn": {"kind": "cat", "latency_s": "seconds!"},
    "tool_call": {"tool": "cat", "outcome": "cat", "latency_s": "seconds"},
    "judge": {"judge": "cat", "judge_version": "cat", "score": "score!"},
    "escalation": {"required": "cat", "performed": "cat", "context_preserved": "cat"},
    "connection": {"ok": "cat"},
    "synthetic": {"scenario": "cat", "passed": "cat", "duration_s": "seconds"},
}
CATEGORICAL: dict[str, tuple[str, ...]] = {
    "task": ("outcome", "escalation_required", "failure_mode", "model"),
    "turn": ("kind",),
    "tool_call": ("tool", "outcome"),
    "judge": ("judge", "judge_version"),
    "escalation": ("required", "performed", "context_preserved"),
    "connection": ("ok",),
    "synthetic": ("scenario", "passed"),
}
BOOLEAN = frozenset({"escalation_required", "required", "performed", "context_preserved", "ok", "passed"})
ALLOWED: dict[str, frozenset[str]] = {t: frozenset(COMMON) | frozenset(f) for t, f in FIELDS.items()}
NUMBER_KINDS = {"seconds": (False, None), "usd": (False, None), "count": (True, None), "score": (False, 1.0)}
# Per type: the plan key (the categorical fields that pick its series, in order) and the number
# fields with their kinds, in the order the fast fronts report them.
PLAN_KEY: dict[str, tuple[str, ...]] = {
    kind: ("agent", "flow", "exclude", *cats) for kind, cats in CATEGORICAL.items()
}
NUMBERS: dict[str, tuple[tuple[str, str], ...]] = {
    kind: tuple((f, k) for f, k in fields.items() if k.rstrip("!") in NUMBER_KINDS)
    for kind, fields in FIELDS.items()
}
