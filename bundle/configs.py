"""Prometheus and Alertmanager configuration for the bundle, as pure functions of the specs.

`agent-slo build`, `agent-slo demo`, docker-compose and the end-to-end tests all take their
configuration from here, so what is tested is what ships:

    >>> from agentslo.spec import load_spec
    >>> spec = load_spec("examples/cx-support.slo.yaml")
    >>> retention([spec])        # the 30d period plus a week of margin
    '37d'
    >>> sorted(alertmanager_config([spec])["route"])[:3]
    ['group_by', 'group_interval', 'group_wait']

Prometheus keeps its data for `--storage.tsdb.retention.time` (default 15d), which would silently
cut a 30d error budget in half: every launcher here passes `retention(specs)` instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from agentslo import names
from agentslo.durations import format_duration
from agentslo.spec import Spec

DAY: Final = 86400
# Prometheus retention beyond the longest period: the period window must be complete at its far end,
# and a week of margin covers restarts, backfills and the 7d drift baseline.
RETENTION_MARGIN_SECONDS: Final = 7 * DAY
DEFAULT_SCRAPE_INTERVAL: Final = "15s"
DEFAULT_EVALUATION_INTERVAL: Final = "30s"
DEFAULT_EXPORTER_TARGET: Final = "exporter:9120"
DEFAULT_ALERTMANAGER_TARGET: Final = "alertmanager:9093"
# Where receivers post until the user points them at a pager or chat tool. `.invalid` never resolves
# (RFC 2606), so an unconfigured bundle fails visibly in Alertmanager's logs instead of paging a stranger.
PLACEHOLDER_WEBHOOK_BASE: Final = "http://alert-receiver.invalid/agent-slo"
DEFAULT_RECEIVER: Final = "agent-slo-default"
# Alert grouping: one notification per SLO and flow, so a burning SLO is one page, not one per tier.
GROUP_BY: Final = ("alertname", names.L_AGENT, names.L_SLO, names.L_FLOW)
# Pages repeat hourly while firing; tickets and budget notices daily (they are not urgent by design).
PAGE_REPEAT: Final = "1h"
TICKET_REPEAT: Final = "24h"
# Receivers of synthetic failures when the spec sets `synthetic.business_hours`: `<agent>.synthetic.page`
# inside those hours, `<agent>.synthetic.ticket` outside them.
SYNTHETIC_RECEIVER: Final = "synthetic"


def retention(specs: Sequence[Spec]) -> str:
    """`--storage.tsdb.retention.time` for the specs: the longest SLO period plus a week."""
    longest = max((s.period_seconds(slo) for s in specs for slo in s.slos), default=30 * DAY)
    return format_duration(longest + RETENTION_MARGIN_SECONDS)


def scrape_jobs(specs: Sequence[Spec]) -> list[str]:
    """The distinct `telemetry.scrape_job` names of the specs, in first-seen order."""
    return list(dict.fromkeys(s.telemetry.scrape_job for s in specs))


def prometheus_config(
    specs: Sequence[Spec],
    *,
    rule_files: Sequence[str] = ("rules/*.yaml",),
    exporter_targets: Sequence[str] | Mapping[str, Sequence[str]] = (DEFAULT_EXPORTER_TARGET,),
    alertmanager_targets: Sequence[str] = (DEFAULT_ALERTMANAGER_TARGET,),
    scrape_interval: str = DEFAULT_SCRAPE_INTERVAL,
    evaluation_interval: str = DEFAULT_EVALUATION_INTERVAL,
    extra_scrape_configs: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """prometheus.yml as data: scrape the exporter under each spec's `telemetry.scrape_job`, load the
    generated rules, and send alerts to Alertmanager.

    `exporter_targets` is one target list for every job, or a mapping job → targets when specs with
    different scrape jobs are served by different exporters. Rule groups carry their own interval;
    `evaluation_interval` only applies to groups that do not.
    """
    jobs = scrape_jobs(specs)
    scrape_configs: list[dict[str, Any]] = []
    for job in jobs:
        targets = exporter_targets.get(job, ()) if isinstance(exporter_targets, Mapping) else exporter_targets
        if not targets:
            raise ValueError(f"no exporter target for scrape job {job!r}; give one in exporter_targets")
        scrape_configs.append(
            {
                "job_name": job,
                # honor_labels: the exporter's agent/flow labels are the SLO's identity; never rename them.
                "honor_labels": True,
                "static_configs": [{"targets": list(targets)}],
            }
        )
    scrape_configs.extend(dict(c) for c in extra_scrape_configs)
    config: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "rule_files": list(rule_files),
        "scrape_configs": scrape_configs,
    }
    if alertmanager_targets:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": list(alertmanager_targets)}]}]
        }
    return config


def receiver_name(agent: str, owner: str, kind: str) -> str:
    """`cx-support.product.page`: one receiver per agent, owner and kind (`page` or `ticket`)."""
    return f"{agent}.{owner}.{kind}"


def _matchers(labels: Mapping[str, str]) -> list[str]:
    return [f'{k}="{_escape(v)}"' for k, v in sorted(labels.items())]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _owner_routes(spec: Spec) -> list[dict[str, Any]]:
    """Routes for the owners that SLOs actually use: match the owner's routing labels, then split
    pages (severity critical) from tickets (warning) and budget notices (info)."""
    used = list(dict.fromkeys(slo.owner for slo in spec.slos.values()))
    # Owners with more routing labels are more specific, so they are tried first.
    used.sort(key=lambda o: -len(spec.owners[o]))
    routes = []
    for owner in used:
        labels = spec.owners[owner]
        if not labels:
            continue  # no routing labels: its alerts fall through to the agent's default receiver
        routes.append(
            {
                "matchers": _matchers(labels),
                "receiver": receiver_name(spec.agent, owner, "ticket"),
                "repeat_interval": TICKET_REPEAT,
                "routes": [
                    {
                        "matchers": [f'{names.L_SEVERITY}="critical"'],
                        "receiver": receiver_name(spec.agent, owner, "page"),
                        "repeat_interval": PAGE_REPEAT,
                    }
                ],
            }
        )
    return routes


def business_hours_name(spec: Spec) -> str:
    """`cx-support.business-hours`: the Alertmanager time interval of a spec's business hours."""
    return f"{spec.agent}.business-hours"


