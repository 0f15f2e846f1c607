"""Runbooks for every generated alert and SLO, as Markdown pages `agent-slo build` writes.

    >>> from agentslo.spec import load_spec
    >>> pages = generate([load_spec("examples/cx-support.slo.yaml")])
    >>> "cx-support/task-success.md" in pages, "postmortem-template.md" in pages
    (True, True)

One page per SLO (its burn-rate, budget and rare-event alerts) and one per agent-wide alert
(`<agent>/<AlertName>.md`): the same pages `rules.alerts.runbook_page` links from each alert's
`runbook_url` when the spec sets `alerting.runbook_base_url`. The pages are driven by the generated
rule groups, so an alert that exists has a page, and each page says:

- what fired, in numbers: the objective per flow, the error budget, each burn tier's windows,
  factor, threshold and how long a full outage takes to fire it;
- what to open first, with this deployment's real URLs and commands (top sessions, release markers,
  autonomy state, the release gate, the dashboards);
- the first five minutes: classify before acting, because rolling back a silent quality
  degradation can restore the bug that caused it;
- the response per incident type (post-deploy regression, gradual drift, systematic tool failure,
  provider outage, rare policy violation).

`postmortem-template.md` is the blameless template the pages point to.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from agentslo import burn, names
from agentslo.durations import humanize
from agentslo.rules.alerts import runbook_page
from agentslo.rules.generate import groups as rule_groups
from agentslo.spec import Spec

POSTMORTEM: Final = "postmortem-template.md"
DEFAULT_EXPORTER_URL: Final = "http://exporter:9120"
DEFAULT_PROMETHEUS_URL: Final = "http://prometheus:9090"
DEFAULT_GRAFANA_URL: Final = "http://grafana:3000"
# The dashboards' uids (dashboards/_panels.py UIDS); a runbook links them, it does not build them.
OVERVIEW_UID, FLOW_UID, SYNTHETIC_UID, JUDGES_UID = (
    "agent-slo-overview", "agent-slo-flow", "agent-slo-synthetic", "agent-slo-judges",
)  # fmt: skip

TIER_HEADER: Final = (
    "  | burn tier | severity | windows (long/short) | burn factor | error ratio above "
    "| a full outage fires after |"
)
FIRST_FIVE_MINUTES: Final = """\
## The first five minutes: classify before you act

Spend them deciding *what kind* of incident this is; the right response differs, and the wrong one
hurts. Rolling back a silent quality degradation can restore the very bug that caused it (the
previous release may be the one that started drifting), and freezing deploys during a provider
outage blocks the fix you may need.

1. **When did it start?** Compare the start of the burn with the release markers
   (`agent_slo_build_info`): a step right after a deploy points at the change.
2. **Step or slope?** A step is a regression or an outage; a slow slope over days is drift.
3. **Where?** One flow or all of them; one tool (`agent_slo_tool_calls_total` by tool and outcome) or
   none; one model or every model.
4. **Whose fault?** Probe failures with the agent healthy elsewhere point at the target or the
   prober; errors on every flow at once with provider error codes point at the provider.
5. **Write the classification down** in the incident channel before the first action.
"""

# (classified as, signs, respond): the response per incident type every runbook page carries.
INCIDENT_TYPES: Final = (
    (
        "post-deploy regression",
        "burn starts at a release marker; one version's sessions dominate the top sessions",
        "roll back the change (prompt, model, routing, tool, knowledge base), or freeze deploys while you "
        "fix forward; `agent-slo gate` holds further changes",
    ),
    (
        "gradual drift",
        "a slope over days; judge scores drift from their 7d baseline; no release marker",
        "compare against the baseline (the judge drift panel, the regression dataset); refresh the "
        "knowledge base or prompts; do not roll back blindly",
    ),
    (
        "systematic tool failure",
        "one tool's `error` / `invalid_params` outcomes climb",
        "find the tool's error class and its owner (the tool's service on-call); degrade or disable the "
        "tool path; the agent should escalate meanwhile",
    ),
    (
        "provider outage",
        "every flow, errors or timeouts from the model provider, the provider's status page red",
        "declare an exclusion window (events sent with `exclude: provider_outage` where the spec declares "
        "it) and let autonomy fail safe (`autonomy.fail_safe`); do not roll back your own release",
    ),
    (
        "rare policy violation",
        "a rare-event SLO fired (`AgentSLORareEvent`); one bad answer can be one too many",
        "lower autonomy now (draft or escalate only), review the session, add it to the regression "
        "dataset, then fix",
    ),
)
RESPONSES: Final = (
    "## Response by incident type\n\n| classified as | signs | respond |\n|---|---|---|\n"
    + "".join(f"| {kind} | {signs} | {respond} |\n" for kind, signs, respond in INCIDENT_TYPES)
    + "\nAfterwards, write the postmortem: [postmortem template](../postmortem-template.md).\n"
)

POSTMORTEM_TEMPLATE: Final = """\
# Postmortem: <title>

