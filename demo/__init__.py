"""The demo wing: `agent-slo demo`, the whole loop on one machine, and what the end-to-end tests run.

It is a composition, like the CLI: it may import every wing (the exporter runs as `agent-slo serve`,
the rules and the configs come from the build, the prober is `agentslo.synthetic`), and nothing but
the CLI imports it.

    agent-slo demo --no-servers --duration 20      # the exporter side only, ~20 s

Modules:

- `command`: `agent-slo demo` (start everything, inject an incident, print what pages, clean up);
- `agent` and `policy`: the one fake CX agent (OpenAI-compatible chat completions and a generic
  HTTP JSON endpoint), its order table and its policy clock; the demo, compose and the prober's
  tests all talk to it;
- `faults`: the seeded conversation model and its injectable faults (`INCIDENTS`);
- `traffic`: simulated customers (through the agent) or events (straight to the exporter);
- `stack` and `servers`: the exporter, Prometheus and Alertmanager as real processes on loopback;
- `demotime`: the spec with its clock compressed, so a page arrives in minutes;
- `backfill`: weeks of history written into Prometheus blocks with promtool.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Final

# The example specs and scenarios ship inside the package (agentslo/examples; in the checkout a symlink
# to examples/), so the demo finds them from an installed wheel in any folder.
EXAMPLES: Final = Path(str(files("agentslo") / "examples"))
EXAMPLE_SPEC: Final = EXAMPLES / "cx-support.slo.yaml"
