"""SLO specs → rule files: one file per agent, as a Prometheus rule file or a `PrometheusRule` object.

Groups, each evaluated every minute with its whole chain inside it (so no alert lags its inputs):

- `agent-slo:<agent>:slo`: constants, event counts, ratios, burn rates, budget, states, and every
  alert that reads them (burn tiers, budget floors, rare events, silent flows);
  and, when the spec has them, the health score and the budget tiers (with their alert);
- `agent-slo:<agent>:attribution` (a spec with `pipeline:` or `workflows:`): stage latency
  quantiles and shares, workflow step and chain success;
- `agent-slo:<agent>:judges`: judge score means, their baseline, and the drift alert;
- `agent-slo:<agent>:signals`: synthetic failures, judge agreement, failure modes, spec mismatch, scrape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import yaml

from agentslo.durations import parse_duration
from agentslo.rules import alerts, attribution, recording
from agentslo.rules._plan import BUCKET, EVAL_INTERVAL, Plan
from agentslo.spec import Spec

FORMATS: Final = ("prometheus", "prometheus-operator")
OPERATOR_API_VERSION: Final = "monitoring.coreos.com/v1"


class _BlockDumper(yaml.SafeDumper):
    """A safe dumper that writes multi-line strings (PromQL) as literal blocks, readable in review."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def dump(data: Any) -> str:
    """YAML text for generated data: deterministic, key order kept, PromQL as literal blocks."""
    return yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=110)


def groups(spec: Spec, eval_interval: str = EVAL_INTERVAL) -> list[dict[str, Any]]:
    """The rule groups of one spec, as plain data."""
    plan = Plan(spec, eval_interval)
    slo_rules = [
        *recording.info_rules(plan),
        *recording.constant_rules(plan),
        *recording.event_rules(plan),
        *recording.ratio_rules(plan),
        *recording.burn_rules(plan),
        *recording.budget_rules(plan),
        recording.autonomy_rule(plan),
        recording.release_rule(plan),
        *alerts.burn_alerts(plan),
        *alerts.budget_alerts(plan),
        *alerts.rare_event_alerts(plan),
        alerts.silent_flow_alert(plan),
        *attribution.health_rules(plan),
        *attribution.budget_tier_rules(plan),
        *attribution.budget_tier_alert(plan),
    ]
    out = [{"name": f"agent-slo:{spec.agent}:slo", "interval": eval_interval, "rules": slo_rules}]
    chains = [
        *(attribution.pipeline_rules(plan) if spec.pipeline is not None else []),
        *(attribution.workflow_rules(plan) if spec.workflows else []),
    ]
    if chains:
        out.append(
            {"name": f"agent-slo:{spec.agent}:attribution", "interval": eval_interval, "rules": chains}
        )
    if spec.judges:
        judge_rules = [*recording.judge_rules(plan), alerts.drift_alert(plan)]
        out.append(
            {"name": f"agent-slo:{spec.agent}:judges", "interval": eval_interval, "rules": judge_rules}
        )
    out.append(
        {
            "name": f"agent-slo:{spec.agent}:signals",
            "interval": eval_interval,
            "rules": alerts.signal_alerts(plan),
        }
    )
    return alerts.link_runbooks(spec, out)


def rule_file_name(spec: Spec, fmt: str = "prometheus") -> str:
    return f"{spec.agent}.prometheusrule.yaml" if fmt == "prometheus-operator" else f"{spec.agent}.rules.yaml"


def generate_files(
    specs: list[Spec],
    fmt: str = "prometheus",
    metadata_labels: Mapping[str, str] | None = None,
    *,
    eval_interval: str = EVAL_INTERVAL,
) -> dict[str, str]:
    """Relative path → YAML content for every spec: `<agent>.rules.yaml`, or with
    `fmt="prometheus-operator"` a `PrometheusRule` `<agent>.prometheusrule.yaml` carrying
    `metadata_labels` (so the operator's `ruleSelector` picks it up)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown rules format {fmt!r}: use one of {', '.join(FORMATS)}")
    if parse_duration(BUCKET) % parse_duration(eval_interval):
        # One evaluation per 5m slot records the bucket; an interval that does not divide it would
        # record some slots twice or never.
        raise ValueError(
            f"evaluation interval {eval_interval} must divide the {BUCKET} event bucket (1m, 30s, 15s...)"
        )
    agents = [s.agent for s in specs]
    if len(set(agents)) != len(agents):
        duplicate = next(a for a in agents if agents.count(a) > 1)
        raise ValueError(f"two specs describe agent {duplicate!r}; each agent needs exactly one spec")
    files = {}
    for spec in sorted(specs, key=lambda s: s.agent):
        data: dict[str, Any] = {"groups": groups(spec, eval_interval)}
        if fmt == "prometheus-operator":
            metadata: dict[str, Any] = {"name": f"agent-slo-{spec.agent}".replace("_", "-").replace(".", "-")}
            labels = {"app.kubernetes.io/name": "agent-slo", **(metadata_labels or {})}
            metadata["labels"] = dict(sorted(labels.items()))
            data = {
                "apiVersion": OPERATOR_API_VERSION,
                "kind": "PrometheusRule",
                "metadata": metadata,
                "spec": data,
            }
        files[rule_file_name(spec, fmt)] = dump(data)
    return files