Blameless: describe what the system and the process allowed, not who slipped. Every person acted
on what they knew at the time; the question is what would have let them know more, sooner.

- **Status:** draft | reviewed
- **Agent, flows, SLOs:** <agent> · <flows> · <SLOs that burned>
- **Severity and budget spent:** <page/ticket> · <share of the period's error budget burned>
- **Authors, reviewers:** <names>

## Summary

<Two or three sentences: what users experienced, for how long, and how it ended.>

## Timeline (UTC)

| time | event |
|---|---|
| <hh:mm> | <the change, the first bad event, the alert, each action and its effect, the recovery> |

## Detection

<Which alert fired (name, burn tier, runbook), how long after the first bad event, and whether a
human or a customer noticed first. Was the alert actionable as written?>

## Classification

<What the first five minutes concluded (post-deploy regression, gradual drift, systematic tool
failure, provider outage, rare policy violation), on what evidence, and whether it held.>

## Mitigation

<What stopped the bleeding (rollback, freeze, tool disabled, exclusion window, autonomy lowered),
when, and what it cost. Any release-gate overrides (`agent_slo_release_overrides_total`) and why.>

## Root cause

<The mechanism, and the conditions that let it reach users. Ask "why" until it is about the
system, not a person.>

## The monitoring gap

<What let it through: a missing SLI, a scenario the prober does not run, a judge not calibrated, an
objective too loose, an alert too slow (which tier would have caught it earlier), an exclusion that
hid real failures. The one change to the spec or scenarios that would have caught it.>

## Action items

