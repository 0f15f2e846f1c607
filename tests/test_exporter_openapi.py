"""schemathesis against /openapi.json of a running exporter: no 5xx, and responses match the document."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from openapi_spec_validator import validate as validate_openapi

from tests.doubles import schemathesis_run
from tests.doubles.schemathesis_run import SCHEMATHESIS
from tests.doubles.serve import free_port, serving

# the CLI beside this interpreter (.venv/bin is not on PATH when pytest runs as .venv/bin/python), else PATH's
TOKEN = "schemathesis-token"
SPEC = """
version: agent-slo/v1
agent: bot
owners: {team: {team: t}}
exclusions: [test_call]
flows: {refund: {risk: billing}}
tools: [get_order]
judges:
  faith: {type: llm, model: m1, version: "3", rubric: "grounded?", pass_threshold: 0.8}
slos:
  task: {sli: {task: {}}, objective: auto, owner: team}
  faith: {sli: {judge: faith}, objective: auto, owner: team}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("st")
    (tmp / "bot.slo.yaml").write_text(SPEC)
    prometheus = f"http://127.0.0.1:{free_port()}"  # nothing there: the autonomy API fails safe
    args = ("--db", str(tmp / "c.db"), "--token", TOKEN, "--prometheus-url", prometheus)
    # these tests send no sessions: no judge child process
    with serving(
        tmp / "bot.slo.yaml", *args, log=tmp / "server.log", env={"AGENT_SLO_JUDGE_PROCESS": "0"}
    ) as url:
        yield url


def test_document_is_valid_openapi(server: str) -> None:
    doc = requests.get(
        f"{server}/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    ).json()
    validate_openapi(doc)
    assert {"/v1/events", "/v1/autonomy", "/metrics", "/healthz", "/readyz"} <= set(doc["paths"])


@pytest.mark.timeout(150)
@pytest.mark.skipif(SCHEMATHESIS is None, reason="needs the schemathesis CLI")
def test_schemathesis_finds_no_server_errors_or_mismatches(server: str) -> None:
    # the routes this module serves; the feedback wing's are tested in test_feedback_openapi.py
    out = schemathesis_run.run(
        server, TOKEN, "^/(v1/events|v1/autonomy|metrics|healthz|readyz|openapi.json)$", examples=30
    )
    assert "/v1/events" in out
