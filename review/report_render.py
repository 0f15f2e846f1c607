"""The review rendered: one self-contained HTML page (inline SVG, mail- and print-friendly) or Markdown.

Both take a `review.report_model.Report`. Every table is built once as plain text (`Table`: a
caption, headers, rows, formatted by the model's `fmt_*` helpers) and then written as HTML (escaped)
or as Markdown, so a chat message and the mailed page never disagree on a number. The HTML has no
script and no external resource (no font, image or stylesheet link), and styles that survive a mail
client: simple element rules in one `<style>` block, table borders as attributes, and an
`@media print` block that starts each flow on a new page. Charts are inline SVG (`review.svg`);
Markdown gets a sparkline and a one-line summary in their place.

    from agentslo.review.report_render import render_html, render_markdown
    Path("review.html").write_text(render_html(report))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

from agentslo.review.history import AlertInterval, BuildChange, EventCounts
from agentslo.review.report_model import (
    FlowReview,
    Report,
    SLOReview,
    fmt_count,
    fmt_duration,
    fmt_pct,
    fmt_share,
)
from agentslo.review.svg import STATE_COLOURS, HLine, Line, Marker, Span, line_chart, sparkline, state_chart

SEVERITY_COLOURS: Final = {"critical": "#c8102e", "warning": "#f0b400", "info": "#1f77b4"}
TIER_COLOURS: Final = {
    "page_fast": "#c8102e",
    "page_slow": "#e0651a",
    "ticket_fast": "#f0b400",
    "ticket_slow": "#8c8c00",
}
NOTHING_TO_DECIDE: Final = (
    "Nothing to decide: every objective is within its budget and none is met with a wide margin all period."
)
NO_RELEASES: Final = "No releases in the window."
NO_ALERTS: Final = "No alerts fired in the window."

# The summary's columns: (header, value of one SLO review).
SUMMARY_COLUMNS: Final[tuple[tuple[str, Callable[[SLOReview], str]], ...]] = (
    ("agent", lambda s: s.agent),
    ("flow", lambda s: s.flow),
    ("SLO", lambda s: s.slo),
    ("objective", lambda s: f"{s.objective:g}%"),
    ("SLI (window)", lambda s: fmt_pct(s.week.sli)),
    ("SLI (period)", lambda s: fmt_pct(s.period.sli)),
    ("events (window)", lambda s: fmt_count(s.week.total)),
    ("budget spent", lambda s: fmt_share(s.budget_spent)),
    ("budget left", lambda s: fmt_share(s.budget_left)),
    ("pages", lambda s: str(s.pages)),
    ("tickets", lambda s: str(s.tickets)),
)

_CSS: Final = """
body { font-family: sans-serif; color: #222; max-width: 760px; margin: 0 auto; padding: 12px; }
h1 { font-size: 20px; } h2 { font-size: 17px; border-bottom: 1px solid #ccc; } h3 { font-size: 15px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 12px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; }
td.n { text-align: right; }
.note { background: #fff4d6; border: 1px solid #f0b400; padding: 6px 10px; }
.muted { color: #666; font-size: 12px; }
svg.chart { display: block; margin: 6px 0; max-width: 100%; height: auto; }
@media print {
  body { max-width: none; }
  section.flow { page-break-before: always; }
  svg.chart, table { page-break-inside: avoid; }
}
"""


@dataclass(frozen=True)
class Table:
    """A table as plain text, written by both renderers; `kind` names it (an HTML class)."""

    kind: str
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]


def build_label(build: BuildChange) -> str:
    """A release marker's text: version / prompt version / model, the parts that are set."""
    return " / ".join(p for p in (build.version, build.prompt_version, build.model) if p) or "build change"


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))


def _score(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _signed(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.3f}"


# --- what both formats say ---


def title(report: Report) -> str:
    agents = sorted({f.agent for f in report.flows})
    return f"SLO review: {', '.join(agents) or 'no agents'}"


def window(report: Report) -> str:
    return f"{_when(report.start)} to {_when(report.end)} UTC ({report.days:g} days)"


def summary_table(report: Report) -> Table:
    slos = [s for f in report.flows for s in f.slos]
    return Table(
        "summary", [h for h, _ in SUMMARY_COLUMNS], [[get(s) for _, get in SUMMARY_COLUMNS] for s in slos]
    )


def decision_lines(report: Report) -> list[tuple[str, str]]:
    return [(d.kind.replace("_", " "), f"{d.agent} / {d.slo} / {d.flow}: {d.text}") for d in report.decisions]


def releases_table(report: Report) -> Table:
    rows = [[r.agent, _when(r.at), build_label(r)] for r in report.releases]
    return Table("releases", ["agent", "at (UTC)", "version / prompt / model"], rows)


def alerts_table(alerts: Sequence[AlertInterval], until: float) -> Table:
    rows = [
        [
            a.alertname,
            a.burn_tier or "",
            a.severity or "",
            _when(a.start),
            fmt_duration(a.duration(until)) + ("" if a.end is not None else " (still firing)"),
        ]
        for a in alerts
    ]
    return Table("alerts", ["alert", "tier", "severity", "start (UTC)", "duration"], rows)


def failure_modes_table(flow: FlowReview) -> Table:
    return Table(
        "failure-modes", ["failure mode", "count"], [[m, fmt_count(n)] for m, n in flow.failure_modes]
    )


def judges_table(flow: FlowReview) -> Table:
    rows = [
        [
            j.judge,
            j.version,
            fmt_share(j.agreement),
            _score(j.daily_mean[0][1] if j.daily_mean else None),
            _score(j.daily_mean[-1][1] if j.daily_mean else None),
            _signed(j.drift),
        ]
        for j in flow.judges
    ]
    return Table(
        "judges", ["judge", "version", "agreement", "mean (first day)", "mean (last day)", "drift"], rows
    )


def slo_facts(s: SLOReview) -> str:
    return (
        f"objective {s.objective:g}% · SLI {fmt_pct(s.week.sli)} over the window, {fmt_pct(s.period.sli)} "
        f"over the period · budget spent {fmt_share(s.budget_spent)}, left {fmt_share(s.budget_left)}"
    )


def synthetic_line(runs: EventCounts) -> str:
    passed, total = fmt_count(runs.good), fmt_count(runs.total)
    return f"Synthetic probes: {fmt_pct(runs.sli)} passed ({passed} of {total} runs)."


def autonomy_line(flow: FlowReview, until: float) -> str:
    held: dict[str, float] = {}
    for a in flow.autonomy:
        held[a.state] = held.get(a.state, 0.0) + (a.end if a.end is not None else until) - a.start
    derived = (
        " (derived from the SLIs: the autonomy recording was not found)" if flow.autonomy_derived else ""
    )
    return "Autonomy: " + ", ".join(f"{state} {fmt_duration(t)}" for state, t in held.items()) + derived + "."


# --- HTML ---


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    body = "".join(
        "<tr>" + "".join(f"<td{_num(c)}>{escape(c)}</td>" for c in row) + "</tr>" for row in table.rows
    )
    return (
        f'<table class="{escape(table.kind)}" border="1" cellpadding="3">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _num(cell: str) -> str:
    """Right-align numbers (the class is for the eye; the text is the same either way)."""
    return ' class="n"' if cell[:1].isdigit() or cell[:1] in "+-" else ""


def _burn_down_chart(s: SLOReview, markers: list[Marker]) -> str:
    return line_chart(
        f"{s.slo} / {s.flow}: error budget left over the period",
        [Line("budget left", s.burn_down, "#1f77b4"), Line("even spend", s.ideal, "#888", dash=True)],
        y_label="budget left",
        y_format="{:.0%}",
        markers=markers,
        y_min=0.0,
    )


def _burn_rate_chart(s: SLOReview, report: Report, markers: list[Marker]) -> str:
    spans = [
        Span(
            f"{a.severity} alert",
            a.start,
            a.end if a.end is not None else report.end,
            SEVERITY_COLOURS.get(a.severity or "", "#999"),
        )
        for a in s.alerts
    ]
    return line_chart(
        f"{s.slo} / {s.flow}: burn rate ({s.burn_window}) and alert thresholds",
        [Line(f"burn rate {s.burn_window}", s.burn_rate, "#1f77b4")],
        y_label="burn rate (×budget)",
        hlines=[
            HLine(f"{t.tier} ×{t.burn:.3g}", t.burn, TIER_COLOURS.get(t.tier, "#999")) for t in s.thresholds
        ],
        markers=markers,
        spans=spans,
        x_range=(report.start, report.end),
        y_min=0.0,
    )


def _slo_html(s: SLOReview, report: Report, markers: list[Marker]) -> str:
    parts = [
        f'<h3>{escape(s.slo)} <span class="muted">({escape(s.sli_kind)})</span></h3>',
        f"<p>{escape(slo_facts(s))}</p>",
    ]
    if s.burn_down:
        parts.append(_burn_down_chart(s, markers))
    if s.burn_rate:
        parts.append(_burn_rate_chart(s, report, markers))
    alerts = alerts_table(s.alerts, report.end)
    parts.append(_html_table(alerts) if alerts.rows else f'<p class="muted">{NO_ALERTS}</p>')
    return "".join(parts)


def _flow_html(flow: FlowReview, report: Report) -> str:
    # the period's releases: the burn-down shows them all, the burn-rate chart those in the window
    markers = [Marker(build_label(r), r.at) for r in flow.markers]
    parts = [
        f'<section class="flow"><h2>{escape(flow.agent)} / {escape(flow.flow)}</h2>',
        f"<p>{escape(fmt_count(flow.events_per_day))} events per day over the window.</p>",
    ]
    if flow.autonomy:
        spans = [(a.state, a.start, a.end if a.end is not None else report.end) for a in flow.autonomy]
        parts.append(state_chart(f"{flow.flow}: autonomy state", spans, (report.start, report.end)))
        parts.append(f'<p class="muted">{escape(autonomy_line(flow, report.end))}</p>')
    parts += [_slo_html(s, report, markers) for s in flow.slos]
    if flow.alerts:
        parts += ["<h3>Other alerts on this flow</h3>", _html_table(alerts_table(flow.alerts, report.end))]
    if flow.failure_modes:
        parts += ["<h3>Top failure modes</h3>", _html_table(failure_modes_table(flow))]
    if flow.judges:
        parts += ["<h3>Judges: agreement and drift</h3>", _html_table(judges_table(flow))]
    if flow.synthetic is not None:
        parts.append(f"<p>{escape(synthetic_line(flow.synthetic))}</p>")
    parts.append("</section>")
    return "".join(parts)


def render_html(report: Report) -> str:
    """The review as one self-contained HTML document."""
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in report.notes)
    decisions = decision_lines(report)
    decided = (
        "<ul>" + "".join(f"<li><b>{escape(k)}</b>: {escape(t)}</li>" for k, t in decisions) + "</ul>"
        if decisions
        else f'<p class="muted">{escape(NOTHING_TO_DECIDE)}</p>'
    )
    releases = releases_table(report)
    released = _html_table(releases) if releases.rows else f'<p class="muted">{NO_RELEASES}</p>'
    legend = " ".join(
        f'<span style="background:{c};color:#fff;padding:0 4px">{escape(s)}</span>'
        for s, c in STATE_COLOURS.items()
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title(report))}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(title(report))}</h1><p>{escape(window(report))}</p>{notes}"
        f"<h2>Summary</h2>{_html_table(summary_table(report))}<h2>Decisions</h2>{decided}"
        f"<h2>Releases</h2>{released}"
        f'<p class="muted">Autonomy states: {legend}</p>'
        + "".join(_flow_html(f, report) for f in report.flows)
        + f'<p class="muted">Generated by agent-slo report at {escape(_when(report.end))} UTC.</p>'
        "</body></html>\n"
    )


