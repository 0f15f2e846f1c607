"""schemathesis against the feedback wing's routes of a running exporter (`agent-slo serve`): no 5xx, and
responses match the OpenAPI document `agentslo.feedback.openapi.OPENAPI_PATHS` contributes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from openapi_spec_validator import validate as validate_openapi

from agentslo.feedback.openapi import OPENAPI_PATHS
from tests.doubles import schemathesis_run
from tests.doubles.schemathesis_run import SCHEMATHESIS
from tests.doubles.serve import serving

# the CLI beside this interpreter (.venv/bin is not on PATH when pytest runs as .venv/bin/python), else PATH's
TOKEN = "judges-schemathesis-token"
SPEC = """
version: agent-slo/v1
agent: bot
owners: {team: {team: t}}
exclusions: [test_call]
flows: {refund: {risk: billing}}
tools: [get_order]
judges:
  faith: {type: llm, model: m1, version: "3", rubric: "grounded?", pass_threshold: 0.8, sample_rate: 0.5,
          base_url: "http://127.0.0.1:9/v1", timeout: 1, max_retries: 0}
  policy: {type: rule, version: "1", fail_if_contains: ["3-5 business days"]}
slos:
  task: {sli: {task: {}}, objective: auto, owner: team}
  faith: {sli: {judge: faith}, objective: auto, owner: team}
  policy: {sli: {judge: policy}, objective: 99, owner: team}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("judges-st")
    (tmp / "bot.slo.yaml").write_text(SPEC)
    env = {"AGENT_SLO_SESSIONS_DB": str(tmp / "sessions.db")}
    with serving(tmp / "bot.slo.yaml", "--token", TOKEN, log=tmp / "server.log", env=env) as url:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        # Something to review, so the label and dataset routes see real items as well as made-up ids.
        body = [
            {
                "session_id": f"s{i}",
                "agent": "bot",
                "flow": "refund",
                "outcome": "failure",
                "messages": [
                    {"role": "user", "content": "refund?"},
                    {"role": "assistant", "content": "3-5 business days"},
                ],
            }
            for i in range(5)
        ]
        assert requests.post(f"{url}/v1/sessions", json=body, headers=headers, timeout=5).status_code == 202
        yield url


def test_judges_paths_are_in_a_valid_document(server: str) -> None:
    doc = requests.get(
        f"{server}/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    ).json()
    validate_openapi(doc)
    assert set(OPENAPI_PATHS) <= set(doc["paths"])


def test_review_routes_need_the_token(server: str) -> None:
    assert requests.get(f"{server}/v1/review", timeout=5).status_code == 401
    assert requests.get(f"{server}/v1/datasets/calibration.jsonl", timeout=5).status_code == 401


@pytest.mark.timeout(150)
@pytest.mark.skipif(SCHEMATHESIS is None, reason="needs the schemathesis CLI")
def test_schemathesis_finds_no_server_errors_or_mismatches_on_the_judges_routes(server: str) -> None:
    out = schemathesis_run.run(
        server,
        TOKEN,
        "^/v1/(sessions|sessions/top|review|review/.*|datasets/.*|judges/.*|judging)$",
        examples=25,
    )
    tested = re.search(r"Tested: (\d+)", out)
    assert tested is not None and int(tested.group(1)) == sum(len(item) for item in OPENAPI_PATHS.values()), (
        out[-2000:]
    )
