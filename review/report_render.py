"""The review rendered: one self-contained HTML page (inline SVG, mail- and print-friendly) or Markdown.

Both take a `review.report_model.Report` and print the same numbers through the model's `fmt_*`
helpers; the summary table has the same columns in both (`SUMMARY_COLUMNS`), so a chat message and
the mailed page never disagree. The HTML has no script, no external resource (no font, no image, no
stylesheet link) and styles that survive a mail client: simple element rules in one `<style>` block,
table borders as attributes, and an `@media print` block that keeps each flow on its own page.

    from review.report_render import render_html, render_markdown
    Path("review.html").write_text(render_html(report))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from html import escape
from typing import Final

from agentslo.review.report_model import (
    Counts,
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
# The summary's columns: (header, value of one SLO review). Both formats print exactly these.
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


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))


def _title(report: Report) -> str:
    agents = sorted({f.agent for f in report.flows})
    return f"SLO review: {', '.join(agents) or 'no agents'}"


def _window(report: Report) -> str:
    return f"{_when(report.start)} to {_when(report.end)} UTC ({report.days} days)"


# --- HTML ---


def _table(headers: list[str], rows: list[list[str]], cls: str = "") -> str:
    """A table of already-escaped cells (numbers right-aligned)."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td{_num(c)}>{c}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' class="{cls}"' if cls else ""
    return (
        f'<table{attr} border="1" cellpadding="3"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def _num(cell: str) -> str:
    return ' class="n"' if cell[:1].isdigit() or cell[:1] == "-" else ""


def _burn_down_chart(s: SLOReview, report: Report, markers: list[Marker]) -> str:
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
            SEVERITY_COLOURS.get(a.severity, "#999"),
        )
        for a in s.alerts
    ]
    return line_chart(
        f"{s.slo} / {s.flow}: burn rate ({s.burn_window}) and alert thresholds",
        [Line(f"burn rate {s.burn_window}", s.burn_rate, "#1f77b4")],
        y_label="burn rate (×budget)",
        y_format="{:g}",
        hlines=[
            HLine(f"{t.tier} ×{t.burn:.3g}", t.burn, TIER_COLOURS.get(t.tier, "#999")) for t in s.thresholds
        ],
        markers=markers,
        spans=spans,
        x_range=(report.start, report.end),
        y_min=0.0,
    )


def _slo_html(s: SLOReview, report: Report, markers: list[Marker]) -> str:
    facts = (
        f"objective {s.objective:g}% · SLI {fmt_pct(s.week.sli)} over the window, {fmt_pct(s.period.sli)} "
        f"over the period · budget spent {fmt_share(s.budget_spent)}, left {fmt_share(s.budget_left)}"
    )
    parts = [
        f'<h3>{escape(s.slo)} <span class="muted">({escape(s.sli_kind)})</span></h3>',
        f"<p>{escape(facts)}</p>",
    ]
    if s.burn_down:
        parts.append(_burn_down_chart(s, report, markers))
    if s.burn_rate:
        parts.append(_burn_rate_chart(s, report, markers))
    if s.alerts:
        rows = [
            [
                escape(a.alertname),
                escape(a.burn_tier or ""),
                escape(a.severity),
                escape(_when(a.start)),
                escape(
                    fmt_duration(a.duration(report.end)) + ("" if a.end is not None else " (still firing)")
                ),
            ]
            for a in s.alerts
        ]
        parts.append(_table(["alert", "tier", "severity", "start (UTC)", "duration"], rows, "alerts"))
    else:
        parts.append('<p class="muted">No alerts fired in the window.</p>')
    return "".join(parts)


def _flow_html(flow: FlowReview, report: Report) -> str:
    markers = [Marker(r.label, r.at) for agent, r in report.releases if agent == flow.agent]
    parts = [
        f'<section class="flow"><h2>{escape(flow.agent)} / {escape(flow.flow)}</h2>',
        f"<p>{escape(fmt_count(flow.events_per_day))} events per day over the window.</p>",
    ]
    if flow.autonomy:
        parts.append(
            state_chart(
                f"{flow.flow}: autonomy state",
                [(a.state, a.start, a.end) for a in flow.autonomy],
                (report.start, report.end),
            )
        )
    for s in flow.slos:
        parts.append(_slo_html(s, report, markers))
    if flow.failure_modes:
        parts.append("<h3>Top failure modes</h3>")
        parts.append(
            _table(["failure mode", "count"], [[escape(m), fmt_count(n)] for m, n in flow.failure_modes])
        )
    if flow.judges:
        parts.append("<h3>Judges: agreement and drift</h3>")
        rows = []
        for j in flow.judges:
            first = j.daily_mean[0][1] if j.daily_mean else None
            last = j.daily_mean[-1][1] if j.daily_mean else None
            rows.append(
                [
                    escape(j.judge),
                    escape(j.version),
                    fmt_share(j.agreement),
                    _score(first),
                    _score(last),
                    _signed(j.drift),
                ]
            )
        parts.append(
            _table(["judge", "version", "agreement", "mean (first day)", "mean (last day)", "drift"], rows)
        )
    if flow.synthetic is not None:
        parts.append(f"<p>{escape(_synthetic(flow.synthetic))}</p>")
    parts.append("</section>")
    return "".join(parts)


def _synthetic(runs: Counts) -> str:
    passed, total = fmt_count(runs.good), fmt_count(runs.total)
    return f"Synthetic probes: {fmt_pct(runs.sli)} passed ({passed} of {total} runs)."


