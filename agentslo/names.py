"""The one place where metric, label, recording-rule and alert names are written.

The exporter, the rules and dashboards generators and the tests import these names; a metric or
rule name string should appear nowhere else in the source. Renaming anything here is a breaking
change of the public contract (see DESIGN.md) and needs an issue first.
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "agent_slo"

# --- metrics the exporter exposes (names without the `_total` suffix are given as exposed) ---
EVENTS_TOTAL: Final = "agent_slo_events_total"
JUDGE_SCORE: Final = "agent_slo_judge_score"
TASK_DURATION_SECONDS: Final = "agent_slo_task_duration_seconds"
TURN_LATENCY_SECONDS: Final = "agent_slo_turn_latency_seconds"
TASK_COST_USD: Final = "agent_slo_task_cost_usd"
TOKENS_TOTAL: Final = "agent_slo_tokens_total"
TOOL_CALLS_TOTAL: Final = "agent_slo_tool_calls_total"
FAILURE_MODES_TOTAL: Final = "agent_slo_failure_modes_total"
TASK_STEPS: Final = "agent_slo_task_steps"
BUILD_INFO: Final = "agent_slo_build_info"
SPEC_INFO: Final = "agent_slo_spec_info"
JUDGE_AGREEMENT_RATIO: Final = "agent_slo_judge_agreement_ratio"
JUDGE_CALLS_TOTAL: Final = "agent_slo_judge_calls_total"
JUDGE_COST_USD_TOTAL: Final = "agent_slo_judge_cost_usd_total"
SYNTHETIC_RUNS_TOTAL: Final = "agent_slo_synthetic_runs_total"
SYNTHETIC_CONSECUTIVE_FAILURES: Final = "agent_slo_synthetic_consecutive_failures"
INGEST_EVENTS_TOTAL: Final = "agent_slo_ingest_events_total"
INGEST_REJECTED_TOTAL: Final = "agent_slo_ingest_rejected_total"
# Events a client SDK had to drop (queue full, closed), as it reports in the DROPPED_HEADER of a batch.
CLIENT_DROPPED_EVENTS_TOTAL: Final = "agent_slo_client_dropped_events_total"
DROPPED_HEADER: Final = "X-Agent-SLO-Dropped"
# OTLP ingest (POST /v1/traces, /v1/logs): spans and log records by what became of them, refusals by reason.
OTLP_ITEMS_TOTAL: Final = "agent_slo_otlp_items_total"
OTLP_REJECTED_TOTAL: Final = "agent_slo_otlp_rejected_total"
# The exporter's own release (gauge = 1), beside the standard `process_*` metrics it also exposes.
EXPORTER_BUILD_INFO: Final = "agent_slo_exporter_build_info"
PROCESS_PREFIX: Final = "process_"  # prometheus_client's standard process metrics (cpu, memory, fds)
# Folded label values (cardinality guard) are counted here, by label.
LABEL_FOLDED_TOTAL: Final = "agent_slo_label_folded_total"
# Series produced by the rules generator for each SLO (gauge = 1 with descriptive labels).
SLO_INFO: Final = "agent_slo_info"

# --- labels ---
L_AGENT: Final = "agent"
L_FLOW: Final = "flow"
L_SLO: Final = "slo"
L_OUTCOME: Final = "outcome"
L_EXCLUSION: Final = "exclusion"
L_JUDGE: Final = "judge"
L_JUDGE_VERSION: Final = "judge_version"
L_KIND: Final = "kind"
L_MODEL: Final = "model"
L_TYPE: Final = "type"
L_TOOL: Final = "tool"
L_FAILURE_MODE: Final = "failure_mode"
L_VERSION: Final = "version"
L_PROMPT_VERSION: Final = "prompt_version"
L_SPEC_HASH: Final = "spec_hash"
L_SCENARIO: Final = "scenario"
L_RESULT: Final = "result"
L_REASON: Final = "reason"
L_SEVERITY: Final = "severity"
L_BURN_TIER: Final = "burn_tier"
L_OWNER: Final = "owner"
L_SLI: Final = "sli"
L_PYTHON_VERSION: Final = "python_version"
L_OBJECTIVE: Final = "objective"
L_PERIOD: Final = "period"
L_SIGNAL: Final = "signal"  # OTLP signal: traces or logs

GOOD: Final = "good"
BAD: Final = "bad"
OTHER: Final = "other"  # the folded value for undeclared label values

# Labels the spec's own `labels:` may not use, because rules and alerts already set them.
RESERVED_LABELS: Final = frozenset(
    {
        L_AGENT,
        L_FLOW,
        L_SLO,
        L_OUTCOME,
        L_EXCLUSION,
        L_JUDGE,
        L_JUDGE_VERSION,
        L_KIND,
        L_SEVERITY,
        L_BURN_TIER,
        L_OWNER,
        L_SLI,
        L_OBJECTIVE,
        L_PERIOD,
        L_TOOL,
        L_SCENARIO,
        "alertname",
        "job",
        "instance",
        "le",
        "quantile",
        "__name__",
    }
)

# --- recording rules: level:metric:operations ---
# Windows every SLO is recorded over, besides its period.
SLI_WINDOWS: Final = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


def sli_error_ratio(window: str) -> str:
    """`agent_slo:sli_error:ratio_rate<w>`: bad / (good + bad) over the window."""
    return f"agent_slo:sli_error:ratio_rate{window}"


def burn_rate(window: str) -> str:
    """`agent_slo:burn_rate:ratio_rate<w>`: the window's error ratio divided by the error budget."""
    return f"agent_slo:burn_rate:ratio_rate{window}"