# --- Markdown ---


def _md_table(table: Table) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(cell(h) for h in table.headers) + " |", "|" + "---|" * len(table.headers)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table.rows]
    return [*out, ""]


def _slo_markdown(s: SLOReview, report: Report) -> list[str]:
    out = [f"### {s.slo} ({s.sli_kind})", "", slo_facts(s), ""]
    daily = [v for _, v in s.daily_sli]
    if daily:
        line = sparkline(daily, low=s.objective, high=100.0)  # ▁ at (or under) the objective, █ at 100%
        out.append(
            f"- SLI by day: `{line}` ({fmt_pct(min(daily))} to {fmt_pct(max(daily))}; ▁ = objective or under)"
        )
    if s.burn_rate:
        peak = max(v for _, v in s.burn_rate)
        tiers = ", ".join(f"{t.tier} ×{t.burn:.3g}" for t in s.thresholds)
        out.append(f"- burn rate ({s.burn_window}): peak ×{peak:.3g}; thresholds {tiers}")
    if s.burn_down:
        out.append(f"- budget left at the end: {fmt_share(s.burn_down[-1][1])}")
    out.append("")
    alerts = alerts_table(s.alerts, report.end)
    return out + (_md_table(alerts) if alerts.rows else [NO_ALERTS, ""])


