"""`POST /v1/gate/overrides`: an override is counted by agent and flow, durably, with who and why in
the log only; a wrong body is a 400 naming every wrong field and counts nothing."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from agentslo import names
from agentslo.exporter.app import create_app
from agentslo.exporter.config import ExporterConfig
from agentslo.spec import parse_spec
from tests.test_exporter_bad_inputs import counters

SPEC = """
version: agent-slo/v1
agent: bot
owners: {team: {team: t}}
flows: {refund: {risk: billing}, faq: {risk: faq}}
slos:
  conn: {sli: {connection: {}}, objective: 99, owner: team}
"""
TOKEN = "t0k"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OVERRIDE = {"agent": "bot", "flow": "refund", "reason": "INC-42 hotfix", "who": "alice"}


@pytest.fixture(autouse=True)
def _no_judge_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_SLO_JUDGE_PROCESS", "0")


def overrides(samples: dict[tuple[str, tuple], float]) -> dict[str, float]:
    """flow → count of agent_slo_release_overrides_total for agent bot."""
    return {
        dict(labels)["flow"]: v
        for (name, labels), v in samples.items()
        if name == names.RELEASE_OVERRIDES_TOTAL and dict(labels)["agent"] == "bot"
    }


async def test_overrides_count_by_flow_survive_a_restart_and_log_who_and_why(
    aiohttp_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = ExporterConfig(token=TOKEN, db_path=str(tmp_path / "c.db"))
    client = await aiohttp_client(create_app([parse_spec(SPEC)], config))
    assert overrides(await counters(client)) == {"": 0.0, "refund": 0.0, "faq": 0.0}  # at 0 from the start
    with caplog.at_level(logging.WARNING):
        resp = await client.post(names.OVERRIDES_PATH, json=OVERRIDE, headers=AUTH)
        assert resp.status == 201, await resp.text()
        assert await resp.json() == {"agent": "bot", "flow": "refund", "recorded": True}
        whole_agent = {k: v for k, v in OVERRIDE.items() if k != "flow"}
        assert (await client.post(names.OVERRIDES_PATH, json=whole_agent, headers=AUTH)).status == 201
    assert overrides(await counters(client)) == {"": 1.0, "refund": 1.0, "faq": 0.0}
    logged = [json.loads(r.getMessage()) for r in caplog.records if "release_gate_override" in r.getMessage()]
    assert logged[0] == {"event": "release_gate_override", **OVERRIDE}
    await client.close()
    reopened = await aiohttp_client(create_app([parse_spec(SPEC)], config))
    assert overrides(await counters(reopened)) == {"": 1.0, "refund": 1.0, "faq": 0.0}


BAD: list[tuple[str, Any, set[str]]] = [
    ("missing-reason-and-who", {"agent": "bot"}, {"reason", "who"}),
    ("unknown-agent", {**OVERRIDE, "agent": "mallory"}, {"agent"}),
    ("unknown-flow", {**OVERRIDE, "flow": "teleport"}, {"flow"}),
    ("unknown-field", {**OVERRIDE, "ticket": "INC-42"}, {"ticket"}),
    ("empty-who", {**OVERRIDE, "who": "  "}, {"who"}),
    ("reason-not-text", {**OVERRIDE, "reason": 42}, {"reason"}),
    ("reason-too-long", {**OVERRIDE, "reason": "x" * 1001}, {"reason"}),
    ("newline-in-who", {**OVERRIDE, "who": "alice\nbob"}, {"who"}),
    ("flow-as-list", {**OVERRIDE, "flow": ["refund"]}, {"flow"}),
    ("not-an-object", [OVERRIDE], {""}),
]


@pytest.mark.parametrize(("case", "body", "fields"), BAD, ids=[b[0] for b in BAD])
async def test_a_wrong_override_is_400_naming_each_field_and_counts_nothing(
    aiohttp_client: Any, case: str, body: Any, fields: set[str]
) -> None:
    client = await aiohttp_client(create_app([parse_spec(SPEC)], ExporterConfig(token=TOKEN)))
    before = await counters(client)
    resp = await client.post(names.OVERRIDES_PATH, json=body, headers=AUTH)
    assert resp.status == 400, case
    assert {d["field"] for d in (await resp.json())["detail"]} == fields
    assert await counters(client) == before


async def test_an_override_needs_the_token_and_json(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app([parse_spec(SPEC)], ExporterConfig(token=TOKEN)))
    assert (await client.post(names.OVERRIDES_PATH, json=OVERRIDE)).status == 401
    resp = await client.post(
        names.OVERRIDES_PATH, data=b"{nope", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert resp.status == 400 and (await resp.json())["error"] == "the body is not JSON"
    assert overrides(await counters(client))["refund"] == 0.0
