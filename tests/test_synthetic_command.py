"""`agent-slo probe --once`: exit codes, JUnit XML, and results counted by the real exporter."""

from __future__ import annotations

import asyncio
import contextlib
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from agentslo import cli, names
from agentslo.exporter.app import create_app
from agentslo.exporter.config import ExporterConfig
from agentslo.spec import load_spec
from tests.doubles.cx_agent import FakeAgent, running_fake_agent
from tests.doubles.fake_provider import FakeProvider

ROOT = Path(__file__).resolve().parent.parent
CX = ROOT / "examples" / "cx-support.slo.yaml"


@contextlib.asynccontextmanager
async def exporter(token: str | None = None) -> AsyncIterator[str]:
    app = create_app([load_spec(CX)], ExporterConfig(token=token))
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as resp:
        text = await resp.text()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def runs(metrics: dict[Any, float], scenario: str, outcome: str) -> float:
    """The run counter of a scenario and outcome (0 while the exporter has no series for it yet)."""
    found = [
        v
        for (name, labels), v in metrics.items()
        if name == names.SYNTHETIC_RUNS_TOTAL
        and dict(labels).get("scenario") == scenario
        and dict(labels).get("outcome") == outcome
    ]
    return found[0] if found else 0.0


def streak(metrics: dict[Any, float], scenario: str) -> float:
    return next(
        v
        for (name, labels), v in metrics.items()
        if name == names.SYNTHETIC_CONSECUTIVE_FAILURES and dict(labels).get("scenario") == scenario
    )


def last_runs(metrics: dict[Any, float]) -> dict[str, float]:
    """Each scenario's last-run timestamp gauge."""
    return {
        dict(labels)["scenario"]: v
        for (name, labels), v in metrics.items()
        if name == names.SYNTHETIC_LAST_RUN_TIMESTAMP_SECONDS
    }


async def probe(*args: str) -> int:
    # The CLI runs its own event loop (asyncio.run), so it runs in a thread beside the test's servers.
    return await asyncio.to_thread(cli.main, ["probe", *args])


def _judge(prompt: str) -> dict[str, Any]:
    final = prompt.split("## Final answer", 1)[-1]
    ok = "30-day refund policy" in final
    return {"score": 0.9 if ok else 0.1, "label": "pass" if ok else "fail", "explanation": "rubric"}


@pytest.fixture
async def judge_env(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeProvider]:
    async with FakeProvider(judge=_judge) as provider:
        monkeypatch.setenv("OPENAI_BASE_URL", provider.base_url)
        yield provider


async def test_once_passes_writes_junit_and_the_exporter_counts(tmp_path: Path, judge_env, capsys) -> None:
    junit = tmp_path / "probe.xml"
    async with exporter() as url, running_fake_agent("good") as agent:
        before, started = last_runs(await scrape(url)), time.time()
        code = await probe(
            str(CX), "--once", "--junit", str(junit), "--exporter", url, "--target-url", agent.base_url
        )
        metrics, finished = await scrape(url), time.time()
    out = capsys.readouterr().out
    assert code == 0, out
    assert "5/5 scenario(s) passed" in out
    assert runs(metrics, "refund-delivered-order", names.SYNTHETIC_PASSED) == 1
    assert runs(metrics, "refund-delivered-order", names.SYNTHETIC_FAILED) == 0
    assert streak(metrics, "refund-delivered-order") == 0
    # each scenario's run sets its last-run gauge to when it arrived (none had run before)
    assert set(before.values()) <= {0.0}
    after = last_runs(metrics)
    assert len(after) == 5 and all(started <= t <= finished for t in after.values()), after
    root = ET.parse(junit).getroot()
    assert root.get("failures") == "0" and root.get("errors") == "0"
    assert len(root.findall("testsuite")) == 5
    refund = root.find("testsuite[@name='cx-support/refund-delivered-order']")
    assert refund is not None
    cases = [c.get("name") for c in refund.findall("testcase")]
    assert cases[:3] == [
        "run",
        'turn 1: tool-called "get_order"',
        "turn 1: tool-args-match {'tool': 'get_order', 'args': {'order_id': 'A-1001'}}",
    ]
    assert "turn 2: never quotes the retired 3-5 day window" in cases
    assert len(judge_env.requests) == 1  # the llm-rubric went through the judge


async def test_once_fails_with_exit_1_and_junit_names_what_was_expected(
    tmp_path: Path, judge_env, capsys
) -> None:
    junit = tmp_path / "probe.xml"
    async with exporter() as url, running_fake_agent("wrong_tool") as agent:
        args = [str(CX), "--once", "--junit", str(junit), "--exporter", url, "--target-url", agent.base_url]
        assert await probe(*args) == 1
        assert await probe(*args) == 1
        metrics = await scrape(url)
    assert runs(metrics, "order-status-shipped", names.SYNTHETIC_FAILED) == 2
    assert streak(metrics, "order-status-shipped") == 2
    out = capsys.readouterr().out
    assert "FAIL cx-support/order-status-shipped (order-status)" in out
    assert 'turn 1: tool-called "get_order": expected a call to `get_order`; got [get_account_balance]' in out
    suite = ET.parse(junit).getroot().find("testsuite[@name='cx-support/order-status-shipped']")
    assert suite is not None and int(suite.get("failures", "0")) >= 2
    failure = suite.find("testcase[@name='turn 1: tool-called \"get_order\"']/failure")
    assert (
        failure is not None
        and failure.get("message") == "expected a call to `get_order`; got [get_account_balance]"
    )
    assert failure.get("type") == "tool-called"


