"""A Python port of the grafana/dashboard-linter rules that apply to agent-slo's dashboards.

Ported rules (names as in the Go linter): `template-datasource-rule`, `template-on-time-change-reload-rule`,
`template-label-promql-rule` (structure only; `promql_of` gives the queries to a real parser),
`panel-datasource-rule`, `panel-title-description-rule`, `panel-units-rule`, `panel-no-targets-rule`,
`target-rate-interval-rule`, `target-counter-agg-rule`. Added for this project: `panel-legacy-type-rule`
(no Graph/SingleStat or other pre-Grafana-8 panels), `dashboard-model-keys-rule` (every key is one of
Grafana's schemaVersion 39 dashboard model) and `dashboard-schema-version-rule` (≥ 39).
Not ported: the job/instance rules (agent-slo selects on `agent`/`flow`/`slo`, never on scrape labels)
and the LogQL rules.

    >>> from agentslo.dashboards import lint
    >>> lint.lint_dashboard({"title": "x", "panels": []})[0].rule
    'dashboard-schema-version-rule'
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

MIN_SCHEMA_VERSION: Final = 39
MODERN_PANELS: Final = frozenset(
    {"timeseries", "stat", "gauge", "bargauge", "table", "state-timeline", "text", "row"}
)
DATA_PANELS: Final = MODERN_PANELS - {"text", "row"}

# Keys of Grafana's dashboard model (kinds/dashboard/dashboard_kind.cue, schemaVersion 39), plus the
# export-only `__inputs`/`__requires`/`__elements`.
DASHBOARD_KEYS: Final = frozenset(
    {
        "id",
        "uid",
        "title",
        "description",
        "revision",
        "gnetId",
        "tags",
        "timezone",
        "editable",
        "graphTooltip",
        "time",
        "timepicker",
        "fiscalYearStartMonth",
        "liveNow",
        "weekStart",
        "refresh",
        "schemaVersion",
        "version",
        "panels",
        "templating",
        "annotations",
        "links",
        "snapshot",
        "__inputs",
        "__requires",
        "__elements",
    }
)
PANEL_KEYS: Final = frozenset(
    {
        "type",
        "id",
        "pluginVersion",
        "tags",
        "targets",
        "title",
        "description",
        "transparent",
        "datasource",
        "gridPos",
        "links",
        "repeat",
        "repeatDirection",
        "repeatPanelId",
        "maxPerRow",
        "maxDataPoints",
        "transformations",
        "interval",
        "timeFrom",
        "timeShift",
        "hideTimeOverride",
        "libraryPanel",
        "options",
        "fieldConfig",
        "cacheTimeout",
        "queryCachingTTL",
    }
)
ROW_KEYS: Final = frozenset({"type", "collapsed", "title", "datasource", "gridPos", "id", "panels", "repeat"})
FIELD_CONFIG_KEYS: Final = frozenset(
    {
        "displayName",
        "displayNameFromDS",
        "description",
        "path",
        "writeable",
        "filterable",
        "unit",
        "decimals",
        "min",
        "max",
        "mappings",
        "thresholds",
        "color",
        "links",
        "noValue",
        "custom",
        "fieldMinMax",
    }
)
# The Prometheus query model (public/app/plugins/datasource/prometheus/dataquery.cue).
TARGET_KEYS: Final = frozenset(
    {
        "refId",
        "datasource",
        "expr",
        "legendFormat",
        "instant",
        "range",
        "format",
        "interval",
        "hide",
        "editorMode",
        "exemplar",
        "intervalFactor",
        "queryType",
    }
)
GRID_KEYS: Final = frozenset({"h", "w", "x", "y", "static"})

# Units Grafana knows (dashboard-linter's list, from grafana-data valueFormats/categories.ts), the subset a
# dashboard of this kind can reasonably use; an unknown unit renders as a suffix, which this rule refuses.
VALID_UNITS: Final = frozenset(
    {
        "none",
        "string",
        "short",
        "percent",
        "percentunit",
        "locale",
        "sci",
        "currencyUSD",
        "currencyEUR",
        "currencyGBP",
        "hertz",
        "ns",
        "µs",
        "ms",
        "s",
        "m",
        "h",
        "d",
        "dtdurationms",
        "dtdurations",
        "dthms",
        "dtdhms",
        "clockms",
        "clocks",
        "dateTimeAsIso",
        "dateTimeAsLocal",
        "dateTimeFromNow",
        "cps",
        "ops",
        "reqps",
        "rps",
        "wps",
        "iops",
        "cpm",
        "opm",
        "rpm",
        "wpm",
        "bool",
        "bool_yes_no",
        "bool_on_off",
        "bytes",
        "decbytes",
    }
)
COUNTER_SUFFIXES: Final = ("_total",)
COUNTER_FUNCTIONS: Final = frozenset({"rate", "irate", "increase"})
RATE_FUNCTIONS: Final = frozenset({"rate", "irate"})
# Grafana's global variables, with the values the linter substitutes when it parses a query.
GLOBAL_VARIABLES: Final = {
    "__rate_interval": "8869990787ms",  # the Go linter's magic duration: recognisable after substitution
    "__interval": "4867856611ms",
    "__range": "6h",
    "__range_s": "21600",
    "__range_ms": "21600000",
}
_VAR_RE: Final = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)(?::\w+)?\]\]|\$(\w+)")
_KEYWORDS: Final = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "bool",
        "and",
        "or",
        "unless",
        "inf",
        "nan",
        "atan2",
    }
)


@dataclass(frozen=True, order=True)
class Problem:
    """One lint finding: which rule, where (dashboard title / panel title / refId), and what."""

    rule: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.where}: {self.message}"


def substitute(expr: str, variables: dict[str, str]) -> str:
    """`expr` with `$var`, `${var}`, `${var:fmt}` and `[[var]]` replaced (unknown names left as they are)."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        return variables.get(name, m.group(0))

    return _VAR_RE.sub(repl, expr)