def _score(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _signed(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.3f}"


def _decisions(report: Report) -> list[tuple[str, str]]:
    return [(d.kind.replace("_", " "), f"{d.agent} / {d.slo} / {d.flow}: {d.text}") for d in report.decisions]


def render_html(report: Report) -> str:
    """The review as one self-contained HTML document."""
    slos = [s for f in report.flows for s in f.slos]
    summary = _table(
        [escape(h) for h, _ in SUMMARY_COLUMNS],
        [[escape(get(s)) for _, get in SUMMARY_COLUMNS] for s in slos],
        "summary",
    )
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in report.notes)
    decisions = (
        "<ul>" + "".join(f"<li><b>{escape(k)}</b>: {escape(t)}</li>" for k, t in _decisions(report)) + "</ul>"
        if report.decisions
        else f'<p class="muted">{escape(NOTHING_TO_DECIDE)}</p>'
    )
    releases = (
        _table(
            ["agent", "at (UTC)", "version / prompt / model"],
            [[escape(a), escape(_when(r.at)), escape(r.label)] for a, r in report.releases],
        )
        if report.releases
        else '<p class="muted">No releases in the window.</p>'
    )
    legend = " ".join(
        f'<span style="background:{c};color:#fff;padding:0 4px">{escape(s)}</span>'
        for s, c in STATE_COLOURS.items()
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(_title(report))}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(_title(report))}</h1><p>{escape(_window(report))}</p>{notes}"
        f"<h2>Summary</h2>{summary}<h2>Decisions</h2>{decisions}<h2>Releases</h2>{releases}"
        f'<p class="muted">Autonomy states: {legend}</p>'
        + "".join(_flow_html(f, report) for f in report.flows)
        + f'<p class="muted">Generated by agent-slo report at {escape(_when(report.end))} UTC.</p>'
        "</body></html>\n"
    )


# --- Markdown ---


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(_md_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return [*out, ""]


def _state_summary(flow: FlowReview) -> str:
    held: dict[str, float] = {}
    for a in flow.autonomy:
        held[a.state] = held.get(a.state, 0.0) + a.end - a.start
    return ", ".join(f"{state} {fmt_duration(seconds)}" for state, seconds in held.items())


def render_markdown(report: Report) -> str:
    """The review as Markdown: the same numbers as the HTML, charts as sparklines and one-line summaries."""
    out = [f"# {_title(report)}", "", _window(report), ""]
    out += [f"> **Note:** {n}" for n in report.notes] + ([""] if report.notes else [])
    slos = [s for f in report.flows for s in f.slos]
    out += ["## Summary", ""]
    out += _md_table([h for h, _ in SUMMARY_COLUMNS], [[get(s) for _, get in SUMMARY_COLUMNS] for s in slos])
    out += ["## Decisions", ""]
    out += [f"- **{kind}**: {text}" for kind, text in _decisions(report)] or [NOTHING_TO_DECIDE]
    out += ["", "## Releases", ""]
    out += [f"- {a}: {_when(r.at)} UTC: {r.label}" for a, r in report.releases] or [
        "No releases in the window."
    ]
    out.append("")
    for flow in report.flows:
        out += [
            f"## {flow.agent} / {flow.flow}",
            "",
            f"{fmt_count(flow.events_per_day)} events per day over the window.",
        ]
        if flow.autonomy:
            out.append(f"Autonomy: {_state_summary(flow)}.")
        out.append("")
        for s in flow.slos:
            out += [f"### {s.slo} ({s.sli_kind})", ""]
            daily = [v for _, v in s.daily_sli]
            if daily:
                out.append(
                    f"- SLI by day: `{sparkline(daily)}` ({fmt_pct(min(daily))} to {fmt_pct(max(daily))})"
                )
            if s.burn_rate:
                peak = max(v for _, v in s.burn_rate)
                tiers = ", ".join(f"{t.tier} ×{t.burn:.3g}" for t in s.thresholds)
                out.append(f"- burn rate ({s.burn_window}): peak ×{peak:.3g}; thresholds {tiers}")
            if s.burn_down:
                out.append(f"- budget left at the end: {fmt_share(s.burn_down[-1][1])}")
            out.append("")
            if s.alerts:
                out += _md_table(
                    ["alert", "tier", "severity", "start (UTC)", "duration"],
                    [
                        [
                            a.alertname,
                            a.burn_tier or "",
                            a.severity,
                            _when(a.start),
                            fmt_duration(a.duration(report.end))
                            + ("" if a.end is not None else " (still firing)"),
                        ]
                        for a in s.alerts
                    ],
                )
            else:
                out += ["No alerts fired in the window.", ""]
        if flow.failure_modes:
            out += ["Top failure modes:", ""]
            out += _md_table(["failure mode", "count"], [[m, fmt_count(n)] for m, n in flow.failure_modes])
        if flow.judges:
            out += ["Judges: agreement and drift:", ""]
            out += _md_table(
                ["judge", "version", "agreement", "mean (first day)", "mean (last day)", "drift"],
                [
                    [
                        j.judge,
                        j.version,
                        fmt_share(j.agreement),
                        _score(j.daily_mean[0][1] if j.daily_mean else None),
                        _score(j.daily_mean[-1][1] if j.daily_mean else None),
                        _signed(j.drift),
                    ]
                    for j in flow.judges
                ],
            )
        if flow.synthetic is not None:
            out += [_synthetic(flow.synthetic), ""]
    return "\n".join(out).rstrip() + "\n"
