"""agent-slo: SLOs, error budgets and burn-rate alerts for AI agents.

One import package: the core lives here (spec, names, burn-rate arithmetic, the Prometheus query
client, the CLI) and each wing is a subpackage (`agentslo.exporter`, `agentslo.rules`, ...).

    import agentslo
    print(agentslo.__version__)  # the installed distribution's version, e.g. 0.1.0
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "agent-slo"

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # a bare checkout on sys.path, never installed (not even editable)
    __version__ = "0+unknown"

__all__ = ["DISTRIBUTION", "__version__"]
