"""Render the store as Prometheus text (0.0.4) or OpenMetrics 1.0 (with `trace_id` exemplars).

The store lock is held only to copy the value list (microseconds at 10,000 series), so a scrape
never stalls ingestion; every series line is a cached, pre-escaped prefix plus a formatted value.
No `_created` series are written (they read as counter resets to some consumers).
"""

from __future__ import annotations

from agentslo import names
from agentslo.exporter.store import Store, escape_label_value

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
_BUILD_LABELS = (names.L_AGENT, names.L_VERSION, names.L_PROMPT_VERSION, names.L_MODEL)


def wants_openmetrics(accept: str) -> bool:
    """Content negotiation: OpenMetrics only when the scraper asks for it."""
    return "application/openmetrics-text" in accept


def _build_info_lines(name: str, build: dict[str, tuple[str, str, str]]) -> list[str]:
    lines = []
    for agent, parts in sorted(build.items()):
        labels = ",".join(
            f'{n}="{escape_label_value(v)}"' for n, v in zip(_BUILD_LABELS, (agent, *parts), strict=True)
        )
        lines.append(f"{name}{{{labels}}} 1.0\n")
    return lines


def render(store: Store, openmetrics: bool = False) -> bytes:
    """The whole exposition, as bytes ready to send."""
    with store.lock:
        values = store.values[:]
        families = [(fam, len(fam.series)) for fam in store.families.values()]
        exemplars = dict(store.exemplars) if openmetrics else {}
        build = dict(store.build_info)
    fmt = float.__repr__
    out: list[str] = []
    for fam, count in families:
        name = fam.om_name if openmetrics else fam.name
        out.append(f"# HELP {name} {fam.help}\n# TYPE {name} {fam.kind}\n")
        if fam.name == names.BUILD_INFO:
            out.extend(_build_info_lines(fam.name, build))
            continue
        series = fam.series[:count]
        if fam.kind != "histogram":
            if not exemplars:
                out.extend([f"{prefixes[0]}{fmt(values[base])}\n" for base, _, prefixes in series])
                continue
            for base, _, prefixes in series:
                ex = exemplars.get(base)
                tail = f' # {{trace_id="{ex[0]}"}} {fmt(ex[1])} {ex[2]:.3f}' if ex else ""
                out.append(f"{prefixes[0]}{fmt(values[base])}{tail}\n")
            continue
        nb = len(fam.bounds) + 1
        for base, _, prefixes in series:
            total = 0.0
            for i in range(nb):
                total += values[base + i]
                ex = exemplars.get(base + i) if exemplars else None
                tail = f' # {{trace_id="{ex[0]}"}} {fmt(ex[1])} {ex[2]:.3f}' if ex else ""
                out.append(f"{prefixes[i]}{fmt(total)}{tail}\n")
            out.append(f"{prefixes[nb]}{fmt(values[base + nb])}\n{prefixes[nb + 1]}{fmt(total)}\n")
    if openmetrics:
        out.append("# EOF\n")
    return "".join(out).encode()