def events_rate(window: str) -> str:
    """Per-window event increase by outcome; the building block of the event-weighted period ratio."""
    return f"agent_slo:events:increase{window}"


def events_bucket(window: str) -> str:
    """Non-overlapping `<w>` event increases, one sample per `<w>`: summed for the long windows and period."""
    return f"agent_slo:events_bucket:increase{window}"


def judge_score_count(window: str) -> str:
    """Judge verdicts per agent, flow, judge and version over the window (drift's minimum-sample guard)."""
    return f"agent_slo:judge_score:count{window}"


def judge_score_mean(window: str) -> str:
    """Mean judge score per agent, flow, judge and version over the window."""
    return f"agent_slo:judge_score:mean{window}"


JUDGE_SCORE_BASELINE_MEAN: Final = "agent_slo:judge_score_baseline:mean"
JUDGE_SCORE_BASELINE_STDDEV: Final = "agent_slo:judge_score_baseline:stddev"
UP: Final = "up"  # Prometheus' own scrape-health series
OBJECTIVE_RATIO: Final = "agent_slo:objective:ratio"
ERROR_BUDGET_RATIO: Final = "agent_slo:error_budget:ratio"
PERIOD_SECONDS: Final = "agent_slo:period:seconds"
ERROR_BUDGET_REMAINING: Final = "agent_slo:error_budget_remaining:ratio"
ERROR_BUDGET_EXHAUSTION: Final = "agent_slo:error_budget_exhaustion:seconds"
AUTONOMY_STATE: Final = "agent_slo:autonomy_state:code"
RELEASE_STATE: Final = "agent_slo:release_state:code"

# --- alerts ---
ALERT_BURN_RATE: Final = "AgentSLOBurnRate"
ALERT_BUDGET_LOW: Final = "AgentSLOBudgetLow"
ALERT_BUDGET_EXHAUSTED: Final = "AgentSLOBudgetExhausted"
ALERT_RARE_EVENT: Final = "AgentSLORareEvent"
ALERT_SYNTHETIC_FAILING: Final = "AgentSLOSyntheticFailing"
ALERT_JUDGE_DRIFT: Final = "AgentSLOJudgeScoreDrift"
ALERT_FAILURE_MODE_EMERGED: Final = "AgentSLOFailureModeEmerged"
ALERT_JUDGE_AGREEMENT_LOW: Final = "AgentSLOJudgeAgreementLow"
ALERT_TELEMETRY_ABSENT: Final = "AgentSLOTelemetryAbsent"
ALERT_SPEC_MISMATCH: Final = "AgentSLOSpecMismatch"
# A budget allocation tier (or the whole stack, tier `end_to_end`) has spent its share (a ticket).
ALERT_BUDGET_TIER_SPENT: Final = "AgentSLOBudgetTierSpent"

ALL_ALERTS: Final = (
    ALERT_BURN_RATE,
    ALERT_BUDGET_LOW,
    ALERT_BUDGET_EXHAUSTED,
    ALERT_RARE_EVENT,
    ALERT_SYNTHETIC_FAILING,
    ALERT_JUDGE_DRIFT,
    ALERT_FAILURE_MODE_EMERGED,
    ALERT_JUDGE_AGREEMENT_LOW,
    ALERT_TELEMETRY_ABSENT,
    ALERT_SPEC_MISMATCH,
    ALERT_BUDGET_TIER_SPENT,
)

# --- autonomy and release states (codes recorded by the rules, read by the API and the gate) ---
AUTONOMY_STATES: Final = ("healthy", "warning", "critical", "exhausted")
AUTONOMY_ACTIONS: Final = {
    "healthy": ("autonomous", "draft", "escalate"),
    "warning": ("draft", "escalate"),
    "critical": ("escalate",),
    "exhausted": (),
}
RELEASE_STATES: Final = ("healthy", "watch", "freeze", "exhausted")

