"""Planning of synthetic events: a run the prober itself failed (`exclude: prober_error`) is counted
as such, spends no budget and never joins a failure streak; the agent's failures still do."""

from __future__ import annotations

import time
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from agentslo import names
from agentslo.exporter.app import create_app
from agentslo.exporter.config import ExporterConfig
from agentslo.spec import parse_spec

SPEC = """
version: agent-slo/v1
agent: bot
owners: {team: {team: t}}
flows: {refund: {risk: billing}}
slos:
  probes: {sli: {synthetic: {}}, objective: 99, owner: team}
  tasks: {sli: {task: {}}, objective: 99, owner: team}
synthetic:
  target: {type: http, url: "http://127.0.0.1:1/chat"}
"""


def _run(passed: bool, exclude: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "synthetic",
        "agent": "bot",
        "flow": "refund",
        "scenario": "s",
        "passed": passed,
    }
    return event | ({"exclude": exclude} if exclude else {})


async def _samples(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = await (await client.get("/metrics")).text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items())


async def test_prober_errors_are_counted_excluded_and_break_no_streak(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app([parse_spec(SPEC)], ExporterConfig()))
    batch = [_run(False), _run(False), *(_run(False, "prober_error") for _ in range(3))]
    resp = await client.post(
        "/v1/events", data=orjson.dumps(batch), headers={"Content-Type": "application/json"}
    )
    assert resp.status == 200, await resp.text()
    got = await _samples(client)
    runs, streak, events = (
        names.SYNTHETIC_RUNS_TOTAL,
        names.SYNTHETIC_CONSECUTIVE_FAILURES,
        names.EVENTS_TOTAL,
    )
    assert _value(got, runs, outcome=names.SYNTHETIC_FAILED) == 2
    assert _value(got, runs, outcome=names.SYNTHETIC_PROBER_ERROR) == 3
    assert _value(got, streak, scenario="s") == 2  # the prober's errors neither add to it nor reset it
    events = (
        names.EVENTS_TOTAL if any(n == names.EVENTS_TOTAL for n, _ in got) else names.EVENTS_TOTAL + "_total"
    )
    assert _value(got, events, slo="probes", outcome="bad", exclusion="") == 2
    assert _value(got, events, slo="probes", outcome="bad", exclusion="prober_error") == 3
    assert _value(got, events, slo="tasks") == 0


async def test_series_for_prober_errors_exist_from_the_start_only_where_they_can_occur(
    aiohttp_client: Any,
) -> None:
    client = await aiohttp_client(create_app([parse_spec(SPEC)], ExporterConfig()))
    resp = await client.post(
        "/v1/events", data=orjson.dumps([_run(True)]), headers={"Content-Type": "application/json"}
    )
    assert resp.status == 200
    got = await _samples(client)
    exclusions: dict[str, set[str]] = {}
    for name, labels in got:
        if name == names.EVENTS_TOTAL:
            exclusions.setdefault(dict(labels)["slo"], set()).add(dict(labels)["exclusion"])
    assert "prober_error" in exclusions["probes"] and "prober_error" not in exclusions["tasks"]


async def test_every_run_sets_its_scenarios_last_run_time_prober_errors_too(aiohttp_client: Any) -> None:
    """The prober is alive when it runs, whoever failed: a prober error moves the gauge as a pass does."""
    client = await aiohttp_client(create_app([parse_spec(SPEC)], ExporterConfig()))
    headers = {"Content-Type": "application/json"}
    last = names.SYNTHETIC_LAST_RUN_TIMESTAMP_SECONDS
    stamps = []
    for run in (_run(True), _run(False, "prober_error")):
        sent = time.time()
        resp = await client.post("/v1/events", data=orjson.dumps([run]), headers=headers)
        assert resp.status == 200, await resp.text()
        stamps.append(_value(await _samples(client), last, agent="bot", flow="refund", scenario="s"))
        assert sent <= stamps[-1] <= time.time()
    assert stamps[0] < stamps[1]
