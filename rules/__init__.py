"""SLO specs → Prometheus recording rules, multiwindow burn-rate alerts and promtool unit tests.

    >>> from agentslo.spec import load_specs
    >>> from agentslo.rules import generate_files
    >>> files = generate_files(load_specs(["examples/cx-support.slo.yaml"]))
    >>> sorted(files)
    ['cx-support.rules.yaml']

`agent-slo rules SPEC... -o DIR` writes them; `agent-slo build` also writes the promtool tests from
`generate_promtool_tests`.
"""

from agentslo.rules.generate import generate_files
from agentslo.rules.promtool_tests import generate_promtool_tests

__all__ = ["generate_files", "generate_promtool_tests"]