def time_intervals(specs: Sequence[Spec]) -> list[dict[str, Any]]:
    """Alertmanager `time_intervals` for the specs' `synthetic.business_hours` (in their time zone)."""
    out = []
    for spec in specs:
        hours = spec.synthetic.business_hours if spec.synthetic is not None else None
        if hours is None:
            continue
        start, end = hours.hours.split("-")
        interval = {"weekdays": list(hours.days), "times": [{"start_time": start, "end_time": end}],
                    "location": hours.time_zone}  # fmt: skip
        out.append({"name": business_hours_name(spec), "time_intervals": [interval]})
    return out


def _synthetic_routes(spec: Spec) -> list[dict[str, Any]]:
    """Synthetic failures (AgentSLOSyntheticFailing, and the pages of synthetic SLOs) page inside the
    spec's business hours and open a ticket outside them.

    Each goes to both children: the page child is active only in business hours and `continue`s to
    the ticket child, which is muted in them; so exactly one of the two notifies at any time."""
    if spec.synthetic is None or spec.synthetic.business_hours is None:
        return []
    interval = business_hours_name(spec)
    page, ticket = (receiver_name(spec.agent, SYNTHETIC_RECEIVER, kind) for kind in ("page", "ticket"))
    by_hours = [
        {
            "receiver": page,
            "active_time_intervals": [interval],
            "repeat_interval": PAGE_REPEAT,
            "continue": True,
        },
        {"receiver": ticket, "mute_time_intervals": [interval], "repeat_interval": TICKET_REPEAT},
    ]
    routes = [
        {"matchers": [f'alertname="{names.ALERT_SYNTHETIC_FAILING}"'], "receiver": ticket, "routes": by_hours}
    ]
    synthetic_slos = [name for name, slo in spec.slos.items() if slo.sli.kind == "synthetic"]
    if synthetic_slos:
        pattern = _escape("|".join(re.escape(name) for name in synthetic_slos))
        matchers = [f'{names.L_SLO}=~"{pattern}"', f'{names.L_SEVERITY}="critical"']
        routes.append({"matchers": matchers, "receiver": ticket, "routes": by_hours})
    return routes


