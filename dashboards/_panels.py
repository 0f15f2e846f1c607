"""Shared panel helpers: grafanalib panels, variables and links, conformed to Grafana's dashboard model.

grafanalib 0.7 still writes some pre-Grafana-8 keys (`span`, `height`, `error`, a top-level `mappings`)
and an old layout for gauges and bar gauges. `render` keeps exactly the keys of Grafana's
schemaVersion 39 model (`dashboards.lint` holds the key sets), so the JSON imports unchanged into
Grafana 10 and 11. Every data panel is built with a unit, a description and the templated datasource.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, Final

import attr
from grafanalib import core as g
from grafanalib._gen import DashboardEncoder

from agentslo import burn, names
from agentslo.dashboards import lint
from agentslo.durations import format_duration
from agentslo.spec import Spec

SCHEMA_VERSION: Final = 39  # Grafana 10.3/11.0 write 39; the lowest the issue allows
TAG: Final = "agent-slo"  # every generated dashboard carries it; dashboard links list by it
DATASOURCE_UID: Final = "agent-slo-prometheus"  # the provisioned datasource (dashboards.provisioning)
DS: Final = {"type": "prometheus", "uid": "${datasource}"}
UIDS: Final = {
    "overview": "agent-slo-overview",
    "flow": "agent-slo-flow",
    "judges": "agent-slo-judges",
    "synthetic": "agent-slo-synthetic",
}
GRID_WIDTH: Final = 24  # Grafana's grid has 24 columns
ALL: Final = ".*"  # the regex an `All` selection stands for; every query matches with =~
# Where a browser reaches the exporter's API by default (`agent-slo serve` and the compose file use :9120).
EXPORTER_URL: Final = "http://localhost:9120"

AGENT = 'agent=~"$agent"'
FLOW = 'flow=~"$flow"'
SLO = 'slo=~"$slo"'

NO_VALUE: Final = "no data"


def sel(metric: str, *matchers: str) -> str:
    """`metric{m1,m2}`: a selector with the given label matchers."""
    return f"{metric}{{{', '.join(matchers)}}}" if matchers else metric


def alternation(values: Iterable[str]) -> str:
    """`a|b` for a `=~` matcher: regex metacharacters escaped with a backslash that PromQL's string
    syntax itself needs escaped (`a.b` is written `a\\\\.b`)."""
    return "|".join(re.sub(r"([.*+?^${}()|\[\]\\])", r"\\\\\1", v) for v in values)


def steps(*pairs: tuple[str, float | None]) -> dict[str, Any]:
    """Absolute thresholds from (color, lower bound) pairs; the first bound is None (−∞)."""
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in pairs]}


def state_mappings(states: Sequence[str], colors: Sequence[str]) -> list[dict[str, Any]]:
    """A value mapping code → state name with its color (autonomy and release state codes)."""
    options = {
        str(i): {"text": s, "color": c, "index": i}
        for i, (s, c) in enumerate(zip(states, colors, strict=True))
    }
    return [{"type": "value", "options": options}]


def target(
    expr: str, legend: str = "", *, instant: bool = False, table: bool = False, buckets: bool = False
) -> g.Target:
    """One Prometheus query on the templated datasource (refIds are assigned by `panel`). `buckets`:
    Grafana's heatmap format, which turns cumulative `le` buckets into per-bucket counts."""
    fmt = "table" if table else "heatmap" if buckets else "time_series"
    return g.Target(expr=expr, legendFormat=legend, instant=instant, datasource=DS, format=fmt)


def dashboard_link(uid_key: str, title: str, **labels: str) -> dict[str, Any]:
    """A data link to another generated dashboard, carrying time range, datasource and variables."""
    params = "&".join(f"var-{k}={v}" for k, v in labels.items())
    sep = "&" if params else ""
    return {
        "title": title,
        "url": f"/d/{UIDS[uid_key]}?{params}{sep}${{__url_time_range}}&${{datasource:queryparam}}",
    }


@attr.s
class Modern(g.Panel):  # type: ignore[misc]
    """A panel written straight in Grafana 8+ form (grafanalib's Gauge/BarGauge predate it)."""

    type: str = attr.ib(default="gauge")
    options: dict[str, Any] = attr.ib(factory=dict)

    def to_json_data(self) -> dict[str, Any]:
        return self.panel_json({"type": self.type, "options": self.options})  # type: ignore[no-any-return]


