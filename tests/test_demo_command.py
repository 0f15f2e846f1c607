"""`agent-slo demo` ends by itself, shows a real page through Alertmanager and the autonomy drop,
stops everything it started, and still runs (saying what it skipped) without Prometheus."""

from __future__ import annotations

import re

import pytest

from agentslo import cli
from agentslo.demo.servers import find_binary, http_get

SERVERS = bool(find_binary("prometheus") and find_binary("prometheus-alertmanager", "alertmanager"))


def _closed(url: str) -> bool:
    try:
        http_get(url, timeout=1)
    except OSError:
        return True
    return False


@pytest.mark.slow
@pytest.mark.timeout(200)
@pytest.mark.skipif(not SERVERS, reason="needs the prometheus and prometheus-alertmanager binaries")
def test_demo_pages_for_the_incident_drops_autonomy_and_cleans_up(capsys, tmp_path):
    code = cli.main(
        ["demo", "--duration", "150", "--incident-at", "12", "--rate", "8", "--workdir", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("DEMO TIME:")
    assert "INCIDENT injected: post-deploy-regression" in out
    assert re.search(
        r"ALERT reached Alertmanager receiver cx-support\.product\.page \d+s after the incident: "
        r"AgentSLOBurnRate severity=critical slo=task-success flow=refund",
        out,
    ), out
    summary = out.split("=== agent-slo demo summary ===")[1]
    detected = re.search(
        r"detected by AgentSLOBurnRate \(critical, page_\w+\) on task-success/refund (\d+)s", summary
    )
    assert detected and int(detected.group(1)) < 120, summary
    autonomy = re.search(r"autonomy of refund: .*healthy \(\d+s\) -> (\w+)", summary)
    assert autonomy and autonomy.group(1) in ("critical", "exhausted"), summary
    assert "release gate after: HOLD" in summary
    for url in re.findall(r"(?:exporter|Prometheus|Alertmanager):\s+(http://127\.0\.0\.1:\d+)", out):
        assert _closed(url), f"{url} still answers after the demo ended"


@pytest.mark.timeout(60)
def test_demo_without_servers_runs_and_says_what_it_skipped(capsys, tmp_path):
    code = cli.main(
        ["demo", "--no-servers", "--duration", "6", "--incident-at", "2", "--workdir", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "skipped: Prometheus and Alertmanager (--no-servers)" in out
    assert "INCIDENT injected" in out
    assert re.search(r"autonomy of refund: critical \[fail-safe\], allowed \['escalate'\] \(stale: ", out), (
        out
    )
    assert "=== agent-slo demo summary ===" in out
