"""Golden batches for the voice pipeline, workflows and the three escalation SLIs (issue 16):
stage latencies, workflow steps (per-step and end-to-end SLIs) and the escalation measures, sent
through POST /v1/events on every front (C++ scanner, msgspec, dict events) and read back from
/metrics; bad values of the new fields are a 4xx naming index and field, with no counter changed."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentslo import names
from agentslo.exporter.app import create_app
from agentslo.exporter.config import ExporterConfig
from agentslo.spec import parse_spec

SPEC = """
version: agent-slo/v1
agent: voice
owners: {team: {team: t}}
flows:
  booking: {}
  faq: {}
pipeline: {}
workflows:
  book:
    steps: [find_slot, hold, confirm]
    flows: [booking]
slos:
  esc: {sli: {escalation: {}}, objective: 97, owner: team}
  esc-recall: {sli: {escalation: {of: recall}}, objective: 99, owner: team}
  esc-unnecessary: {sli: {escalation: {of: unnecessary}}, objective: 90, owner: team}
  esc-context: {sli: {escalation: {of: context}}, objective: 95, owner: team}
  book-e2e: {sli: {workflow: {name: book}}, objective: 95, owner: team}
  book-hold: {sli: {workflow: {name: book, step: hold}}, objective: 99, owner: team}