def _field(kind: str, unit: str, thresholds: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    # Lines keep one colour per series; other panels take their colour from the thresholds.
    by_threshold = thresholds is not None and kind != "timeseries"
    defaults: dict[str, Any] = {
        "unit": unit,
        "color": {"mode": "thresholds" if by_threshold else "palette-classic"},
        "noValue": NO_VALUE,
    }
    if thresholds:
        defaults["thresholds"] = thresholds
    defaults.update({k: v for k, v in extra.items() if v is not None})
    return defaults


_REDUCE: Final = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}


def panel(
    kind: str,
    title: str,
    description: str,
    targets: Sequence[g.Target],
    *,
    unit: str,
    thresholds: dict[str, Any] | None = None,
    mappings: list[dict[str, Any]] | None = None,
    links: list[dict[str, Any]] | None = None,
    min_: float | None = None,
    max_: float | None = None,
    decimals: int | None = None,
    custom: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    overrides: list[dict[str, Any]] | None = None,
    transformations: list[dict[str, Any]] | None = None,
    time_from: str | None = None,
) -> g.Panel:
    """A data panel of `kind` (timeseries, stat, gauge, bargauge, table, state-timeline)."""
    refs = [attr.evolve(t, refId=chr(ord("A") + i)) for i, t in enumerate(targets)]
    defaults = _field(
        kind, unit, thresholds, mappings=mappings, links=links, min=min_, max=max_, decimals=decimals
    )
    if custom:
        defaults["custom"] = custom
    common: dict[str, Any] = dict(
        title=title,
        description=description,
        targets=refs,
        dataSource=DS,
        timeFrom=time_from,
        transformations=transformations or [],
    )
    builders: dict[str, Any] = {
        "timeseries": lambda: g.TimeSeries(unit=unit, **common),
        "stat": lambda: g.Stat(format=unit, reduceCalc="lastNotNull", **common),
        "table": lambda: g.Table(unit=unit, **common),
        "state-timeline": lambda: g.StateTimeline(**common),
        "gauge": lambda: Modern(type="gauge", **common),
        "bargauge": lambda: Modern(type="bargauge", **common),
    }
    built = builders[kind]()
    kind_options: dict[str, dict[str, Any]] = {
        "stat": {**_REDUCE, "graphMode": "area", "colorMode": "value", "textMode": "value_and_name"},
        "gauge": {**_REDUCE, "showThresholdMarkers": True, "showThresholdLabels": False},
        "bargauge": {**_REDUCE, "displayMode": "gradient", "orientation": "horizontal", "showUnfilled": True},
        "table": {"showHeader": True, "cellHeight": "sm"},
    }
    extra: dict[str, Any] = {
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": {**kind_options.get(kind, {}), **(options or {})},
    }
    return attr.evolve(built, extraJson=extra)


def text(title: str, description: str, content: str) -> g.Text:
    """A Markdown panel (no query): runbooks, links to the exporter's API, how to read the page."""
    return g.Text(title=title, description=description, content=content, mode="markdown")


def row(title: str) -> g.RowPanel:
    return g.RowPanel(title=title)


class Grid:
    """Lays panels out left to right in rows of 24 columns; `row` starts a titled section."""

    def __init__(self) -> None:
        self.panels: list[g.Panel] = []
        self._x = 0
        self._y = 0
        self._height = 0

    def add(self, item: g.Panel, w: int, h: int) -> Grid:
        if self._x + w > GRID_WIDTH:
            self._newline()
        self.panels.append(attr.evolve(item, gridPos=g.GridPos(h=h, w=w, x=self._x, y=self._y)))
        self._x += w
        self._height = max(self._height, h)
        return self

    def row(self, title: str) -> Grid:
        self._newline()
        self.panels.append(attr.evolve(row(title), gridPos=g.GridPos(h=1, w=GRID_WIDTH, x=0, y=self._y)))
        self._y += 1
        return self

    def _newline(self) -> None:
        self._y += self._height
        self._x = 0
        self._height = 0


def datasource_variable() -> g.Template:
    return g.Template(
        name="datasource",
        label="Data source",
        type="datasource",
        query="prometheus",
        default=DATASOURCE_UID,
        refresh=g.REFRESH_ON_DASHBOARD_LOAD,
    )