def lint_substitutions(dashboard: dict[str, Any]) -> dict[str, str]:
    """How the linter fills variables before parsing: globals by magic values, template variables by `.*`."""
    values = dict(GLOBAL_VARIABLES)
    for v in dashboard.get("templating", {}).get("list", []):
        values[v.get("name", "")] = "agent-slo-prometheus" if v.get("type") == "datasource" else ".*"
    return values


def iter_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for p in dashboard.get("panels", []):
        yield p
        yield from p.get("panels", [])


def promql_of(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expr) of every PromQL query: panel targets, variable queries, annotation queries."""
    out: list[tuple[str, str]] = []
    title = dashboard.get("title", "")
    for p in iter_panels(dashboard):
        for t in p.get("targets", []):
            out.append((f"{title} / {p.get('title')} / {t.get('refId')}", t.get("expr", "")))
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            query = v["query"] if isinstance(v["query"], str) else v["query"].get("query", "")
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query.strip())
            out.append((f"{title} / variable {v['name']}", m.group(1) if m else query))
    for a in dashboard.get("annotations", {}).get("list", []):
        if a.get("expr"):
            out.append((f"{title} / annotation {a.get('name')}", a["expr"]))
    return out


# --- a small PromQL scanner: enough structure for the counter and rate-interval rules ---
_TOKEN_RE: Final = re.compile(
    r"""\s*(?:(?P<str>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)|(?P<range>\[[^\]]*\])"""
    r"""|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)|(?P<num>[0-9][0-9.eExX+]*[a-z]*)|(?P<op>[(){},]|[^\s\w(){},"'`\[\]]+))"""
)


def _tokens(expr: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN_RE.match(expr, pos)
        if m is None or m.end() == pos:
            if expr[pos:].strip():
                raise ValueError(f"cannot scan PromQL at {expr[pos : pos + 20]!r}")
            break
        kind = m.lastgroup or "op"
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _selectors(expr: str) -> Iterator[tuple[str, str | None, str | None]]:
    """(metric, range or None, enclosing function or None) for each metric selector in `expr`."""
    toks = _tokens(expr)
    stack: list[str | None] = []  # the function (or None) that opened each '('
    depth_brace = 0
    for i, (kind, val) in enumerate(toks):
        nxt = toks[i + 1] if i + 1 < len(toks) else ("", "")
        if kind == "op" and val == "(":
            prev = toks[i - 1] if i else ("", "")
            stack.append(prev[1] if prev[0] == "ident" and prev[1] not in _KEYWORDS else None)
        elif kind == "op" and val == ")":
            if stack:
                stack.pop()
        elif kind == "op" and val == "{":
            depth_brace += 1
        elif kind == "op" and val == "}":
            depth_brace -= 1
        elif (
            kind == "ident"
            and depth_brace == 0
            and nxt[1] not in ("(", "by", "without")
            and val not in _KEYWORDS
        ):
            if _in_label_list(toks, i):  # `by (flow)`, `on (agent)`…: label names, not metrics
                continue
            j = i + 1
            if j < len(toks) and toks[j][1] == "{":
                while j < len(toks) and toks[j][1] != "}":
                    j += 1
                j += 1
            rng = toks[j][1] if j < len(toks) and toks[j][0] == "range" else None
            yield val, rng, stack[-1] if stack else None


def _in_label_list(toks: list[tuple[str, str]], i: int) -> bool:
    """Whether token i sits inside the parentheses after by/without/on/ignoring/group_left/group_right."""
    depth = 0
    for k in range(i - 1, -1, -1):
        val = toks[k][1]
        if val == ")":
            depth += 1
        elif val == "(":
            if depth == 0:
                return k > 0 and toks[k - 1][1] in {
                    "by",
                    "without",
                    "on",
                    "ignoring",
                    "group_left",
                    "group_right",
                }
            depth -= 1
    return False


# --- the rules ---


def _check_dashboard(d: dict[str, Any]) -> Iterator[Problem]:
    title = d.get("title", "<untitled>")
    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < MIN_SCHEMA_VERSION:
        yield Problem(
            "dashboard-schema-version-rule",
            title,
            f"schemaVersion {d.get('schemaVersion')!r} is below {MIN_SCHEMA_VERSION} (Grafana 10.3+)",
        )
    for key in sorted(set(d) - DASHBOARD_KEYS):
        yield Problem("dashboard-model-keys-rule", title, f"unknown dashboard key {key!r}")
    if not d.get("title"):
        yield Problem("panel-title-description-rule", title, "the dashboard has no title")
    variables = d.get("templating", {}).get("list", [])
    datasources = [v for v in variables if v.get("type") == "datasource"]
    if not datasources:
        yield Problem("template-datasource-rule", title, "no templated datasource variable")
    for v in datasources:
        if v.get("name") not in ("datasource", f"{v.get('query', '').lower()}_datasource"):
            yield Problem(
                "template-datasource-rule",
                title,
                f"datasource variable {v.get('name')!r} should be named 'datasource'",
            )
        if v.get("label") not in ("Data source", f"{v.get('query', '').title()} data source"):
            yield Problem(
                "template-datasource-rule",
                title,
                f"datasource variable labelled {v.get('label')!r}, should be 'Data source'",
            )
    for v in variables:
        if v.get("type") == "query":
            if v.get("refresh") != 2:
                yield Problem(
                    "template-on-time-change-reload-rule",
                    title,
                    f"variable {v.get('name')!r} should reload on time range change (refresh: 2)",
                )
            if v.get("datasource", {}).get("uid") not in {f"${ds['name']}" for ds in datasources} | {
                f"${{{ds['name']}}}" for ds in datasources
            }:
                yield Problem(
                    "template-datasource-rule",
                    title,
                    f"variable {v.get('name')!r} does not use the templated datasource",
                )


def _check_panel(
    d: dict[str, Any], p: dict[str, Any], ds_names: set[str], ids: set[int]
) -> Iterator[Problem]:
    where = f"{d.get('title')} / {p.get('title') or '<untitled panel>'}"
    kind = p.get("type")
    if kind not in MODERN_PANELS:
        yield Problem(
            "panel-legacy-type-rule", where, f"panel type {kind!r} is not one of {sorted(MODERN_PANELS)}"
        )
    allowed = ROW_KEYS if kind == "row" else PANEL_KEYS
    for key in sorted(set(p) - allowed):
        yield Problem("dashboard-model-keys-rule", where, f"unknown panel key {key!r}")
    grid = p.get("gridPos", {})
    if (
        set(grid) - GRID_KEYS
        or not {"h", "w", "x", "y"} <= set(grid)
        or grid.get("x", 0) + grid.get("w", 0) > 24
    ):
        yield Problem("dashboard-model-keys-rule", where, f"gridPos {grid} is not within the 24-column grid")
    if p.get("id") in ids:
        yield Problem("dashboard-model-keys-rule", where, f"panel id {p.get('id')} is used twice")
    ids.add(p.get("id", -1))
    if kind == "row":
        return
    if not p.get("title"):
        yield Problem("panel-title-description-rule", where, "panel has no title")
    if not p.get("description"):
        yield Problem("panel-title-description-rule", where, "panel has no description")
    if kind not in DATA_PANELS:
        return
    field = p.get("fieldConfig", {})
    for key in sorted(set(field.get("defaults", {})) - FIELD_CONFIG_KEYS):
        yield Problem("dashboard-model-keys-rule", where, f"unknown fieldConfig key {key!r}")
    units = [field.get("defaults", {}).get("unit", "")] + [
        prop.get("value", "")
        for o in field.get("overrides", [])
        for prop in o.get("properties", [])
        if prop.get("id") == "unit"
    ]
    if not units[0] or any(u not in VALID_UNITS for u in units):
        yield Problem("panel-units-rule", where, f"no or invalid unit: {units}")
    if p.get("datasource", {}).get("uid") not in ds_names:
        yield Problem(
            "panel-datasource-rule", where, f"does not use a templated datasource: {p.get('datasource')}"
        )
    targets = p.get("targets", [])
    if not targets:
        yield Problem("panel-no-targets-rule", where, "panel has no queries")
    for t in targets:
        for key in sorted(set(t) - TARGET_KEYS):
            yield Problem("dashboard-model-keys-rule", where, f"unknown query key {key!r}")
        if t.get("datasource", {}).get("uid") not in ds_names:
            yield Problem(
                "panel-datasource-rule",
                where,
                f"query {t.get('refId')} does not use the templated datasource",
            )
        yield from _check_expr(where, t.get("refId", "?"), t.get("expr", ""))


def _check_expr(where: str, ref: str, expr: str) -> Iterator[Problem]:
    if not expr.strip():
        yield Problem("panel-no-targets-rule", where, f"query {ref} is empty")
        return
    try:
        selectors = list(_selectors(expr))
    except ValueError as exc:
        yield Problem("target-promql-rule", where, f"query {ref}: {exc}")
        return
    for metric, rng, func in selectors:
        if metric.endswith(COUNTER_SUFFIXES) and (rng is None or func not in COUNTER_FUNCTIONS):
            yield Problem(
                "target-counter-agg-rule",
                where,
                f"query {ref}: counter {metric} is not wrapped in rate, irate or increase",
            )
        if func in RATE_FUNCTIONS and rng is not None and rng != "[$__rate_interval]":
            yield Problem(
                "target-rate-interval-rule",
                where,
                f"query {ref}: {func}({metric}{rng}) should use [$__rate_interval]",
            )


def lint_dashboard(d: dict[str, Any]) -> list[Problem]:
    """Every problem the ported rules find in one dashboard (an empty list when it is clean)."""
    problems = list(_check_dashboard(d))
    ds_names = {
        f"${v['name']}" for v in d.get("templating", {}).get("list", []) if v.get("type") == "datasource"
    }
    ds_names |= {f"${{{n[1:]}}}" for n in ds_names}
    ids: set[int] = set()
    for p in iter_panels(d):
        problems.extend(_check_panel(d, p, ds_names, ids))
    for a in d.get("annotations", {}).get("list", []):
        if a.get("expr"):
            problems.extend(
                _check_expr(f"{d.get('title')} / annotation {a.get('name')}", "annotation", a["expr"])
            )
    return sorted(problems)
