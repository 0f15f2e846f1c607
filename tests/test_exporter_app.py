"""The app's wiring: the feedback wing's routes behind the token, timeouts and overload answers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentslo.exporter.app import INGESTOR, OPENAPI, create_app
from agentslo.exporter.config import ExporterConfig
from agentslo.feedback.openapi import OPENAPI_PATHS
from agentslo.spec import parse_spec

SPEC = """
version: agent-slo/v1
agent: bot
owners: {team: {team: t}}
flows: {refund: {risk: billing}}
slos:
  conn: {sli: {connection: {}}, objective: 99, owner: team}
"""
EVENT = b'[{"type": "connection", "agent": "bot", "flow": "refund", "ok": true}]'


@pytest.fixture(autouse=True)
def _no_judge_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_SLO_JUDGE_PROCESS", "0")


async def test_judges_routes_are_mounted_documented_and_behind_the_token(aiohttp_client: Any) -> None:
    app = create_app([parse_spec(SPEC)], ExporterConfig(token="t0k"))
    assert set(OPENAPI_PATHS) <= set(app[OPENAPI]["paths"])
    client = await aiohttp_client(app)
    resp = await client.get("/v1/review")
    assert resp.status == 401 and (await resp.json())["detail"][0]["field"] == "Authorization"
    assert (await client.get("/v1/review", headers={"Authorization": "Bearer t0k"})).status != 401


async def test_a_batch_that_waited_too_long_is_503_with_retry_after(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app([parse_spec(SPEC)], ExporterConfig(queue_timeout_s=-1)))
    resp = await client.post("/v1/events", data=EVENT)
    assert resp.status == 503 and resp.headers["Retry-After"]
    metrics = await (await client.get("/metrics")).text()
    assert (
        'agent_slo_events_total{agent="bot",flow="refund",slo="conn",outcome="good",exclusion=""} 0.0'
        in metrics
    )


async def test_a_failed_commit_is_503_and_counts_nothing(aiohttp_client: Any, tmp_path: Any) -> None:
    """The disk refusing a commit: the batch is answered 503 with Retry-After and nothing is counted;
    a retry once the disk is back counts it once."""
    app = create_app([parse_spec(SPEC)], ExporterConfig(db_path=str(tmp_path / "c.db")))
    db = app[INGESTOR].db.db
    db.execute("CREATE TRIGGER no_writes BEFORE INSERT ON journal BEGIN SELECT RAISE(FAIL, 'disk full'); END")
    client = await aiohttp_client(app)
    good = 'agent_slo_events_total{agent="bot",flow="refund",slo="conn",outcome="good",exclusion=""}'
    resp = await client.post("/v1/events", data=EVENT)
    assert resp.status == 503 and resp.headers["Retry-After"], await resp.text()
    assert "nothing was counted" in (await resp.json())["error"]
    assert f"{good} 0.0" in await (await client.get("/metrics")).text()
    db.execute("DROP TRIGGER no_writes")
    assert (await client.post("/v1/events", data=EVENT)).status == 200
    assert f"{good} 1.0" in await (await client.get("/metrics")).text()


async def test_a_body_that_never_finishes_is_408(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app([parse_spec(SPEC)], ExporterConfig(read_timeout_s=0.3)))

    async def stalled() -> Any:
        yield EVENT[:10]
        await asyncio.sleep(5)
        yield EVENT[10:]

    resp = await client.post("/v1/events", data=stalled(), headers={"Content-Type": "application/json"})
    assert resp.status == 408


async def test_concurrent_batches_keep_streaks_and_counts_exact(aiohttp_client: Any, tmp_path: Any) -> None:
    """Group commit and pipelining: many concurrent batches, each counted once, streaks in order."""
    spec = (
        SPEC
        + "  synth: {sli: {synthetic: {}}, objective: 99, owner: team}\n"
        + ('synthetic: {target: {type: http, url: "http://127.0.0.1:1/x"}}\n')
    )
    app = create_app([parse_spec(spec)], ExporterConfig(db_path=str(tmp_path / "c.db")))
    client = await aiohttp_client(app)
    fail = b'[{"type": "synthetic", "agent": "bot", "flow": "refund", "scenario": "s", "passed": false}]'
    results = await asyncio.gather(*(client.post("/v1/events", data=fail) for _ in range(40)))
    assert [r.status for r in results] == [200] * 40
    metrics = await (await client.get("/metrics")).text()
    assert 'agent_slo_synthetic_consecutive_failures{agent="bot",flow="refund",scenario="s"} 40.0' in metrics
    assert (
        'agent_slo_events_total{agent="bot",flow="refund",slo="synth",outcome="bad",exclusion=""} 40.0'
        in metrics
    )