def query_variable(name: str, label: str, metric: str, *matchers: str) -> g.Template:
    """A multi-value label_values variable with an `All` that stands for `.*`, reloaded on time change."""
    definition = f"label_values({sel(metric, *matchers)}, {name})"
    template = g.Template(
        name=name,
        label=label,
        query=definition,
        dataSource=DS,
        includeAll=True,
        multi=True,
        allValue=ALL,
        default="$__all",
        refresh=g.REFRESH_ON_TIME_RANGE_CHANGE,
        sort=g.SORT_ALPHA_ASC,
        regex="",
    )
    return template


def scope_variables(slo_label: str | None = "SLO", slo_matchers: tuple[str, ...] = ()) -> list[g.Template]:
    """The datasource, agent and flow variables every dashboard starts with, and the `slo` one unless
    `slo_label` is None (extra matchers narrow the SLOs offered, e.g. to judge SLOs)."""
    out = [
        datasource_variable(),
        query_variable("agent", "Agent", names.OBJECTIVE_RATIO),
        query_variable("flow", "Flow", names.OBJECTIVE_RATIO, AGENT),
    ]
    if slo_label is not None:
        out.append(query_variable("slo", slo_label, names.OBJECTIVE_RATIO, AGENT, FLOW, *slo_matchers))
    return out


def textbox_variable(name: str, label: str, default: str) -> g.Template:
    return g.Template(name=name, label=label, query=default, type="textbox", default=default)


def runbooks(specs: Sequence[Spec]) -> list[tuple[str, str]]:
    """(link title, URL) of each SLO's runbook (`alerting.runbook_url`), for the dashboards' link bar."""
    out = []
    for spec in specs:
        for slo in spec.slos:
            url = spec.alerting_for(slo).runbook_url
            if url:
                out.append((f"Runbook: {spec.agent} / {slo}", url))
    return out


def links(runbook_links: Iterable[tuple[str, str]] = ()) -> list[g.DashboardLink]:
    """The other agent-slo dashboards (as a dropdown, keeping time and variables) and runbooks."""
    out = [
        g.DashboardLink(
            title="agent-slo dashboards",
            type="dashboards",
            tags=[TAG],
            asDropdown=True,
            includeVars=True,
            keepTime=True,
        )
    ]
    for title, url in runbook_links:
        out.append(
            g.DashboardLink(
                title=title,
                type="link",
                uri=url,
                icon="doc",
                targetBlank=True,
                keepTime=False,
                tooltip="Runbook",
            )
        )
    return out


def release_annotation(agent_matcher: str = AGENT) -> dict[str, Any]:
    """Marks each release: a build_info label set that did not exist 5 minutes earlier."""
    labels = f"{names.L_AGENT}, {names.L_VERSION}, {names.L_PROMPT_VERSION}, {names.L_MODEL}"
    build = sel(names.BUILD_INFO, agent_matcher)
    expr = f"group by ({labels}) ({build}) unless group by ({labels}) ({build} offset {RELEASE_LOOKBACK})"
    return {
        "name": "Releases",
        "datasource": DS,
        "enable": True,
        "hide": False,
        "iconColor": "blue",
        "expr": expr,
        "step": "1m",
        "titleFormat": "Release {{version}}",
        "textFormat": "{{agent}}: prompt {{prompt_version}}, model {{model}}",
        "tagKeys": "agent,version",
        "useValueForTime": False,
    }


# How long a new build_info label set counts as "just released" (one Grafana annotation region).
RELEASE_LOOKBACK: Final = "5m"

_BUILTIN_ANNOTATION: Final = {
    "builtIn": 1,
    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
    "enable": True,
    "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)",
    "name": "Annotations & Alerts",
    "type": "dashboard",
}