async def test_agent_down_gives_errors_in_junit(tmp_path: Path, capsys) -> None:
    junit = tmp_path / "probe.xml"
    agent = FakeAgent()
    await agent.start()
    await agent.stop()  # its port is now closed
    code = await probe(
        str(CX), "--once", "--no-exporter", "--junit", str(junit), "--target-url", agent.base_url
    )
    assert code == 1
    root = ET.parse(junit).getroot()
    assert root.get("errors") == "5"
    suite = root.find("testsuite[@name='cx-support/order-status-shipped']")
    assert suite is not None
    error = suite.find("testcase[@name='run']/error")
    assert error is not None and "could not connect" in (error.get("message") or "")
    assert all(c.find("skipped") is not None for c in suite.findall("testcase")[1:])


async def test_token_is_sent_from_the_environment(monkeypatch: pytest.MonkeyPatch, judge_env, capsys) -> None:
    async with exporter(token="t0ken") as url, running_fake_agent("good") as agent:
        monkeypatch.setenv("AGENT_SLO_TOKEN", "t0ken")
        common = [
            "--once",
            "--exporter",
            url,
            "--target-url",
            agent.base_url,
            "--scenario",
            "order-status-shipped",
        ]
        assert await probe(str(CX), *common) == 0
        monkeypatch.setenv("AGENT_SLO_TOKEN", "wrong")
        assert await probe(str(CX), *common) == 0  # results still decide the exit code
        metrics = await scrape(url)
    assert runs(metrics, "order-status-shipped", names.SYNTHETIC_PASSED) == 1
    assert "refused the results: HTTP 401" in capsys.readouterr().err


BAD_SCENARIO = "scenarios:\n  s:\n    flow: refnud\n    turns: [{user: hi}]\n"


async def test_bad_scenarios_and_bad_flags_are_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    spec = tmp_path / "cx.slo.yaml"
    spec.write_text(CX.read_text())
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "bad.yaml").write_text(BAD_SCENARIO)
    assert await probe(str(spec), "--once") == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}/scenarios/bad.yaml:3: scenarios.s.flow: flow `refnud` is not declared" in err
    assert await probe(str(CX), "--junit", "x.xml") == 2
    assert "--junit needs --once" in capsys.readouterr().err
    spec.write_text(CX.read_text().replace("model: cx-support}", "model: cx-support, api_key_env: NOPE_KEY}"))
    (tmp_path / "scenarios" / "bad.yaml").unlink()
    (tmp_path / "scenarios" / "ok.yaml").write_text(BAD_SCENARIO.replace("refnud", "refund"))
    monkeypatch.delenv("NOPE_KEY", raising=False)
    assert await probe(str(spec), "--once", "--no-exporter") == 2
    assert "api_key_env names NOPE_KEY but the environment variable is not set" in capsys.readouterr().err


async def test_schema_flag_prints_the_scenario_schema(capsys) -> None:
    import json

    from agentslo.scenario import scenario_schema

    assert await probe("--schema") == 0
    assert json.loads(capsys.readouterr().out) == scenario_schema()
    assert await probe() == 2
    assert "give at least one SPEC" in capsys.readouterr().err


async def test_probe_runs_every_interval_until_sigterm(tmp_path: Path) -> None:
    import os
    import signal
    import sys

    spec = tmp_path / "cx.slo.yaml"
    spec.write_text(CX.read_text().replace("interval: 5m", "interval: 1s\n  jitter: 0"))
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "s.yaml").write_text(
        (ROOT / "examples" / "scenarios" / "order-status.yaml").read_text()
    )
    async with exporter() as url, running_fake_agent("good") as agent:
        cmd = [
            sys.executable,
            "-m",
            "agentslo.cli",
            "probe",
            str(spec),
            "--exporter",
            url,
            "--target-url",
            agent.base_url,
        ]
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            for _ in range(200):  # until three cycles were counted (or 20 s)
                await asyncio.sleep(0.1)
                metrics = await scrape(url)
                if runs(metrics, "order-status-shipped", names.SYNTHETIC_PASSED) >= 3:
                    break
            proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), 10)
        finally:
            if proc.returncode is None:
                proc.kill()
    assert proc.returncode == 0, err.decode()
    assert runs(metrics, "order-status-shipped", names.SYNTHETIC_PASSED) >= 3
    assert runs(metrics, "order-status-unknown-order", names.SYNTHETIC_FAILED) == 0
    assert "2/2 scenario(s) passed" in out.decode()
