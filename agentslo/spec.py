"""The SLO spec (`version: agent-slo/v1`) as typed, immutable objects, and its loader.

Load with `load_spec(path)` / `load_specs(paths)`; every generator and the exporter take the
resulting `Spec`. Validation lives in the loader and only there (`agentslo._validate`, which names
file, line and key path for every problem at once): a `Spec` that exists is internally consistent,
so consumers never re-check references or ranges. The models themselves are in
`agentslo.spec_model`; this module is where everyone imports them from.

    >>> from agentslo.spec import load_spec
    >>> spec = load_spec("examples/cx-support.slo.yaml")
    >>> spec.objective_for("task-success", "refund")
    97.0
"""

from agentslo._validate import Problem, SpecError, load_spec, load_specs, parse_spec
from agentslo.spec_model import (
    BUILTIN_EXCLUSIONS,
    BURN_TIER_NAMES,
    PROBER_ERROR_EXCLUSION,
    SLI,
    SLI_KINDS,
    SLO,
    TIER_OBJECTIVES,
    VERSION,
    Alerting,
    Autonomy,
    BudgetAllocation,
    BudgetTier,
    BurnTier,
    CostSLI,
    Drift,
    Flow,
    JsonCheck,
    Judge,
    LatencySLI,
    LLMJudge,
    PromqlSLI,
    ReleaseGate,
    RiskTier,
    RuleJudge,
    Spec,
    Synthetic,
    SyntheticSLI,
    Target,
    Telemetry,
    ToolCallsSLI,
    period_label,
)

__all__ = [
    "BUILTIN_EXCLUSIONS",
    "BURN_TIER_NAMES",
    "PROBER_ERROR_EXCLUSION",
    "SLI",
    "SLI_KINDS",
    "SLO",
    "TIER_OBJECTIVES",
    "VERSION",
    "Alerting",
    "Autonomy",
    "BudgetAllocation",
    "BudgetTier",
    "BurnTier",
    "CostSLI",
    "Drift",
    "Flow",
    "JsonCheck",
    "Judge",
    "LLMJudge",
    "LatencySLI",
    "Problem",
    "PromqlSLI",
    "ReleaseGate",
    "RiskTier",
    "RuleJudge",
    "Spec",
    "SpecError",
    "Synthetic",
    "SyntheticSLI",
    "Target",
    "Telemetry",
    "ToolCallsSLI",
    "load_spec",
    "load_specs",
    "parse_spec",
    "period_label",
]