def render(
    uid_key: str,
    title: str,
    description: str,
    grid: Grid,
    variables: Sequence[g.Template],
    dashboard_links: Sequence[g.DashboardLink],
    annotations: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The dashboard as plain JSON data within Grafana's schemaVersion 39 model."""
    board = g.Dashboard(
        title=title,
        uid=UIDS[uid_key],
        description=description,
        tags=[TAG],
        panels=grid.panels,
        templating=g.Templating(list=list(variables)),
        links=list(dashboard_links),
        annotations=g.Annotations(list=[_BUILTIN_ANNOTATION, *annotations]),
        time=g.Time("now-24h", "now"),
        timezone="browser",
        refresh="1m",
        schemaVersion=SCHEMA_VERSION,
        editable=False,
        graphTooltip=g.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
        version=1,
    ).auto_panel_ids()
    data = json.loads(json.dumps(board.to_json_data(), cls=DashboardEncoder))
    return _conform_dashboard(data)


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _conform_target(t: dict[str, Any]) -> dict[str, Any]:
    t = {k: v for k, v in t.items() if k in lint.TARGET_KEYS - {"intervalFactor"} and v not in (None, "")}
    t["range"] = not t.get("instant", False)
    return t


def _conform_panel(p: dict[str, Any]) -> dict[str, Any]:
    keys = lint.ROW_KEYS if p.get("type") == "row" else lint.PANEL_KEYS
    out = {k: v for k, v in _drop_none(p).items() if k in keys}
    if p.get("type") == "row":
        out.setdefault("panels", [])
        return out
    field = out.get("fieldConfig", {})
    defaults = {k: v for k, v in _drop_none(field.get("defaults", {})).items() if k in lint.FIELD_CONFIG_KEYS}
    if "custom" in defaults:
        defaults["custom"] = _drop_none(defaults["custom"])
    if out.get("type") == "table":
        # Grafana 10 replaced the table's `displayMode` with `cellOptions`.
        defaults.setdefault("custom", {}).pop("displayMode", None)
        defaults["custom"]["cellOptions"] = {"type": "auto"}
    out["fieldConfig"] = {"defaults": defaults, "overrides": field.get("overrides", [])}
    out["targets"] = [_conform_target(t) for t in out.get("targets", [])]
    if out.get("type") == "text":
        out.pop("targets")
        out.pop("datasource", None)
    for key in ("repeat", "timeFrom", "interval"):
        if out.get(key) in ("", None):
            out.pop(key, None)
    if not out.get("repeat"):
        out.pop("repeatDirection", None)
        out.pop("maxPerRow", None)
    return out


_VARIABLE_LEGACY: Final = ("useTags", "tagsQuery", "tagValuesQuery", "auto", "auto_min", "auto_count")


def _conform_variable(v: dict[str, Any]) -> dict[str, Any]:
    out = {k: val for k, val in _drop_none(v).items() if k not in _VARIABLE_LEGACY}
    if out.get("type") == "query":
        out["definition"] = out["query"]
    current = out.get("current") or {}
    if current.get("value") == "$__all":
        out["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    else:
        out["current"] = {k: val for k, val in current.items() if k != "tags"}
    return out


def _conform_dashboard(data: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in _drop_none(data).items() if k in lint.DASHBOARD_KEYS and k != "__inputs"}
    out["panels"] = [_conform_panel(p) for p in out.get("panels", [])]
    out["templating"] = {"list": [_conform_variable(v) for v in out["templating"]["list"]]}
    out["links"] = [_drop_none(link) for link in out.get("links", [])]
    out["timepicker"] = _drop_none(out.get("timepicker", {}))
    return out


def period_error_ratio(specs: Sequence[Spec], *matchers: str) -> str:
    """The period error-ratio recording (`…ratio_rate30d`) of every SLO in `specs`; several names when
    periods differ (each SLO's series exists under its own period's name only)."""
    windows = sorted({format_duration(s.period_seconds(slo)) for s in specs for slo in s.slos})
    if len(windows) == 1:
        return sel(names.sli_error_ratio(windows[0]), *matchers)
    return sel("", f'__name__=~"{alternation(names.sli_error_ratio(w) for w in windows)}"', *matchers)


def burn_steps(specs: Sequence[Spec]) -> dict[str, Any]:
    """Threshold steps at each alert tier's burn factor (the lowest across specs): ticket tiers in
    yellow/orange, page tiers in red, so a burn-rate line is read against the tiers that would fire."""
    colors = {"ticket_slow": "yellow", "ticket_fast": "orange", "page_slow": "red", "page_fast": "dark-red"}
    factors: dict[str, float] = {}
    for s in specs:
        for slo in s.slos:
            for tier, (_, _, factor) in burn.catalog(s, s.period_seconds(slo)).items():
                factors[tier] = min(factor, factors.get(tier, factor))
    ordered = sorted(factors.items(), key=lambda kv: kv[1])
    return steps(("green", None), *((colors[t], f) for t, f in ordered))