| action | kind (prevent, detect, mitigate) | owner | due |
|---|---|---|---|
| <add the failing session to the regression dataset> | detect | <owner> | <date> |
"""

# What each agent-wide alert means and where to look, beside the common sections.
ALERT_GUIDES: Final = {
    names.ALERT_SYNTHETIC_FAILING: (
        "A synthetic scenario failed three times in a row. The prober talks to the agent as a user "
        "would, so this is often the first sign of an outage at low traffic.",
        "Rerun the scenario now and read its JUnit: `agent-slo probe {spec} --once --junit probe.xml`. "
        "Check `agent_slo_synthetic_last_run_timestamp_seconds` (is the prober alive?) and "
        '`agent_slo_synthetic_runs_total{{outcome="prober_error"}}` (is it the prober, not the agent?).',
    ),
    names.ALERT_JUDGE_DRIFT: (
        "A judge's mean score moved more than the configured sigma from its 7d baseline.",
        "Open the review queue (`GET /v1/review`) and read the lowest-scored sessions; check whether a "
        "prompt, model or knowledge-base change preceded it, and whether the judge itself changed.",
    ),
    names.ALERT_FAILURE_MODE_EMERGED: (
        "A labelled failure mode appeared that was absent the 7 days before.",
        "Read the sessions with that failure mode (`GET /v1/sessions/top`), find what they share "
        "(flow, tool, version), and decide whether it is a new regression or a new kind of request.",
    ),
    names.ALERT_JUDGE_AGREEMENT_LOW: (
        "A judge agrees with human labels less often than its floor: its verdicts cannot be trusted "
        "to drive budgets until it is recalibrated.",
        "Recalibrate: `agent-slo calibrate {spec} --judge <judge> --dataset calibration.jsonl` with the "
        "calibration dataset (`GET /v1/datasets/calibration.jsonl`); label more sessions in the review "
        "queue.",
    ),
    names.ALERT_TELEMETRY_ABSENT: (
        "The exporter is not scraped, or a flow that reported in the last day went quiet: the SLOs are "
        "blind, which is neither good nor bad news.",
        "Check the exporter's `/readyz` and Prometheus' targets page; then whether the agent still sends "
        "events for the flow (the client SDK's dropped-events counter "
        "`agent_slo_client_dropped_events_total`).",
    ),
    names.ALERT_SPEC_MISMATCH: (
        "Exporter replicas run different SLO specs; budgets and alerts mix definitions.",
        "Compare `agent_slo_spec_info` across replicas and finish (or roll back) the rollout.",
    ),
}


def _open_first(
    spec: Spec, spec_path: str, flows: Iterable[str], slo: str | None, urls: dict[str, str]
) -> str:
    exporter, prometheus, grafana = urls["exporter"], urls["prometheus"], urls["grafana"]
    flow = next(iter(flows), "<flow>")
    token = '-H "Authorization: Bearer $AGENT_SLO_TOKEN"'
    agent = spec.agent
    shown = slo or next(iter(spec.governing_slos()), next(iter(spec.slos)))  # agent-wide: any SLO will do
    top = f"{exporter}/v1/sessions/top?slo={shown}&window=1h"
    dashboard = spec.alerting_for(slo).dashboard_url if slo else spec.alerting.dashboard_url
    lines = [
        "## What to open first",
        "",
        f'1. **The sessions that burned the budget**: `curl {token} "{top}"`: grouped by what they share '
        "(flow, failure mode, tool, version)"
        + ("" if slo else f"; `slo=` takes any SLO of {agent}: {', '.join(spec.slos)}")
        + "; the review queue is `GET /v1/review`.",
        f'2. **Release markers**: `agent_slo_build_info{{agent="{agent}"}}` in Prometheus '
        f"({prometheus}/graph?g0.expr=agent_slo_build_info%7Bagent%3D%22{agent}%22%7D): the version, "
        "prompt version and model, and when each changed.",
        f'3. **Autonomy state**: `curl {token} "{exporter}/v1/autonomy?agent={agent}&flow={flow}"` '
        f'(or `{names.AUTONOMY_STATE}{{agent="{agent}"}}`): what the agent may still do on its own.',
        f"4. **The release gate**: `agent-slo gate {spec_path} --prometheus {prometheus} --flow {flow}`: "
        "whether a fix may ship; an incident fix through a spent budget ships with "
        f'`--override "<ticket and reason>" --exporter {exporter}` (counted, who and why logged).',
        f"5. **Dashboards**: {dashboard or f'{grafana}/d/{FLOW_UID}?var-agent={agent}&var-flow={flow}'} "
        f"(the flow), {grafana}/d/{OVERVIEW_UID}?var-agent={agent} (every SLO of {agent}).",
    ]
    return "\n".join(lines) + "\n"


def _numbers(spec: Spec, slo: str) -> str:
    s = spec.slos[slo]
    period = spec.period_of(slo)
    alerting = spec.alerting_for(slo)
    out = [
        "## What fired, in numbers",
        "",
        f"- SLI: `{s.sli.kind}`; owner: `{s.owner}`; period: `{period}`"
        + (f"; {s.description}" if s.description else ""),
    ]
    by_objective: dict[float, list[str]] = {}
    for flow in spec.flows_of(slo):
        by_objective.setdefault(spec.objective_for(slo, flow), []).append(flow)
    for objective, flows in sorted(by_objective.items()):
        budget = 100 - objective
        out.append(
            f"- Flows {', '.join(f'`{f}`' for f in flows)}: objective **{objective:g}%**, error budget "
            f"**{budget:.4g}%** of events over {period} "
            f"({humanize(budget / 100 * spec.period_seconds(slo))} of full outage)."
        )
        out += ["", TIER_HEADER, "  |---|---|---|---|---|---|"]
        for tier in burn.tiers(spec, slo, objective):
            capped = " (capped)" if tier.capped else ""
            out.append(
                f"  | `{tier.name}` | {tier.severity} | {tier.long} / {tier.short} | {tier.factor:g}x | "
                f"{tier.error_ratio * 100:.4g}%{capped} | {humanize(tier.time_to_fire_full_outage)} |"
            )
        out.append("")
    out.append(
        f"- Budget alerts: `{names.ALERT_BUDGET_LOW}` (info) below 20% of the budget left, "
        f"`{names.ALERT_BUDGET_EXHAUSTED}` at none left (the release gate closes)."
    )
    if alerting.min_events > 1:
        out.append(f"- Burn alerts need at least {alerting.min_events} events in the long window.")
    if alerting.any_bad:
        out.append(f"- Any counted bad event raises `{names.ALERT_RARE_EVENT}` ({alerting.any_bad}).")
    out.append(
        f'- Query the budget left: `{names.ERROR_BUDGET_REMAINING}{{agent="{spec.agent}", slo="{slo}"}}` '
        f'and the burn: `{names.burn_rate("1h")}{{agent="{spec.agent}", slo="{slo}"}}`.'
    )
    return "\n".join(out) + "\n"


def _alert_list(rules: list[dict[str, Any]]) -> str:
    seen: dict[str, dict[str, Any]] = {}
    for rule in rules:
        seen.setdefault(rule["alert"], rule)
    lines = ["## Alerts on this page", ""]
    for name, rule in seen.items():
        tiers = sorted({r["labels"][names.L_BURN_TIER] for r in rules if names.L_BURN_TIER in r["labels"]})
        extra = (
            f" (tiers {', '.join(f'`{t}`' for t in tiers)})"
            if name == names.ALERT_BURN_RATE and tiers
            else ""
        )
        lines.append(f"- `{name}`{extra}: {rule['annotations']['summary']}")
    return "\n".join(lines) + "\n"


def _slo_page(spec: Spec, spec_path: str, slo: str, rules: list[dict[str, Any]], urls: dict[str, str]) -> str:
    s = spec.slos[slo]
    title = (
        f"# Runbook: {spec.agent} / {slo}\n\nThe `{slo}` SLO ({s.sli.kind} SLI) of agent `{spec.agent}`.\n"
    )
    first = _open_first(spec, spec_path, spec.flows_of(slo), slo, urls)
    parts = [title, _alert_list(rules), _numbers(spec, slo), first, FIRST_FIVE_MINUTES, RESPONSES]
    return "\n".join(parts)


def _alert_page(
    spec: Spec, spec_path: str, alert: str, rules: list[dict[str, Any]], urls: dict[str, str]
) -> str:
    what, look = ALERT_GUIDES.get(alert, (rules[0]["annotations"]["description"], ""))
    title = f"# Runbook: {spec.agent} / {alert}\n\n{rules[0]['annotations']['summary']}\n"
    body = f"## What fired\n\n{what}\n" + (f"\n{look.format(spec=spec_path)}\n" if look else "")
    parts = [title, _alert_list(rules), body, _open_first(spec, spec_path, spec.flows, None, urls),
             FIRST_FIVE_MINUTES, RESPONSES]  # fmt: skip
    return "\n".join(parts)


def generate(
    specs: list[Spec],
    *,
    exporter_url: str = DEFAULT_EXPORTER_URL,
    prometheus_url: str = DEFAULT_PROMETHEUS_URL,
    grafana_url: str = DEFAULT_GRAFANA_URL,
) -> dict[str, str]:
    """Page path (relative to the runbooks folder) → Markdown, for every alert of every spec."""
    urls = {"exporter": exporter_url.rstrip("/"), "prometheus": prometheus_url.rstrip("/"),
            "grafana": grafana_url.rstrip("/")}  # fmt: skip
    pages = {POSTMORTEM: POSTMORTEM_TEMPLATE}
    for spec in specs:
        spec_path = spec.source if spec.source != "<memory>" else f"{spec.agent}.slo.yaml"
        by_page: dict[str, list[dict[str, Any]]] = {}
        for group in rule_groups(spec):
            for rule in group["rules"]:
                if "alert" in rule:
                    by_page.setdefault(runbook_page(spec.agent, rule), []).append(rule)
        for slo in spec.slos:  # every SLO has a page, even one whose alerts are all switched off
            by_page.setdefault(f"{spec.agent}/{slo}.md", [])
        for page, rules in by_page.items():
            name = page.removeprefix(f"{spec.agent}/").removesuffix(".md")
            if name in spec.slos:
                pages[page] = _slo_page(spec, spec_path, name, rules, urls)
            else:
                pages[page] = _alert_page(spec, spec_path, name, rules, urls)
        index = [f"# Runbooks of {spec.agent}", ""] + [
            f"- [{p.removeprefix(f'{spec.agent}/').removesuffix('.md')}]({p.removeprefix(f'{spec.agent}/')})"
            for p in sorted(by_page)
        ]
        pages[f"{spec.agent}/README.md"] = "\n".join(index) + "\n"
    return pages