def receivers_of(specs: Sequence[Spec]) -> list[str]:
    """Every receiver name the routing tree uses, default first."""
    out = [DEFAULT_RECEIVER]
    for spec in specs:
        out.append(receiver_name(spec.agent, "default", "ticket"))
        if _synthetic_routes(spec):
            out += [receiver_name(spec.agent, SYNTHETIC_RECEIVER, k) for k in ("page", "ticket")]
        for owner in dict.fromkeys(slo.owner for slo in spec.slos.values()):
            if spec.owners[owner]:
                out += [receiver_name(spec.agent, owner, "ticket"), receiver_name(spec.agent, owner, "page")]
    return list(dict.fromkeys(out))


def inhibit_rules() -> list[dict[str, Any]]:
    """A page of an SLO (burn tier page_*) silences the same SLO and flow's ticket alerts.

    `equal` compares agent, slo and flow, so one SLO's page never hides another SLO's ticket, and
    alerts without an `slo` label (telemetry, spec mismatch) are never inhibited by SLO pages.
    """
    return [
        {
            "source_matchers": [
                f'alertname="{names.ALERT_BURN_RATE}"',
                f'{names.L_SEVERITY}="critical"',
                f'{names.L_BURN_TIER}=~"page_.*"',
            ],
            "target_matchers": [f'{names.L_SEVERITY}="warning"'],
            "equal": [names.L_AGENT, names.L_SLO, names.L_FLOW],
        }
    ]


def alertmanager_config(
    specs: Sequence[Spec],
    *,
    webhook_base_url: str = PLACEHOLDER_WEBHOOK_BASE,
    group_wait: str = "30s",
    group_interval: str = "5m",
    resolve_timeout: str = "5m",
) -> dict[str, Any]:
    """alertmanager.yml as data: route by agent, then by each owner's routing labels, then pages
    (severity critical) apart from tickets; page alerts inhibit the same SLO's ticket alerts. With
    `synthetic.business_hours`, synthetic failures page in those hours and open a ticket outside.

    Every receiver is a webhook at `<webhook_base_url>/<receiver name>`: replace them with your pager
    and chat integrations (the names say who and how urgent), or point the base at a relay.
    """
    base = webhook_base_url.rstrip("/")
    agent_routes = []
    for spec in specs:
        agent_routes.append(
            {
                "matchers": [f'{names.L_AGENT}="{_escape(spec.agent)}"'],
                "receiver": receiver_name(spec.agent, "default", "ticket"),
                "routes": _synthetic_routes(spec) + _owner_routes(spec),
            }
        )
    config: dict[str, Any] = {
        "global": {"resolve_timeout": resolve_timeout},
        "route": {
            "receiver": DEFAULT_RECEIVER,
            "group_by": list(GROUP_BY),
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": TICKET_REPEAT,
            "routes": agent_routes,
        },
        "inhibit_rules": inhibit_rules(),
        "receivers": [
            {"name": r, "webhook_configs": [{"url": f"{base}/{r}", "send_resolved": True}]}
            for r in receivers_of(specs)
        ],
    }
    if intervals := time_intervals(specs):
        config["time_intervals"] = intervals
    return config