def render_markdown(report: Report) -> str:
    """The review as Markdown: the same numbers as the HTML, charts as sparklines and one-line summaries."""
    out = [f"# {title(report)}", "", window(report), ""]
    out += [f"> **Note:** {n}" for n in report.notes] + ([""] if report.notes else [])
    out += ["## Summary", "", *_md_table(summary_table(report)), "## Decisions", ""]
    out += [f"- **{kind}**: {text}" for kind, text in decision_lines(report)] or [NOTHING_TO_DECIDE]
    releases = releases_table(report)
    out += ["", "## Releases", "", *(_md_table(releases) if releases.rows else [NO_RELEASES, ""])]
    for flow in report.flows:
        out += [
            f"## {flow.agent} / {flow.flow}",
            "",
            f"{fmt_count(flow.events_per_day)} events per day over the window.",
        ]
        if flow.autonomy:
            out.append(autonomy_line(flow, report.end))
        out.append("")
        for s in flow.slos:
            out += _slo_markdown(s, report)
        if flow.alerts:
            out += ["Other alerts on this flow:", "", *_md_table(alerts_table(flow.alerts, report.end))]
        if flow.failure_modes:
            out += ["Top failure modes:", "", *_md_table(failure_modes_table(flow))]
        if flow.judges:
            out += ["Judges: agreement and drift:", "", *_md_table(judges_table(flow))]
        if flow.synthetic is not None:
            out += [synthetic_line(flow.synthetic), ""]
    return "\n".join(out).rstrip() + "\n"
