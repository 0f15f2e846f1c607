"""deploy/Dockerfile's HEALTHCHECK: the exporter's /healthz, asked by the image's own Python (the slim
image has no curl), and switched off in docker-compose.yml for the roles that are not the exporter."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentslo.exporter.app import create_app
from agentslo.exporter.config import ExporterConfig
from agentslo.spec import parse_spec

ROOT = Path(__file__).resolve().parents[1]
EXPORTER_PORT = 9120  # what docker-compose.yml serves the exporter on
SPEC = """
version: agent-slo/v1
agent: bot
owners: {team: {team: t}}
flows: {refund: {risk: billing}}
slos:
  conn: {sli: {connection: {}}, objective: 99, owner: team}
"""


def healthcheck() -> tuple[str, list[str]]:
    """The HEALTHCHECK instruction's options and its exec-form command."""
    text = (ROOT / "deploy" / "Dockerfile").read_text().replace("\\\n", " ")
    [line] = [ln for ln in text.splitlines() if ln.startswith("HEALTHCHECK")]
    options, _, command = line.partition(" CMD ")
    return options, json.loads(command)


def compose_services() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"])


def test_the_check_asks_the_exporters_healthz_with_the_images_python() -> None:
    options, command = healthcheck()
    assert command[:2] == ["python", "-c"]
    assert f"http://127.0.0.1:{EXPORTER_PORT}/healthz" in command[2]
    assert "--timeout=5s" in options and "--start-period=" in options
    exporter = compose_services()["exporter"]["command"]
    assert exporter[exporter.index("--port") + 1] == str(EXPORTER_PORT)


async def run_check(port: int) -> int:
    _, command = healthcheck()
    script = command[2].replace(f":{EXPORTER_PORT}/", f":{port}/")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await asyncio.wait_for(proc.wait(), timeout=30)


async def test_the_check_passes_on_a_live_exporter_with_a_token(
    aiohttp_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_SLO_JUDGE_PROCESS", "0")
    server = await aiohttp_server(create_app([parse_spec(SPEC)], ExporterConfig(token="compose-token")))
    assert await run_check(server.port) == 0


async def test_the_check_fails_when_nothing_answers() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert await run_check(port) != 0


def test_compose_switches_the_check_off_for_every_role_but_the_exporter() -> None:
    ours = {name: s for name, s in compose_services().items() if s.get("image", "").startswith("agent-slo:")}
    assert {"exporter", "generate", "prober"} <= set(ours)
    assert "healthcheck" not in ours["exporter"]  # the image's own check applies
    for name, service in ours.items():
        if name != "exporter":
            assert service.get("healthcheck") == {"disable": True}, name