# --- label values and built-in series the dashboards (and others) select on ---
TOOL_OK: Final = "ok"  # the one good `outcome` of agent_slo_tool_calls_total
# `outcome` of agent_slo_synthetic_runs_total: a scenario run passed or failed its assertions, or the
# prober itself failed (counted, excluded from budgets, never part of a failure streak).
SYNTHETIC_PASSED: Final = "passed"
SYNTHETIC_FAILED: Final = "failed"
SYNTHETIC_PROBER_ERROR: Final = "prober_error"  # the prober failed, not the agent: no verdict either way
PROMETHEUS_ALERTS: Final = "ALERTS"  # Prometheus' own series of pending/firing alerts
# --- exporter additions ---
# Tool call latency by tool (the `latency_s` of `tool_call` events); grows the contract, renames nothing.
TOOL_CALL_LATENCY_SECONDS: Final = "agent_slo_tool_call_latency_seconds"
L_LABEL: Final = "label"  # agent_slo_label_folded_total: which label had a value folded into `other`
# `result` of agent_slo_ingest_events_total.
INGEST_ACCEPTED: Final = "accepted"
INGEST_REJECTED: Final = "rejected"

# --- release-gate overrides, prober freshness, runbooks (issue 16, part B) ---
# Overrides of a held release gate (`POST /v1/gate/overrides`, sent by `agent-slo gate --override`), by
# agent and flow (`""`: the whole agent). Who and why go to the exporter's log, never to a label.
RELEASE_OVERRIDES_TOTAL: Final = "agent_slo_release_overrides_total"
OVERRIDES_PATH: Final = "/v1/gate/overrides"  # the exporter's route that counts them
# When each scenario's latest run reached the exporter (Unix seconds; 0 until the first run), so
# `time() - agent_slo_synthetic_last_run_timestamp_seconds` says how stale the prober is.
SYNTHETIC_LAST_RUN_TIMESTAMP_SECONDS: Final = "agent_slo_synthetic_last_run_timestamp_seconds"
RUNBOOK_URL: Final = "runbook_url"  # the alert annotation `alerting.runbook_base_url` fills per alert

# --- voice pipeline, workflows, health score, budget tiers (issue 16) ---
# Per-stage latency of a voice pipeline (`stage` events): which stage owns the P95/P99 of a turn.
STAGE_LATENCY_SECONDS: Final = "agent_slo_stage_latency_seconds"
# Steps of declared workflows (`workflow_step` events), by outcome good/bad.
WORKFLOW_STEPS_TOTAL: Final = "agent_slo_workflow_steps_total"
L_STAGE: Final = "stage"
L_WORKFLOW: Final = "workflow"
L_STEP: Final = "step"
L_COMPONENT: Final = "component"  # health score component
L_TIER: Final = "tier"  # budget allocation tier (infrastructure, provider, execution, quality)
STAGE_WINDOW: Final = "5m"  # stage quantiles and shares: the dashboards' resolution
STAGE_QUANTILES: Final = (0.5, 0.95, 0.99)


def stage_latency_quantile(quantile: float) -> str:
    """`agent_slo:stage_latency_seconds:p<q>_rate5m` per agent, flow and stage (p50, p95, p99)."""
    return f"agent_slo:stage_latency_seconds:p{round(quantile * 100):d}_rate{STAGE_WINDOW}"


# Each stage's share of the summed stage time (0..1) per agent and flow: who owns the latency.
STAGE_LATENCY_SHARE: Final = f"agent_slo:stage_latency_seconds:share_rate{STAGE_WINDOW}"
WORKFLOW_WINDOW: Final = "1h"
# Per step: good / all step events over the hour; per workflow: the product over its steps (the
# compound success 10 steps at 99% give: 90.4%), and the measured end-to-end success.
WORKFLOW_STEP_SUCCESS: Final = f"agent_slo:workflow_step_success:ratio_rate{WORKFLOW_WINDOW}"
WORKFLOW_CHAIN_SUCCESS: Final = f"agent_slo:workflow_chain_success:ratio_rate{WORKFLOW_WINDOW}"
# The health score (0..1) per agent and flow, its components and their weights; never alerted on.
HEALTH_COMPONENT: Final = "agent_slo:health_component:ratio"
HEALTH_WEIGHT: Final = "agent_slo:health_weight:ratio"
HEALTH_SCORE: Final = "agent_slo:health_score:ratio"
# Budget allocation: share of each tier's budget spent over the period (1 = spent), tier `end_to_end`
# for the whole stack, and the alert when a tier has spent its share.
BUDGET_TIER_CONSUMED: Final = "agent_slo:budget_tier_consumed:ratio"
BUDGET_TIER_END_TO_END: Final = "end_to_end"
