"""Runbooks in the bundle: every generated alert carries a summary, a description and (with
`alerting.runbook_base_url`) a runbook_url whose page the bundle holds and which names the alert."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from agentslo import names
from agentslo.bundle import build, runbooks
from agentslo.spec import Spec, parse_spec

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.slo.yaml"))
BASE = "https://runbooks.example.com/agent-slo/"


def with_base(path: Path, base: str | None = BASE) -> Spec:
    data = yaml.safe_load(path.read_text())
    if base is not None:
        data["alerting"] = {**data.get("alerting", {}), "runbook_base_url": base}
    return parse_spec(yaml.safe_dump(data, sort_keys=False), str(path.relative_to(ROOT)))


def alerts_of(files: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for path, text in files.items():
        if path.startswith(f"{build.RULES_DIR}/"):
            for group in yaml.safe_load(text)["groups"]:
                out += [r for r in group["rules"] if "alert" in r]
    return out


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_alert_links_a_runbook_page_that_names_it(example: Path) -> None:
    spec = with_base(example)
    files = build.generate([spec])
    alerts = alerts_of(files)
    assert {a["alert"] for a in alerts} >= {names.ALERT_BURN_RATE, names.ALERT_SYNTHETIC_FAILING}
    for alert in alerts:
        notes = alert["annotations"]
        assert notes["summary"].strip() and notes["description"].strip(), alert["alert"]
        own = (
            spec.alerting_for(alert["labels"][names.L_SLO]).runbook_url if "slo" in alert["labels"] else None
        )
        if own:  # an SLO's own runbook_url wins over the base
            assert notes[names.RUNBOOK_URL] == own
            continue
        url = notes[names.RUNBOOK_URL]
        assert url.startswith(BASE), url
        page = files.get(f"{build.RUNBOOKS_DIR}/{url.removeprefix(BASE)}")
        assert page is not None, f"{alert['alert']} links {url}, which the bundle does not hold"
        assert f"`{alert['alert']}`" in page and page.startswith(f"# Runbook: {spec.agent} / ")
    for slo in spec.slos:  # every SLO has its page, with its numbers
        page = files[f"{build.RUNBOOKS_DIR}/{spec.agent}/{slo}.md"]
        assert f"objective **{spec.objective_for(slo, spec.flows_of(slo)[0]):g}%**" in page


def test_without_a_base_url_alerts_carry_no_runbook_url_but_the_pages_are_written() -> None:
    spec = with_base(ROOT / "examples" / "cx-support.slo.yaml", None)
    files = build.generate([spec])
    assert all(names.RUNBOOK_URL not in a["annotations"] for a in alerts_of(files))
    assert f"{build.RUNBOOKS_DIR}/{spec.agent}/task-success.md" in files


def test_a_runbook_says_what_fired_what_to_open_and_how_to_respond() -> None:
    spec = with_base(ROOT / "examples" / "cx-support.slo.yaml")
    pages = runbooks.generate([spec], exporter_url="http://exp:9120", prometheus_url="http://prom:9090")
    page = pages[f"{spec.agent}/refund-policy.md"]
    # in numbers: the refund flow's 99.5% objective, its budget and the page_fast tier at 14.4x
    assert "objective **99.5%**, error budget **0.5%**" in page
    assert "| `page_fast` | critical | 1h / 5m | 14.4x | 7.2% |" in page
    assert f"`{names.ALERT_RARE_EVENT}`" in page  # any_bad: page
    # what to open first, with this deployment's URLs and commands
    assert '"http://exp:9120/v1/sessions/top?slo=refund-policy&window=1h"' in page
    assert "http://exp:9120/v1/autonomy?agent=cx-support&flow=refund" in page
    assert "agent-slo gate examples/cx-support.slo.yaml --prometheus http://prom:9090 --flow refund" in page
    assert "agent_slo_build_info" in page
    assert "classify before you act" in page and "can restore the very bug" in page
    for kind in ("post-deploy regression", "gradual drift", "systematic tool failure", "provider outage",
                 "rare policy violation"):  # fmt: skip
        assert f"| {kind} |" in page
    template = pages[runbooks.POSTMORTEM]
    for heading in (
        "Timeline",
        "Detection",
        "Classification",
        "Mitigation",
        "Root cause",
        "The monitoring gap",
    ):
        assert f"## {heading}" in template
    assert "Blameless" in template
