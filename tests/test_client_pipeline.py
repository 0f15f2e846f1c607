"""The client SDK's stage and workflow-step helpers against a real exporter: each counts exactly what
its hand-written event counts (agent `bot` through the SDK, its twin through `/v1/events`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from agentslo_client import Client

from agentslo import names
from tests.doubles.sdk_backends import Exporter

pytestmark = pytest.mark.timeout(60)

SPEC = """
version: agent-slo/v1
agent: bot
owners: {team: {team: t}}
flows: {book: {}}
pipeline: {}
workflows: {booking: {steps: [find, hold, confirm]}}
slos:
  booking-e2e: {sli: {workflow: {name: booking}}, objective: 95, owner: team}
  hold-step: {sli: {workflow: {name: booking, step: hold}}, objective: 99, owner: team}
"""


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exporter]:
    twin = SPEC.replace("agent: bot", "agent: twin")
    with Exporter(tmp_path_factory.mktemp("client-pipeline"), SPEC, twin, persist=False) as running:
        yield running


def test_stage_and_workflow_step_helpers_count_what_their_events_count(exporter: Exporter) -> None:
    with Client(exporter.url, agent="bot", flow="book", flush_interval_s=0.05) as client:
        client.record_stage("asr", 0.3)
        client.record_stage("tts", 1.1)
        for step in ("find", "hold", "confirm"):
            client.record_workflow_step("booking", step, True)
        client.record_workflow_step("booking", "find", True)
        client.record_workflow_step("booking", "hold", False)
        assert client.flush(10)
        assert client.stats().delivered == 7 and client.stats().rejected == 0
    twin = {"agent": "twin", "flow": "book"}
    step = {"type": "workflow_step", **twin, "workflow": "booking"}
    status, body = exporter.post(
        "/v1/events",
        [
            {"type": "stage", **twin, "stage": "asr", "latency_s": 0.3},
            {"type": "stage", **twin, "stage": "tts", "latency_s": 1.1},
            *({**step, "step": s, "ok": True} for s in ("find", "hold", "confirm")),
            {**step, "step": "find", "ok": True},
            {**step, "step": "hold", "ok": False},
        ],
    )
    assert status == 200, body
    samples = exporter.samples()

    def of(agent: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return {
            (name, labels - {("agent", agent)}): value
            for (name, labels), value in samples.items()
            if ("agent", agent) in labels and name != names.SPEC_INFO
        }

    assert of("bot") == of("twin")
    assert exporter.value(names.EVENTS_TOTAL, agent="bot", slo="booking-e2e", outcome="bad") == 1
    assert exporter.value(names.STAGE_LATENCY_SECONDS + "_count", agent="bot", stage="asr") == 1
