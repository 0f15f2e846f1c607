"""SLO spec → Grafana dashboards (built with grafanalib) and Grafana provisioning files.

Four dashboards serve every agent in the specs given (pick agents, flows and SLOs with the template
variables `datasource`, `agent`, `flow`, `slo`): the SLO overview, the flow drill-down, judges &
calibration, and synthetic probes. Their queries read the recording rules of `rules/` and the
exporter's metrics, by the names in `agentslo.names`.

    >>> from agentslo.spec import load_spec
    >>> from agentslo.dashboards import generate_files
    >>> files = generate_files([load_spec("examples/cx-support.slo.yaml")])
    >>> sorted(files)[0]
    'agent-slo-flow.json'

`agent-slo dashboards SPEC... -o DIR [--check]` writes (or checks) these files; `provisioning_files()`
gives the Grafana provisioning YAML that `agent-slo build` writes beside them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Final

from agentslo.dashboards import flow, judges, overview, synthetic
from agentslo.dashboards.provisioning import provisioning_files
from agentslo.spec import Spec

# file name → builder; the file names are stable (provisioning and links use the uids inside).
DASHBOARDS: Final[dict[str, Callable[[Sequence[Spec]], dict[str, Any]]]] = {
    "agent-slo-overview.json": overview.build,
    "agent-slo-flow.json": flow.build,
    "agent-slo-judges.json": judges.build,
    "agent-slo-synthetic.json": synthetic.build,
}


def build_dashboards(specs: Sequence[Spec]) -> dict[str, dict[str, Any]]:
    """File name → dashboard JSON model (plain data), for every dashboard."""
    if not specs:
        raise ValueError("dashboards need at least one spec")
    return {name: build(specs) for name, build in DASHBOARDS.items()}


def generate_files(specs: list[Spec]) -> dict[str, str]:
    """Relative path → JSON text of the four dashboards; deterministic for the same specs."""
    return {
        name: json.dumps(board, indent=2, sort_keys=True) + "\n"
        for name, board in build_dashboards(specs).items()
    }


__all__ = ["DASHBOARDS", "build_dashboards", "generate_files", "provisioning_files"]