"""
E = {"agent": "voice", "flow": "booking"}
Sample = tuple[str, frozenset[tuple[str, str]]]


@pytest.fixture(autouse=True)
def _no_judge_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_SLO_JUDGE_PROCESS", "0")


@pytest.fixture
async def client(aiohttp_client: Any) -> Any:
    return await aiohttp_client(create_app([parse_spec(SPEC)], ExporterConfig()))


async def scrape(client: Any) -> dict[Sample, float]:
    resp = await client.get("/metrics")
    assert resp.status == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(await resp.text())
        for s in fam.samples
    }


def m(name: str, **labels: str) -> Sample:
    return name, frozenset(labels.items())


def ev(slo: str, outcome: str) -> Sample:
    return m(names.EVENTS_TOTAL, agent="voice", flow="booking", slo=slo, outcome=outcome, exclusion="")


async def post(client: Any, events: list[dict[str, Any]], status: int = 200, ndjson: bool = False) -> Any:
    if ndjson:  # the dict-event path (no fast front)
        body = b"\n".join(orjson.dumps(e) for e in events)
        resp = await client.post("/v1/events", data=body, headers={"Content-Type": "application/x-ndjson"})
    else:
        resp = await client.post("/v1/events", json=events)
    payload = await resp.json()
    assert resp.status == status, payload
    return payload


async def test_default_stages_start_at_zero_per_flow(client: Any) -> None:
    got = await scrape(client)
    stages = {
        dict(labels)["stage"]
        for name, labels in got
        if name == names.STAGE_LATENCY_SECONDS + "_count" and dict(labels)["flow"] == "faq"
    }
    assert stages == {"telephony", "asr", "llm", "tts", "tools"}


@pytest.mark.parametrize("ndjson", [False, True])
async def test_stage_latencies_land_in_their_stage_histogram(client: Any, ndjson: bool) -> None:
    events = [
        {"type": "stage", **E, "stage": "asr", "latency_s": 0.3},
        {"type": "stage", **E, "stage": "asr", "latency_s": 0.7},
        {"type": "stage", **E, "stage": "tts", "latency_s": 1.2},
    ]
    await post(client, events, ndjson=ndjson)
    got = await scrape(client)
    count, total = names.STAGE_LATENCY_SECONDS + "_count", names.STAGE_LATENCY_SECONDS + "_sum"
    assert got[m(count, agent="voice", flow="booking", stage="asr")] == 2.0
    assert got[m(total, agent="voice", flow="booking", stage="asr")] == pytest.approx(1.0)
    bucket = names.STAGE_LATENCY_SECONDS + "_bucket"
    assert got[m(bucket, agent="voice", flow="booking", stage="asr", le="0.5")] == 1.0
    assert got[m(bucket, agent="voice", flow="booking", stage="tts", le="1.0")] == 0.0
    assert got[m(bucket, agent="voice", flow="booking", stage="tts", le="1.5")] == 1.0


@pytest.mark.parametrize("ndjson", [False, True])
async def test_workflow_steps_feed_per_step_and_end_to_end_slis(client: Any, ndjson: bool) -> None:
    step = {"type": "workflow_step", **E, "workflow": "book"}
    events = [  # run 1 completes; run 2 fails at `hold`
        {**step, "step": "find_slot", "ok": True},
        {**step, "step": "hold", "ok": True},
        {**step, "step": "confirm", "ok": True},
        {**step, "step": "find_slot", "ok": True},
        {**step, "step": "hold", "ok": False},
    ]
    await post(client, events, ndjson=ndjson)
    got = await scrape(client)
    steps = names.WORKFLOW_STEPS_TOTAL

    def s(name: str, outcome: str) -> Sample:
        return m(steps, agent="voice", flow="booking", workflow="book", step=name, outcome=outcome)

    assert (got[s("find_slot", "good")], got[s("hold", "good")], got[s("hold", "bad")]) == (2.0, 1.0, 1.0)
    assert (got[s("confirm", "good")], got[s("confirm", "bad")]) == (1.0, 0.0)
    assert (got[ev("book-e2e", "good")], got[ev("book-e2e", "bad")]) == (1.0, 1.0)
    assert (got[ev("book-hold", "good")], got[ev("book-hold", "bad")]) == (1.0, 1.0)


@pytest.mark.parametrize(
    ("required", "performed", "preserved", "expected"),
    [
        # combined, recall, unnecessary, context (None: not in that SLI's population)
        (True, True, True, ("good", "good", "good", "good")),
        (True, True, False, ("bad", "good", "good", "bad")),
        (True, False, None, ("bad", "bad", None, None)),
        (False, False, None, ("good", None, None, None)),
        (False, True, True, ("bad", None, "bad", "good")),
    ],
)
async def test_escalation_is_three_slis_and_the_combined_one(
    client: Any, required: bool, performed: bool, preserved: Any, expected: tuple[str | None, ...]
) -> None:
    event = {"type": "escalation", **E, "required": required, "performed": performed}
    if preserved is not None:
        event["context_preserved"] = preserved
    await post(client, [event])
    got = await scrape(client)
    for slo, outcome in zip(("esc", "esc-recall", "esc-unnecessary", "esc-context"), expected, strict=True):
        counted = {o: got[ev(slo, o)] for o in ("good", "bad")}
        want = {"good": 0.0, "bad": 0.0} | ({outcome: 1.0} if outcome else {})
        assert counted == want, slo


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"type": "stage", **E, "stage": "dtmf", "latency_s": 0.1}, "stage"),
        ({"type": "stage", **E, "stage": "asr", "latency_s": -1}, "latency_s"),
        ({"type": "stage", **E, "stage": "asr"}, "latency_s"),
        ({"type": "workflow_step", **E, "workflow": "pay", "step": "hold", "ok": True}, "workflow"),
        ({"type": "workflow_step", **E, "workflow": "book", "step": "pay", "ok": True}, "step"),
        ({"type": "workflow_step", **E, "workflow": "book", "step": "hold", "ok": "yes"}, "ok"),
        ({"type": "workflow_step", **E, "workflow": "book", "step": "hold"}, "ok"),
        (
            {
                "type": "workflow_step",
                "agent": "voice",
                "flow": "faq",
                "workflow": "book",
                "step": "hold",
                "ok": True,
            },
            "flow",
        ),
    ],
)
async def test_bad_new_fields_name_index_and_field_and_count_nothing(
    client: Any, event: dict[str, Any], field: str
) -> None:
    before = await scrape(client)
    good = {"type": "stage", **E, "stage": "llm", "latency_s": 0.4}
    resp = await client.post("/v1/events", json=[good, event])
    payload = await resp.json()
    assert resp.status in (400, 422), payload
    assert any((d["index"], d["field"]) == (1, field) for d in payload["detail"]), payload["detail"]
    after = await scrape(client)
    changed = {k for k in after if k[0].startswith(names.PREFIX) and after[k] != before.get(k)}
    assert not {k for k in changed if "ingest" not in k[0]}, changed
