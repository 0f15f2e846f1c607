"""schemathesis against /openapi.json of a running exporter: no 5xx, and responses match the document."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from openapi_spec_validator import validate as validate_openapi

from tests.doubles import schemathesis_run
from tests.doubles.schemathesis_run import SCHEMATHESIS

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("st")
    (tmp / "bot.slo.yaml").write_text(SPEC)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentslo.cli",
            "serve",
            str(tmp / "bot.slo.yaml"),
            "--port",
            str(port),
            "--db",
            str(tmp / "c.db"),
            "--token",
            TOKEN,
            "--prometheus-url",
            f"http://127.0.0.1:{free_port()}",
        ],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "AGENT_SLO_JUDGE_PROCESS": "0"},  # these tests send no sessions
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/readyz", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


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
